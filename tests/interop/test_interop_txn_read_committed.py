"""Every client family's read_committed consumer on transactions the
partition leader got as raw transactional batches and WriteTxnMarkers:
producers interleaved, aborted transactions spanning several small segments
(so that reads cross segments and the aborted-transaction lists come from
several .txnindex files), each family must see exactly the committed and
plain records, in offset order; at read_uncommitted, everything."""
from __future__ import annotations

import pytest
import trio

from interop.transactions import FAMILIES, read
from kafka_compat.protocol.errors import ErrorCode

from ..integration.test_requests import create_topic
from ..integration.test_txn_partitions import batch, markers, produce, producer_id
from ..integration.wire import WireClient

TOPIC = "txn"
ROUNDS = 12


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"log.segment.bytes": "1500", "log.index.interval.bytes": "100",
            # raw transactional batches, standing in for producers the coordinator knows
            "transaction.partition.verification.enable": "false"}


async def _write(port: int) -> tuple[list[bytes], list[bytes]]:
    """(the values a read_committed reader sees, all values), in offset order."""
    client = await WireClient.connect(port)
    assert (await create_topic(client, TOPIC)).error_code == ErrorCode.NONE
    aborter, committer, late = [await producer_id(client) for _ in range(3)]
    committed, everything = [], []
    for r in range(ROUNDS):
        # The committer's transaction starts before the aborter's and ends after it.
        for pid, seq, values in ((committer, 4 * r, [b"c%d-%d" % (r, i) for i in range(2)]),
                                 (aborter, 3 * r, [b"a%d-%d" % (r, i) for i in range(3)]),
                                 (None, -1, [b"p%d" % r]),
                                 (committer, 4 * r + 2, [b"c%d-%d" % (r, i) for i in range(2, 4)])):
            part = await produce(client, batch(values, pid if pid is not None else -1, seq,
                                               transactional=pid is not None))
            assert part.error_code == ErrorCode.NONE, part
            everything += values
        assert await markers(client, (aborter, 0, False, 0)) == {(aborter, TOPIC, 0): ErrorCode.NONE}
        assert await markers(client, (committer, 0, True, 0)) == {(committer, TOPIC, 0): ErrorCode.NONE}
        committed += [v for v in everything[-8:] if not v.startswith(b"a")]
    # A transaction aborted right at the end, across the last segment roll.
    for i in range(3):
        values = [b"late-%d" % i] * 4
        assert (await produce(client, batch(values, late, 4 * i, transactional=True))).error_code == ErrorCode.NONE
        everything += values
    assert await markers(client, (late, 0, False, 0)) == {(late, TOPIC, 0): ErrorCode.NONE}
    await client.aclose()
    return committed, everything


@pytest.fixture(scope="module")
def written(broker):
    committed, everything = trio.run(_write, broker.port)
    segments = list((broker.data_dir / f"{TOPIC}-0").glob("*.txnindex"))
    assert len(segments) > 2, "the aborted transactions should spread over several segments"
    return committed, everything


@pytest.mark.parametrize("family", FAMILIES)
def test_read_committed_sees_only_committed_records(broker, written, family):
    committed, everything = written
    got = read(family, broker.bootstrap, {(TOPIC, 0): len(committed)}, timeout=60)
    assert [r.value for r in got[(TOPIC, 0)]] == committed
    offsets = [r.offset for r in got[(TOPIC, 0)]]
    assert offsets == sorted(offsets)


@pytest.mark.parametrize("family", ["confluent", "java"])
def test_read_uncommitted_sees_everything(broker, written, family):
    _, everything = written
    got = read(family, broker.bootstrap, {(TOPIC, 0): len(everything)}, isolation="read_uncommitted", timeout=60)
    assert [r.value for r in got[(TOPIC, 0)]] == everything
