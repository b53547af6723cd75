"""Transactions on a compacted topic (issue 13) through real clients:
transactional producers of two families (confluent-kafka, kafka-python)
commit and abort transactions of keyed records and tombstones, interleaved
with each other and with plain records, on a compacted topic of small
segments, as sent or recompressed by the broker (compression.type=lz4: the
cleaner rebuilds compressed transactional batches). The broker writes them
with its cleaner off; the segments are read as written, then the broker
restarts with its cleaner on, and every cleaning is checked against Kafka's
rules (LogCleaner's CleanedTransactionMetadata and MemoryRecords.filterTo):

- the first cleaning drops every record of an aborted transaction
  (tombstones too) and stamps the batches of the committed tombstones it
  keeps with their delete horizon (KIP-534); readers of both families at
  read_committed *and* read_uncommitted see exactly the latest committed or
  plain value of each key, offsets increasing, and the segments hold
  exactly those records;
- markers stay while batches of their transaction do, and each segment's
  .txnindex lists the aborted transactions whose marker it holds;
- once the data of every transaction is replaced, a cleaning stamps the
  markers with their delete horizon (delete.retention.ms) and a cleaning
  past it removes them: what stays of the transactions is, per producer,
  its last data batch as an empty header and that transaction's marker
  (Kafka keeps an active producer's last batch for its sequence and epoch),
  with the .txnindex entry when that transaction was aborted.

INTEROP_TXN_BROKER=kafka runs it against Apache Kafka
(tests/interop/txn_brokers.py), which is how these expectations were
checked to be Kafka's.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop import admin, confluent_client
from interop.messages import Message
from interop.transactions import Transaction, read, transact
from kafka_compat.log.txn_index import AbortedTxn, TransactionIndex
from kafka_compat.protocol.records import LOG_OVERHEAD, BatchView, Codec, ControlType

from .txn_brokers import TxnBroker, against_kafka

KEYS = 40
TOMBSTONES = 0.15  # of the transactions' records
TRANSACTIONS = 24  # per producer
DELETE_RETENTION_MS = 2000
SEGMENT_BYTES = 2048
# Two of them never share a segment, compressed or not.
ROLL_VALUE = random.Random(13).randbytes(SEGMENT_BYTES - 300)
PRODUCERS = {"confluent": "txn-compact-confluent", "kafka-python": "txn-compact-kafka-python"}
READERS = ("confluent", "kafka-python")
CHECKPOINT = "cleaner-offset-checkpoint"


# --------------------------------------------------------------------- the segments as stored


@dataclass(frozen=True)
class Batch:
    segment: int  # the base offset of the segment holding it
    base_offset: int
    last_offset: int
    producer_id: int
    transactional: bool
    control: int | None  # ControlType of a marker; None for data
    delete_horizon: int | None  # KIP-534: set by the cleaning that found the batch removable
    codec: int
    records: tuple[tuple[int, bytes | None, bytes | None], ...]  # (offset, key, value)
    raw: bytes


def stored_batches(partition_dir: Path) -> list[Batch]:
    """Every batch of every segment, in offset order, parsed with the
    project's record code."""
    out = []
    for path in sorted(partition_dir.glob("*.log"), key=lambda p: int(p.stem)):
        data = path.read_bytes()
        position = 0
        while position + LOG_OVERHEAD <= len(data):
            batch = BatchView(data, position)
            if batch.batch_length <= 0 or batch.end > len(data):
                break  # the end of the log, or a batch being appended as it was read
            assert batch.crc_ok(), f"{path} at {position}: bad CRC"
            records = tuple((r.offset, r.key, r.value) for r in batch.records())
            control = None
            if batch.is_control and records:
                control = int.from_bytes(records[0][1][2:4], "big")
            out.append(Batch(int(path.stem), batch.base_offset, batch.last_offset, batch.producer_id,
                             batch.is_transactional, control,
                             batch.base_timestamp if batch.has_delete_horizon else None, batch.compression, records,
                             bytes(data[position:batch.end])))
            position = batch.end
    offsets = [b.base_offset for b in out]
    assert offsets == sorted(set(offsets)), "batches out of offset order"
    return out


