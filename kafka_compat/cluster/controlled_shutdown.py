"""A broker's side of controlled shutdown (Kafka's KafkaServer.controlledShutdown).

Before a broker in a cluster stops, it asks the controller (the one its
metadata cache names, reached on the inter-broker listener; possibly itself)
to move leadership off it with ControlledShutdown v3 (broker id and epoch).
The controller answers with the partitions it still leads; while some remain,
or the request fails, the broker tries again, controlled.shutdown.max.retries
attempts in all, controlled.shutdown.retry.backoff.ms apart, then shuts down
regardless, as Kafka does.
"""
from __future__ import annotations

import logging

import trio

from ..protocol.errors import ErrorCode
from .channel import BrokerChannel, BrokerChannelError

log = logging.getLogger(__name__)

CONTROLLED_SHUTDOWN_VERSION = 3


async def controlled_shutdown(config, cluster) -> bool:
    """Whether the controller moved every partition it could (none remain)."""
    channel: BrokerChannel | None = None
    succeeded = False
    async with trio.open_nursery() as nursery:
        try:
            remaining_retries = config.controlled_shutdown_max_retries
            while not succeeded and remaining_retries > 0:
                remaining_retries -= 1
                controller = cluster.cache.brokers.get(cluster.cache.controller_id)
                endpoint = None if controller is None else controller.endpoint(config.inter_broker_listener_name)
                if endpoint is None:
                    log.info("No controller with an endpoint on %s in the metadata cache",
                             config.inter_broker_listener_name)
                else:
                    if channel is None or (channel.host, channel.port) != (endpoint.host, endpoint.port):
                        if channel is not None:
                            await channel.aclose()
                        channel = BrokerChannel(endpoint.host, endpoint.port, nursery, client_id=str(config.broker_id))
                    succeeded = await _request(channel, config.broker_id, cluster.broker_epoch)
                if not succeeded and remaining_retries > 0:
                    await trio.sleep(config.controlled_shutdown_retry_backoff_ms / 1000)
                    log.info("Retrying controlled shutdown (%d retries remaining)", remaining_retries)
        finally:
            if channel is not None:
                await channel.aclose()
            nursery.cancel_scope.cancel()
    if not succeeded:
        log.warning("Proceeding to do an unclean shutdown as all the controlled shutdown attempts failed")
    return succeeded


async def _request(channel: BrokerChannel, broker_id: int, broker_epoch: int) -> bool:
    start = trio.current_time()
    try:
        response = await channel.request("ControlledShutdown", CONTROLLED_SHUTDOWN_VERSION,
                                         {"broker_id": broker_id, "broker_epoch": broker_epoch})
    except BrokerChannelError as e:
        log.warning("Error during controlled shutdown: %s", e)
        return False
    took_ms = int((trio.current_time() - start) * 1000)
    if response.error_code != ErrorCode.NONE:
        log.info("Controlled shutdown request returned after %dms with error %s", took_ms,
                 ErrorCode(response.error_code).name)
        return False
    if response.remaining_partitions:
        log.info("Controlled shutdown request returned after %dms with %d partitions remaining to move: %s", took_ms,
                 len(response.remaining_partitions),
                 ", ".join(f"{p.topic_name}-{p.partition_index}" for p in response.remaining_partitions))
        return False
    log.info("Controlled shutdown request returned successfully after %dms", took_ms)
    return True
