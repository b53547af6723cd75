"""The controller's requests on a single broker: it has no controller but
itself, so LeaderAndIsr, UpdateMetadata and StopReplica are all stale (the
cluster tests exercise them for real)."""
from __future__ import annotations

from kafka_compat.protocol.errors import ErrorCode


async def test_controller_requests_to_a_single_broker_are_stale(broker):
    client = await broker.client()
    common = {"controller_id": 1, "controller_epoch": 5, "broker_epoch": -1}
    lai = await client.request("LeaderAndIsr", 7, {**common, "type": 0, "topic_states": [], "live_leaders": []})
    um = await client.request("UpdateMetadata", 8, {**common, "topic_states": [], "live_brokers": []})
    sr = await client.request("StopReplica", 4, {**common, "topic_states": []})
    assert (lai.error_code, um.error_code, sr.error_code) == (ErrorCode.STALE_CONTROLLER_EPOCH,) * 3
    versions = await client.request("ApiVersions", 3, {"client_software_name": "t", "client_software_version": "1"})
    served = {k.api_key: (k.min_version, k.max_version) for k in versions.api_keys}
    assert served[4] == (5, 7) and served[5] == (3, 4) and served[6] == (7, 8)
