"""Our codecs against kafka-python's own protocol classes.

kafka-python 3.x has two independent encoders: JSON-schema driven message
classes (``kafka.protocol.producer.ProduceRequest[v]`` and friends, the ones
its client uses) and the older hand-written ``Struct`` classes in
``kafka.protocol.old``. For every API and version both sides know:

- requests: kafka-python encodes a message body, we decode it to the same
  field values, and our encoding of the same values is byte-identical;
- responses: we encode, kafka-python decodes to the same field values.

Only message bodies are compared (``header=False``); headers are not part of
the schema codecs. Needs kafka-python >= 3.0 (the JSON-schema classes).
"""
from __future__ import annotations

import importlib
import pkgutil
import uuid
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python reads its JSON with a deprecated API
    import kafka.protocol

    for _mod in pkgutil.walk_packages(kafka.protocol.__path__, "kafka.protocol."):
        if "generate_stubs" not in _mod.name:
            importlib.import_module(_mod.name)

from kafka.protocol.api_message import ApiMessage  # noqa: E402
from kafka.protocol.old import types as old_types  # noqa: E402
from kafka.protocol.old.api import Request as OldRequest, Response as OldResponse  # noqa: E402
from kafka.protocol.schemas.fields.codecs import BitField  # noqa: E402

from kafka_compat.protocol import schema  # noqa: E402
from test_schema import expected_decoded, plain, sample_value  # noqa: E402


# --- the JSON-schema message classes -----------------------------------------------------------

def _message_classes() -> dict[str, type]:
    """kafka-python's ApiMessage classes by Kafka message name (e.g. 'FetchRequest')."""
    found, todo = {}, [ApiMessage]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls is not ApiMessage and cls._class_version is None:
            found[cls.name] = cls
    return found


KP_CLASSES = _message_classes()


def _kp_valid(cls) -> tuple[int, int]:
    """The versions kafka-python's JSON really defines (its class claims 0 as minimum)."""
    lo, _, hi = cls.json["validVersions"].partition("-")
    return int(lo), int(hi or lo)


def _cases(direction: str) -> list:
    cases = []
    for spec in sorted(schema.api_specs().values(), key=lambda spec: spec.name):
        kp_cls = KP_CLASSES.get(spec.name + direction.capitalize())
        if kp_cls is None:
            continue
        lo, hi = _kp_valid(kp_cls)
        for version in range(max(lo, spec.valid[0]), min(hi, spec.max_stable) + 1):
            cases.append(pytest.param(spec.name, version, kp_cls, id=f"{spec.name}-v{version}"))
    return cases


def paired(kp_struct, fields: list[schema.FieldSpec], version: int) -> list:
    """(kafka-python field, our field) for the fields on the wire in ``version``.

    kafka-python ships a newer Kafka's definitions, so it may know fields of later
    versions; and it renames Metadata/DescribeCluster's authorized operations."""
    kp_by_name = {kf.name: kf for kf in kp_struct._fields}
    pairs = []
    for f in fields:
        kf = kp_by_name.pop(f.name, None)
        if kf is None and f.name.endswith("authorized_operations"):
            kf = kp_by_name.pop("authorized_operations", None)
        assert kf is not None, f"kafka-python's {kp_struct.name} has no {f.name}"
        if schema.in_range(version, f.versions):
            assert kf.for_version_q(version), f"{kp_struct.name}.{f.name} v{version}"
            pairs.append((kf, f))
    extra = [kf.name for kf in kp_by_name.values() if kf.for_version_q(version)]
    assert not extra, f"kafka-python's {kp_struct.name} v{version} has fields we lack: {extra}"
    return pairs


def to_kp(kp_struct, fields: list[schema.FieldSpec], value: dict, version: int, top: bool = False):
    """Our plain value -> a kafka-python data object of ``kp_struct``'s class."""
    kwargs = {kf.name: _to_kp_value(kf, f, value[f.name], version) for kf, f in paired(kp_struct, fields, version)}
    return kp_struct.data_class(version=version, **kwargs) if top else kp_struct.data_class(**kwargs)


def _to_kp_value(kf, f: schema.FieldSpec, v, version: int):
    if v is None:
        return None
    if kf.is_struct():
        return to_kp(kf, f.fields, v, version)
    if kf.is_struct_array():
        return [to_kp(kf.array_of, f.fields, item, version) for item in v]
    inner = kf.array_of._type_str if kf.is_array() else kf.type_str
    if inner == "uuid":
        return [uuid.UUID(bytes=x) for x in v] if kf.is_array() else uuid.UUID(bytes=v)
    if inner == "bitfield":
        return BitField.from_32_bit_field(v & 0xFFFFFFFF)
    return v


