"""The bench's own virtualenv under its work directory, for the tools it
fetches (the peer's binary, py-spy): never the project's .venv."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path


class Unavailable(Exception):
    """A tool can't be had here; the message says why."""


def path(workdir: Path) -> Path:
    return workdir / "tools-venv"


def install(workdir: Path, package: str) -> None:
    """pip install ``package`` into the tools virtualenv (made on first use)."""
    env_dir = path(workdir)
    if not (env_dir / "bin" / "python").exists():
        venv.create(env_dir, with_pip=True)
    print(f"installing {package} into {env_dir}", file=sys.stderr)
    result = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", package],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise Unavailable(f"pip install {package} failed: {lines[-1] if lines else result.returncode}")
