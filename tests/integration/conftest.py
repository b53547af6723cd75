"""An in-process broker for integration tests: real sockets, real files."""
from __future__ import annotations

import pytest
import trio

from kafka_compat.broker import Broker
from kafka_compat.config import BrokerConfig

from .wire import WireClient


class RunningBroker:
    def __init__(self, broker: Broker, port: int, nursery: trio.Nursery):
        self.broker = broker
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self._nursery = nursery

    async def client(self) -> WireClient:
        return await WireClient.connect(self.port)


async def start_broker(config: BrokerConfig, nursery: trio.Nursery) -> tuple[Broker, WireClient]:
    """A broker serving in ``nursery`` and a client connected to it (for tests
    that stop and start brokers themselves)."""
    broker = Broker(config)
    bound = await nursery.start(broker.run)
    return broker, await WireClient.connect(bound[0][1])


def make_config(data_dir, **overrides) -> BrokerConfig:
    props = {"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(data_dir)}
    props.update({k.replace("_", "."): str(v) for k, v in overrides.items()})
    return BrokerConfig.from_properties(props)


@pytest.fixture
def broker_config(tmp_path):
    return make_config(tmp_path / "data")


@pytest.fixture
async def broker(broker_config, nursery):
    b = Broker(broker_config)
    bound = await nursery.start(b.run)
    running = RunningBroker(b, bound[0][1], nursery)
    yield running
    b.shutdown()