def from_kp(obj, kp_struct, fields: list[schema.FieldSpec], version: int) -> dict:
    """A decoded kafka-python object -> our plain form, for the fields on the wire in ``version``."""
    return {f.name: _from_kp_value(kf, f, getattr(obj, kf.name), version)
            for kf, f in paired(kp_struct, fields, version)}


def _from_kp_value(kf, f: schema.FieldSpec, v, version: int):
    if v is None:
        return None
    if kf.is_struct():
        return from_kp(v, kf, f.fields, version)
    if kf.is_struct_array():
        return [from_kp(item, kf.array_of, f.fields, version) for item in v]
    inner = kf.array_of._type_str if kf.is_array() else kf.type_str
    if inner == "uuid":
        return [x.bytes for x in v] if kf.is_array() else v.bytes
    if inner == "bitfield":
        return BitField.to_32_bit_field(v) - (1 << 32 if 31 in v else 0)
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    return v


def on_wire(fields: list[schema.FieldSpec], version: int, value: dict) -> dict:
    """``value`` restricted to the fields present in ``version`` (what kafka-python exposes)."""
    out = {}
    for f in fields:
        if not schema.in_range(version, f.versions):
            continue
        v = value[f.name]
        if v is not None and f.type == "{}":
            v = on_wire(f.fields, version, v)
        elif v is not None and f.type == "[]":
            v = [on_wire(f.fields, version, item) for item in v]
        out[f.name] = v
    return out


@pytest.mark.parametrize("name, version, kp_cls", _cases("request"))
def test_kafka_python_request_decodes(name, version, kp_cls):
    fields = schema.all_specs()[name].bodies["request"]
    codec = schema.codec(name, version, "request")
    for nulls in (False, True):
        value = sample_value(fields, version, nulls=nulls)
        data = to_kp(kp_cls._struct, fields, value, version, top=True).encode(version=version, header=False)
        assert plain(codec.parse(data)) == expected_decoded(fields, version, value)
        assert codec.build(value) == data


@pytest.mark.parametrize("name, version, kp_cls", _cases("response"))
def test_our_response_decodes_in_kafka_python(name, version, kp_cls):
    fields = schema.all_specs()[name].bodies["response"]
    codec = schema.codec(name, version, "response")
    for nulls in (False, True):
        value = sample_value(fields, version, nulls=nulls)
        if name == "ApiVersions":
            value["error_code"] = 0  # kafka-python (like Kafka) reads an error response as v0
        data = codec.build(value)
        decoded = kp_cls.decode(data, version=version, header=False)
        assert from_kp(decoded, kp_cls._struct, fields, version) == on_wire(fields, version, value)
        assert to_kp(kp_cls._struct, fields, value, version, top=True).encode(version=version, header=False) == data


# --- messages shaped as kafka-python's client builds them ---------------------------------------

def _record_batch(*values: bytes) -> bytes:
    from kafka.record.memory_records import MemoryRecordsBuilder

    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    for i, v in enumerate(values):
        builder.append(timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=v, headers=[("h", b"\x01")])
    builder.close()
    return bytes(builder.buffer())


@pytest.mark.parametrize("version", [3, 7, 9])
def test_client_produce_request_with_a_real_batch(version):
    from kafka.protocol.producer import ProduceRequest

    batch = _record_batch(b"v0", "välue".encode())
    topic = ProduceRequest.TopicProduceData
    request = ProduceRequest[version](
        transactional_id=None, acks=-1, timeout_ms=30000,
        topic_data=[topic(name="tópic", partition_data=[topic.PartitionProduceData(index=2, records=batch)])])
    decoded = schema.codec("Produce", version, "request").parse(request.encode(header=False))
    assert (decoded.transactional_id, decoded.acks, decoded.timeout_ms) == (None, -1, 30000)
    assert decoded.topic_data[0].name == "tópic"
    assert decoded.topic_data[0].partition_data[0].index == 2
    assert decoded.topic_data[0].partition_data[0].records == batch


@pytest.mark.parametrize("version", [4, 11, 12])
def test_our_fetch_response_records_iterate_in_kafka_python(version):
    from kafka.protocol.consumer.fetch import FetchResponse
    from kafka.record.memory_records import MemoryRecords

    batch = _record_batch(b"one", b"two")
    value = {"responses": [{"topic": "t", "partitions": [
        {"partition_index": 0, "high_watermark": 2, "last_stable_offset": 2, "aborted_transactions": None,
         "records": batch}]}]}
    decoded = FetchResponse.decode(schema.codec("Fetch", version, "response").build(value), version=version)
    partition = decoded.responses[0].partitions[0]
    assert partition.high_watermark == 2
    records = MemoryRecords(bytes(partition.records))
    values = [r.value for b in iter(records.next_batch, None) for r in b]
    assert values == [b"one", b"two"]


