"""The controller's requests to one broker, sent one at a time in the order
queued (Kafka's ControllerChannelManager and its RequestSendThread): the
controller never waits on a broker unless it asks to, so a stopped broker
holds up only its own requests."""
from __future__ import annotations

import logging
import math

import trio

from ..protocol.errors import ErrorCode
from .channel import BrokerChannel, BrokerChannelError

log = logging.getLogger(__name__)


class BrokerQueue:
    """The controller's requests to one broker, sent one at a time in the
    order queued (Kafka's RequestSendThread). A request that fails is logged
    and dropped: the broker is dying, and its registration's watch will say so."""

    def __init__(self, broker_id: int, channel: BrokerChannel):
        self.broker_id = broker_id
        self.channel = channel
        self._in, self._out = trio.open_memory_channel(math.inf)
        self._scope = trio.CancelScope()

    def put(self, api: str, version: int, body: dict) -> trio.Event:
        """Queue a request; the event is set once it is answered or failed."""
        done = trio.Event()
        self._in.send_nowait((api, version, body, done))
        return done

    async def run(self) -> None:
        with self._scope:
            async for api, version, body, done in self._out:
                try:
                    response = await self.channel.request(api, version, body)
                except BrokerChannelError as e:
                    log.warning("controller: %s to broker %d failed: %s", api, self.broker_id, e)
                else:
                    if response.error_code != ErrorCode.NONE:
                        log.warning("controller: broker %d answered %s with %s", self.broker_id, api,
                                    ErrorCode(response.error_code).name)
                finally:
                    done.set()

    async def aclose(self) -> None:
        """Stop sending; whoever waits on a queued request is released."""
        self._scope.cancel()
        self._in.close()
        for _, _, _, done in _drain(self._out):
            done.set()
        await self.channel.aclose()


def _drain(receive_channel):
    while True:
        try:
            yield receive_channel.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return
