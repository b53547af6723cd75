"""__consumer_offsets is compacted (issue 13): 100,000 offset commits to the
same 300 group/partition keys leave a partition log a small fraction of
what was written, and a restarted broker loads the groups from it with
every latest offset."""
from __future__ import annotations

import time

import trio

from kafka_compat.group.internal_topics import OFFSETS_TOPIC
from kafka_compat.protocol.errors import ErrorCode as E

from .conftest import make_config, start_broker
from .test_groups import create_topic, fetch_offsets, offsets_of, ready

GROUPS = 10
PARTITIONS = 30
COMMITS = 100_000


def log_bytes(directory) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.log"))


async def commit_all(client, group, offset):
    resp = await client.request("OffsetCommit", 8, {
        "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
        "topics": [{"name": "t", "partitions": [{"partition_index": p, "committed_offset": offset + p,
                                                 "committed_leader_epoch": -1, "committed_metadata": ""}
                                                for p in range(PARTITIONS)]}]})
    assert {p.error_code for t in resp.topics for p in t.partitions} == {E.NONE}


async def test_offset_commits_are_compacted_and_load_after_a_restart(tmp_path):
    config = make_config(tmp_path / "data", offsets_topic_num_partitions=1, offsets_topic_segment_bytes=200_000,
                         log_cleaner_backoff_ms=50)
    partition_dir = tmp_path / "data" / f"{OFFSETS_TOPIC}-0"
    groups = [f"group-{g}" for g in range(GROUPS)]
    rounds = COMMITS // (GROUPS * PARTITIONS) + 1
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        await create_topic(client, "t", PARTITIONS)
        for group in groups:
            await ready(client, group)
        for r in range(rounds):
            for group in groups:
                await commit_all(client, group, r * 1000)
        offsets_log = broker.logs.get(OFFSETS_TOPIC, 0)
        assert offsets_log.log_end_offset >= COMMITS
        # Every segment below the active one gets cleaned down to one record per key.
        with trio.fail_after(60):
            while True:
                checkpoint = broker.logs.cleaner.checkpoints.get(tmp_path / "data", {}).get((OFFSETS_TOPIC, 0), 0)
                if checkpoint >= offsets_log.segments[-1].base_offset:
                    break
                await trio.sleep(0.05)
        size = log_bytes(partition_dir)
        await client.aclose()
        broker.shutdown()

    # What was written: 100,000 records in batches of 30, over 5 MB; what is left: 300 keys, the
    # active segment and at most two segments not cleaned yet.
    assert size < 3 * 200_000 + 300 * 200, size

    async with trio.open_nursery() as nursery:
        started = time.monotonic()
        broker, client = await start_broker(config, nursery)
        for group in groups:
            await ready(client, group)
        load_seconds = time.monotonic() - started
        for group in groups:
            fetched = offsets_of(await fetch_offsets(client, group, [("t", p) for p in range(PARTITIONS)]))
            assert fetched == {("t", p): ((rounds - 1) * 1000 + p, "", E.NONE) for p in range(PARTITIONS)}
        assert load_seconds < 10
        await client.aclose()
        broker.shutdown()