def stored_txn_index(partition_dir: Path) -> dict[int, list[AbortedTxn]]:
    """Segment base offset -> its .txnindex entries."""
    out = {}
    for path in sorted(partition_dir.glob("*.log"), key=lambda p: int(p.stem)):
        entries = TransactionIndex(path.with_suffix(".txnindex"), int(path.stem)).entries
        if entries:
            out[int(path.stem)] = entries
    return out


def all_entries(index: dict[int, list[AbortedTxn]]) -> list[AbortedTxn]:
    return sorted((e for entries in index.values() for e in entries), key=lambda e: e.last_offset)


@dataclass
class Txn:
    producer_id: int
    data: list[int]  # base offsets of its data batches
    marker: int | None = None  # the marker's offset
    commit: bool | None = None


def transactions_of(batches: list[Batch]) -> tuple[list[Txn], dict[int, Txn], dict[int, Txn]]:
    """The transactions of the log as written: each producer's data batches
    up to its next marker; base offset -> transaction of every transactional
    batch (data or marker); and producer id -> its transaction still
    without a marker."""
    open_txns: dict[int, Txn] = {}
    done: list[Txn] = []
    of: dict[int, Txn] = {}
    for b in batches:
        if not b.transactional:
            continue
        txn = open_txns.setdefault(b.producer_id, Txn(b.producer_id, []))
        of[b.base_offset] = txn
        if b.control is None:
            txn.data.append(b.base_offset)
        else:
            assert b.control in (ControlType.COMMIT, ControlType.ABORT), b
            txn.marker, txn.commit = b.base_offset, b.control == ControlType.COMMIT
            done.append(open_txns.pop(b.producer_id))
    return done, of, open_txns


def written_log(partition_dir: Path, timeout: float = 30.0) -> list[Batch]:
    """The log once every transaction's marker is in (EndTxn is answered
    before the coordinator writes the markers)."""
    deadline = time.monotonic() + timeout
    while True:
        batches = stored_batches(partition_dir)
        unfinished = transactions_of(batches)[2]
        if not unfinished:
            return batches
        assert time.monotonic() < deadline, f"transactions without a marker: {unfinished}"
        time.sleep(0.05)


# --------------------------------------------------------------------- the broker and the writes


def cleaned_to(data_dir: Path, topic: str) -> int:
    """The cleaner's checkpointed first dirty offset of the partition (0 before any cleaning)."""
    try:
        lines = (data_dir / CHECKPOINT).read_text().split("\n")[2:]
    except FileNotFoundError:
        return 0
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == topic and parts[1] == "0":
            return int(parts[2])
    return 0


