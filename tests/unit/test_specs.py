"""protocol_specs/*.spec agree with Kafka's message definitions.

The reference JSON is parsed here on its own (comments stripped, common
structs expanded) and compared with what ``schema.parse_spec`` reads from our
spec files, so a slip in scripts/gen-specs or in the spec parser shows up.
Skipped when ../shared/kafka-reference is not beside the repository.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import pytest
from construct import Container, ListContainer

from kafka_compat.protocol import schema
from kafka_compat.protocol.primitives import Message  # noqa: F401 (default_src names it)

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "kafka-reference" / "message"

pytestmark = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"Kafka reference message definitions not found at {REFERENCE}"
)

PRIMITIVES = {"bool", "int8", "int16", "uint16", "int32", "int64", "float64", "uuid", "string", "bytes", "records"}


@lru_cache(maxsize=None)
def load_reference(path: Path) -> dict:
    """A reference JSON file: '//' comment lines removed (none sit inside strings)."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("//")]
    return json.loads("\n".join(lines))


def reference_files(kind: str) -> list[Path]:
    if not REFERENCE.is_dir():
        return []
    return sorted(p for p in REFERENCE.glob("*.json") if load_reference(p)["type"] == kind)


def versions(text: str | None) -> tuple[int, int] | None:
    """Kafka version ranges, read independently of schema.parse_versions."""
    if text is None or text == "none":
        return None
    m = re.fullmatch(r"(\d+)(\+|-(\d+))?", text)
    assert m, f"bad version range {text!r}"
    lo = int(m.group(1))
    if m.group(2) == "+":
        return lo, schema.INF
    return lo, int(m.group(3)) if m.group(3) else lo


def snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or name[i - 1].isdigit()):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def expected_default(field: dict, sub: list | None):
    """The value a field takes when absent, by the rules of the message README."""
    typ = field["type"]
    d = field.get("default")
    if d == "null":
        return None
    if sub is not None and not typ.startswith("[]"):
        return Container((snake(f["name"]), expected_default(f, f.get("fields"))) for f in sub)
    if typ.startswith("[]"):
        return ListContainer()
    if typ in ("int8", "int16", "uint16", "int32", "int64"):
        if d is None or d == "":
            return 0
        if isinstance(d, int):
            return d
        return int(d, 16) if d.lower().startswith(("0x", "-0x")) else int(d)
    if typ == "float64":
        return float(d) if d not in (None, "") else 0.0
    if typ == "bool":
        return d is True or d == "true"
    if typ == "string":
        return d if d is not None else ""
    return {"uuid": bytes(16), "bytes": b"", "records": None}[typ]


def compare_fields(where: str, ref_fields: list, common: dict, ours: list[schema.FieldSpec]) -> None:
    assert [snake(f["name"]) for f in ref_fields] == [f.name for f in ours], where
    for ref, got in zip(ref_fields, ours):
        at = f"{where}.{ref['name']}"
        typ = ref["type"]
        elem = typ.removeprefix("[]")
        sub = ref.get("fields")
        if sub is None and elem in common:
            sub = common[elem]
        if sub is not None:
            assert got.type == ("[]" if typ.startswith("[]") else "{}"), at
        else:
            assert elem in PRIMITIVES, f"{at}: unknown type {typ}"
            assert got.type == typ, at
        assert got.versions == versions(ref["versions"]), at
        assert got.nullable == versions(ref.get("nullableVersions")), at
        tag = ref.get("tag")
        assert got.tag == (None if tag is None else int(tag)), at  # a few files quote the tag
        assert got.tagged == versions(ref.get("taggedVersions")), at
        assert "flexibleVersions" not in ref, f"{at}: per-field flexible versions are not modelled"
        if "default" in ref:
            d = ref["default"]
            assert got.default == (str(d).lower() if isinstance(d, bool) else str(d)), at
        else:
            assert got.default is None, at
        for version in (0, 5, 20):
            assert eval(schema.default_src(got, version)) == expected_default(ref, sub), at
        if sub is not None:
            compare_fields(at, sub, common, got.fields)
        else:
            assert got.fields == [], at


def common_structs(msg: dict) -> dict:
    return {c["name"]: c["fields"] for c in msg.get("commonStructs", [])}


def spec_text(name: str) -> str:
    path = schema.SPEC_DIR / f"{name}.spec"
    assert path.is_file(), f"no spec file for {name}"
    return path.read_text()


@pytest.mark.parametrize("req_path", reference_files("request"), ids=lambda p: p.stem)
def test_api_spec_matches_reference(req_path):
    req = load_reference(req_path)
    resp = load_reference(req_path.with_name(req_path.name.replace("Request", "Response")))
    name = req["name"].removesuffix("Request")
    text = spec_text(name)
    spec = schema.parse_spec(text)

    assert spec.name == name
    assert spec.api_key == req["apiKey"] == resp["apiKey"]
    assert spec.valid == versions(req["validVersions"])
    assert versions(resp["validVersions"]) == spec.valid
    assert spec.flexible == versions(req["flexibleVersions"])
    assert versions(resp["flexibleVersions"]) == spec.flexible
    unstable = spec.valid[1] if req.get("latestVersionUnstable") else None
    assert spec.unstable == unstable
    listeners = re.search(r"^listeners ?(.*)$", text, re.M)
    assert listeners and listeners.group(1).split() == req.get("listeners", [])
    assert set(spec.bodies) == {"request", "response"}
    compare_fields(f"{name}Request", req["fields"], common_structs(req), spec.bodies["request"])
    compare_fields(f"{name}Response", resp["fields"], common_structs(resp), spec.bodies["response"])


@pytest.mark.parametrize("data_path", reference_files("data"), ids=lambda p: p.stem)
def test_data_spec_matches_reference(data_path):
    msg = load_reference(data_path)
    spec = schema.parse_spec(spec_text(msg["name"]))
    assert spec.name == msg["name"]
    assert spec.api_key is None
    assert spec.valid == versions(msg["validVersions"])
    assert spec.flexible == versions(msg["flexibleVersions"])
    assert set(spec.bodies) == {"fields"}
    compare_fields(msg["name"], msg["fields"], common_structs(msg), spec.bodies["fields"])


def test_every_reference_message_has_a_spec_and_no_spec_is_extra():
    requests = {load_reference(p)["name"].removesuffix("Request") for p in reference_files("request")}
    data = {load_reference(p)["name"] for p in reference_files("data")}
    assert requests, "no request definitions found in the reference"
    ours = {p.stem for p in schema.SPEC_DIR.glob("*.spec")}
    assert requests - ours == set(), "requests without a spec file"
    assert data - ours == set(), "data messages without a spec file"
    assert ours - requests - data == set(), "spec files with no reference definition"
    assert set(schema.all_specs()) == ours
    assert {s.api_key for s in schema.api_specs().values()} == {
        load_reference(p)["apiKey"] for p in reference_files("request")
    }


def test_every_response_pairs_with_a_request():
    for resp_path in reference_files("response"):
        assert resp_path.with_name(resp_path.name.replace("Response", "Request")).is_file(), resp_path.name
