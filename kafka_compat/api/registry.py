"""API key -> handler and the versions it serves.

Handlers register with ``@handles("Produce", min_version=3)``; the version
range defaults to every stable version the spec lists. ApiVersions answers
from this table, so the broker never advertises an API it doesn't handle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable

from ..protocol import schema


@dataclass(frozen=True)
class CloseConnection:
    """A handler's answer when Kafka sends no response but closes the
    connection, so that the client notices (an acks=0 produce that failed);
    `reason` goes to the log."""

    reason: str


@dataclass(frozen=True)
class AnswerLater:
    """A produce handler's answer when every append is done but the response
    waits for the replicas (acks=all): the connection goes on to its next
    produce request meanwhile and sends the body ``response()`` returns in
    its turn, so that a producer's pipelined requests are replicated together
    rather than one round trip each. ``ready()`` tells whether ``response()``
    would return without waiting (the connection sends what it has answered
    before it waits)."""

    response: Callable[[], Awaitable[dict | CloseConnection | None]]
    ready: Callable[[], bool]


@dataclass(frozen=True)
class ApiEntry:
    api_key: int
    name: str
    min_version: int
    max_version: int
    handler: Callable[..., Awaitable[dict | CloseConnection | AnswerLater | None]]


REGISTRY: dict[int, ApiEntry] = {}


def handles(name: str, min_version: int | None = None, max_version: int | None = None):
    spec = schema.all_specs()[name]

    def register(fn):
        REGISTRY[spec.api_key] = ApiEntry(
            spec.api_key,
            name,
            spec.valid[0] if min_version is None else min_version,
            spec.max_stable if max_version is None else max_version,
            fn,
        )
        return fn

    return register


def load_handlers() -> dict[int, ApiEntry]:
    """Import every handler module so each registers itself."""
    from . import (  # noqa: F401
        acls,
        admin,
        alter_configs,
        api_versions,
        cluster_admin,
        controller_requests,
        delete_records,
        describe_configs,
        describe_producers,
        fetch,
        find_coordinator,
        group_admin,
        group_membership,
        group_offsets,
        list_offsets,
        log_dirs,
        metadata,
        offset_for_leader_epoch,
        produce,
        transactions,
        write_txn_markers,
    )

    return REGISTRY