def wait_cleaned(broker: TxnBroker, topic: str, offset: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while cleaned_to(broker.data_dir, topic) < offset:
        assert time.monotonic() < deadline, f"the cleaner never got to offset {offset}"
        time.sleep(0.05)


def produce_plain(bootstrap: str, topic: str, pairs) -> dict[int, tuple[bytes, bytes]]:
    offsets = confluent_client.produce(bootstrap, topic, [Message(k, v) for k, v in pairs])
    return dict(zip(offsets, pairs))


def roll(bootstrap: str, topic: str) -> tuple[dict[int, tuple[bytes, bytes]], int]:
    """Two records each nearly a segment big: the second starts a segment
    of its own, so everything before it is in non-active segments. (the
    records, the offset the cleaning goes up to)."""
    written = produce_plain(bootstrap, topic, [(b"roll-1", ROLL_VALUE)])
    written.update(produce_plain(bootstrap, topic, [(b"roll-2", ROLL_VALUE)]))
    return written, max(written)


def key(i: int) -> bytes:
    return b"key-%02d" % i


def transactions_for(family: str, topic: str, rng: random.Random, last_commits: bool) -> list[Transaction]:
    out = []
    for t in range(TRANSACTIONS):
        commit = last_commits if t == TRANSACTIONS - 1 else t > 0 and rng.random() < 0.5
        outcome = b"commit" if commit else b"abort"
        records = tuple((topic, 0, key(rng.randrange(KEYS)), None if rng.random() < TOMBSTONES else
                         b"%s/t%02d/%s/%d/" % (family.encode(), t, outcome, i) + b"v" * rng.randrange(40, 120))
                        for i in range(rng.randrange(1, 9)))
        out.append(Transaction(records, commit))
    # A key only an aborted transaction wrote: after cleaning, nothing of it is left.
    only_aborted = (topic, 0, b"only-aborted-" + family.encode(), b"%s/abort" % family.encode())
    out[0] = Transaction(out[0].records + (only_aborted,), False)
    return out


def run_writers(bootstrap: str, topic: str) -> dict[int, tuple[bytes, bytes]]:
    """Both transactional producers and a plain one at the same time; the
    plain records written (offset -> (key, value))."""
    rng = random.Random(1309)
    jobs = {family: transactions_for(family, topic, rng, last_commits=family == "confluent") for family in PRODUCERS}
    failures = []

    def run(family):
        try:
            transact(family, bootstrap, PRODUCERS[family], jobs[family])
        except Exception as e:  # reported below, in the test's thread
            failures.append(f"{family}: {e!r}")

    threads = [threading.Thread(target=run, args=(f,)) for f in PRODUCERS]
    for thread in threads:
        thread.start()
    plain = {}
    for i in range(10):
        plain.update(produce_plain(bootstrap, topic, [(key(rng.randrange(KEYS)), b"plain/%d/%d" % (i, j))
                                                       for j in range(rng.randrange(1, 6))]))
        time.sleep(0.05)
    for thread in threads:
        thread.join(180)
    assert not failures, failures
    assert not any(t.is_alive() for t in threads), "a transactional producer hung"
    return plain


# --------------------------------------------------------------------- what is expected


def cleaned(records: dict[int, tuple[bytes, bytes]], upto: int) -> list[tuple[int, bytes, bytes]]:
    """What a cleaning up to ``upto`` leaves of ``records``: the latest of
    each key below it, and everything from it on (the active segment)."""
    latest = {}
    for offset in sorted(records):
        if offset < upto:
            latest[records[offset][0]] = offset
    return sorted([(o, *records[o]) for o in latest.values()] + [(o, *r) for o, r in records.items() if o >= upto])


def check_reads(bootstrap: str, topic: str, expected: list[tuple[int, bytes, bytes]]) -> None:
    for family in READERS:
        for isolation in ("read_committed", "read_uncommitted"):
            got = read(family, bootstrap, {(topic, 0): len(expected)}, isolation=isolation, timeout=30)
            got = [(r.offset, r.key, r.value) for r in got[(topic, 0)]]
            assert got == expected, (
                f"{family} at {isolation}: {len(got)} records, not {len(expected)}; first differences "
                f"{[(g, e) for g, e in zip(got, expected) if g != e][:3]}")


def check_stored(batches: list[Batch], index: dict[int, list[AbortedTxn]], txn_of: dict[int, Txn],
                 expected: list[tuple[int, bytes, bytes]]) -> None:
    """What holds after any cleaning: exactly the expected records; no
    record of an aborted transaction; a batch of a transaction is still
    followed by its marker; the .txnindex of each segment lists aborted
    transactions whose marker it holds, and each aborted transaction with
    a batch left."""
    records = [(o, k, v) for b in batches if b.control is None for o, k, v in b.records]
    assert records == expected, (f"{len(records)} records stored, {len(expected)} expected; first differences "
                                 f"{[(r, e) for r, e in zip(records, expected) if r != e][:3]}")
    markers = {b.base_offset: b for b in batches if b.control is not None}
    for b in batches:
        txn = txn_of.get(b.base_offset)
        if b.transactional:
            assert txn is not None, f"{b.base_offset}: a transactional batch that was never written"
            assert txn.marker in markers, (f"batch {b.base_offset} of a transaction is left, its marker "
                                           f"{txn.marker} is not")
            if not txn.commit:
                assert b.control is not None or not b.records, \
                    f"records {b.records} of an aborted transaction at {b.base_offset} survived the cleaning"
        elif b.control is None:
            assert b.records, f"an empty plain batch at {b.base_offset}"
    listed = set()
    for segment, entries in index.items():
        for entry in entries:
            marker = markers.get(entry.last_offset)
            assert marker is not None and marker.segment == segment and marker.control == ControlType.ABORT \
                and marker.producer_id == entry.producer_id, \
                f"segment {segment}'s .txnindex lists {entry}, whose abort marker the segment doesn't hold"
            txn = txn_of[entry.last_offset]
            assert entry.first_offset == txn.data[0], f"{entry} starts elsewhere than its transaction"
            listed.add(entry.last_offset)
    for b in batches:
        txn = txn_of.get(b.base_offset)
        if txn is not None and not txn.commit and b.control is None:
            assert txn.marker in listed, (f"batch {b.base_offset} of the aborted transaction ending at "
                                          f"{txn.marker} is left, but no .txnindex lists it")


def check_marker_removals(before: list[Batch], after: list[Batch]) -> None:
    """A marker goes only in a cleaning past the delete horizon an earlier
    cleaning gave it (Kafka keeps a marker whose transaction is gone for
    delete.retention.ms, so that a reader already past the transaction's
    data still sees it end)."""
    now = time.time() * 1000
    left = {b.base_offset for b in after}
    for b in before:
        if b.control is not None and b.base_offset not in left:
            assert b.delete_horizon is not None, f"the marker at {b.base_offset} went without a delete horizon"
            assert b.delete_horizon <= now, f"the marker at {b.base_offset} went before its delete horizon"
    for b in after:
        if b.delete_horizon is not None:
            assert b.delete_horizon <= now + DELETE_RETENTION_MS, b


# --------------------------------------------------------------------- the test


@pytest.fixture
def txn_broker(tmp_path):
    # The cleaner is off until the log as written was read.
    broker = TxnBroker(tmp_path, {"log.cleaner.enable": "false", "log.cleaner.backoff.ms": "50"})
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("compression", ["producer", "lz4"])
def test_transactions_on_a_compacted_topic(txn_broker, topic_name, compression):
    broker = txn_broker
    topic = topic_name()
    # Kafka 4 refuses a segment.bytes under 1 MB (KIP-1030); its own tests set internal.segment.bytes.
    segment_config = "internal.segment.bytes" if against_kafka() else "segment.bytes"
    admin.create_topic(broker.bootstrap, topic, partitions=1, configs={
        "cleanup.policy": "compact", segment_config: str(SEGMENT_BYTES), "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(DELETE_RETENTION_MS), "compression.type": compression,
    })
    partition_dir = broker.data_dir / f"{topic}-0"

    # -- written with the cleaner off: the log as the producers left it ---------------------------
    plain = run_writers(broker.bootstrap, topic)
    written = written_log(partition_dir)
    written_index = all_entries(stored_txn_index(partition_dir))
    txns, txn_of, _ = transactions_of(written)
    assert len(txns) == 2 * TRANSACTIONS
    assert [(e.producer_id, e.first_offset, e.last_offset) for e in written_index] == \
        [(t.producer_id, t.data[0], t.marker) for t in txns if not t.commit]
    committed = {}
    for b in written:
        if b.transactional and b.control is None:
            assert all((b"/commit/" in v) == txn_of[b.base_offset].commit for _, _, v in b.records if v), b
            if txn_of[b.base_offset].commit:
                committed.update({o: (k, v) for o, k, v in b.records})
    assert {o: (k, v) for b in written if not b.transactional for o, k, v in b.records} == plain
    aborted_values = {v for b in written if b.transactional and b.control is None
                      and not txn_of[b.base_offset].commit for _, _, v in b.records if v is not None}
    assert len(aborted_values) > 20 and committed, "both kinds of transactions, please"
    assert len({b.segment for b in written}) > 5, "the transactions should spread over several segments"
    codec = Codec.LZ4 if compression == "lz4" else Codec.NONE
    assert {b.codec for b in written if b.control is None} == {codec}
    # Uncleaned, read_uncommitted sees the aborted records (so the reads below would see them too).
    everything = sorted((o, k, v) for b in written if b.control is None for o, k, v in b.records)
    got = read("confluent", broker.bootstrap, {(topic, 0): len(everything)}, isolation="read_uncommitted")
    assert [(r.offset, r.key, r.value) for r in got[(topic, 0)]] == everything
    rolls, upto = roll(broker.bootstrap, topic)
    live = {**plain, **committed, **rolls}  # every record not aborted

    broker.stop()
    broker.process.overrides["log.cleaner.enable"] = "true"
    broker.start()

    # -- the first cleaning: aborted records gone, every marker and .txnindex entry kept ----------
    wait_cleaned(broker, topic, upto)
    expected = cleaned(live, upto)
    assert not any(k.startswith(b"only-aborted") for _, k, _ in expected)
    batches = stored_batches(partition_dir)
    index = stored_txn_index(partition_dir)
    check_stored(batches, index, txn_of, expected)
    assert not any(v in aborted_values for b in batches for _, _, v in b.records)
    assert {b.base_offset for b in batches if b.control is not None} == {t.marker for t in txns}, \
        "a marker went while its transaction's batches were there to read"
    assert all_entries(index) == written_index
    # A committed tombstone still the latest of its key stays, its batch stamped with its delete horizon.
    kept_tombstones = [b for b in batches if b.transactional and any(v is None for _, _, v in b.records)]
    assert kept_tombstones and all(b.delete_horizon is not None for b in kept_tombstones), kept_tombstones
    assert {b.codec for b in batches if b.control is None and b.records} == {codec}, "recompressed otherwise"
    check_reads(broker.bootstrap, topic, expected)

    # -- every key replaced by plain records: the transactions' data goes; a cleaning that finds
    # a marker's transaction gone stamps it with its delete horizon, one past that removes it -------
    live.update(produce_plain(broker.bootstrap, topic, [(key(i), b"replaced/%d" % i) for i in range(KEYS)]))
    for _ in range(3):
        rolls, upto = roll(broker.bootstrap, topic)
        live.update(rolls)
        wait_cleaned(broker, topic, upto)
        before, batches = batches, stored_batches(partition_dir)
        check_stored(batches, stored_txn_index(partition_dir), txn_of, cleaned(live, upto))
        check_marker_removals(before, batches)
        # Until the horizons this cleaning set have passed.
        horizon = max((b.delete_horizon for b in batches if b.delete_horizon is not None), default=0)
        while time.time() * 1000 <= horizon:
            time.sleep(0.05)
    expected = cleaned(live, upto)
    check_reads(broker.bootstrap, topic, expected)

    # What is left of the transactions: each producer's last data batch, empty, and its marker.
    last_txn = {t.producer_id: t for t in txns}
    assert len(last_txn) == 2 and sorted(t.commit for t in last_txn.values()) == [False, True]
    want = sorted([(t.data[-1], None) for t in last_txn.values()]
                  + [(t.marker, ControlType.COMMIT if t.commit else ControlType.ABORT) for t in last_txn.values()])
    assert [(b.base_offset, b.control) for b in batches if b.transactional] == want, \
        "of the transactions, only each producer's last data batch and its marker should be left"
    original = {b.base_offset: b for b in written}
    for b in batches:
        if b.transactional and b.control is None:
            assert not b.records, f"the last data batch of producer {b.producer_id} still has records"
        elif b.transactional:
            assert b.raw == original[b.base_offset].raw, "a marker still needed was rewritten"
    aborted_last = next(t for t in last_txn.values() if not t.commit)
    index = stored_txn_index(partition_dir)
    assert all_entries(index) == [e for e in written_index if e.last_offset == aborted_last.marker]
    check_stored(batches, index, txn_of, expected)
