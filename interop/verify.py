"""Checks that what came back is what was sent, with short failure messages
(a 10,000-element list diff helps nobody)."""
from __future__ import annotations

from .messages import Message, Record


def assert_same_messages(sent: list[Message], records: list[Record], *, base_offset: int = 0,
                         stamped_between: tuple[int, int] | None = None) -> None:
    """`records` are `sent`, byte for byte and in order, at contiguous offsets
    from `base_offset`, with CreateTime timestamps. A message sent without a
    timestamp must carry one within `stamped_between` (ms, inclusive)."""
    assert len(records) == len(sent), (
        f"sent {len(sent)} messages, got {len(records)} records"
        + (f" (offsets {records[0].offset}..{records[-1].offset})" if records else ""))
    for index, (message, record) in enumerate(zip(sent, records)):
        where = f"message {index} (record at offset {record.offset})"
        assert record.offset == base_offset + index, (
            f"{where}: expected offset {base_offset + index}; offsets are not contiguous")
        assert record.key == message.key, f"{where}: key {record.key!r} != sent {message.key!r}"
        assert record.value == message.value, (
            f"{where}: value {_short(record.value)} != sent {_short(message.value)}")
        assert record.headers == message.headers, (
            f"{where}: headers {record.headers!r} != sent {message.headers!r}")
        assert record.timestamp_type in (None, "create"), (
            f"{where}: timestamp type {record.timestamp_type}, expected CreateTime")
        if message.timestamp is not None:
            assert record.timestamp == message.timestamp, (
                f"{where}: timestamp {record.timestamp} != sent {message.timestamp}")
        elif stamped_between is not None:
            low, high = stamped_between
            assert low <= record.timestamp <= high, (
                f"{where}: client-stamped timestamp {record.timestamp} outside [{low}, {high}]")


def assert_delivered_in_order(offsets: list[int], count: int, *, base_offset: int = 0) -> None:
    """The producer's acknowledgements gave message i offset base_offset + i."""
    assert len(offsets) == count, f"{len(offsets)} acknowledgements for {count} messages"
    for index, offset in enumerate(offsets):
        assert offset == base_offset + index, (
            f"message {index} acknowledged at offset {offset}, expected {base_offset + index}")


def _short(data: bytes | None) -> str:
    if data is None or len(data) <= 40:
        return repr(data)
    return f"{data[:40]!r}... ({len(data)} bytes)"
