"""A Kafka client let go of is destroyed on the reaper's thread, never on the caller's, and only once
nobody else holds it (a destroy can wait for a dead broker: the caller is the fold loop)."""

from __future__ import annotations

import threading
import time

from streams.kafka.reaper import Reaper


class Client:
    """Stands in for a confluent-kafka client: what matters is where its last reference goes."""

    def __init__(self, destroyed: dict[str, str], name: str) -> None:
        self.destroyed, self.name = destroyed, name

    def __del__(self) -> None:
        self.destroyed[self.name] = threading.current_thread().name


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.02)


def test_a_client_is_destroyed_on_the_reapers_thread_once_nobody_else_holds_it():
    reaper = Reaper()
    destroyed: dict[str, str] = {}
    alone, shared = Client(destroyed, "alone"), Client(destroyed, "shared")
    still_held = shared
    reaper.discard(alone, "alone")
    reaper.discard(shared, "shared")
    del alone, shared
    wait_for(lambda: "alone" in destroyed)
    assert destroyed == {"alone": "kafka-reaper"}
    # Held elsewhere (a batch's variable): looked at again and again, never destroyed meanwhile.
    time.sleep(1.2)  # two of the reaper's looks: nothing to wait for, it must not happen
    assert "shared" not in destroyed
    del still_held
    wait_for(lambda: "shared" in destroyed)
    assert destroyed["shared"] == "kafka-reaper"


def test_a_destroy_that_hangs_holds_up_only_the_reaper():
    reaper = Reaper()
    release = threading.Event()
    hung = threading.Event()

    class Hanging:
        def __del__(self) -> None:
            hung.set()
            release.wait()

    reaper.discard(Hanging(), "hanging")
    wait_for(hung.is_set)
    destroyed: dict[str, str] = {}
    caller = threading.Thread(target=lambda: reaper.discard(Client(destroyed, "next"), "next"))
    caller.start()
    caller.join(5)
    assert not caller.is_alive(), "the caller waited for a destroy that hangs"
    release.set()
    wait_for(lambda: "next" in destroyed)
    assert destroyed == {"next": "kafka-reaper"}
