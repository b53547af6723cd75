"""Differential cases for the consumer group APIs, error paths first:
FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
OffsetFetch, DescribeGroups, DeleteGroups, OffsetDelete."""
from __future__ import annotations

import pytest

from .harness import (Case, commit, coordinator_ready, group, join_body, leave, params, rebalancing,
                      run_case, subscription, topic)

BOGUS = "bogus-member"


def ready(ctx):
    coordinator_ready(ctx, ctx.group)


def join(member_id="", **kw):
    def body(ctx):
        mid = ctx.vars.get(member_id, member_id) if member_id else ""
        return join_body(ctx, member_id=mid, **kw)
    return body


def member(ctx, name="m"):
    return ctx.vars.get(name, name)


def sync(member_id="m", generation=0, assignments=True, protocol_type="consumer", protocol_name="range",
         group=None):
    def body(ctx):
        mid = member(ctx, member_id)
        return {"group_id": ctx.group if group is None else group,
                "generation_id": ctx.vars.get("generation", 1) + generation, "member_id": mid,
                "group_instance_id": None, "protocol_type": protocol_type, "protocol_name": protocol_name,
                "assignments": [{"member_id": mid, "assignment": b"\x00\x01"}] if assignments else []}
    return body


def heartbeat(member_id="m", generation=0, group=None, instance=None):
    def body(ctx):
        return {"group_id": ctx.group if group is None else group,
                "generation_id": ctx.vars.get("generation", 1) + generation,
                "member_id": member(ctx, member_id), "group_instance_id": instance}
    return body


def leave_body(member_id="m", instance=None, group=None):
    def body(ctx):
        mid = member(ctx, member_id)
        return {"group_id": ctx.group if group is None else group, "member_id": mid,
                "members": [{"member_id": mid, "group_instance_id": instance, "reason": None}]}
    return body


def offset_commit(member_id="", generation=None, offset=7, partition=0, metadata="m", name="topic",
                  group=None):
    def body(ctx):
        gen = -1 if generation is None else ctx.vars.get("generation", 1) + generation
        return {"group_id": ctx.group if group is None else group, "generation_id_or_member_epoch": gen,
                "member_id": member(ctx, member_id) if member_id else "", "group_instance_id": None,
                "retention_time_ms": -1,
                "topics": [{"name": ctx.names.get(name, name), "partitions": [
                    {"partition_index": partition, "committed_offset": offset, "committed_leader_epoch": -1,
                     "commit_timestamp": -1, "committed_metadata": metadata}]}]}
    return body


def offset_fetch(partitions=(0,), name="topic", all_topics=False, group=None):
    def body(ctx):
        topics = None if all_topics else [{"name": ctx.names.get(name, name),
                                           "partition_indexes": list(partitions)}]
        gid = ctx.group if group is None else group
        return {"group_id": gid, "topics": topics, "require_stable": False,
                "groups": [{"group_id": gid, "member_id": None, "member_epoch": -1, "topics": topics}]}
    return body


def describe(*groups, operations=False):
    return lambda ctx: {"groups": [ctx.names.get(g, g) for g in groups],
                        "include_authorized_operations": operations}


def delete_groups(*groups):
    return lambda ctx: {"groups_names": [ctx.names.get(g, g) for g in groups]}


def offset_delete(partitions=(0,), name="topic", group=None):
    return lambda ctx: {"group_id": ctx.group if group is None else group, "topics": [
        {"name": ctx.names.get(name, name), "partitions": [{"partition_index": p} for p in partitions]}]}


def find(key_type=0, key="group"):
    return lambda ctx: {"key": ctx.names.get(key, key), "key_type": key_type,
                        "coordinator_keys": [ctx.names.get(key, key)]}


STABLE = group()
STABLE_ON_TOPIC = group(subscribe="topic")
JOIN_VERSIONS = (0, 3, 5, 7, 9)
SYNC_VERSIONS = (0, 3, 5)
HEARTBEAT_VERSIONS = (0, 3, 4)
LEAVE_VERSIONS = (0, 3, 5)
COMMIT_VERSIONS = (2, 5, 8, 9)
FETCH_VERSIONS = (1, 5, 7, 8)

