"""Running the Go interop programs (interop/go: one binary per client family,
built into interop/go/bin by interop/go/build, which ./scripts/test runs),
one whole command per process, messages and records as JSON lines."""
from __future__ import annotations

import json
import subprocess
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


def produce(program: str, args: list[str], messages: list[Message],
            timeout: float) -> list[tuple[int, int]]:
    """A produce command: (partition, offset) of each message, in input order."""
    stdin = "".join(message_to_json(m) + "\n" for m in messages).encode()
    out = run(program, args, stdin=stdin, timeout=timeout + 30).stdout.decode()
    acked = [json.loads(line) for line in out.splitlines() if line.strip()]
    if len(acked) != len(messages):
        raise GoClientError(f"{program} produce acknowledged {len(acked)} of {len(messages)} messages")
    return [(a["partition"], a["offset"]) for a in acked]


def consume(program: str, args: list[str], timeout: float) -> list[Record]:
    """A consume command: the records it printed (exit status 3: fewer than asked for)."""
    out = run(program, args, timeout=timeout + 30, ok_codes=(0, 3)).stdout.decode()
    return [record_from_json(line) for line in out.splitlines() if line.strip()]
