"""kcat (librdkafka's command-line client) as producer, consumer and
offset-for-time query, run as a subprocess.

kcat reads messages as delimited text and sets headers per run, not per
message, and cannot choose timestamps: give it `messages.text_messages()`.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

from .messages import Message, Record

KEY_DELIMITER = "\t"
MESSAGE_DELIMITER = "\n"
TIMESTAMP_TYPES = {"create": "create", "logappend": "log_append"}
DELIVERED = re.compile(rb"Message delivered to partition (\d+) \(offset (-?\d+)\)")


class KcatError(RuntimeError):
    pass


def executable() -> str:
    path = shutil.which("kcat")
    if path is None:
        raise KcatError("kcat is not installed (Debian package kcat; ./scripts/test installs it)")
    return path


def _run(args: list[str], *, stdin: bytes = b"", timeout: float) -> subprocess.CompletedProcess:
    cmd = [executable(), *args]
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise KcatError(f"{' '.join(cmd)} still running after {timeout}s; stderr:\n"
                        f"{(exc.stderr or b'').decode(errors='replace')[-3000:]}") from None
    if done.returncode != 0:
        raise KcatError(f"{' '.join(cmd)} exited with {done.returncode}; stderr:\n"
                        f"{done.stderr.decode(errors='replace')[-3000:]}")
    return done


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int = 0,
            compression: str | None = None, idempotent: bool = False,
            timeout: float = 60.0) -> list[int]:
    """`kcat -P -K<tab> -Z`: one line per message, empty key or value sent as
    null. Returns the offsets from kcat's delivery reports (printed at -vv)."""
    headers = {m.headers for m in messages}
    if len(headers) > 1 or any(m.timestamp is not None for m in messages):
        raise ValueError("kcat sends the same headers with every message and no timestamps")
    args = ["-P", "-b", bootstrap, "-t", topic, "-p", str(partition),
            "-K", r"\t", "-Z", "-v", "-v",
            "-X", "acks=all", "-X", "linger.ms=5",
            "-X", f"enable.idempotence={str(idempotent).lower()}"]
    for name, value in next(iter(headers), ()):
        args += ["-H", f"{name}={value.decode()}"]
    if compression:
        args += ["-z", compression]
    stdin = b"".join(_line(m) for m in messages)
    done = _run(args, stdin=stdin, timeout=timeout)
    offsets = [int(o) for p, o in DELIVERED.findall(done.stderr) if int(p) == partition]
    if len(offsets) != len(messages):
        raise KcatError(f"kcat reported {len(offsets)} deliveries for {len(messages)} messages; "
                        f"stderr tail:\n{done.stderr.decode(errors='replace')[-3000:]}")
    return offsets


def _line(m: Message) -> bytes:
    key, value = m.key or b"", m.value or b""
    for part in (key, value):
        if KEY_DELIMITER.encode() in part or MESSAGE_DELIMITER.encode() in part:
            raise ValueError(f"kcat can't send {part!r}: it contains a delimiter")
    if not value and not key:
        raise ValueError("kcat skips empty lines: a message needs a key or a value")
    return key + KEY_DELIMITER.encode() + value + MESSAGE_DELIMITER.encode()


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int = 0, timeout: float = 60.0) -> list[Record]:
    """`kcat -C -J -e`: up to `count` records from `start_offset`, stopping at
    the end of the partition."""
    args = ["-C", "-b", bootstrap, "-t", topic, "-p", str(partition),
            "-o", str(start_offset), "-c", str(count), "-e", "-J", "-q"]
    done = _run(args, timeout=timeout)
    return [_record(json.loads(line)) for line in done.stdout.splitlines() if line.strip()]


def _record(obj: dict) -> Record:
    flat = obj.get("headers") or []
    headers = tuple((flat[i], _bytes(flat[i + 1])) for i in range(0, len(flat), 2))
    return Record(
        partition=obj["partition"],
        offset=obj["offset"],
        key=_bytes(obj["key"]),
        value=_bytes(obj["payload"]),
        headers=headers,
        timestamp=obj["ts"],
        timestamp_type=TIMESTAMP_TYPES.get(obj.get("tstype")),
    )


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def offset_for_time(bootstrap: str, topic: str, partition: int, timestamp: int,
                    timeout: float = 30.0) -> int:
    """`kcat -Q`: the first offset whose timestamp is >= `timestamp`
    (-1 when there is none)."""
    done = _run(["-Q", "-b", bootstrap, "-t", f"{topic}:{partition}:{timestamp}", "-J"],
                timeout=timeout)
    result = json.loads(done.stdout)
    entry = result[topic][str(partition)]
    if "error" in entry:
        raise KcatError(f"kcat -Q {topic}:{partition}:{timestamp}: {entry['error']}")
    return entry["offset"]
