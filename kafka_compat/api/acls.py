"""DescribeAcls, CreateAcls and DeleteAcls on a broker without an authorizer:
Apache Kafka answers SECURITY_DISABLED, with these two sentences (the
describe path builds its own, create and delete carry the exception's), and
admin tools such as kafka-acls.sh and web UIs expect exactly that."""
from __future__ import annotations

from ..protocol.errors import ErrorCode
from .registry import handles

_DESCRIBE_MESSAGE = "No Authorizer is configured on the broker"
_CHANGE_MESSAGE = "No Authorizer is configured."


@handles("DescribeAcls")
async def describe_acls(ctx, request) -> dict:
    return {"error_code": ErrorCode.SECURITY_DISABLED, "error_message": _DESCRIBE_MESSAGE, "resources": []}


@handles("CreateAcls")
async def create_acls(ctx, request) -> dict:
    return {"results": [{"error_code": ErrorCode.SECURITY_DISABLED, "error_message": _CHANGE_MESSAGE}
                        for _ in request.creations]}


@handles("DeleteAcls")
async def delete_acls(ctx, request) -> dict:
    return {"filter_results": [
        {"error_code": ErrorCode.SECURITY_DISABLED, "error_message": _CHANGE_MESSAGE, "matching_acls": []}
        for _ in request.filters
    ]}
