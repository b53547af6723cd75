"""Differential cases for transactional offset commits: TxnOffsetCommit's
checks, what OffsetFetch answers while the offsets are pending (require_stable)
and after a WriteTxnMarkers COMMIT or ABORT reaches ``__consumer_offsets``.

Both brokers run without KIP-890 verification: the cases commit offsets for
producer ids no transaction coordinator has a transaction for."""
from __future__ import annotations

import pytest

from kafka_compat.group.partitioner import partition_for

from .conftest import COMMON_CONFIGS
from .harness import Case, coordinator_ready, group, params, run_case, topic, wait_for

OFFSETS_TOPIC = "__consumer_offsets"
TXN_VERSIONS = (0, 2, 3, 4)
BOGUS = "bogus-member"


@pytest.fixture(scope="module")
def broker_overrides() -> dict[str, str]:
    return {"transaction.partition.verification.enable": "false"}


def ready(ctx):
    coordinator_ready(ctx, ctx.group)


def init_pid(ctx):
    """A setup step: an (idempotent) producer id in ctx.vars['pid']."""
    def answered():
        resp = ctx.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                                 "producer_id": -1, "producer_epoch": -1})
        return resp["error_code"] == 0 and resp
    ctx.vars["pid"] = wait_for(answered, f"a producer id on {ctx.side}")["producer_id"]


def txn_commit(offset=7, partition=0, name="topic", group=None, member_id="", generation=None, instance=None):
    def body(ctx):
        return {"transactional_id": "txn", "group_id": ctx.group if group is None else group,
                "producer_id": ctx.vars["pid"], "producer_epoch": 0,
                "generation_id": -1 if generation is None else ctx.vars.get("generation", 1) + generation,
                "member_id": ctx.vars.get(member_id, member_id), "group_instance_id": instance,
                "topics": [{"name": ctx.names.get(name, name), "partitions": [
                    {"partition_index": partition, "committed_offset": offset, "committed_leader_epoch": -1,
                     "committed_metadata": "meta"}]}]}
    return body


def committed_in_txn(offset=7, partition=0):
    """A setup step: offsets committed in the producer's transaction."""
    def step(ctx):
        resp = ctx.request("TxnOffsetCommit", 3, txn_commit(offset, partition)(ctx))
        assert resp["topics"][0]["partitions"][0]["error_code"] == 0, resp
    return step


def marker(commit: bool):
    """A setup step: the producer's marker in the group's __consumer_offsets partition."""
    def step(ctx):
        partition = partition_for(ctx.group, int(COMMON_CONFIGS["offsets.topic.num.partitions"]))
        resp = ctx.request("WriteTxnMarkers", 1, {"markers": [{
            "producer_id": ctx.vars["pid"], "producer_epoch": 0, "transaction_result": commit,
            "coordinator_epoch": 0, "topics": [{"name": OFFSETS_TOPIC, "partition_indexes": [partition]}]}]})
        assert resp["markers"][0]["topics"][0]["partitions"][0]["error_code"] == 0, resp
    return step


def offset_fetch(require_stable=True, partitions=(0, 1)):
    def body(ctx):
        topics = [{"name": ctx.topic, "partition_indexes": list(partitions)}]
        return {"group_id": ctx.group, "topics": topics, "require_stable": require_stable,
                "groups": [{"group_id": ctx.group, "member_id": None, "member_epoch": -1, "topics": topics}]}
    return body


PENDING = (topic(2), ready, init_pid, committed_in_txn(7, 0))

CASES = [
    # ---------------------------------------------------------------- TxnOffsetCommit
    Case("txn-commit-simple", "TxnOffsetCommit", TXN_VERSIONS, txn_commit(), setup=(topic(1), ready, init_pid)),
    Case("txn-commit-unknown-topic", "TxnOffsetCommit", TXN_VERSIONS, txn_commit(name="nope"),
         setup=(ready, init_pid)),
    Case("txn-commit-unknown-partition", "TxnOffsetCommit", (0, 4), txn_commit(partition=5),
         setup=(topic(1), ready, init_pid)),
    Case("txn-commit-empty-group-id", "TxnOffsetCommit", (0, 4), txn_commit(group=""),
         setup=(topic(1), ready, init_pid)),
    Case("txn-commit-group-with-members-no-member", "TxnOffsetCommit", TXN_VERSIONS, txn_commit(),
         setup=(topic(1), group(), init_pid)),
    Case("txn-commit-member-ok", "TxnOffsetCommit", (3, 4), txn_commit(member_id="m", generation=0),
         setup=(topic(1), group(), init_pid)),
    Case("txn-commit-unknown-member", "TxnOffsetCommit", (3, 4), txn_commit(member_id=BOGUS, generation=0),
         setup=(topic(1), group(), init_pid)),
    Case("txn-commit-illegal-generation", "TxnOffsetCommit", (3, 4), txn_commit(member_id="m", generation=1),
         setup=(topic(1), group(), init_pid)),
    Case("txn-commit-member-of-unknown-group", "TxnOffsetCommit", (3, 4),
         txn_commit(member_id=BOGUS, generation=0), setup=(topic(1), ready, init_pid),
         differs="3.9's classic coordinator creates the group and answers UNKNOWN_MEMBER_ID (we follow it); "
                 "Kafka 4.4's new coordinator answers ILLEGAL_GENERATION for a generation of a group it "
                 "doesn't know"),
    # ---------------------------------------------------------------- OffsetFetch of pending offsets
    Case("fetch-pending-require-stable", "OffsetFetch", (7, 8), offset_fetch(), setup=PENDING),
    Case("fetch-pending-not-stable", "OffsetFetch", (6, 7, 8), offset_fetch(require_stable=False),
         setup=PENDING),
    Case("fetch-pending-committed", "OffsetFetch", (7, 8), offset_fetch(), setup=(*PENDING, marker(True))),
    Case("fetch-pending-aborted", "OffsetFetch", (7, 8), offset_fetch(), setup=(*PENDING, marker(False))),
]


@pytest.mark.parametrize("case,version", params(CASES))
def test_txn_offsets(brokers, case, version):
    run_case(case, version, brokers)
