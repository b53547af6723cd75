"""Messages sent and records received, in one shape for every client.

Subprocess clients (kafkajs, the kcat wrapper) exchange them as JSON lines
with bytes in base64.
"""
from __future__ import annotations

import base64
import json
import random
import time
from dataclasses import dataclass, replace

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Message:
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None  # CreateTime in ms; None lets the client stamp it


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int
    timestamp_type: str | None  # "create", "log_append", or None where a client hides it

    def message(self) -> Message:
        return Message(self.key, self.value, self.headers, self.timestamp)


def binary_messages(count: int, *, seed: int = 0, base_timestamp: int | None = None) -> list[Message]:
    """Messages with arbitrary bytes: null and empty keys/values, binary and
    repeated header keys, and strictly increasing CreateTime timestamps."""
    rng = random.Random(seed)
    if base_timestamp is None:
        base_timestamp = now_ms() - 600_000
    messages = []
    for i in range(count):
        key = None if i % 7 == 3 else b"k%d-" % i + rng.randbytes(rng.randrange(8))
        if i % 11 == 5 and key is not None:  # kafka-python refuses null key and value
            value = None
        elif i % 17 == 8:
            value = b""
        else:
            value = rng.randbytes(rng.randrange(1, 300))
        headers: Headers = ()
        if i % 5:
            headers = (("seq", b"%d" % i), ("bin", rng.randbytes(rng.randrange(17))))
        if i % 13 == 0:
            headers += (("dup", b"first"), ("dup", b""))
        messages.append(Message(key, value, headers, base_timestamp + i))
    return messages


def text_messages(count: int, *, seed: int = 0, headers: Headers = ()) -> list[Message]:
    """Printable ASCII without tabs or newlines (what kcat can read from a
    delimited stream), some null keys and values, the same headers on every
    message (kcat sets them per run), and no timestamps (kcat can't set them)."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_=+/{}[]"
    messages = []
    for i in range(count):
        key = None if i % 7 == 3 else f"key-{i}".encode()
        if i % 11 == 5 and key is not None:
            value = None
        else:
            value = f"{i}:{''.join(rng.choices(alphabet, k=rng.randrange(1, 120)))}".encode()
        messages.append(Message(key, value, headers))
    return messages


def compressible(messages: list[Message]) -> list[Message]:
    """The same messages with a long repetitive tail on every value: clients
    send a batch uncompressed when compressing would not make it smaller."""
    padding = b" and again" * 40
    return [m if m.value is None else replace(m, value=m.value + padding) for m in messages]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def message_to_json(message: Message) -> str:
    return json.dumps({
        "key": _b64(message.key),
        "value": _b64(message.value),
        "headers": [[k, _b64(v)] for k, v in message.headers],
        "timestamp": message.timestamp,
    })


def record_from_json(line: str) -> Record:
    obj = json.loads(line)
    return Record(
        partition=obj["partition"],
        offset=obj["offset"],
        key=_unb64(obj["key"]),
        value=_unb64(obj["value"]),
        headers=tuple((k, _unb64(v)) for k, v in obj["headers"]),
        timestamp=obj["timestamp"],
        timestamp_type=obj.get("timestamp_type"),
    )


# kafka-python's record timestamp types (aiokafka uses the same numbers)
TIMESTAMP_TYPES = {0: "create", 1: "log_append"}


def record_from_consumer_record(r) -> Record:
    """A kafka-python ConsumerRecord, or aiokafka's (it has the same fields)."""
    return Record(
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        headers=tuple((k, v) for k, v in r.headers),
        timestamp=r.timestamp,
        timestamp_type=TIMESTAMP_TYPES.get(r.timestamp_type),
    )