CASES = [
    # ---------------------------------------------------------------- FindCoordinator
    Case("find-coordinator-group", "FindCoordinator", (0, 2, 3, 4, 6), find(), setup=(ready,)),
    Case("find-coordinator-unknown-type", "FindCoordinator", (1, 3, 4), find(key_type=7), setup=(ready,)),
    Case("find-coordinator-empty-group", "FindCoordinator", (1, 4), find(key=""), setup=(ready,)),
    # ---------------------------------------------------------------- JoinGroup
    Case("join-new-member", "JoinGroup", JOIN_VERSIONS, join(), setup=(ready,)),
    Case("join-unknown-member-new-group", "JoinGroup", (0, 4, 9), join(BOGUS), setup=(ready,)),
    Case("join-unknown-member-stable-group", "JoinGroup", (1, 9), join(BOGUS), setup=(STABLE,)),
    Case("join-session-timeout-too-small", "JoinGroup", (0, 5, 9), join(session=1), setup=(ready,)),
    Case("join-session-timeout-too-large", "JoinGroup", (1, 9), join(session=2_000_000_000), setup=(ready,)),
    Case("join-empty-group-id", "JoinGroup", (0, 9), lambda ctx: join_body(ctx, group=""), setup=(ready,)),
    Case("join-empty-protocol-type", "JoinGroup", (2, 9), join(protocol_type=""), setup=(ready,)),
    Case("join-no-protocols", "JoinGroup", (2, 9), join(protocols=[]), setup=(ready,)),
    Case("join-inconsistent-protocol", "JoinGroup", (3, 9),
         join(protocols=[{"name": "other", "metadata": b""}]), setup=(STABLE,)),
    Case("join-different-protocol-type", "JoinGroup", (3, 9), join(protocol_type="connect"),
         setup=(STABLE,)),
    Case("join-rejoin-stable-member", "JoinGroup", (9,), join("m"), setup=(STABLE,)),
    Case("join-static-member", "JoinGroup", (5, 9), join(instance="static-1"), setup=(ready,)),
    Case("join-static-member-unknown-id", "JoinGroup", (5, 9), join(BOGUS, instance="static-1"),
         setup=(group(instance="static-1"),)),
    # ---------------------------------------------------------------- SyncGroup
    Case("sync-unknown-group", "SyncGroup", SYNC_VERSIONS, sync(BOGUS), setup=(ready,)),
    Case("sync-unknown-member", "SyncGroup", SYNC_VERSIONS, sync(BOGUS), setup=(STABLE,)),
    Case("sync-illegal-generation", "SyncGroup", SYNC_VERSIONS, sync(generation=1), setup=(STABLE,)),
    Case("sync-stable-again", "SyncGroup", SYNC_VERSIONS, sync(), setup=(STABLE,)),
    Case("sync-empty-group-id", "SyncGroup", (0, 5), sync(group=""), setup=(ready,)),
    Case("sync-inconsistent-protocol-type", "SyncGroup", (5,), sync(protocol_type="connect"),
         setup=(STABLE,)),
    Case("sync-inconsistent-protocol-name", "SyncGroup", (5,), sync(protocol_name="roundrobin"),
         setup=(STABLE,)),
    Case("sync-during-rebalance", "SyncGroup", (3, 5), sync(), setup=(STABLE, rebalancing)),
    # ---------------------------------------------------------------- Heartbeat
    Case("heartbeat-ok", "Heartbeat", HEARTBEAT_VERSIONS, heartbeat(), setup=(STABLE,)),
    Case("heartbeat-unknown-group", "Heartbeat", HEARTBEAT_VERSIONS, heartbeat(BOGUS), setup=(ready,)),
    Case("heartbeat-unknown-member", "Heartbeat", HEARTBEAT_VERSIONS, heartbeat(BOGUS), setup=(STABLE,)),
    Case("heartbeat-illegal-generation", "Heartbeat", HEARTBEAT_VERSIONS, heartbeat(generation=1),
         setup=(STABLE,)),
    Case("heartbeat-old-generation", "Heartbeat", (4,), heartbeat(generation=-1), setup=(STABLE,)),
    Case("heartbeat-empty-group-id", "Heartbeat", (0, 4), heartbeat(group=""), setup=(ready,)),
    Case("heartbeat-rebalance-in-progress", "Heartbeat", HEARTBEAT_VERSIONS, heartbeat(),
         setup=(STABLE, rebalancing)),
    Case("heartbeat-after-leave", "Heartbeat", (4,), heartbeat(), setup=(STABLE, leave)),
    Case("heartbeat-static-wrong-member", "Heartbeat", (3, 4), heartbeat(BOGUS, instance="static-1"),
         setup=(group(instance="static-1"),)),
    # ---------------------------------------------------------------- LeaveGroup
    Case("leave-ok", "LeaveGroup", LEAVE_VERSIONS, leave_body(), setup=(STABLE,)),
    Case("leave-unknown-group", "LeaveGroup", LEAVE_VERSIONS, leave_body(BOGUS), setup=(ready,)),
    Case("leave-unknown-member", "LeaveGroup", LEAVE_VERSIONS, leave_body(BOGUS), setup=(STABLE,)),
    Case("leave-empty-group-id", "LeaveGroup", (0, 5), leave_body(group=""), setup=(ready,)),
    Case("leave-static-by-instance", "LeaveGroup", (3, 5), leave_body("", instance="static-1"),
         setup=(group(instance="static-1"),)),
    Case("leave-static-fenced", "LeaveGroup", (3, 5), leave_body(BOGUS, instance="static-1"),
         setup=(group(instance="static-1"),)),
    Case("leave-during-rebalance", "LeaveGroup", (5,), leave_body(), setup=(STABLE, rebalancing)),
    # ---------------------------------------------------------------- OffsetCommit
    Case("commit-simple", "OffsetCommit", COMMIT_VERSIONS, offset_commit(), setup=(topic(1), ready)),
    Case("commit-unknown-topic", "OffsetCommit", (2, 8), offset_commit(), setup=(ready,)),
    Case("commit-unknown-partition", "OffsetCommit", (2, 8), offset_commit(partition=3),
         setup=(topic(1), ready)),
    Case("commit-metadata-too-large", "OffsetCommit", (2, 8), offset_commit(metadata="x" * 5000),
         setup=(topic(1), ready)),
    Case("commit-null-metadata", "OffsetCommit", (8,), offset_commit(metadata=None), setup=(topic(1), ready)),
    Case("commit-empty-group-id", "OffsetCommit", (2, 8), offset_commit(group=""), setup=(topic(1), ready)),
    Case("commit-member-ok", "OffsetCommit", COMMIT_VERSIONS, offset_commit("m", generation=0),
         setup=(topic(1), STABLE)),
    Case("commit-unknown-member", "OffsetCommit", (2, 8), offset_commit(BOGUS, generation=0),
         setup=(topic(1), STABLE)),
    Case("commit-illegal-generation", "OffsetCommit", (2, 8), offset_commit("m", generation=1),
         setup=(topic(1), STABLE)),
    Case("commit-simple-to-active-group", "OffsetCommit", (2, 8), offset_commit(),
         setup=(topic(1), STABLE)),
    Case("commit-member-to-unknown-group", "OffsetCommit", (2, 8), offset_commit(BOGUS, generation=0),
         setup=(topic(1), ready)),
    Case("commit-during-rebalance", "OffsetCommit", (2, 8), offset_commit("m", generation=0),
         setup=(topic(1), STABLE, rebalancing)),
    Case("commit-negative-offset", "OffsetCommit", (8,), offset_commit(offset=-5), setup=(topic(1), ready)),
    # ---------------------------------------------------------------- OffsetFetch
    Case("fetch-offsets-unknown-group", "OffsetFetch", FETCH_VERSIONS, offset_fetch(), setup=(topic(1), ready)),
    Case("fetch-offsets-committed", "OffsetFetch", FETCH_VERSIONS, offset_fetch(partitions=(0, 1)),
         setup=(topic(2), commit())),
    Case("fetch-offsets-all-topics", "OffsetFetch", (2, 7, 8), offset_fetch(all_topics=True),
         setup=(topic(2), commit(), commit(9, partition=1))),
    Case("fetch-offsets-unknown-topic", "OffsetFetch", (1, 7, 8), offset_fetch(name="topic2"),
         setup=(topic(1), commit())),
    Case("fetch-offsets-unknown-partition", "OffsetFetch", (1, 8), offset_fetch(partitions=(5,)),
         setup=(topic(1), commit())),
    Case("fetch-offsets-null-metadata", "OffsetFetch", (8,), offset_fetch(),
         setup=(topic(1), commit(metadata=None))),
    Case("fetch-offsets-empty-group-id", "OffsetFetch", (1, 8), offset_fetch(group=""), setup=(ready,)),
    # ---------------------------------------------------------------- DescribeGroups
    Case("describe-unknown-group", "DescribeGroups", (0, 3, 5), describe("group"), setup=(ready,)),
    Case("describe-stable-group", "DescribeGroups", (0, 4, 5), describe("group"), setup=(STABLE,)),
    Case("describe-stable-group-operations", "DescribeGroups", (3,), describe("group", operations=True),
         setup=(STABLE,),
         differs="Kafka 4 added group configs (KIP-848), so a group's authorized operations include "
                 "DESCRIBE_CONFIGS and ALTER_CONFIGS (3400); 3.9, as we, had READ, DELETE, DESCRIBE (328)"),
    Case("describe-empty-group", "DescribeGroups", (5,), describe("group"), setup=(STABLE, leave)),
    Case("describe-rebalancing-group", "DescribeGroups", (5,), describe("group"),
         setup=(STABLE, rebalancing)),
    Case("describe-simple-commit-group", "DescribeGroups", (5,), describe("group"),
         setup=(topic(1), commit())),
    Case("describe-empty-group-id", "DescribeGroups", (0, 5), describe(""), setup=(ready,)),
    # ---------------------------------------------------------------- DeleteGroups
    Case("delete-groups-unknown", "DeleteGroups", (0, 2), delete_groups("group"), setup=(ready,)),
    Case("delete-groups-non-empty", "DeleteGroups", (0, 2), delete_groups("group"), setup=(STABLE,)),
    Case("delete-groups-empty", "DeleteGroups", (0, 2), delete_groups("group"),
         setup=(topic(1), commit())),
    Case("delete-groups-after-leave", "DeleteGroups", (2,), delete_groups("group"), setup=(STABLE, leave)),
    Case("delete-groups-empty-id", "DeleteGroups", (1,), delete_groups(""), setup=(ready,)),
    # ---------------------------------------------------------------- OffsetDelete
    Case("offset-delete-unknown-group", "OffsetDelete", (0,), offset_delete(), setup=(topic(1), ready)),
    Case("offset-delete-empty-group", "OffsetDelete", (0,), offset_delete(), setup=(topic(1), commit())),
    Case("offset-delete-subscribed", "OffsetDelete", (0,), offset_delete(),
         setup=(topic(1), commit(), STABLE_ON_TOPIC)),
    Case("offset-delete-not-subscribed", "OffsetDelete", (0,), offset_delete(name="topic2"),
         setup=(topic(1), topic(1, key="topic2"), commit(key="topic2"), STABLE_ON_TOPIC)),
    Case("offset-delete-unknown-topic", "OffsetDelete", (0,), offset_delete(name="topic2"),
         setup=(topic(1), commit())),
    Case("offset-delete-unknown-partition", "OffsetDelete", (0,), offset_delete(partitions=(4,)),
         setup=(topic(1), commit())),
    Case("offset-delete-empty-group-id", "OffsetDelete", (0,), offset_delete(group=""), setup=(topic(1), ready)),
]


@pytest.mark.parametrize("case,version", params(CASES))
def test_groups(brokers, case, version):
    run_case(case, version, brokers)
