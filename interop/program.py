"""Running one command of an interop program in another language (the Java
client, the Go clients) as a subprocess: its output, or an error of the
caller's kind carrying the end of its stderr."""
from __future__ import annotations

import subprocess


def run(cmd: list[str], label: str, error: type[Exception], *, stdin: bytes = b"",
        timeout: float = 90.0, ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run ``cmd``; ``error`` (named by ``label`` and the exit code or the
    timeout) unless it exits with one of ``ok_codes`` within ``timeout``."""
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise error(f"{label} still running after {timeout}s; stderr:\n"
                    f"{(exc.stderr or b'').decode(errors='replace')[-3000:]}") from None
    if done.returncode not in ok_codes:
        raise error(f"{label} exited with {done.returncode}; stderr:\n"
                    f"{done.stderr.decode(errors='replace')[-3000:]}")
    return done
