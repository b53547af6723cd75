"""What survives a clean restart of an in-process broker on the same data dir."""
from __future__ import annotations

import trio

from kafka_compat.protocol.errors import ErrorCode

from .conftest import make_config, start_broker
from .test_requests import create_topic, fetch, produce, records


async def test_topics_ids_configs_data_and_producer_state_survive_restart(tmp_path):
    config = make_config(tmp_path / "data")
    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        created = await create_topic(client, "keep", 2, {"retention.ms": "86400000"})
        init = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 1000})
        pid = init.producer_id
        batch = records(4, producer_id=pid, producer_epoch=0, base_sequence=0)
        assert (await produce(client, "keep", bytearray(batch))).base_offset == 0
        cluster_id = broker.metadata.cluster_id
        await client.aclose()
        broker.shutdown()

    async with trio.open_nursery() as nursery:
        broker, client = await start_broker(config, nursery)
        assert broker.metadata.cluster_id == cluster_id
        meta = await client.request("Metadata", 12, {"topics": [{"name": "keep"}]})
        topic = meta.topics[0]
        assert topic.error_code == 0 and topic.topic_id == created.topic_id and len(topic.partitions) == 2
        desc = await client.request("DescribeConfigs", 4, {"resources": [
            {"resource_type": 2, "resource_name": "keep", "configuration_keys": ["retention.ms"]}]})
        assert desc.results[0].configs[0].value == "86400000"
        assert (await fetch(client, "keep", 0)).high_watermark == 4
        # The retried batch is still recognised as a duplicate after the restart.
        retry = await produce(client, "keep", bytearray(batch))
        assert (retry.error_code, retry.base_offset) == (0, 0)
        assert (await fetch(client, "keep", 0)).high_watermark == 4
        # And producer ids are never handed out twice.
        again = await client.request("InitProducerId", 4, {"transactional_id": None, "transaction_timeout_ms": 1000})
        assert again.error_code == ErrorCode.NONE and again.producer_id > pid
        await client.aclose()
        broker.shutdown()
