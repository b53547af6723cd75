"""Group ids land on the __consumer_offsets partition Kafka would pick."""
import pytest

from kafka_compat.group.partitioner import java_string_hash, kafka_abs, partition_for


@pytest.mark.parametrize("text, expected", [
    ("", 0),
    ("a", 97),
    ("hello", 99162322),
    ("g1", 3242),
    ("polygenelubricants", -(2**31)),  # the classic Integer.MIN_VALUE hash
    ("\U0001F600", 55357 * 31 + 56832),  # a surrogate pair: two UTF-16 code units
    ("héllo", 104 * 31**4 + 233 * 31**3 + 108 * 31**2 + 108 * 31 + 111),
])
def test_java_string_hash(text, expected):
    assert java_string_hash(text) == expected


def test_hash_wraps_to_signed_32_bits():
    h = java_string_hash("a-rather-long-consumer-group-name")
    assert -(2**31) <= h < 2**31
    # Recompute with unbounded ints and wrap by hand.
    reference = 0
    for ch in "a-rather-long-consumer-group-name":
        reference = reference * 31 + ord(ch)
    reference &= 0xFFFFFFFF
    assert h == (reference - 2**32 if reference >= 2**31 else reference)


def test_kafka_abs_maps_min_int_to_zero():
    assert kafka_abs(-(2**31)) == 0
    assert kafka_abs(-5) == 5
    assert kafka_abs(7) == 7


def test_partition_for():
    assert partition_for("g1", 50) == 42
    assert partition_for("polygenelubricants", 50) == 0
    assert partition_for("hello", 7) == 99162322 % 7
    assert all(0 <= partition_for(f"group-{i}", 3) < 3 for i in range(100))
