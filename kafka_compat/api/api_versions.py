"""ApiVersions: answered from the handler registry, so it can't advertise what isn't handled."""
from ..protocol.errors import ErrorCode
from .registry import REGISTRY, handles


def supported_api_keys() -> list[dict]:
    return [
        {"api_key": e.api_key, "min_version": e.min_version, "max_version": e.max_version}
        for e in sorted(REGISTRY.values(), key=lambda e: e.api_key)
    ]


@handles("ApiVersions")
async def api_versions(ctx, request) -> dict:
    return {"error_code": ErrorCode.NONE, "api_keys": supported_api_keys()}
