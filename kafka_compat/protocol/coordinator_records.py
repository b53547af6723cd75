"""The keys and values the coordinators write to their internal topics
(``__consumer_offsets``, ``__transaction_state``): an int16 schema version,
then that version of the record's spec in ``protocol_specs/coordinator``.
The coordinators' log_format modules say which records and versions."""
from __future__ import annotations

import io
import struct
from functools import lru_cache

from construct import Construct

from . import schema

SPEC_DIR = schema.SPEC_DIR / "coordinator"
_VERSION = struct.Struct(">h")


class UnknownFormat(ValueError):
    """A key or value of a version this broker can't read."""


@lru_cache(maxsize=None)
def _codec(name: str, version: int) -> Construct:
    spec = schema.parse_spec((SPEC_DIR / f"{name}.spec").read_text())
    if not schema.in_range(version, spec.valid):
        raise UnknownFormat(f"{name} has no version {version}")
    return schema._struct(spec.bodies["fields"], version, schema.in_range(version, spec.flexible)).compile()


def version_of(name: str, data: bytes) -> int:
    """The schema version ``data`` starts with; UnknownFormat if too short."""
    if len(data) < 2:
        raise UnknownFormat(f"{name} shorter than its version")
    return _VERSION.unpack_from(data)[0]


def encode(name: str, version: int, body: dict) -> bytes:
    out = io.BytesIO()
    out.write(_VERSION.pack(version))
    _codec(name, version).build_stream(body, out)
    return out.getvalue()


def decode(name: str, data: bytes):
    """(version, the decoded record) of ``name``; UnknownFormat for a
    version its spec doesn't have."""
    version = version_of(name, data)
    return version, _codec(name, version).parse(bytes(data[2:]))
