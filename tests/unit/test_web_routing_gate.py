"""Routing waits for the group's assignment (``streams.web.routing.assignment_known``): outside a
rebalance a request goes on at once; during one it waits for the assignment, so it is routed by the
owners that fold now and not by those before; a rebalance longer than the write wait is a 503."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams.web.errors import HttpError
from streams.web.routing import assignment_known

pytestmark = pytest.mark.unit


@dataclass
class Settings:
    write_wait_s: float


@dataclass
class Engine:  # the two fields the gate reads
    settings: Settings
    assignment_known: asyncio.Event = field(default_factory=asyncio.Event)


def known(engine: Any) -> Any:
    return assignment_known(engine)


def test_outside_a_rebalance_a_request_goes_on_at_once():
    async def scenario() -> None:
        engine = Engine(Settings(write_wait_s=0.0))  # any wait at all would time out
        engine.assignment_known.set()
        await known(engine)

    asyncio.run(scenario())


def test_during_a_rebalance_a_request_waits_for_the_assignment():
    async def scenario() -> list[str]:
        engine = Engine(Settings(write_wait_s=30.0))
        seen: list[str] = []

        async def request() -> None:
            await known(engine)
            seen.append("routed")

        waiting = asyncio.create_task(request())
        for _ in range(5):  # the request has every chance to go on before the assignment
            await asyncio.sleep(0)
        seen.append("assigned")
        engine.assignment_known.set()  # what the worker's on_partitions_assigned does
        await waiting
        return seen

    assert asyncio.run(scenario()) == ["assigned", "routed"]


def test_a_rebalance_longer_than_the_write_wait_is_a_503_that_says_why():
    async def scenario() -> None:
        await known(Engine(Settings(write_wait_s=0.01)))

    with pytest.raises(HttpError) as raised:
        asyncio.run(scenario())
    assert raised.value.status == 503
    assert "partitions are being assigned" in str(raised.value)
