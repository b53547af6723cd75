"""Differential cases for transactions at the partition leader: raw
transactional batches, WriteTxnMarkers, Fetch and ListOffsets at
READ_COMMITTED, DescribeProducers.

Both brokers run without KIP-890 verification: the cases write transactional
batches themselves, standing in for producers the coordinator knows.
Control batches carry each broker's clock, so those cases compare what the
batches say (offsets, flags, keys, values) rather than their bytes.
"""
from __future__ import annotations

import time

import pytest

from kafka_compat.protocol.records import build_batch, iter_batches

from .harness import Case, params, run_case, topic, wait_for

# Record timestamps: now, so that markers (stamped with each broker's clock)
# don't roll a new segment (segment.ms counts from a segment's first batch).
TS = int(time.time() * 1000)
TXN_ID = "raw-txn"  # what a transactional producer's requests carry


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"transaction.partition.verification.enable": "false"}


def init_pid(key: str):
    """A setup step: an (idempotent) producer id for ``key`` in ctx.vars."""
    def answered(ctx):
        resp = ctx.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                                 "producer_id": -1, "producer_epoch": -1})
        return resp["error_code"] == 0 and resp

    def step(ctx):
        # Kafka answers COORDINATOR_LOAD_IN_PROGRESS until its first block of ids arrives.
        ctx.vars[key] = wait_for(lambda: answered(ctx), f"a producer id on {ctx.side}")["producer_id"]
    return step


def write(key: str | None, values, seq: int = 0, transactional: bool = True, epoch: int = 0, expect: int = 0):
    """A setup step: one batch of ``values`` from ``key``'s producer (plain if None)."""
    def step(ctx):
        kw = {} if key is None else {"producer_id": ctx.vars[key], "producer_epoch": epoch, "base_sequence": seq,
                                     "transactional": transactional}
        data = build_batch([(b"k", v, [], TS + i) for i, v in enumerate(values)], **kw)
        resp = ctx.request("Produce", 9, produce_body(data, TXN_ID if key is not None and transactional else None)(ctx))
        part = resp["responses"][0]["partition_responses"][0]
        assert part["error_code"] == expect, resp
        return part
    return step


def produce_body(data, transactional_id):
    return lambda ctx: {"transactional_id": transactional_id, "acks": -1, "timeout_ms": 30000, "topic_data": [
        {"name": ctx.topic, "partition_data": [{"index": 0, "records": data}]}]}


def markers_body(*entries, topic_key="topic", partitions=(0,)):
    """WriteTxnMarkers of (producer key or id, epoch, commit, coordinator epoch) entries."""
    return lambda ctx: {"markers": [
        {"producer_id": ctx.vars.get(pid, pid) if isinstance(pid, str) else pid, "producer_epoch": epoch,
         "transaction_result": commit, "coordinator_epoch": coordinator_epoch,
         "topics": [{"name": ctx.names.get(topic_key, topic_key), "partition_indexes": list(partitions)}]}
        for pid, epoch, commit, coordinator_epoch in entries]}


def marker(key: str, commit: bool, epoch: int = 0, coordinator_epoch: int = 0):
    """A setup step: the marker, which must be written."""
    def step(ctx):
        resp = ctx.request("WriteTxnMarkers", 1, markers_body((key, epoch, commit, coordinator_epoch))(ctx))
        assert resp["markers"][0]["topics"][0]["partitions"][0]["error_code"] == 0, resp
    return step


def describe_body(name="topic", partitions=(0,)):
    return lambda ctx: {"topics": [{"name": ctx.names.get(name, name), "partition_indexes": list(partitions)}]}


def fetch_body(isolation: int, offset: int = 0, partition_max: int = 1 << 20):
    return lambda ctx: {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "isolation_level": isolation,
        "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": ctx.topic, "topic_id": bytes(16), "partitions": [
            {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset, "last_fetched_epoch": -1,
             "log_start_offset": -1, "partition_max_bytes": partition_max}]}],
        "forgotten_topics_data": [], "rack_id": ""}


