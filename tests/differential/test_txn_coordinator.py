"""Differential cases for the transaction coordinator's APIs: InitProducerId
with transactional ids, AddPartitionsToTxn (client versions and verify-only),
AddOffsetsToTxn, EndTxn, DescribeTransactions and ListTransactions, each
against Apache Kafka's answer (error codes and the order of their checks).

Every case uses its own transactional id ("tx-" + its topic's name), whose
__transaction_state partition is waited for until loaded."""
from __future__ import annotations

import pytest

from kafka_compat.protocol.records import build_batch

from .harness import Case, params, run_case, topic, wait_for

RETRIABLE = (14, 15, 16)  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
TIMEOUT_MS = 60000


def txn_id(ctx) -> str:
    return f"tx-{ctx.topic}"


def ready(ctx):
    """Setup: the id's coordinator is found and has loaded its partition, and
    producer ids are there (Kafka answers COORDINATOR_LOAD_IN_PROGRESS until
    its first block arrives)."""
    wait_for(lambda: ctx.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 1000,
                                                       "producer_id": -1, "producer_epoch": -1})["error_code"] == 0,
             f"producer ids on {ctx.side}")
    wait_for(lambda: ctx.request("FindCoordinator", 3, {"key": txn_id(ctx), "key_type": 1})["error_code"] == 0,
             f"the transaction coordinator on {ctx.side}")
    wait_for(lambda: ctx.request("DescribeTransactions", 0, {"transactional_ids": [txn_id(ctx)]})
             ["transaction_states"][0]["error_code"] not in RETRIABLE, f"the coordinator loaded on {ctx.side}")


def init_body(ctx, timeout_ms=TIMEOUT_MS, pid=-1, epoch=-1, transactional_id=None):
    return {"transactional_id": txn_id(ctx) if transactional_id is None else transactional_id,
            "transaction_timeout_ms": timeout_ms, "producer_id": pid, "producer_epoch": epoch}


def initialized(times: int = 1):
    """Setup: InitProducerId ``times`` (epoch times - 1); the producer id in ctx.vars["pid"]."""
    def step(ctx):
        for _ in range(times):
            resp = wait_for(lambda: (r := ctx.request("InitProducerId", 4, init_body(ctx)))["error_code"] == 0 and r,
                            f"InitProducerId on {ctx.side}")
        ctx.vars["pid"], ctx.vars["epoch"] = resp["producer_id"], resp["producer_epoch"]
    return step


def added(partitions=(0,)):
    """Setup: the topic's partitions added to the transaction (it is Ongoing)."""
    def step(ctx):
        resp = ctx.request("AddPartitionsToTxn", 3, add_v3(ctx, {ctx.topic: list(partitions)}))
        errors = [p["partition_error_code"] for t in resp["results_by_topic_v3_and_below"]
                  for p in t["results_by_partition"]]
        assert errors == [0] * len(partitions), resp
    return step


