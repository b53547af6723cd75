"""Round trips of every message of every version through the spec codecs,
hand-checked compact encodings, malformed input, and compiled-vs-interpreted
agreement."""
from __future__ import annotations

import io
import itertools
import random
import struct
import time
import tracemalloc

import pytest
from construct import Container, ConstructError

from kafka_compat.protocol import primitives as p
from kafka_compat.protocol import schema


# --- representative values ------------------------------------------------------------------

def sample_value(fields: list[schema.FieldSpec], version: int, *, nulls: bool, counter=None) -> dict:
    """A message body with a non-default value for every field present in ``version``
    (tagged ones included); with ``nulls``, every field nullable in ``version`` is None.
    Struct arrays and primitive arrays get two elements."""
    counter = counter if counter is not None else itertools.count(1)
    out = {}
    for f in fields:
        if schema.in_range(version, f.versions):
            out[f.name] = _sample_field(f, version, nulls, counter)
    return out


def _sample_field(f: schema.FieldSpec, version: int, nulls: bool, counter):
    if nulls and schema.in_range(version, f.nullable):
        return None
    if f.type == "{}":
        return sample_value(f.fields, version, nulls=nulls, counter=counter)
    if f.type == "[]":
        return [sample_value(f.fields, version, nulls=nulls, counter=counter) for _ in range(2)]
    if f.type.startswith("[]"):
        return [_sample_primitive(f.type[2:], None, counter) for _ in range(2)]
    return _sample_primitive(f.type, f.default, counter)


def _sample_primitive(typ: str, default, counter):
    n = next(counter)
    sign = -1 if n % 2 else 1
    if typ == "int8":
        return sign * (n % 100 + 1)
    if typ == "int16":
        return sign * (1000 + n)
    if typ == "uint16":
        return 40000 + n  # above int16's range: must really be unsigned
    if typ == "int32":
        return sign * (100_000 + n)
    if typ == "int64":
        return sign * ((1 << 40) + n)
    if typ == "float64":
        return n + 0.25
    if typ == "bool":
        return default != "true"
    if typ == "string":
        return f"nämé-{n}-✓"
    if typ == "uuid":
        return bytes([n % 251 + 1]) * 8 + n.to_bytes(8, "big")
    if typ in ("bytes", "records"):
        return bytes([n % 256, 0, 255]) + b"payload"
    raise AssertionError(f"no sample for {typ}")


def expected_decoded(fields: list[schema.FieldSpec], version: int, value: dict) -> dict:
    """What decoding ``value`` in ``version`` must give: the value where the field is on the
    wire in that version, its default elsewhere (and where ``value`` leaves it out)."""
    out = {}
    for f in fields:
        if not schema.in_range(version, f.versions) or f.name not in value:
            out[f.name] = plain(eval(schema.default_src(f, version), vars(p)))
            continue
        v = value[f.name]
        if v is not None and f.type == "{}":
            v = expected_decoded(f.fields, version, v)
        elif v is not None and f.type == "[]":
            v = [expected_decoded(f.fields, version, item) for item in v]
        out[f.name] = v
    return out


