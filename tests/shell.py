"""Run a seed document's shell lines as they are written, with the installed scripts.

``sh(cwd, text, **env)`` runs ``text`` with ``/bin/sh -e`` in ``cwd``: the
``bd``, ``btmsg``, ``bttask`` and ``mb-*`` console scripts of this environment
come first on ``PATH``, and the variables that name the caller are exactly those
given (never inherited from the machine running the tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import GIT_ENV, IDENTITY_ENV, Result

BIN = str(Path(sys.executable).parent)


def sh(cwd: Path, text: str, input: str | None = None, timeout: float = 120,
       **env: str) -> Result:
    full = {k: v for k, v in os.environ.items() if k not in IDENTITY_ENV}
    full.update(GIT_ENV)
    full["PATH"] = BIN + os.pathsep + full.get("PATH", "")
    full.update(env)
    proc = subprocess.run(["/bin/sh", "-ec", text], cwd=cwd, env=full, input=input,
                          capture_output=True, text=True, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def ok(result: Result) -> str:
    assert result.code == 0, (result.code, result.out, result.err)
    return result.out


def js(result: Result):
    """The JSON a successful command printed."""
    return json.loads(ok(result))
