"""Property-based fuzz of the HTTP API from its own OpenAPI description (schemathesis).

Every operation gets generated requests, valid and invalid; the server must never
answer 5xx, every answer is JSON (an error is the one error object), and the
store stays intact (``bd doctor`` clean) afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from beadsmail.server.runner import Background
from beadsmail.workspace import Workspace

pytestmark = pytest.mark.slow
schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

EXAMPLES = 40


def _modes():
    from schemathesis import GenerationMode

    return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def fuzz(operation, mode, base_url: str, failures: list[str]) -> None:
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case) -> None:
        response = case.call(base_url=base_url, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{operation.label} {case.as_curl_command()} -> "
                            f"{response.status_code} {response.text[:200]}")
            return
        kind = response.headers.get("content-type") or [""]
        if (kind[0] if isinstance(kind, list) else kind).startswith("application/json"):
            body = response.json()
            if response.status_code >= 400:
                assert set(body["error"]) >= {"type", "message"}, body
        else:  # only the router's own 404/405 for paths and methods that do not exist
            assert response.status_code in (404, 405), response.text[:200]

    try:
        check()
    except hypothesis.errors.Unsatisfiable:  # nothing to make invalid (no parameters or body)
        pass


def test_http_api_never_fails_with_5xx_and_the_store_stays_healthy(repo: Path, bd) -> None:
    assert bd(repo, "init").code == 0
    assert bd(repo, "mail", "send", "bob", "-s", "seed", "-m", "seed", "--identity",
              "alice").code == 0
    assert bd(repo, "task", "create", "--title", "seed task", "--identity", "alice").code == 0
    ws = Workspace.open(repo)
    failures: list[str] = []
    with Background(ws, identity="human", projects=["proj"]) as bg:
        schema = schemathesis.openapi.from_url(bg.url + "/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 20
        for operation in operations:
            for mode in _modes():
                fuzz(operation, mode, bg.url, failures)
    ws.close()
    assert not failures, "\n".join(failures[:10])
    doctor = bd(repo, "doctor", "--json")
    assert doctor.code == 0 and doctor.json()["ok"], doctor.out
