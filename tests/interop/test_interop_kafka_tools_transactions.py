"""Kafka's kafka-transactions tool against kafka-compat: list and describe
(ListTransactions, DescribeTransactions through the Java Admin), describe-producers,
and find-hanging / abort of a transaction the coordinator never knew of (written
with KIP-890 verification off, as a broker before 3.6 would have let it in)."""
from __future__ import annotations

import pytest
import trio
from confluent_kafka import Producer

from kafka_compat.protocol.records import build_batch
from tests.integration.wire import WireClient
from tests.interop.kafka_tools import kafka_tool

TIMEOUT = 60


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"transaction.partition.verification.enable": "false"}


def transactions(broker, *args: str):
    result = kafka_tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, *args)
    return result.returncode, [line.split("\t") for line in result.stdout.splitlines() if line.strip()], result


def rows(table: list[list[str]]) -> list[dict[str, str]]:
    header = [h.strip() for h in table[0]]
    return [{h: v.strip() for h, v in zip(header, row)} for row in table[1:]]


def write_hanging_batch(broker, topic: str) -> tuple[int, int]:
    """A transactional batch of an idempotent producer id that no coordinator
    knows: (producer id, its offset)."""
    async def run():
        client = await WireClient.connect(broker.port)
        init = await client.request("InitProducerId", 4, {"transactional_id": None,
                                                          "transaction_timeout_ms": 60000})
        data = build_batch([(b"k", b"hanging", [], 1_700_000_000_000)], producer_id=init.producer_id,
                           producer_epoch=0, base_sequence=0, transactional=True)
        resp = await client.request("Produce", 9, {"transactional_id": "never-registered", "acks": -1,
                                                   "timeout_ms": 5000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": data}]}]})
        part = resp.responses[0].partition_responses[0]
        assert part.error_code == 0, part
        await client.aclose()
        return init.producer_id, part.base_offset
    return trio.run(run)


def test_kafka_transactions_tool(broker, new_topic):
    topic = new_topic(partitions=2)
    ongoing = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"tool-{topic}",
                        "transaction.timeout.ms": 600_000})
    ongoing.init_transactions(TIMEOUT)
    ongoing.begin_transaction()
    ongoing.produce(topic, b"x", partition=0)
    ongoing.produce(topic, b"y", partition=1)
    assert ongoing.flush(TIMEOUT) == 0
    done = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": f"done-{topic}"})
    done.init_transactions(TIMEOUT)
    done.begin_transaction()
    done.produce(topic, b"z", partition=1)
    done.commit_transaction(TIMEOUT)

    code, table, result = transactions(broker, "list")
    assert code == 0, result.stderr
    listed = {r["TransactionalId"]: r for r in rows(table)}
    assert listed[f"tool-{topic}"]["TransactionState"] == "Ongoing"
    assert listed[f"done-{topic}"]["TransactionState"] == "CompleteCommit"
    assert listed[f"tool-{topic}"]["Coordinator"] == "0"

    code, table, result = transactions(broker, "describe", "--transactional-id", f"tool-{topic}")
    assert code == 0, result.stderr
    (described,) = rows(table)
    assert (described["TransactionState"], described["TransactionTimeoutMs"], described["ProducerEpoch"]) == (
        "Ongoing", "600000", "0")
    assert set(described["TopicPartitions"].split(",")) == {f"{topic}-0", f"{topic}-1"}
    code, _, result = transactions(broker, "describe", "--transactional-id", f"nope-{topic}")
    assert code == 1 and "could not be found" in result.stderr

    producer_id, offset = write_hanging_batch(broker, topic)
    code, table, result = transactions(broker, "find-hanging", "--topic", topic, "--max-transaction-timeout", "0")
    assert code == 0, result.stderr
    # Only the batch no coordinator knows: the open transaction of tool-... is in its coordinator's partitions.
    assert [(r["Partition"], r["ProducerId"], r["StartOffset"]) for r in rows(table)] == [
        ("0", str(producer_id), str(offset))]
    code, _, result = transactions(broker, "abort", "--topic", topic, "--partition", "0", "--start-offset",
                                   str(offset))
    assert code == 0, result.stderr
    code, table, result = transactions(broker, "find-hanging", "--topic", topic, "--max-transaction-timeout", "0")
    assert code == 0 and rows(table) == [], result.stdout
    ongoing.abort_transaction(TIMEOUT)