@pytest.mark.parametrize("version", range(0, 13))
def test_client_metadata_request_for_all_topics(version):
    from kafka.protocol.metadata import MetadataRequest

    request = MetadataRequest[version](topics=MetadataRequest.ALL_TOPICS, allow_auto_topic_creation=False)
    decoded = schema.codec("Metadata", version, "request").parse(request.encode(header=False))
    # v0 has no null array: "all topics" is an empty list there
    assert decoded.topics == ([] if version == 0 else None)
    assert decoded.allow_auto_topic_creation is (version < 4)  # absent before v4: defaults to true


def _data_cases() -> list:
    from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription

    cases = []
    for cls in (ConsumerProtocolSubscription, ConsumerProtocolAssignment):
        spec = schema.all_specs()[cls.name]
        for version in range(spec.valid[0], min(_kp_valid(cls)[1], spec.valid[1]) + 1):
            cases.append(pytest.param(cls.name, version, cls, id=f"{cls.name}-v{version}"))
    return cases


@pytest.mark.parametrize("name, version, kp_cls", _data_cases())
def test_consumer_protocol_data_both_ways(name, version, kp_cls):
    """Group member metadata and assignments, as kafka-python's consumer sends them."""
    fields = schema.all_specs()[name].bodies["fields"]
    codec = schema.codec(name, version, "fields")
    for nulls in (False, True):
        value = sample_value(fields, version, nulls=nulls)
        data = to_kp(kp_cls._struct, fields, value, version, top=True).encode(version=version, header=False)
        assert plain(codec.parse(data)) == expected_decoded(fields, version, value)
        assert codec.build(value) == data
        decoded = kp_cls.decode(data, version=version, header=False)
        assert from_kp(decoded, kp_cls._struct, fields, version) == on_wire(fields, version, value)


# --- the hand-written Struct classes (kafka.protocol.old) -------------------------------------

# Where kafka.protocol.old itself is wrong; strict, so a fixed kafka-python shows up.
OLD_KAFKA_PYTHON_BUGS = {
    "DescribeAclsRequest_v2": "v2 is flexible but kafka-python reuses v1's non-compact schema",
    "DescribeAclsResponse_v2": "v2 is flexible but kafka-python reuses v1's non-compact schema",
    "DescribeLogDirsRequest_v0": "kafka-python declares partitions as one int32, not an int32 array",
}


def _old_classes(direction: str) -> list:
    base = OldRequest if direction == "request" else OldResponse
    found = {}
    for mod in pkgutil.iter_modules(kafka.protocol.old.__path__, "kafka.protocol.old."):
        for obj in vars(importlib.import_module(mod.name)).values():
            if isinstance(obj, type) and issubclass(obj, base) and isinstance(getattr(obj, "API_KEY", None), int):
                found[(obj.API_KEY, obj.API_VERSION)] = obj
    cases = []
    for (key, version), cls in sorted(found.items()):
        spec = schema.api_specs()[key]
        bug = OLD_KAFKA_PYTHON_BUGS.get(cls.__name__)
        marks = [pytest.mark.xfail(reason=f"kafka-python: {bug}", strict=True)] if bug else []
        cases.append(pytest.param(spec.name, version, cls, id=f"{spec.name}-v{version}", marks=marks))
    return cases


def untagged(fields: list[schema.FieldSpec], version: int) -> list[schema.FieldSpec]:
    """Our fields on the wire in ``version`` outside the tagged section, in wire order."""
    return [f for f in fields if schema.in_range(version, f.versions) and not schema.in_range(version, f.tagged)]


# Positional mapping onto kafka.protocol.old's tuples. Two shapes are wire-identical to
# Kafka's JSON and kafka-python uses both: an array of one-field structs written as an
# array of that field ("no boxing"), and a struct's fields inlined into its parent.


def _old_types(old_schema) -> list:
    return [typ for typ in old_schema.fields if typ is not old_types.TaggedFields]


