"""Hooks: executables in ``.beads/hooks/`` of the worktree, run after a commit.

``.beads/hooks/<hook> <record id> <event type>`` with the record as JSON on
stdin, in the worktree root, with ``BEADS_HOOK``, ``BEADS_EVENT`` and
``BEADS_RECORD_ID`` in the environment. ``on_message`` keeps beads' interface:
argument 2 is ``message`` and stdin carries beads' field names too
(``compat.beads``); the finer event (send, reply, arrive) is ``BEADS_EVENT``.
Arguments are passed as a list, never through a shell.

A hook runs only when this clone approved its exact content (``approvals``): a
hook that a pulled commit added or changed is reported once and not run.

Each hook is bounded by ``hooks.timeout`` seconds, and all the hooks of one
command together by ``hooks.budget`` (default: the timeout), so a command with
many hooks to run returns within about one timeout; what a command could not
run is the caller's to keep for later. A hook's stderr is read while it runs
and only its last ``OUTPUT_CAP`` bytes are kept; the hook is waited for, not
its output's end, so a child that keeps stderr open never holds ``bd``. A
failure or a timeout becomes a warning for stderr, and what was stored stays
stored.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from beadsmail import approvals

HOOKS = ("on_message", "on_create", "on_update", "on_close")
# Bytes of a hook's stderr kept (its last line goes into the warning).
OUTPUT_CAP = 4096
# A payload is written to stdin in pieces this large, between reads of stderr.
CHUNK = 1 << 16


class Runner:
    """Runs the hooks of one command: one time budget shared by all of them."""

    def __init__(self, state_dir: Path, timeout: float, budget: float | None = None) -> None:
        self.state_dir = state_dir
        self.timeout = float(timeout)
        self.deadline = time.monotonic() + float(timeout if budget is None else budget)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def spent(self) -> bool:
        """True when the command's time for hooks is used up: run no more now."""
        return self.left() <= 0

    def path(self, worktree: Path | None, hook: str) -> Path | None:
        """The hook's file, if it exists (no approval check)."""
        if worktree is None or hook not in HOOKS:
            return None
        path = worktree / ".beads" / "hooks" / hook
        return path if path.is_file() else None

    def check(self, worktree: Path | None, hook: str) -> tuple[str, list[str]]:
        """('run' | 'absent' | 'held', warnings): whether the hook exists and may run; a
        hook held for approval is reported once (the warning comes back only then)."""
        path = self.path(worktree, hook)
        if path is None:
            return "absent", []
        verdict = approvals.check_hook(self.state_dir, path)
        if verdict is True:
            return "run", []
        return "held", [verdict] if verdict else []

    def run(self, worktree: Path | None, hook: str, record: dict, event: str) -> list[str]:
        """Run one hook if it exists and is approved; return warnings (empty when it
        succeeded or is absent)."""
        state, notes = self.check(worktree, hook)
        if state != "run":
            return notes
        assert worktree is not None
        path = worktree / ".beads" / "hooks" / hook
        if not os.access(path, os.X_OK):
            return [f"warning: hook {path} is not executable (chmod +x it); skipped"]
        limit = min(self.timeout, self.left())
        if limit <= 0:
            return [f"warning: hook {hook} not run: this command's time for hooks "
                    f"(hooks.budget) is spent; {record['id']} is stored"]
        env = {**os.environ, "BEADS_HOOK": hook, "BEADS_EVENT": event,
               "BEADS_RECORD_ID": record["id"]}
        if hook == "on_message":  # beads' interface: argument 2 is "message", stdin its fields
            from beadsmail.compat import beads

            record, event = beads.hook_payload(record), "message"
        payload = json.dumps(record, ensure_ascii=False, sort_keys=True).encode() + b"\n"
        return _execute([str(path), record["id"], event], worktree, env, payload, limit,
                        f"hook {hook}", record["id"])


def _execute(argv: list[str], cwd: Path, env: dict, payload: bytes, limit: float,
             name: str, rid: str) -> list[str]:
    import subprocess  # (only when a hook exists: most writes have none)

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    except OSError as exc:
        return [f"warning: {name} could not run: {exc.strerror or exc}; {rid} is stored"]
    try:
        stderr, finished = _converse(proc, payload, time.monotonic() + limit)
    finally:
        for pipe in (proc.stdin, proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()
    if not finished:
        _kill(proc)
        return [f"warning: {name} timed out after {round(limit, 1):g}s and was killed; {rid} is stored"]
    if proc.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        line = tail[0][-300:]
        return [f"warning: {name} exited {proc.returncode}{': ' + line if line else ''}; "
                f"{rid} is stored"]
    return []


def _converse(proc, payload: bytes, deadline: float) -> tuple[bytes, bool]:
    """Feed stdin and read stderr (keeping its last ``OUTPUT_CAP`` bytes) until the hook
    exits or the deadline passes; (stderr kept, whether it exited)."""
    import selectors

    kept = bytearray()
    sel = selectors.DefaultSelector()
    os.set_blocking(proc.stdin.fileno(), False)
    os.set_blocking(proc.stderr.fileno(), False)
    sel.register(proc.stderr, selectors.EVENT_READ)
    if payload:
        sel.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    sent = 0
    try:
        while proc.poll() is None:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return bytes(kept), False
            for key, _ in sel.select(min(wait, 0.05)):
                if key.fileobj is proc.stdin:
                    sent = _feed(proc, sel, payload, sent)
                elif not _drain(proc.stderr, kept):
                    sel.unregister(proc.stderr)
        _drain(proc.stderr, kept)  # what it wrote before exiting; a child's later output is not waited for
        return bytes(kept), True
    finally:
        sel.close()


def _feed(proc, sel, payload: bytes, sent: int) -> int:
    try:
        sent += os.write(proc.stdin.fileno(), payload[sent:sent + CHUNK])
    except (BrokenPipeError, BlockingIOError, OSError):
        sent = len(payload)  # it stopped reading: that is its business
    if sent >= len(payload):
        sel.unregister(proc.stdin)
        proc.stdin.close()
    return sent


def _drain(pipe, kept: bytearray) -> bool:
    """Read what is available now; False at end of file."""
    while True:
        try:
            chunk = os.read(pipe.fileno(), CHUNK)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not chunk:
            return False
        kept += chunk
        del kept[:-OUTPUT_CAP]


def _kill(proc) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the hook and whatever it started
    except ProcessLookupError:
        pass
    proc.wait()
