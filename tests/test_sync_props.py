"""Any interleaving of sends, acks, replies, task moves and syncs across clones converges."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from test_sync import make_clones, segment_ids

from beadsmail import mail, sync, tasks
from beadsmail.errors import BeadsError
from beadsmail.index import feeds as feeds_index
from beadsmail.workspace import Workspace

AGENTS = ("alice", "bob", "carol")
STATUSES = ("todo", "in_progress", "review", "done")
clone_ids = st.integers(min_value=0, max_value=2)


class Clones(RuleBasedStateMachine):
    """Three clones of one bare remote; the second clone acts from a linked worktree."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="beadsmail-props-"))
        self.remote, clones, worktrees = make_clones(self.root, store=False)
        self.places = [clones[0], worktrees[1], clones[2]]
        self.clones = clones
        self._bind_everyone_everywhere()
        self.written: set[str] = set()
        self.tasks: list[str] = []

    def _bind_everyone_everywhere(self) -> None:
        """Every identity writes from every clone, as one person on three machines: the
        first clone binds each to the other two replicas by a published trust record,
        and every clone folds those before anyone writes (signatures stay on)."""
        from beadsmail.signing import manage

        others = []
        for clone in self.clones[1:]:
            ws = Workspace.open(clone)
            others.append(ws.replica)
            ws.close()
        ws = Workspace.open(self.clones[0])
        for agent in AGENTS:
            for replica in others:
                manage.change(ws, agent, agent, replica, "bind", publish=True)
        sync.sync(ws)
        ws.close()
        for clone in self.clones[1:]:
            ws = Workspace.open(clone)
            sync.sync(ws)
            ws.close()

    def ws(self, i: int) -> Workspace:
        return Workspace.open(self.places[i])

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _messages(self, ws: Workspace) -> list[dict]:
        ws.refresh()
        return [r for r in ws.index.all_records() if r["kind"] == "message"]

    @rule(i=clone_ids, sender=st.sampled_from(AGENTS), to=st.sampled_from(AGENTS + ("*",)))
    def send(self, i: int, sender: str, to: str) -> None:
        ws = self.ws(i)
        self.written.add(mail.send(ws, sender, [to], f"from {sender}", "hi")["id"])
        ws.close()

    @rule(i=clone_ids, pick=st.integers(min_value=0), me=st.sampled_from(AGENTS))
    def ack(self, i: int, pick: int, me: str) -> None:
        ws = self.ws(i)
        found = self._messages(ws)
        if found:
            message = found[pick % len(found)]
            mail.ack(ws, me, [message["id"]])
        self._track(ws)
        ws.close()

    @rule(i=clone_ids, pick=st.integers(min_value=0), me=st.sampled_from(AGENTS))
    def reply(self, i: int, pick: int, me: str) -> None:
        ws = self.ws(i)
        found = self._messages(ws)
        if found:
            self.written.add(mail.reply(ws, me, found[pick % len(found)]["id"], "re")["id"])
        ws.close()

    @rule(i=clone_ids, actor=st.sampled_from(AGENTS))
    def create_task(self, i: int, actor: str) -> None:
        ws = self.ws(i)
        task = tasks.create(ws, actor, f"task by {actor}")["task"]
        self.written.add(task["id"])
        self.tasks.append(task["id"])
        ws.close()

    @precondition(lambda self: self.tasks)
    @rule(i=clone_ids, pick=st.integers(min_value=0), status=st.sampled_from(STATUSES),
          actor=st.sampled_from(AGENTS))
    def move_task(self, i: int, pick: int, status: str, actor: str) -> None:
        ws = self.ws(i)
        task_id = self.tasks[pick % len(self.tasks)]
        try:  # the version this clone sees: clones that have not synced race each other
            task = tasks.show(ws, task_id)["task"]
            self.written.add(tasks.move(ws, actor, task_id, status, task["version"])["event"])
        except BeadsError:
            pass  # not here yet, deleted, or already in that status
        ws.close()

    @rule(i=clone_ids, mode=st.sampled_from(["both", "both", "pull", "push"]))
    def sync(self, i: int, mode: str) -> None:
        ws = self.ws(i)
        try:
            sync.sync(ws, pull=mode != "push", push=mode != "pull")
        except BeadsError as exc:
            assert mode == "push" and "without --push-only" in exc.message
        ws.close()

    def _track(self, ws: Workspace) -> None:
        for record in ws.index.all_records():
            if record["replica"] == ws.replica:
                self.written.add(record["id"])

    @invariant()
    def nothing_duplicated_locally(self) -> None:
        for clone in self.clones:
            if (clone / ".git" / "refs" / "heads" / "beadsmail").exists():
                stored = segment_ids(clone)
                assert len(stored) == len(set(stored))

    def check_converged(self) -> None:
        for _ in range(2):
            for i in range(3):
                ws = self.ws(i)
                sync.sync(ws)
                ws.close()
        prints = []
        for i in range(3):
            ws = self.ws(i)
            ws.refresh()
            self._track(ws)
            prints.append(ws.index.fingerprint())
            assert feeds_index.problems(ws.index.conn) == []  # every record verified, bound
            ws.close()
        assert prints[0] == prints[1] == prints[2]
        assert set(prints[0]["records"]) >= self.written  # nothing lost
        for clone in self.clones:
            stored = segment_ids(clone)
            assert len(stored) == len(set(stored)) == len(prints[0]["records"])


class ConvergingClones(Clones):
    def teardown(self) -> None:
        try:
            self.check_converged()
        finally:
            super().teardown()


FAST = settings(max_examples=4, stateful_step_count=10, deadline=None,
                suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=60, stateful_step_count=30, deadline=None,
                suppress_health_check=list(HealthCheck))

TestConvergence = ConvergingClones.TestCase
TestConvergence.settings = FAST


@pytest.mark.slow
class TestConvergenceMore(ConvergingClones.TestCase):
    settings = SLOW
