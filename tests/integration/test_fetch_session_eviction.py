"""Fetch sessions of consumers that went away without closing them are
evicted, so new consumers get sessions again (Kafka's FetchSessionCache)."""
from __future__ import annotations

import trio

from .conftest import make_config, start_broker
from .wire import WireClient
from .test_requests import create_topic


def full_fetch(topic: str) -> dict:
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
            "session_id": 0, "session_epoch": 0, "forgotten_topics_data": [],
            "topics": [{"topic": topic, "partitions": [{"partition": 0, "fetch_offset": 0,
                                                        "partition_max_bytes": 1 << 20}]}]}


async def test_dead_consumers_sessions_are_evicted_for_new_ones(tmp_path, nursery):
    config = make_config(tmp_path, max_incremental_fetch_session_cache_slots=2)
    broker, client = await start_broker(config, nursery)
    await create_topic(client, "evict")
    port = broker.bound[0][1]

    for _ in range(2):  # two consumers take every slot, then vanish without closing
        gone = await WireClient.connect(port)
        assert (await gone.request("Fetch", 12, full_fetch("evict"))).session_id != 0
        await gone.aclose()
    refused = await client.request("Fetch", 12, full_fetch("evict"))
    assert refused.error_code == 0 and refused.session_id == 0  # served, but sessionless

    # Kafka's eviction time is a constant two minutes; shorten it for the test.
    broker.fetch_sessions.eviction_ms = 50
    with trio.fail_after(10):
        while True:
            await trio.sleep(0.06)
            resp = await client.request("Fetch", 12, full_fetch("evict"))
            if resp.session_id:
                break
    assert broker.fetch_sessions.evictions == 1 and resp.session_id in broker.fetch_sessions.sessions
    broker.shutdown()
