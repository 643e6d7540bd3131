"""Many clones, one remote: every clone sends and syncs at once, after every send.

A fleet (``bench/fleet.py``) of clones, each a worker process that sends a
message and runs ``bd sync`` as its own process, all started at the same moment,
against a bare remote by path and through a real ``git daemon``. Goal: no sync
fails, every clone converges, no message is lost or stored twice. The default
suite runs a small fleet; ``-m slow`` the 16-clone one; ``-m torture`` kills
syncs at random during the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_sync import daemon, free_port  # noqa: F401 - the git daemon fixture

from bench import fleet


def check(result: fleet.Result, clones: int, rounds: int) -> None:
    print(f"\nclones={clones} syncs={result.syncs} failures={len(result.failures)} "
          f"killed={result.killed} converge={result.converge_s:.1f}s passes={result.passes}")
    assert result.failures == []
    assert len(result.sent) == clones * rounds
    assert result.syncs == clones * rounds
    assert result.problems == []


@pytest.mark.parametrize("transport", ["path", pytest.param("git-daemon", marks=pytest.mark.slow)])
def test_a_small_fleet_syncing_at_once_never_fails(tmp_path: Path, transport: str,
                                                   request) -> None:
    url = None
    if transport == "git-daemon":
        url = request.getfixturevalue("daemon") + "/remote.git"
    result = fleet.run(tmp_path, 3, 2, url)
    check(result, 3, 2)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["path", "git-daemon"])
def test_sixteen_clones_syncing_after_every_send(tmp_path: Path, transport: str, request) -> None:
    url = None
    if transport == "git-daemon":
        url = request.getfixturevalue("daemon") + "/remote.git"
    result = fleet.run(tmp_path, 16, 4, url)
    check(result, 16, 4)


@pytest.mark.torture
@pytest.mark.parametrize("transport", ["path", "git-daemon"])
def test_sixteen_clones_with_syncs_killed_at_random(tmp_path: Path, transport: str,
                                                    request) -> None:
    url = None
    if transport == "git-daemon":
        url = request.getfixturevalue("daemon") + "/remote.git"
    result = fleet.run(tmp_path, 16, 4, url, kill_rate=0.3, seed=16)
    check(result, 16, 4)
    assert result.killed > 0
