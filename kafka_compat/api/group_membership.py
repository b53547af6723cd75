"""JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the classic group protocol,
answered by the group coordinator (``broker.groups``)."""
from __future__ import annotations

from ..protocol.errors import ErrorCode
from .registry import handles


def client_host(ctx) -> str:
    """The client's address as Kafka reports it (InetAddress.toString: '/1.2.3.4')."""
    return "/" + ctx.peer.rsplit(":", 1)[0]


@handles("JoinGroup")
async def join_group(ctx, request) -> dict:
    version = ctx.api_version
    result = await ctx.broker.groups.join_group(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=request.group_instance_id,
        require_known_member_id=version >= 4,  # KIP-394
        support_skip_assignment=version >= 9,
        client_id=ctx.header.client_id or "",
        client_host=client_host(ctx),
        # v0 has no rebalance timeout: the session timeout is both.
        rebalance_timeout_ms=request.session_timeout_ms if version == 0 else request.rebalance_timeout_ms,
        session_timeout_ms=request.session_timeout_ms,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
        reason=request.reason,
    )
    protocol_name = result.protocol_name
    if version < 7:
        protocol_name = protocol_name or ""  # not nullable before v7
    elif protocol_name == "":
        protocol_name = None
    return {
        "error_code": result.error,
        "generation_id": result.generation_id,
        "protocol_type": result.protocol_type,
        "protocol_name": protocol_name,
        "leader": result.leader_id,
        "skip_assignment": result.skip_assignment,
        "member_id": result.member_id,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "metadata": metadata}
            for member_id, instance_id, metadata in result.members
        ],
    }


@handles("SyncGroup")
async def sync_group(ctx, request) -> dict:
    if ctx.api_version >= 5 and (request.protocol_type is None or request.protocol_name is None):
        # From v5 on both are mandatory.
        return {"error_code": ErrorCode.INCONSISTENT_GROUP_PROTOCOL, "assignment": b""}
    result = await ctx.broker.groups.sync_group(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        protocol_type=request.protocol_type,
        protocol_name=request.protocol_name,
        group_instance_id=request.group_instance_id,
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments},
    )
    return {
        "error_code": result.error,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }


@handles("Heartbeat")
async def heartbeat(ctx, request) -> dict:
    error = ctx.broker.groups.heartbeat(request.group_id, request.member_id, request.group_instance_id,
                                        request.generation_id)
    return {"error_code": error}


@handles("LeaveGroup")
async def leave_group(ctx, request) -> dict:
    if ctx.api_version <= 2:
        members = [(request.member_id, None, None)]
    else:
        members = [(m.member_id, m.group_instance_id, m.reason) for m in request.members]
    error, member_errors = ctx.broker.groups.leave_group(request.group_id, members)
    if ctx.api_version <= 2:
        # One member, one error: the top-level one, else the member's.
        if error == ErrorCode.NONE:
            error = next((e for e in member_errors if e != ErrorCode.NONE), ErrorCode.NONE)
        return {"error_code": error}
    return {
        "error_code": error,
        "members": [
            {"member_id": member_id, "group_instance_id": instance_id, "error_code": member_error}
            for (member_id, instance_id, _), member_error in zip(members, member_errors)
        ],
    }
