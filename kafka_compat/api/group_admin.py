"""ListGroups, DescribeGroups and DeleteGroups."""
from __future__ import annotations

from .common import OPERATIONS_NOT_REQUESTED
from .registry import handles

# With no authorizer every operation a group supports is allowed: READ (3),
# DELETE (6) and DESCRIBE (8), as AclOperation codes.
ALL_GROUP_OPERATIONS = sum(1 << op for op in (3, 6, 8))


@handles("ListGroups")
async def list_groups(ctx, request) -> dict:
    error, groups = ctx.broker.groups.list_groups(list(request.states_filter), list(request.types_filter))
    return {
        "error_code": error,
        "groups": [
            {"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state,
             "group_type": g.group_type}
            for g in groups
        ],
    }


@handles("DescribeGroups")
async def describe_groups(ctx, request) -> dict:
    coordinator = ctx.broker.groups
    operations = ALL_GROUP_OPERATIONS if request.include_authorized_operations else OPERATIONS_NOT_REQUESTED
    described = []
    for group_id in request.groups:
        error, summary = coordinator.describe_group(group_id)
        described.append({
            "error_code": error,
            "group_id": group_id,
            "group_state": summary.state,
            "protocol_type": summary.protocol_type,
            "protocol_data": summary.protocol,
            "members": [
                {"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                 "client_host": m.client_host, "member_metadata": m.metadata, "member_assignment": m.assignment}
                for m in summary.members
            ],
            "authorized_operations": operations,
        })
    return {"groups": described}


@handles("DeleteGroups")
async def delete_groups(ctx, request) -> dict:
    errors = ctx.broker.groups.delete_groups(list(request.groups_names))
    return {"results": [{"group_id": group_id, "error_code": error} for group_id, error in errors.items()]}
