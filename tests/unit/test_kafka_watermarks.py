"""The restore's ask for a partition's end (streams.kafka.clients.watermarks_once_kafka_answers) with a
fake consumer: it rides through whatever a dying or restarting broker makes librdkafka say (a run of
the broker fault suite saw every worker's fold loop stop on "Broker handle destroyed" and "Timed
out" here), stops waiting when told to, and still raises what no waiting cures."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.kafka import clients
from streams.kafka.clients import watermarks_once_kafka_answers

pytestmark = pytest.mark.unit

TP = TopicPartition("changelog", 3)


class FakeConsumer:
    """Answers with the errors given, in order, then with the watermarks."""

    def __init__(self, *errors: KafkaError, ends: tuple[int, int] = (0, 42)) -> None:
        self.errors = list(errors)
        self.ends = ends
        self.asked = 0
        self.leaders_asked = 0

    def list_topics(self, topic: str, timeout: float) -> None:
        assert topic == "changelog"
        self.leaders_asked += 1

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        assert (tp.topic, tp.partition, cached) == ("changelog", 3, False)
        self.asked += 1
        if self.errors:
            raise KafkaException(self.errors.pop(0))
        return self.ends


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients.time, "sleep", lambda s: None)


def test_a_dying_and_restarting_broker_is_waited_out():
    consumer = FakeConsumer(
        KafkaError(KafkaError._DESTROY_BROKER),
        KafkaError(KafkaError._TIMED_OUT),
        KafkaError(KafkaError._TRANSPORT),
        KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION),
        KafkaError(KafkaError._ALL_BROKERS_DOWN),
    )
    assert watermarks_once_kafka_answers(consumer, TP, interrupted=lambda: False) == (0, 42)  # type: ignore[arg-type]
    assert consumer.asked == 6
    # After each error it asked who leads now: the leader it asked may be the dead broker (a run's
    # restore asked a dead leader for four minutes while its client's metadata still named it).
    assert consumer.leaders_asked == 5


def test_it_stops_waiting_when_a_command_is_waiting():
    consumer = FakeConsumer(*[KafkaError(KafkaError._TIMED_OUT)] * 100)
    calls = iter([False, False, True])
    assert watermarks_once_kafka_answers(consumer, TP, interrupted=lambda: next(calls)) is None  # type: ignore[arg-type]
    assert consumer.asked == 3


@pytest.mark.parametrize(
    "error",
    [
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),  # waiting cures nothing: the loop says so
        KafkaError(KafkaError._TIMED_OUT, fatal=True),
    ],
)
def test_what_no_waiting_cures_is_raised(error: KafkaError):
    consumer = FakeConsumer(error)
    with pytest.raises(KafkaException) as raised:
        watermarks_once_kafka_answers(consumer, TP, interrupted=lambda: False)  # type: ignore[arg-type]
    assert raised.value.args[0].code() == error.code()
    assert consumer.asked == 1
