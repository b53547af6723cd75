"""Static membership (group.instance.id): a member closed and restarted
within its session timeout gets its partitions back without a rebalance."""
from __future__ import annotations

import pytest

from interop.group_checks import assert_consumed_exactly_once
from interop.group_member import BROKER_OVERRIDES, ConsumerGroup
from interop.group_producer import TrickleProducer

PARTITIONS = 6
# Long enough for a restart, short enough that a lingering rebalance would
# still show within the test.
SESSION_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def broker_overrides():
    return BROKER_OVERRIDES


@pytest.mark.parametrize("client", ["confluent-kafka", "kafka-python", "franz-go", "sarama"])
def test_static_member_restart_keeps_its_assignment_without_rebalance(
        broker, new_topic, tmp_path, client):
    topic = new_topic(partitions=PARTITIONS)
    with ConsumerGroup(broker.bootstrap, topic, PARTITIONS, tmp_path,
                       session_timeout_ms=SESSION_TIMEOUT_MS) as group, \
            TrickleProducer(broker.bootstrap, topic, PARTITIONS) as producer:
        restarting = group.join(client, name="static-a", instance_id="instance-a")
        steady = group.join(client, name="static-b", instance_id="instance-b")
        group.wait_balanced([restarting, steady])
        group.wait_consuming([restarting, steady])
        owned, mark = set(restarting.partitions), len(steady.events)

        restarting.stop()  # a static member closes without LeaveGroup
        restarted = group.join(client, name="static-a-again", instance_id="instance-a")
        group.wait_balanced([restarted, steady])
        group.wait_consuming([restarted, steady])
        assert restarted.partitions == owned, group.describe()

        produced = producer.stop()
        group.wait_consumed(produced)
        callbacks = [e for e in steady.events[mark:] if e["event"] in ("assigned", "revoked", "lost")]
        assert not callbacks, f"the other member went through a rebalance: {callbacks}"
    # The restarted member resumes at the offsets committed before the close.
    assert_consumed_exactly_once(group.members, produced)
