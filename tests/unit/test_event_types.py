"""Every event type of the contract is complete: a fold handler, a generator strategy, an example,
a row in the README. Adding a type to ``schemas.events.Event`` without them fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import session as fold_module
from schemas.events import EVENT_CLASSES, EVENT_TYPES, STOREFRONT_EVENT_TYPES, event_from_object, type_name
from streams.devkit.events import EXAMPLES, new_session_id
from tests.support.strategies import EVENT_STRATEGIES

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"
NAMES = sorted(EVENT_CLASSES)


@pytest.mark.parametrize("name", NAMES)
def test_every_event_type_has_a_fold_handler(name):
    assert EVENT_CLASSES[name] in fold_module._CHANGES, f"no handler for {name} in projections/session.py"


@pytest.mark.parametrize("name", NAMES)
def test_every_event_type_has_an_example_of_that_type(name):
    assert name in EXAMPLES, f"no example for {name} in streams/devkit/events.py"
    assert type(event_from_object(EXAMPLES[name](new_session_id()))) is EVENT_CLASSES[name]


@pytest.mark.parametrize("name", NAMES)
def test_every_event_type_has_a_strategy_that_draws_it(name):
    assert name in EVENT_STRATEGIES, f"no strategy for {name} in tests/support/strategies.py"

    @settings(max_examples=10, deadline=None)
    @given(st.data())
    def draws_that_type(data):
        event = data.draw(EVENT_STRATEGIES[name](new_session_id(), 0))
        assert type(event_from_object(event)) is EVENT_CLASSES[name]

    draws_that_type()


def test_the_registries_hold_no_type_the_contract_lacks():
    assert set(EXAMPLES) == set(EVENT_STRATEGIES) == set(EVENT_CLASSES)


def test_the_readme_table_lists_every_event_type():
    text = README.read_text()
    table = text[text.index("Event types so far:") :].split("\n\n")[1]  # the table after that line
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(rows) == NAMES


def test_the_lists_are_derived_from_the_declarations():
    assert [type_name(cls) for cls in EVENT_TYPES] == list(EVENT_CLASSES)
    assert {name for name, cls in EVENT_CLASSES.items() if cls.storefront} == STOREFRONT_EVENT_TYPES
    assert {"navigation.page_viewed", "navigation.campaign_clicked", "cart.item_added"} == STOREFRONT_EVENT_TYPES
