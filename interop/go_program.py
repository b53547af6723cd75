"""Running the Go interop programs (interop/go: one binary per client family,
built into interop/go/bin by interop/go/build, which ./scripts/test runs),
one whole command per process, messages and records as JSON lines."""
from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from . import program as interop_program
from .messages import Message, Record, message_to_json, record_from_json

GO_DIR = Path(__file__).resolve().parent / "go"
BIN_DIR = GO_DIR / "bin"


class GoClientError(RuntimeError):
    pass


def command(program: str) -> list[str]:
    binary = BIN_DIR / program
    if not binary.is_file():
        raise GoClientError(f"{binary} is missing: run {GO_DIR / 'build'} "
                            "(needs Go; ./scripts/test does it)")
    return [str(binary)]


def run(program: str, args: list[str], *, stdin: bytes = b"", timeout: float = 90.0,
        ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    return interop_program.run(command(program) + args, f"{program} {' '.join(args)}", GoClientError,
                               stdin=stdin, timeout=timeout, ok_codes=ok_codes)


def run_json(program: str, args: list[str], *, timeout: float = 90.0):
    """A command whose stdout is one JSON value."""
    return json.loads(run(program, args, timeout=timeout).stdout)


def produce(program: str, args: list[str], messages: list[Message], timeout: float, *,
            partition: int | None, compression: str | None, idempotent: bool,
            acks: str) -> list[tuple[int, int]]:
    """A produce command (`args`: the program's own flags; the ones here
    every Go program takes): (partition, offset) of each message, in input
    order. `partition=None` lets the client's partitioner choose."""
    args = [*args, "--partition", "any" if partition is None else str(partition),
            "--acks", acks, "--timeout-ms", str(int(timeout * 1000))]
    if compression:
        args += ["--compression", compression]
    if idempotent:
        args.append("--idempotent")
    stdin = "".join(message_to_json(m) + "\n" for m in messages).encode()
    out = run(program, args, stdin=stdin, timeout=timeout + 30).stdout.decode()
    acked = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(acked) != len(messages):
        raise GoClientError(f"{program} produce acknowledged {len(acked)} of {len(messages)} messages")
    return [(a["partition"], a["offset"]) for a in acked]


def consume(program: str, args: list[str], count: int, timeout: float, *, partition: int,
            start_offset: int | str, group: str | None, commit: bool) -> list[Record]:
    """A consume command (`args`: the program's own flags) reading `count`
    records of `partition` from `start_offset` (or "beginning"/"end"), or,
    with `group` ("new" for a fresh one), as a group member, keeping only
    `partition`'s records: what it printed by `timeout` (exit status 3:
    fewer than asked for)."""
    args = [*args, "--count", str(count), "--timeout-ms", str(int(timeout * 1000))]
    if group is not None:
        args += ["--group", f"interop-{uuid.uuid4().hex}" if group == "new" else group]
        if commit:
            args.append("--commit")
    else:
        args += ["--partition", str(partition)]
        args += ["--from", start_offset] if isinstance(start_offset, str) else ["--offset", str(start_offset)]
    out = run(program, args, timeout=timeout + 30, ok_codes=(0, 3)).stdout.decode()
    records = [record_from_json(line) for line in out.splitlines() if line.strip()]
    return [r for r in records if group is None or r.partition == partition]