def read_view(isolation: int, offset: int = 0, version: int = 12, partition_max: int = 1 << 20):
    """A custom exchange: what a Fetch at ``isolation`` says, control batches
    without their (clock) timestamps."""
    def run(ctx, _version):
        resp = ctx.request("Fetch", version, fetch_body(isolation, offset, partition_max)(ctx))
        part = resp["responses"][0]["partitions"][0]
        batches = [(b.base_offset, b.last_offset_delta, b.is_transactional, b.is_control, b.producer_epoch,
                    b.base_sequence, [(r.key, r.value) for r in b.records()])
                   for b in iter_batches(bytes(part["records"] or b""))]
        aborted = part["aborted_transactions"]
        return {"error_code": part["error_code"], "high_watermark": part["high_watermark"],
                "last_stable_offset": part["last_stable_offset"], "log_start_offset": part["log_start_offset"],
                "aborted_first_offsets": None if aborted is None else [a["first_offset"] for a in aborted],
                "batches": batches}
    return run


def list_offsets_body(isolation: int, timestamp: int = -1, replica_id: int = -1):
    return lambda ctx: {"replica_id": replica_id, "isolation_level": isolation, "timeout_ms": 30000, "topics": [
        {"name": ctx.topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                            "timestamp": timestamp, "max_num_offsets": 1}]}]}


# p1's transaction (offsets 1-2) aborted, p2's (3) committed, plain records around them.
MIXED = (topic(1), init_pid("p1"), init_pid("p2"), write(None, [b"plain-0"]), write("p1", [b"a1", b"a2"]),
         write("p2", [b"c1"]), write(None, [b"plain-4"]), marker("p1", False), marker("p2", True))
# An index entry for every batch but the first: the aborted transactions a
# small READ_COMMITTED fetch gets end at the first entry past what it read.
# Offsets: 0 p1, 1 p2, 2 plain, 3 ABORT p1, 4 p3, 5 COMMIT p2, 6 ABORT p3,
# 7 plain, 8 p1, 9 ABORT p1.
INDEXED = (topic(1, {"index.interval.bytes": "1"}), init_pid("p1"), init_pid("p2"), init_pid("p3"),
           write("p1", [b"a"]), write("p2", [b"c"]), write(None, [b"plain"]), marker("p1", False),
           write("p3", [b"a"]), marker("p2", True), marker("p3", False), write(None, [b"plain"]),
           write("p1", [b"a"], seq=1), marker("p1", False))
OPEN = (topic(1), init_pid("p1"), write(None, [b"plain-0"]), write("p1", [b"a1", b"a2"]),
        write(None, [b"plain-3"]))

