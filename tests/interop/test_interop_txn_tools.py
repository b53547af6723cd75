"""Kafka's kafka-transactions tool against us, on a hanging transaction: a
transactional batch the coordinator never heard of (written raw, with
KIP-890 verification off, as a producer from before it could leave one).
describe-producers shows its start offset (DescribeProducers), find-hanging
finds it (DescribeProducers, ListTransactions, DescribeTransactions), abort
ends it with a marker the admin client writes itself (WriteTxnMarkers), after
which nothing hangs and the last stable offset is past it."""
from __future__ import annotations

import pytest

from kafka_compat.protocol.errors import ErrorCode

from ..integration.test_txn_partitions import READ_COMMITTED, TOPIC, batch, fetch, produce, producer_id
from ..integration.test_requests import create_topic
from ..integration.wire import WireClient
from .kafka_tools import kafka_tool


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"transaction.partition.verification.enable": "false"}


def transactions(broker, *args: str) -> list[list[str]]:
    """kafka-transactions' table: the rows after the header, split on whitespace."""
    result = kafka_tool("kafka-transactions", "--bootstrap-server", broker.bootstrap, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    return lines[1:]


async def test_find_and_abort_a_hanging_transaction(own_broker):
    client = await WireClient.connect(own_broker.port)
    assert (await create_topic(client, TOPIC)).error_code == ErrorCode.NONE
    pid = await producer_id(client)
    assert (await produce(client, batch([b"hanging"], pid, 0, transactional=True))).base_offset == 0
    assert (await produce(client, batch([b"after"]))).base_offset == 1
    assert (await fetch(client, 0, READ_COMMITTED)).last_stable_offset == 0

    (producer,) = transactions(own_broker, "describe-producers", "--topic", TOPIC, "--partition", "0")
    assert (producer[0], producer[5]) == (str(pid), "0")  # its transaction starts at offset 0
    (hanging,) = transactions(own_broker, "find-hanging", "--topic", TOPIC, "--max-transaction-timeout", "0")
    assert hanging[:3] == [TOPIC, "0", str(pid)] and hanging[5] == "0"

    assert transactions(own_broker, "abort", "--topic", TOPIC, "--partition", "0", "--start-offset", "0") == []
    assert transactions(own_broker, "find-hanging", "--topic", TOPIC, "--max-transaction-timeout", "0") == []
    (producer,) = transactions(own_broker, "describe-producers", "--topic", TOPIC, "--partition", "0")
    assert producer[5] == "None"
    done = await fetch(client, 0, READ_COMMITTED)
    assert done.last_stable_offset == done.high_watermark == 3
    assert [(a.producer_id, a.first_offset) for a in done.aborted_transactions] == [(pid, 0)]
    await client.aclose()
