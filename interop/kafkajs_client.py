"""kafkajs producer and consumer: interop/node/client.js run with node."""
from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

from .messages import Message, Record, message_to_json, record_from_json

NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "client.js"


class KafkajsError(RuntimeError):
    pass


def command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise KafkajsError("node is not installed (Node.js >= 14 is needed for kafkajs)")
    if not (NODE_DIR / "node_modules" / "kafkajs").is_dir():
        raise KafkajsError(f"kafkajs is not installed: run `npm ci` in {NODE_DIR} "
                           "(./scripts/test does it)")
    return [node, str(SCRIPT)]


def run(args: list[str], *, stdin: bytes = b"", timeout: float) -> str:
    cmd = command() + args
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, cwd=NODE_DIR)
    except subprocess.TimeoutExpired as exc:
        raise KafkajsError(f"{' '.join(cmd)} still running after {timeout}s; stderr:\n"
                           f"{(exc.stderr or b'').decode(errors='replace')[-3000:]}") from None
    if done.returncode != 0:
        raise KafkajsError(f"{' '.join(cmd)} exited with {done.returncode}; stderr:\n"
                           f"{done.stderr.decode(errors='replace')[-3000:]}")
    return done.stdout.decode()


def produce(bootstrap: str, topic: str, messages: list[Message], *, partition: int = 0,
            compression: str | None = None, idempotent: bool = False,
            timeout: float = 90.0) -> list[int]:
    """Send every message (acks=all) and return the offset of each."""
    args = ["produce", "--bootstrap", bootstrap, "--topic", topic, "--partition", str(partition)]
    if compression:
        args += ["--compression", compression]
    if idempotent:
        args.append("--idempotent")
    stdin = "".join(message_to_json(m) + "\n" for m in messages).encode()
    out = run(args, stdin=stdin, timeout=timeout)
    return [json.loads(line)["offset"] for line in out.splitlines() if line.strip()]


def consume(bootstrap: str, topic: str, count: int, *, partition: int = 0,
            start_offset: int = 0, timeout: float = 60.0) -> list[Record]:
    """Read `count` records through a fresh consumer group (kafkajs has no
    assign()), from the start of the topic; only `start_offset=0` is
    supported."""
    if start_offset != 0:
        raise ValueError("kafkajs consumes through a group, from the beginning")
    args = ["consume", "--bootstrap", bootstrap, "--topic", topic, "--count", str(count),
            "--group", f"interop-{uuid.uuid4().hex}", "--timeout-ms", str(int(timeout * 1000))]
    out = run(args, timeout=timeout + 30)
    return [r for r in map(record_from_json, filter(str.strip, out.splitlines()))
            if r.partition == partition]


def reassign(bootstrap: str, topic: str, partition: int, replicas: list[int], timeout: float = 60.0) -> None:
    """AlterPartitionReassignments of one partition (kafkajs raises on an error)."""
    run(["reassign", "--bootstrap", bootstrap, "--topic", topic, "--partition", str(partition),
          "--replicas", ",".join(map(str, replicas))], timeout=timeout)


def reassignments(bootstrap: str, timeout: float = 60.0) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
    """ListPartitionReassignments: (replicas, adding, removing) by partition."""
    listed = json.loads(run(["reassignments", "--bootstrap", bootstrap], timeout=timeout))
    return {(t["name"], p["partition"]): (p["replicas"], p["addingReplicas"], p["removingReplicas"])
            for t in listed["topics"] for p in t["partitions"]}