CASES = [
    # ---------------------------------------------------------------- DescribeProducers
    Case("describe-producers-unknown-topic", "DescribeProducers", (0,), describe_body(partitions=(0, 1))),
    Case("describe-producers-invalid-name", "DescribeProducers", (0,), describe_body("bad name!")),
    Case("describe-producers-unknown-partition", "DescribeProducers", (0,), describe_body(partitions=(0, 5)),
         setup=(topic(1),)),
    Case("describe-producers-idempotent-and-open", "DescribeProducers", (0,), describe_body(),
         setup=(topic(1), init_pid("p1"), init_pid("p2"), write("p1", [b"x", b"y"], transactional=False),
                write("p2", [b"t"], seq=0)),
         sort={"topics.*.partitions.*.active_producers": "current_txn_start_offset"}),
    Case("describe-producers-after-markers", "DescribeProducers", (0,), describe_body(), setup=MIXED,
         sort={"topics.*.partitions.*.active_producers": "last_sequence"},
         ignore={"topics.*.partitions.*.active_producers.*.last_timestamp":
                 "a marker's timestamp is the broker's clock"}),
    # ---------------------------------------------------------------- WriteTxnMarkers
    Case("write-txn-markers-unknown", "WriteTxnMarkers", (1,),
         markers_body((1234, 0, True, 0), topic_key="topic", partitions=(0, 3)), setup=(topic(1),),
         sort={"markers.*.topics.*.partitions": "partition_index"}),
    Case("write-txn-markers-v0", "WriteTxnMarkers", (0,), markers_body((1234, 0, True, 0)), setup=(topic(1),),
         differs="Kafka 4 removed WriteTxnMarkers v0 (KIP-896) and closes the connection; 3.9, which we "
                 "follow, answers it"),
    Case("write-txn-markers-unknown-topic", "WriteTxnMarkers", (1,), markers_body((1234, 0, False, 0))),
    Case("write-txn-markers-commit-and-abort", "WriteTxnMarkers", (1,),
         markers_body(("p1", 0, False, 0), ("p2", 0, True, 0)),
         setup=MIXED[:-2]),
    Case("write-txn-markers-without-transaction", "WriteTxnMarkers", (1,), markers_body((4321, 0, True, 0)),
         setup=(topic(1),)),
    Case("write-txn-markers-older-coordinator-epoch", "WriteTxnMarkers", (1,),
         markers_body(("p1", 0, True, 2)), setup=(*OPEN, marker("p1", True, coordinator_epoch=3))),
    Case("write-txn-markers-older-producer-epoch", "WriteTxnMarkers", (1,),
         markers_body(("p1", 0, True, 0)), setup=(*OPEN, marker("p1", False, epoch=1))),
    Case("produce-plain-batch-in-open-transaction", "Produce", (9,),
         lambda ctx: produce_body(build_batch([(b"k", b"v", [], TS)], producer_id=ctx.vars["p1"], producer_epoch=0,
                                              base_sequence=2), TXN_ID)(ctx), setup=OPEN),
    Case("produce-transactional-without-transactional-id", "Produce", (3, 9),
         lambda ctx: produce_body(build_batch([(b"k", b"v", [], TS)], producer_id=ctx.vars["p1"], producer_epoch=0,
                                              base_sequence=0, transactional=True), None)(ctx),
         setup=(topic(1), init_pid("p1"))),
    # ---------------------------------------------------------------- Fetch and ListOffsets
    Case("fetch-read-committed-open", "Fetch", (4, 12), run=read_view(1), setup=OPEN),
    Case("fetch-read-uncommitted-open", "Fetch", (12,), run=read_view(0), setup=OPEN),
    Case("fetch-read-committed-decided", "Fetch", (12,), run=read_view(1), setup=MIXED),
    Case("fetch-read-committed-from-the-marker", "Fetch", (12,), run=read_view(1, offset=5), setup=MIXED),
    Case("fetch-read-uncommitted-decided", "Fetch", (12,), run=read_view(0), setup=MIXED),
    *(Case(f"fetch-read-committed-one-batch-from-{offset}", "Fetch", (12,),
           run=read_view(1, offset=offset, partition_max=1), setup=INDEXED) for offset in (0, 2, 4, 7, 8)),
    Case("fetch-read-committed-indexed-all", "Fetch", (12,), run=read_view(1), setup=INDEXED),
    Case("fetch-read-committed-plain", "Fetch", (4, 12), fetch_body(1),
         setup=(topic(1), write(None, [b"a", b"b"]))),
    Case("list-offsets-read-committed-latest-open", "ListOffsets", (2, 7), list_offsets_body(1), setup=OPEN),
    Case("list-offsets-read-uncommitted-latest-open", "ListOffsets", (7,), list_offsets_body(0), setup=OPEN),
    Case("list-offsets-read-committed-by-time-open", "ListOffsets", (7,), list_offsets_body(1, TS + 1),
         setup=OPEN),
    Case("list-offsets-read-committed-max-timestamp-open", "ListOffsets", (7,), list_offsets_body(1, -3),
         setup=OPEN),
    Case("list-offsets-read-committed-latest-decided", "ListOffsets", (7,), list_offsets_body(1), setup=MIXED),
    # Not a consumer (the debugging replica id): no isolation level, up to the log end.
    Case("list-offsets-debugging-replica-latest-open", "ListOffsets", (2, 7), list_offsets_body(1, replica_id=-2),
         setup=OPEN),
]


@pytest.mark.parametrize("case,version", params(CASES))
def test_txn_data(brokers, case, version):
    run_case(case, version, brokers)