def to_old(old_schema, ours: list[schema.FieldSpec], version: int, value: dict) -> tuple:
    """Our plain value -> the positional tuple a kafka.protocol.old Schema encodes."""
    out, i = [], 0
    for typ in _old_types(old_schema):
        if _inlined(typ, ours[i]):
            n = len(_old_types(typ))
            out.append(to_old(typ, ours[i:i + n], version, value))
            i += n
            continue
        out.append(_to_old_value(typ, ours[i], version, value[ours[i].name]))
        i += 1
    assert i == len(ours), f"{old_schema.names} vs {[f.name for f in ours]}"
    return tuple(out) + (({},) if len(old_schema.fields) > len(out) else ())


def _inlined(typ, f: schema.FieldSpec) -> bool:
    return isinstance(typ, old_types.Schema) and f.type != "{}"


def _to_old_value(typ, f: schema.FieldSpec, version: int, v):
    if v is None:
        return None
    if isinstance(typ, old_types.Array):
        inner = typ.array_of
        if f.type != "[]":
            return [_to_old_value(inner, f, version, item) for item in v]
        sub = untagged(f.fields, version)
        if isinstance(inner, old_types.Schema):
            return [to_old(inner, sub, version, item) for item in v]
        (only,) = sub
        return [_to_old_value(inner, only, version, item[only.name]) for item in v]
    if isinstance(typ, old_types.Schema):
        return to_old(typ, untagged(f.fields, version), version, v)
    if typ is old_types.UUID:
        return uuid.UUID(bytes=v)
    if typ is old_types.BitField:
        return old_types.BitField.from_32_bit_field(v & 0xFFFFFFFF)
    return v


def from_old(old_schema, ours: list[schema.FieldSpec], version: int, decoded) -> dict:
    """A kafka.protocol.old decoded tuple -> our plain form."""
    out, i = {}, 0
    for typ, v in zip(_old_types(old_schema), decoded):
        if _inlined(typ, ours[i]):
            n = len(_old_types(typ))
            out.update(from_old(typ, ours[i:i + n], version, v))
            i += n
            continue
        out[ours[i].name] = _from_old_value(typ, ours[i], version, v)
        i += 1
    assert i == len(ours)
    return out


def _from_old_value(typ, f: schema.FieldSpec, version: int, v):
    if v is None:
        return None
    if isinstance(typ, old_types.Array):
        inner = typ.array_of
        if f.type != "[]":
            return [_from_old_value(inner, f, version, item) for item in v]
        sub = untagged(f.fields, version)
        if isinstance(inner, old_types.Schema):
            return [from_old(inner, sub, version, item) for item in v]
        (only,) = sub
        return [{only.name: _from_old_value(inner, only, version, item)} for item in v]
    if isinstance(typ, old_types.Schema):
        return from_old(typ, untagged(f.fields, version), version, v)
    if typ is old_types.UUID:
        return v.bytes
    if typ is old_types.BitField:
        return old_types.BitField.to_32_bit_field(v) - (1 << 32 if 31 in v else 0)
    return v


def without_tagged(fields, version: int, value: dict) -> dict:
    """``value`` with every tagged field left out (kafka.protocol.old keeps tags as raw bytes)."""
    out = {}
    for f in untagged(fields, version):
        v = value[f.name]
        if v is not None and f.type == "{}":
            v = without_tagged(f.fields, version, v)
        elif v is not None and f.type == "[]":
            v = [without_tagged(f.fields, version, item) for item in v]
        out[f.name] = v
    return out


@pytest.mark.parametrize("name, version, old_cls", _old_classes("request"))
def test_kafka_python_old_request_decodes(name, version, old_cls):
    fields = schema.all_specs()[name].bodies["request"]
    codec = schema.codec(name, version, "request")
    for nulls in (False, True):
        value = without_tagged(fields, version, sample_value(fields, version, nulls=nulls))
        data = old_cls(*to_old(old_cls.SCHEMA, untagged(fields, version), version, value)).encode()
        assert plain(codec.parse(data)) == expected_decoded(fields, version, value)
        assert codec.build(value) == data


@pytest.mark.parametrize("name, version, old_cls", _old_classes("response"))
def test_our_response_decodes_in_kafka_python_old(name, version, old_cls):
    fields = schema.all_specs()[name].bodies["response"]
    codec = schema.codec(name, version, "response")
    for nulls in (False, True):
        value = without_tagged(fields, version, sample_value(fields, version, nulls=nulls))
        if name == "ApiVersions":
            value["error_code"] = 0  # an error response is read as v0, as in Kafka
        data = codec.build(value)
        decoded = old_cls.decode(data)
        decoded_tuple = tuple(getattr(decoded, n) for n in old_cls.SCHEMA.names)
        assert from_old(old_cls.SCHEMA, untagged(fields, version), version, decoded_tuple) == value
