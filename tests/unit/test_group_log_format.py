"""__consumer_offsets keys and values, byte for byte as Kafka lays them out."""
import struct

import pytest

from kafka_compat.group import log_format as f


def s16(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def b32(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def test_offset_key_is_version_1():
    expected = struct.pack(">h", 1) + s16("my-group") + s16("orders") + struct.pack(">i", 7)
    assert f.offset_key("my-group", "orders", 7) == expected
    assert f.read_key(expected) == f.OffsetKey("my-group", "orders", 7)
    # Version 0 has the same layout.
    assert f.read_key(struct.pack(">h", 0) + expected[2:]) == f.OffsetKey("my-group", "orders", 7)


def test_group_key_is_version_2():
    expected = struct.pack(">h", 2) + s16("my-group")
    assert f.group_key("my-group") == expected
    assert f.read_key(expected) == f.GroupKey("my-group")


def test_unknown_key_version():
    with pytest.raises(f.UnknownFormat):
        f.read_key(struct.pack(">h", 3) + s16("x"))
    with pytest.raises(f.UnknownFormat):
        f.read_key(b"\x00")


def test_offset_value_v3_by_default():
    value = f.OffsetAndMetadata(offset=42, leader_epoch=5, metadata="meta", commit_timestamp=1_700_000_000_000)
    expected = struct.pack(">hqi", 3, 42, 5) + s16("meta") + struct.pack(">q", 1_700_000_000_000)
    assert f.offset_value(value) == expected
    assert f.read_offset_value(expected) == value


def test_offset_value_v1_when_an_expire_timestamp_is_set():
    value = f.OffsetAndMetadata(42, -1, "", 1000, expire_timestamp=5000)
    expected = struct.pack(">hq", 1, 42) + s16("") + struct.pack(">qq", 1000, 5000)
    assert f.offset_value(value) == expected
    assert f.read_offset_value(expected) == value


@pytest.mark.parametrize("version", [0, 2])
def test_offset_value_versions_without_epoch(version):
    data = struct.pack(">hq", version, 9) + s16("m") + struct.pack(">q", 77)
    assert f.read_offset_value(data) == f.OffsetAndMetadata(9, -1, "m", 77)


def test_offset_value_v4_is_flexible():
    data = struct.pack(">hqi", 4, 9, 3) + bytes([len("m") + 1]) + b"m" + struct.pack(">q", 77) + b"\x00"
    assert f.read_offset_value(data) == f.OffsetAndMetadata(9, 3, "m", 77)


def _member_v3(member_id, instance_id, client_id, host, rebalance, session, sub, assignment) -> bytes:
    return (s16(member_id) + s16(instance_id) + s16(client_id) + s16(host)
            + struct.pack(">ii", rebalance, session) + b32(sub) + b32(assignment))


def test_group_value_v3():
    record = f.GroupRecord("consumer", 3, "range", "m-1", 1234, [
        f.MemberRecord("m-1", None, "client", "/127.0.0.1", 60000, 10000, b"sub", b"asg"),
        f.MemberRecord("m-2", "instance-2", "client", "/127.0.0.2", 30000, 45000, b"", b""),
    ])
    expected = (struct.pack(">h", 3) + s16("consumer") + struct.pack(">i", 3) + s16("range") + s16("m-1")
                + struct.pack(">qi", 1234, 2)
                + _member_v3("m-1", None, "client", "/127.0.0.1", 60000, 10000, b"sub", b"asg")
                + _member_v3("m-2", "instance-2", "client", "/127.0.0.2", 30000, 45000, b"", b""))
    assert f.group_value(record) == expected
    assert f.read_group_value(expected) == record


def test_empty_group_value_has_null_protocol_and_leader():
    record = f.GroupRecord("consumer", 4, None, None, 99, [])
    expected = struct.pack(">h", 3) + s16("consumer") + struct.pack(">i", 4) + s16(None) + s16(None) + struct.pack(">qi", 99, 0)
    assert f.group_value(record) == expected
    assert f.read_group_value(expected) == record


def test_group_value_v0_uses_the_session_timeout_as_rebalance_timeout():
    member = s16("m") + s16("c") + s16("/h") + struct.pack(">i", 8000) + b32(b"s") + b32(b"a")
    data = struct.pack(">h", 0) + s16("consumer") + struct.pack(">i", 1) + s16("range") + s16("m") + struct.pack(">i", 1) + member
    record = f.read_group_value(data)
    assert record.current_state_timestamp is None
    assert record.members == [f.MemberRecord("m", None, "c", "/h", 8000, 8000, b"s", b"a")]


def test_group_value_timestamp_minus_one_means_none():
    data = struct.pack(">h", 2) + s16("") + struct.pack(">i", 0) + s16(None) + s16(None) + struct.pack(">qi", -1, 0)
    assert f.read_group_value(data).current_state_timestamp is None


def test_unknown_value_version():
    with pytest.raises(f.UnknownFormat):
        f.read_offset_value(struct.pack(">hq", 9, 1))
