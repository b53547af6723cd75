"""Request and response headers from the client's side (a broker sending to
another broker): the request header we write and the response header we read.

Request header v1 (api key, version, correlation id, nullable client id), v2
adding a tagged-field section in flexible versions. Response header v0 (the
correlation id), v1 adding a tagged-field section in flexible versions, except
ApiVersions, whose response header is always v0 so that a client can read the
answer to a version the broker does not know.
"""
from __future__ import annotations

import struct

from . import schema
from .primitives import uvarint_at

API_VERSIONS_KEY = 18
_REQUEST_HEADER = struct.Struct(">hhih")
_CORRELATION_ID = struct.Struct(">i")


def encode_request_header(api_key: int, api_version: int, correlation_id: int, client_id: str | None) -> bytes:
    client = b"" if client_id is None else client_id.encode()
    header = _REQUEST_HEADER.pack(api_key, api_version, correlation_id, -1 if client_id is None else len(client))
    header += client
    if schema.is_flexible(api_key, api_version):
        header += b"\x00"  # no tagged fields
    return header


def response_header_is_flexible(api_key: int, api_version: int) -> bool:
    return api_key != API_VERSIONS_KEY and schema.is_flexible(api_key, api_version)


def parse_response_header(frame, api_key: int, api_version: int) -> tuple[int, int]:
    """(correlation id, offset of the body) of a response frame (without its
    size prefix). Tagged fields in the header are skipped: none is defined."""
    (correlation_id,) = _CORRELATION_ID.unpack_from(frame, 0)
    pos = _CORRELATION_ID.size
    if response_header_is_flexible(api_key, api_version):
        count, pos = uvarint_at(frame, pos)
        for _ in range(count):
            _, pos = uvarint_at(frame, pos)  # tag
            size, pos = uvarint_at(frame, pos)
            pos += size
    return correlation_id, pos