def plain(obj):
    """Containers -> dicts, lists -> lists, bytearray -> bytes, for equality checks."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    return obj


def all_message_versions() -> list:
    return list(_message_versions())


def _message_versions():
    for name, spec in sorted(schema.all_specs().items()):
        for direction in spec.bodies:
            for version in range(spec.valid[0], spec.valid[1] + 1):
                yield pytest.param(name, version, direction, id=f"{name}-v{version}-{direction}")


def parse_all(codec, data: bytes):
    """Parse and insist every byte was consumed."""
    stream = io.BytesIO(data)
    result = codec.parse_stream(stream)
    assert stream.tell() == len(data), f"parsed {stream.tell()} of {len(data)} bytes"
    return result


def interpreted(name: str, version: int, direction: str) -> p.Struct:
    spec = schema.all_specs()[name]
    return schema._struct(spec.bodies[direction], version, schema.in_range(version, spec.flexible))


# --- every API, every version ----------------------------------------------------------------

@pytest.mark.parametrize("name, version, direction", all_message_versions())
def test_round_trip(name, version, direction):
    fields = schema.all_specs()[name].bodies[direction]
    codec = schema.codec(name, version, direction)
    slow = interpreted(name, version, direction)
    for nulls in (False, True):
        value = sample_value(fields, version, nulls=nulls)
        data = codec.build(value)
        decoded = parse_all(codec, data)
        assert plain(decoded) == expected_decoded(fields, version, value)
        assert codec.build(decoded) == data
        # The interpreted struct is the compiled one's reference: same bytes, same values.
        assert slow.build(value) == data
        assert plain(parse_all(slow, data)) == plain(decoded)
        # Requests are decoded in place from their frame: same values.
        frame = p.FrameReader(bytearray(data))
        assert plain(codec.parse_stream(frame)) == plain(decoded)
        assert frame.tell() == len(data)


@pytest.mark.parametrize("name, version, direction", all_message_versions())
def test_empty_message_encodes_defaults(name, version, direction):
    """Missing keys encode as defaults, and decode back to the same defaults."""
    fields = schema.all_specs()[name].bodies[direction]
    codec = schema.codec(name, version, direction)
    decoded = parse_all(codec, codec.build({}))
    assert plain(decoded) == {f.name: plain(eval(schema.default_src(f, version), vars(p))) for f in fields}


def test_codecs_are_cached_and_unknown_versions_refused():
    assert schema.codec("Fetch", 12, "response") is schema.codec("Fetch", 12, "response")
    with pytest.raises(ValueError):
        schema.codec("ApiVersions", 99, "request")


# --- encodings checked by hand --------------------------------------------------------------

def test_api_versions_v3_request_bytes():
    value = {"client_software_name": "kafka-python", "client_software_version": "2.0"}
    data = schema.codec("ApiVersions", 3, "request").build(value)
    # compact strings: uvarint(len + 1) then UTF-8; then an empty tagged-field section
    assert data == b"\x0dkafka-python" + b"\x042.0" + b"\x00"
    assert schema.codec("ApiVersions", 2, "request").build(value) == b""


def test_metadata_v9_request_null_and_present_topics():
    codec = schema.codec("Metadata", 9, "request")
    # topics null = compact length 0; allow_auto_topic_creation defaults to true;
    # include_cluster_authorized_operations, include_topic_authorized_operations; no tags
    assert codec.build({"topics": None}) == b"\x00\x01\x00\x00\x00"
    assert codec.parse(b"\x00\x01\x00\x00\x00").topics is None
    topics = {"topics": [{"name": "a"}], "allow_auto_topic_creation": False}
    # one element: compact length 2; element = name "a" (0x02 'a') + empty tag section
    assert codec.build(topics) == b"\x02\x02a\x00" + b"\x00\x00\x00\x00"
    # v4 is not flexible: a null array is int32 -1, a string has an int16 length
    v4 = schema.codec("Metadata", 4, "request")
    assert v4.build({"topics": None}) == b"\xff\xff\xff\xff\x01"
    assert v4.build(topics) == b"\x00\x00\x00\x01" + b"\x00\x01a" + b"\x00"


def test_tagged_field_present_and_absent():
    codec = schema.codec("Fetch", 12, "request")
    absent = codec.build({"topics": [], "forgotten_topics_data": []})
    present = codec.build({"cluster_id": "c", "topics": [], "forgotten_topics_data": []})
    # the root tagged section is last: count, then tag, size, value
    assert absent.endswith(b"\x00")
    assert present == absent[:-1] + b"\x01" + b"\x00" + b"\x02" + b"\x02c"
    assert codec.parse(absent).cluster_id is None
    assert codec.parse(present).cluster_id == "c"


def test_tagged_fields_written_in_tag_order_and_unknown_tags_skipped():
    codec = schema.codec("ApiVersions", 3, "response")
    value = {"error_code": 0, "api_keys": [], "throttle_time_ms": 0,
             "zk_migration_ready": True, "finalized_features_epoch": 7}
    data = codec.build(value)
    # error_code, api_keys (empty compact array), throttle_time_ms, then 2 tagged fields
    assert data == (b"\x00\x00" + b"\x01" + b"\x00\x00\x00\x00" + b"\x02"
                    + b"\x01\x08" + struct.pack(">q", 7) + b"\x03\x01\x01")
    # an unknown tag (5, two bytes) between known ones is skipped
    with_unknown = data[:7] + b"\x03" + b"\x01\x08" + struct.pack(">q", 7) + b"\x05\x02zz" + b"\x03\x01\x01"
    decoded = codec.parse(with_unknown)
    assert decoded.finalized_features_epoch == 7
    assert decoded.zk_migration_ready is True
    assert decoded.supported_features == []


def test_tagged_struct_field_is_written_only_when_not_default():
    codec = schema.codec("Fetch", 12, "response")
    partition = {"partition_index": 0, "error_code": 0, "high_watermark": 5, "records": b""}
    value = {"responses": [{"topic": "t", "partitions": [partition]}]}
    plain_bytes = codec.build(value)
    partition["diverging_epoch"] = {"epoch": 3, "end_offset": 9}
    tagged_bytes = codec.build(value)
    # the partition's tag count goes 0 -> 1, then tag 0, size 13, epoch int32, end_offset int64,
    # and the struct's own empty tag section
    assert len(tagged_bytes) == len(plain_bytes) + 2 + 13
    assert b"\x01\x00\x0d" + struct.pack(">iq", 3, 9) + b"\x00" in tagged_bytes
    assert codec.parse(tagged_bytes).responses[0].partitions[0].diverging_epoch == Container(epoch=3, end_offset=9)
    assert codec.parse(plain_bytes).responses[0].partitions[0].diverging_epoch == Container(epoch=-1, end_offset=-1)


def test_long_compact_string_uses_multibyte_varint_length():
    codec = schema.codec("ApiVersions", 3, "request")
    name = "x" * 200
    data = codec.build({"client_software_name": name, "client_software_version": "é"})
    assert data[:2] == bytes([0xC9, 0x01])  # 201 as an unsigned varint
    assert data[202:] == b"\x03\xc3\xa9\x00"
    assert codec.parse(data).client_software_name == name


def test_nullable_struct_is_prefixed_with_a_presence_byte():
    codec = schema.codec("DescribeTopicPartitions", 0, "request")
    without = codec.build({"topics": [], "response_partition_limit": 1})
    assert without == b"\x01" + b"\x00\x00\x00\x01" + b"\xff" + b"\x00"
    cursor = {"topic_name": "t", "partition_index": 2}
    with_cursor = codec.build({"topics": [], "response_partition_limit": 1, "cursor": cursor})
    assert with_cursor == b"\x01" + b"\x00\x00\x00\x01" + b"\x01\x02t\x00\x00\x00\x02\x00" + b"\x00"
    assert plain(codec.parse(with_cursor).cursor) == cursor
    assert codec.parse(without).cursor is None


def test_nullable_struct_defaulting_to_null_encodes_null_when_missing():
    codec = schema.codec("ConsumerGroupHeartbeat", 0, "response")
    # throttle, error code, null error message, null member id, epoch, interval,
    # assignment null (-1), empty tag section
    assert codec.build({}) == bytes(6) + b"\x00\x00" + bytes(8) + b"\xff" + b"\x00"
    assert codec.parse(codec.build({})).assignment is None


def test_uint16_and_float64():
    codec = schema.codec("DescribeClientQuotas", 1, "response")
    value = {"entries": [{"entity": [], "values": [{"key": "k", "value": 1.5}]}]}
    data = codec.build(value)
    assert struct.pack(">d", 1.5) in data
    assert codec.parse(data).entries[0]["values"][0].value == 1.5
    ports = schema.codec("BrokerRegistration", 0, "request")
    decoded = ports.parse(ports.build({"listeners": [{"name": "n", "host": "h", "port": 65535}]}))
    assert decoded.listeners[0].port == 65535


# --- malformed input --------------------------------------------------------------------------

TRUNCATION_CASES = [
    ("Produce", 9, "request"),
    ("Produce", 3, "request"),
    ("Fetch", 12, "response"),
    ("Fetch", 4, "response"),
    ("Metadata", 12, "response"),
    ("ApiVersions", 3, "response"),
    ("JoinGroup", 9, "request"),
    ("DescribeTopicPartitions", 0, "request"),
]


@pytest.mark.parametrize("name, version, direction", TRUNCATION_CASES)
def test_truncated_input_raises_at_every_length(name, version, direction):
    codec = schema.codec(name, version, direction)
    slow = interpreted(name, version, direction)
    data = codec.build(sample_value(schema.all_specs()[name].bodies[direction], version, nulls=False))
    for cut in range(len(data)):
        for c in (codec, slow):
            with pytest.raises(ConstructError):
                c.parse(data[:cut])
        with pytest.raises(ConstructError):
            codec.parse_stream(p.FrameReader(bytearray(data[:cut])))


@pytest.mark.parametrize("version", [3, 9])
def test_lying_records_length_is_refused_before_allocating(version):
    codec = schema.codec("Produce", version, "request")
    value = {"acks": 1, "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": b"abc"}]}]}
    data = codec.build(value)
    prefix = struct.pack(">i", 3) if version < 9 else b"\x04"
    huge = struct.pack(">i", 0x7FFFFFFF) if version < 9 else p.encode_uvarint(1 << 62)
    at = data.index(prefix + b"abc")
    lying = data[:at] + huge + data[at + len(prefix):]
    tracemalloc.start()
    try:
        with pytest.raises(ConstructError):
            codec.parse(lying)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_implausible_array_length_is_refused_at_once():
    codec = schema.codec("Metadata", 4, "request")
    with pytest.raises(ConstructError):
        codec.parse(b"\x7f\xff\xff\xff")
    flexible = schema.codec("Metadata", 9, "request")
    with pytest.raises(ConstructError):
        flexible.parse(p.encode_uvarint(1 << 31) + b"\x00" * 8)


def test_overlong_varint_is_refused():
    codec = schema.codec("ApiVersions", 3, "request")
    with pytest.raises(ConstructError):
        codec.parse(b"\xff" * 20)
    # Kafka's unsigned varints are at most 5 bytes: a sixth is corrupt, not a huge length
    with pytest.raises(ConstructError, match="varint too long"):
        codec.parse(b"\x81\x80\x80\x80\x80\x00" + b"\x00" * 8)
    assert p.read_uvarint(io.BytesIO(b"\xff\xff\xff\xff\x0f")) == 0xFFFFFFFF
    with pytest.raises(ConstructError, match="varint too long"):
        codec.parse_stream(p.FrameReader(bytearray(b"\x81\x80\x80\x80\x80\x00" + b"\x00" * 8)))
    assert p.uvarint_at(b"\x00\xff\xff\xff\xff\x0f", 1) == (0xFFFFFFFF, 6)


def test_string_longer_than_the_input_is_refused():
    codec = schema.codec("ApiVersions", 3, "request")
    with pytest.raises(ConstructError):
        codec.parse(b"\x7fabc\x01\x00")
    with pytest.raises(ConstructError):
        schema.codec("SaslHandshake", 1, "request").parse(b"\x00\x10PLAIN")


def test_invalid_utf8_in_a_string_becomes_replacement_characters():
    """As Java's new String(bytes, UTF_8) in Kafka's readers: served, not refused."""
    parsed = schema.codec("ApiVersions", 3, "request").parse(b"\x03\xff\xfe\x01\x00")
    assert parsed.client_software_name == "\ufffd\ufffd"


def test_array_count_beyond_the_input_fails_before_allocating():
    # Kafka: "Tried to allocate a collection of size ..., but there are only ... bytes remaining."
    with pytest.raises(ConstructError, match="Tried to allocate a collection of size 2147483647"):
        schema.codec("Metadata", 4, "request").parse(b"\x7f\xff\xff\xff\x00")


@pytest.mark.parametrize("name, version, direction", TRUNCATION_CASES)
def test_corrupted_input_fails_only_with_decode_errors(name, version, direction):
    """Byte flips in a valid message either decode to something or raise a decode
    error: never an unrelated exception (IndexError, MemoryError, OverflowError...)."""
    codec = schema.codec(name, version, direction)
    data = codec.build(sample_value(schema.all_specs()[name].bodies[direction], version, nulls=False))
    rng = random.Random(f"{name}-{version}")
    for _ in range(200):
        corrupted = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            corrupted[rng.randrange(len(corrupted))] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        try:
            codec.parse(bytes(corrupted))
        except (ConstructError, UnicodeDecodeError):
            pass


# --- records spliced in after encoding (zero-copy fetch) -----------------------------------------

@pytest.mark.parametrize("version", [4, 12])
def test_deferred_records_leave_a_length_prefix_and_a_splice_point(version):
    chunks = [b"first-chunk", b"", b"second"]
    whole = b"".join(chunks)

    def response(records):
        parts = [{"partition_index": i, "high_watermark": 10, "records": records(i)} for i in range(2)]
        return {"responses": [{"topic": "t", "partitions": parts}]}

    for codec in (schema.codec("Fetch", version, "response"), interpreted("Fetch", version, "response")):
        expected = codec.build(response(lambda i: whole if i else b"x"))
        out = io.BytesIO()
        out.write(b"HEAD")  # a response header precedes the body, as in the server
        deferred = []
        codec.build_stream(response(lambda i: p.DeferredRecords(chunks, len(whole)) if i else b"x"), out,
                           deferred=deferred)
        data = out.getvalue()
        (pos, records), = deferred
        assert records.chunks is chunks
        assert data[:4] == b"HEAD"
        assert data[4:pos] + whole + data[pos:] == expected


# --- speed (reported, not asserted) -----------------------------------------------------------

def _produce_v9(partitions: int) -> dict:
    batch = bytes(range(256)) * 4
    return {"transactional_id": None, "acks": -1, "timeout_ms": 30000,
            "topic_data": [{"name": "events", "partition_data": [
                {"index": i, "records": batch} for i in range(partitions)]}]}


def _fetch_v12_response() -> dict:
    parts = [{"partition_index": i, "error_code": 0, "high_watermark": 1000 + i,
              "last_stable_offset": 1000 + i, "log_start_offset": 0,
              "aborted_transactions": None, "preferred_read_replica": -1,
              "records": bytes(1024)} for i in range(6)]
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 7,
            "responses": [{"topic": "events", "partitions": parts}]}


def _per_call_us(fn, budget_s: float = 0.1) -> float:
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < budget_s:
        fn()
        calls += 1
    return elapsed / calls * 1e6


@pytest.mark.parametrize("label, name, version, direction, make", [
    ("Produce v9 request, 6 partitions", "Produce", 9, "request", lambda: _produce_v9(6)),
    ("Fetch v12 response, 6 partitions", "Fetch", 12, "response", _fetch_v12_response),
])
def test_report_codec_speed(label, name, version, direction, make):
    value = make()
    compiled = schema.codec(name, version, direction)
    slow = interpreted(name, version, direction)
    data = compiled.build(value)
    assert plain(compiled.parse(data)) == plain(slow.parse(data))
    report = ", ".join(
        f"{kind} parse {_per_call_us(lambda: c.parse(data)):.1f} us build {_per_call_us(lambda: c.build(value)):.1f} us"
        for kind, c in (("compiled", compiled), ("interpreted", slow)))
    print(f"\n{label} ({len(data)} bytes): {report}")
