"""protocol_specs/*.spec -> compiled construct codecs per (api, version, direction).

One generic builder for every API: field presence by version, nullable
versions, defaults, compact types and tagged fields in flexible versions.
Codecs are built and compiled on first use and cached, so start-up stays fast
however many APIs the specs describe.

Field names become snake_case (``ThrottleTimeMs`` -> ``throttle_time_ms``).
A decoded message is a ``Message`` (a construct ``Container`` whose fields
read fast as attributes); a field absent in the decoded version holds its
default, so handlers need not know the version. When encoding, a missing key
means the field's default.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from construct import Construct

from . import primitives as p

SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol_specs"
INF = 1 << 30


def parse_versions(text: str) -> tuple[int, int] | None:
    """'3+' -> (3, INF); '0-4' -> (0, 4); '2' -> (2, 2); 'none' -> None."""
    if text == "none":
        return None
    if text.endswith("+"):
        return int(text[:-1]), INF
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def in_range(version: int, rng: tuple[int, int] | None) -> bool:
    return rng is not None and rng[0] <= version <= rng[1]


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


@dataclass
class FieldSpec:
    name: str  # snake_case
    type: str  # primitive name, '{}' struct, '[]' array of struct, '[]<primitive>'
    versions: tuple[int, int] | None
    nullable: tuple[int, int] | None = None
    tag: int | None = None
    tagged: tuple[int, int] | None = None
    default: str | None = None
    fields: list["FieldSpec"] = field(default_factory=list)


@dataclass
class MessageSpec:
    name: str
    api_key: int | None
    valid: tuple[int, int]
    flexible: tuple[int, int] | None
    unstable: int | None
    bodies: dict[str, list[FieldSpec]]  # 'request'/'response', or 'fields' for data

    @property
    def max_stable(self) -> int:
        return self.valid[1] - 1 if self.unstable == self.valid[1] else self.valid[1]


def _parse_field(tokens: list[str]) -> FieldSpec:
    spec = FieldSpec(snake_case(tokens[0]), tokens[1], parse_versions(tokens[2][1:]))
    for tok in tokens[3:]:
        if tok.startswith("null"):
            spec.nullable = parse_versions(tok[4:])
        elif tok.startswith("tag"):
            tag, _, rng = tok[3:].partition("@")
            spec.tag, spec.tagged = int(tag), parse_versions(rng)
        elif tok.startswith("default="):
            spec.default = json.loads(tok[len("default="):])
        elif tok.startswith("flex"):
            pass  # per-field flexibleVersions only matters for the request header, done by hand
        else:
            raise ValueError(f"unknown spec token {tok!r}")
    return spec


def parse_spec(text: str) -> MessageSpec:
    head: dict[str, str] = {}
    bodies: dict[str, list[FieldSpec]] = {}
    stack: list[list[FieldSpec]] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if not raw.startswith(" ") and raw.split()[0] in ("api", "data", "valid", "flexible", "unstable", "listeners"):
            key, _, rest = raw.partition(" ")
            head[key] = rest
            continue
        if raw in ("request", "response", "fields"):
            bodies[raw] = []
            stack = [bodies[raw]]
            continue
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        spec = _parse_field(raw.split())
        del stack[depth + 1:]
        stack[depth].append(spec)
        stack.append(spec.fields)
    if "api" in head:
        key, name = head["api"].split()
        api_key = int(key)
    else:
        name, api_key = head["data"], None
    return MessageSpec(
        name=name,
        api_key=api_key,
        valid=parse_versions(head["valid"]),
        flexible=parse_versions(head["flexible"]),
        unstable=int(head["unstable"]) if "unstable" in head else None,
        bodies=bodies,
    )


@lru_cache(maxsize=None)
def all_specs() -> dict[str, MessageSpec]:
    """Every spec file by message name (API name without Request/Response)."""
    return {s.name: s for s in (parse_spec(path.read_text()) for path in sorted(SPEC_DIR.glob("*.spec")))}


@lru_cache(maxsize=None)
def api_specs() -> dict[int, MessageSpec]:
    return {s.api_key: s for s in all_specs().values() if s.api_key is not None}


_INT_TYPES = {"int8", "int16", "uint16", "int32", "int64"}


def default_src(f: FieldSpec, version: int) -> str:
    """A Python expression giving a fresh default value for a field."""
    d = f.default
    if d == "null":
        return "None"
    if f.type in ("{}",):
        inner = ", ".join(f"{c.name}={default_src(c, version)}" for c in f.fields)
        return f"Message({inner})"
    if f.type.startswith("[]"):
        return "ListContainer()"
    if f.type in _INT_TYPES:
        return repr(int(d, 0) if d else 0)
    if f.type == "float64":
        return repr(float(d) if d else 0.0)
    if f.type == "bool":
        return repr(d == "true")
    if f.type == "string":
        return repr(d or "")
    if f.type == "uuid":
        return "bytes(16)"
    if f.type == "bytes":
        return "b''"
    if f.type == "records":
        return "None"
    raise ValueError(f"no default for type {f.type}")


def _codec(f: FieldSpec, version: int, flexible: bool) -> Construct:
    nullable = in_range(version, f.nullable)
    typ = f.type
    if typ == "{}":
        return _struct(f.fields, version, flexible, nullable)
    if typ.startswith("[]"):
        elem = typ[2:]
        sub = _struct(f.fields, version, flexible) if elem == "" else _primitive(elem, flexible, False)
        return p.Array(sub, flexible, nullable)
    return _primitive(typ, flexible, nullable)


def _primitive(typ: str, flexible: bool, nullable: bool) -> Construct:
    if typ in p.FIXED:
        return p.Fixed(typ)
    if typ in ("bool", "uuid"):
        return {"bool": p.Bool, "uuid": p.Uuid}[typ](flexible)
    simple = {"string": p.String, "bytes": p.Bytes, "records": p.Records}
    if typ in simple:
        return simple[typ](flexible, nullable)
    raise ValueError(f"unknown type {typ}")


def _struct(fields: list[FieldSpec], version: int, flexible: bool, nullable: bool = False) -> p.Struct:
    regular = []
    tagged = []
    for f in fields:
        if in_range(version, f.tagged):
            if in_range(version, f.versions):
                tagged.append(p.TaggedField(f.tag, f.name, _codec(f, version, True), default_src(f, version)))
            continue
        codec = _codec(f, version, flexible) if in_range(version, f.versions) else None
        regular.append((f.name, codec, default_src(f, version)))
    return p.Struct(regular, tagged if flexible else None, nullable)


@lru_cache(maxsize=None)
def codec(name: str, version: int, direction: str) -> Construct:
    """The compiled codec of one message body: ``codec('Fetch', 12, 'request')``.
    ``direction`` is 'request', 'response', or 'fields' for data messages."""
    spec = all_specs()[name]
    if not in_range(version, spec.valid):
        raise ValueError(f"{name} has no version {version}")
    flexible = in_range(version, spec.flexible)
    return _struct(spec.bodies[direction], version, flexible).compile()


@lru_cache(maxsize=None)
def field_codec(name: str, version: int, direction: str, path: tuple[str, ...]) -> Construct:
    """The compiled codec of a field nested in a message body, by its path of
    field names: ``field_codec('Metadata', 12, 'response', ('topics',
    'partitions'))``. What it builds can go into the body as
    ``primitives.Encoded``."""
    spec = all_specs()[name]
    fields = spec.bodies[direction]
    for step in path:
        f = next(f for f in fields if f.name == step)
        fields = f.fields
    return _codec(f, version, in_range(version, spec.flexible)).compile()


def is_flexible(api_key: int, version: int) -> bool:
    return in_range(version, api_specs()[api_key].flexible)
