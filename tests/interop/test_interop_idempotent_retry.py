"""Idempotent producers whose writes landed but whose acknowledgements were
lost: the broker (with the test-only fault KAFKA_COMPAT_TEST_FAULTS) appends
the first produce requests and then closes the connection instead of
answering, the producer retries the same batches, and the broker's sequence
checks keep every message exactly once and in order."""
from __future__ import annotations

import pytest

from interop import admin
from interop.broker_process import BrokerProcess, venv_executable
from interop.clients import CONSUMERS, PRODUCERS
from interop.messages import binary_messages
from interop.verify import assert_delivered_in_order, assert_same_messages

DROPS = 3
COUNT = 2_000
DROPPED = "KAFKA_COMPAT_TEST_FAULTS: produce response dropped after the append"


@pytest.fixture
def faulty_broker(tmp_path):
    process = BrokerProcess(venv_executable("kafka-compat"), data_dir=tmp_path / "data",
                            log_path=tmp_path / "broker.log",
                            env={"KAFKA_COMPAT_TEST_FAULTS": f"drop_produce_responses={DROPS}"})
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize("producer", ["confluent-kafka", "kafka-python", "aiokafka"])
def test_retried_writes_land_once_in_order(faulty_broker, producer):
    topic = f"retried-{producer}"
    admin.create_topic(faulty_broker.bootstrap, topic)
    sent = binary_messages(COUNT, seed=11)
    offsets = PRODUCERS[producer](faulty_broker.bootstrap, topic, sent, idempotent=True)
    assert faulty_broker.log_path.read_text().count(DROPPED) == DROPS, "the faults did not fire"
    assert_delivered_in_order(offsets, COUNT)
    assert admin.offset_range(faulty_broker.bootstrap, topic) == (0, COUNT)
    assert_same_messages(sent, CONSUMERS["confluent-kafka"](faulty_broker.bootstrap, topic, COUNT))