def add_v3(ctx, topics: dict[str, list[int]], epoch=None, pid=None, transactional_id=None) -> dict:
    return {"v3_and_below_transactional_id": txn_id(ctx) if transactional_id is None else transactional_id,
            "v3_and_below_producer_id": ctx.vars.get("pid", 0) if pid is None else pid,
            "v3_and_below_producer_epoch": ctx.vars.get("epoch", 0) if epoch is None else epoch,
            "v3_and_below_topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}


def end_body(ctx, commit=True, epoch=None, pid=None):
    return {"transactional_id": txn_id(ctx), "producer_id": ctx.vars.get("pid", 0) if pid is None else pid,
            "producer_epoch": ctx.vars.get("epoch", 0) if epoch is None else epoch, "committed": commit}


def txn_produce(partition=0, sequence=0):
    """A transactional produce of the case's producer (epoch from ctx.vars)."""
    def body(ctx):
        data = build_batch([(b"k", b"v%d" % i, [], 1_700_000_000_000 + i) for i in range(3)],
                           producer_id=ctx.vars["pid"], producer_epoch=ctx.vars["epoch"], base_sequence=sequence,
                           transactional=True)
        return {"transactional_id": txn_id(ctx), "acks": -1, "timeout_ms": 30000, "topic_data": [
            {"name": ctx.topic, "partition_data": [{"index": partition, "records": data}]}]}
    return body


def committed(ctx):
    """Setup: the transaction's records written and committed, and complete."""
    resp = ctx.request("Produce", 9, txn_produce()(ctx))
    assert resp["responses"][0]["partition_responses"][0]["error_code"] == 0, resp
    assert ctx.request("EndTxn", 3, end_body(ctx))["error_code"] == 0
    wait_for(lambda: ctx.request("DescribeTransactions", 0, {"transactional_ids": [txn_id(ctx)]})
             ["transaction_states"][0]["transaction_state"] == "CompleteCommit", f"the commit on {ctx.side}")


PRODUCED = {"responses.*.partition_responses.*.log_append_time_ms": "the brokers' clocks"}
PID = {"producer_id": "producer ids are allocated per broker"}
DESCRIBED = {"transaction_states.*.producer_id": PID["producer_id"],
             "transaction_states.*.transaction_start_time_ms": "the brokers' clocks"}

CASES = [
    # ---------------------------------------------------------------- InitProducerId
    Case("init-txn-new", "InitProducerId", (0, 2, 3, 5), init_body, setup=(ready,), ignore=PID),
    Case("init-txn-again-bumps", "InitProducerId", (1, 4), init_body, setup=(ready, initialized(2)), ignore=PID),
    Case("init-txn-timeout-too-large", "InitProducerId", (0, 4, 5),
         lambda ctx: init_body(ctx, timeout_ms=900001), setup=(ready,)),
    Case("init-txn-timeout-zero", "InitProducerId", (1, 5), lambda ctx: init_body(ctx, timeout_ms=0),
         setup=(ready,)),
    Case("init-txn-empty-id", "InitProducerId", (0, 3, 5), lambda ctx: init_body(ctx, transactional_id=""),
         setup=(ready,)),
    Case("init-txn-half-producer", "InitProducerId", (3, 5), lambda ctx: init_body(ctx, pid=77), setup=(ready,)),
    Case("init-txn-kip360-current-epoch", "InitProducerId", (3, 5),
         lambda ctx: init_body(ctx, pid=ctx.vars["pid"], epoch=ctx.vars["epoch"]),
         setup=(ready, initialized(2)), ignore=PID),
    Case("init-txn-kip360-zombie", "InitProducerId", (3, 4, 5),
         lambda ctx: init_body(ctx, pid=ctx.vars["pid"], epoch=0), setup=(ready, initialized(3))),
    Case("init-txn-fences-ongoing", "InitProducerId", (4,), init_body,
         setup=(ready, topic(), initialized(), added())),
    # ---------------------------------------------------------------- AddPartitionsToTxn
    Case("add-partitions-unknown-id", "AddPartitionsToTxn", (0, 3),
         lambda ctx: add_v3(ctx, {ctx.topic: [0]}), setup=(ready, topic())),
    Case("add-partitions-wrong-producer", "AddPartitionsToTxn", (1, 3),
         lambda ctx: add_v3(ctx, {ctx.topic: [0]}, pid=ctx.vars["pid"] + 1), setup=(ready, topic(), initialized())),
    Case("add-partitions-fenced", "AddPartitionsToTxn", (0, 1, 2, 3),
         lambda ctx: add_v3(ctx, {ctx.topic: [0]}, epoch=5), setup=(ready, topic(), initialized())),
    Case("add-partitions-unknown-topic", "AddPartitionsToTxn", (3,),
         lambda ctx: add_v3(ctx, {ctx.topic: [0], ctx.topic2: [0]}), setup=(ready, topic(), initialized()),
         sort={"results_by_topic_v3_and_below": "name"}),  # Kafka's follow a hash map's order
    Case("add-partitions-ok", "AddPartitionsToTxn", (0, 2, 3),
         lambda ctx: add_v3(ctx, {ctx.topic: [0, 1]}), setup=(ready, topic(2), initialized())),
    Case("add-partitions-verify-only", "AddPartitionsToTxn", (4, 5),
         lambda ctx: {"transactions": [{
             "transactional_id": txn_id(ctx), "producer_id": ctx.vars["pid"], "producer_epoch": 0,
             "verify_only": True, "topics": [{"name": ctx.topic, "partitions": [0, 1]}]}]},
         setup=(ready, topic(2), initialized(), added((0,))),
         sort={"results_by_transaction.*.topic_results.*.results_by_partition": "partition_index"}),
    # ---------------------------------------------------------------- AddOffsetsToTxn
    Case("add-offsets-unknown-id", "AddOffsetsToTxn", (0, 3, 4),
         lambda ctx: {"transactional_id": txn_id(ctx), "producer_id": 0, "producer_epoch": 0,
                      "group_id": ctx.group}, setup=(ready,)),
    Case("add-offsets-fenced", "AddOffsetsToTxn", (1, 2),
         lambda ctx: {"transactional_id": txn_id(ctx), "producer_id": ctx.vars["pid"], "producer_epoch": 3,
                      "group_id": ctx.group}, setup=(ready, initialized())),
    # ---------------------------------------------------------------- EndTxn
    Case("end-txn-unknown-id", "EndTxn", (0, 3), end_body, setup=(ready,)),
    Case("end-txn-empty", "EndTxn", (0, 2, 4), end_body, setup=(ready, initialized())),
    Case("end-txn-fenced", "EndTxn", (1, 2), lambda ctx: end_body(ctx, epoch=ctx.vars["epoch"] - 1),
         setup=(ready, initialized(2))),
    Case("end-txn-abort", "EndTxn", (3,), lambda ctx: end_body(ctx, commit=False),
         setup=(ready, topic(), initialized(), added())),
    # ---------------------------------------------------------------- KIP-890 verification of produces
    Case("produce-txn-partition-added", "Produce", (9, 11), txn_produce(),
         setup=(ready, topic(2), initialized(), added()), ignore=PRODUCED),
    Case("produce-txn-partition-not-added", "Produce", (3, 9, 10, 11), txn_produce(partition=1),
         setup=(ready, topic(2), initialized(), added())),
    Case("produce-txn-fenced-epoch", "Produce", (9,), txn_produce(partition=1),
         setup=(ready, topic(2), initialized(2), added(),
                lambda ctx: ctx.vars.update(epoch=ctx.vars["epoch"] - 1))),
    Case("produce-txn-after-commit", "Produce", (9, 11), txn_produce(sequence=3),
         setup=(ready, topic(), initialized(), added(), committed)),
    # ---------------------------------------------------------------- Describe/ListTransactions
    Case("describe-txn-unknown", "DescribeTransactions", (0,),
         lambda ctx: {"transactional_ids": [txn_id(ctx)]}, setup=(ready,)),
    Case("describe-txn-ongoing", "DescribeTransactions", (0,),
         lambda ctx: {"transactional_ids": [txn_id(ctx)]}, setup=(ready, topic(2), initialized(), added((1,))),
         ignore=DESCRIBED),
    Case("list-txn-filters", "ListTransactions", (0, 1),
         lambda ctx: {"state_filters": ["Ongoing", "Bogus"], "producer_id_filters": [987654321],
                      "duration_filter": -1}, setup=(ready,)),
]


@pytest.mark.parametrize("case,version", params(CASES))
def test_txn_coordinator(brokers, case, version):
    run_case(case, version, brokers)
