"""Search: `bd mail search` and `bd search` over FTS5, on real repositories."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import error, ok

from beadsmail import search
from beadsmail.errors import InvalidInput
from beadsmail.workspace import Workspace


@pytest.fixture
def store(repo: Path, bd) -> Path:
    ok(bd(repo, "init"))
    for who, role in (("alice", "manager"), ("bob", "worker"), ("carol", "worker")):
        ok(bd(repo, "agent", "register", "--id", who, "--role", role, "--identity", who, "--json"))
    return repo


def send(bd, repo: Path, sender: str, *args: str) -> dict:
    return ok(bd(repo, "mail", "send", *args, "--identity", sender, "--json"))


def found(bd, repo: Path, me: str, *args: str) -> list[dict]:
    return ok(bd(repo, *args, "--identity", me, "--json"))


def test_words_in_subjects_and_bodies_ranked_with_snippets(store: Path, bd) -> None:
    a = send(bd, store, "alice", "bob", "-s", "Parser crash on unicode",
             "-m", "the lexer fails on emoji input")
    b = send(bd, store, "alice", "bob", "-s", "Lunch", "-m", "the parser team eats at noon")
    send(bd, store, "alice", "bob", "-s", "Unrelated", "-m", "nothing to see")
    hits = found(bd, store, "bob", "mail", "search", "parser")
    assert [h["id"] for h in hits] == [a["id"], b["id"]]  # a subject match ranks first
    assert "**Parser**" in hits[0]["title_snippet"] and "**parser**" in hits[1]["snippet"]
    assert hits[0]["kind"] == "mail" and hits[0]["from"] == "alice"
    assert [h["id"] for h in found(bd, store, "bob", "mail", "search", "lex*")] == [a["id"]]
    assert [h["id"] for h in found(bd, store, "bob", "mail", "search", '"fails on emoji"')] \
        == [a["id"]]
    assert found(bd, store, "bob", "mail", "search", '"emoji fails"') == []
    assert [h["id"] for h in found(bd, store, "bob", "mail", "search", "parser -emoji")] \
        == [b["id"]]
    assert {h["id"] for h in found(bd, store, "bob", "mail", "search", "subject:lunch OR "
                                   "body:emoji")} == {a["id"], b["id"]}
    assert found(bd, store, "bob", "mail", "search", "body:lunch") == []
    assert {h["id"] for h in found(bd, store, "bob", "mail", "search", "lunch OR emoji")} \
        == {a["id"], b["id"]}
    text = bd(store, "mail", "search", "unicode", "--identity", "bob")
    assert text.code == 0 and a["id"] in text.out and "**unicode**" in text.out


def test_filters(store: Path, bd) -> None:
    ok(bd(store, "channel", "create", "review", "--identity", "alice", "--json"))
    ok(bd(store, "channel", "join", "review", "--identity", "bob", "--json"))
    root = send(bd, store, "alice", "bob", "-s", "deploy plan", "-m", "deploy on friday")
    reply = ok(bd(store, "mail", "reply", root["id"], "-m", "deploy is fine",
                  "--identity", "bob", "--json"))
    other = send(bd, store, "carol", "bob", "-s", "deploy too", "-m", "another deploy")
    post = ok(bd(store, "channel", "post", "review", "-m", "deploy review please",
                 "--identity", "carol", "--json"))
    ids = lambda *a: {h["id"] for h in found(bd, store, "bob", "mail", "search", "deploy", *a)}  # noqa: E731
    assert ids() == {root["id"], reply["id"], other["id"], post["id"]}
    assert ids("--from", "carol") == {other["id"], post["id"]}
    assert ids("--to", "alice") == {reply["id"]}
    assert ids("--channel", "review") == {post["id"]}
    assert ids("--thread", root["id"][:8]) == {root["id"], reply["id"]}
    assert ids("--since", "1h") == ids()
    assert ids("--since", "2999-01-01T00:00:00Z") == set()
    assert len(found(bd, store, "bob", "mail", "search", "deploy", "--limit", "1")) == 1
    kinds = {h["kind"] for h in found(bd, store, "bob", "mail", "search", "deploy")}
    assert kinds == {"mail", "post"}


def test_permissions_who_may_read_what(store: Path, bd) -> None:
    secret = send(bd, store, "bob", "carol", "-s", "secret plan", "-m", "only for carol")
    assert found(bd, store, "carol", "mail", "search", "secret") != []
    assert found(bd, store, "bob", "mail", "search", "secret") != []  # its sender
    assert [h["id"] for h in found(bd, store, "alice", "mail", "search", "secret")] \
        == [secret["id"]]  # a manager
    ok(bd(store, "agent", "register", "--id", "dave", "--role", "worker", "--identity", "dave"))
    assert found(bd, store, "dave", "mail", "search", "secret") == []
    assert found(bd, store, "dave", "search", "secret") == []
    everyone = send(bd, store, "bob", "*", "-s", "secret for all", "-m", "broadcast")
    assert [h["id"] for h in found(bd, store, "dave", "search", "secret")] == [everyone["id"]]


def test_tasks_comments_deletions_and_rebuild(store: Path, bd) -> None:
    task = ok(bd(store, "task", "create", "--title", "Flaky parser test",
                 "--description", "fails in CI on Tuesdays", "--identity", "alice", "--json"))["task"]
    ok(bd(store, "task", "comment", task["id"], "--content", "the tokenizer leaks state",
          "--identity", "bob", "--json"))
    msg = send(bd, store, "alice", "bob", "-s", "tokenizer", "-m", "see the task")
    hits = found(bd, store, "bob", "search", "tokenizer")
    assert sorted(h["kind"] for h in hits) == ["comment", "mail"]
    assert next(h for h in hits if h["kind"] == "comment")["task"] == task["id"]
    assert [h["kind"] for h in found(bd, store, "bob", "search", "tokenizer", "-k", "comment")] \
        == ["comment"]
    assert [h["id"] for h in found(bd, store, "bob", "search", "tuesdays", "-k", "task")] \
        == [task["id"]]
    ok(bd(store, "task", "edit", task["id"], "--title", "Flaky lexer test", "--version", "1",
          "--identity", "alice", "--json"))
    hits = found(bd, store, "bob", "search", "lexer", "-k", "task")
    assert [(h["id"], h["title"]) for h in hits] == [(task["id"], "Flaky lexer test")]
    before = found(bd, store, "bob", "search", "tokenizer OR tuesdays OR lexer")
    ok(bd(store, "index", "rebuild", "--json"))
    assert found(bd, store, "bob", "search", "tokenizer OR tuesdays OR lexer") == before
    ok(bd(store, "mail", "delete", msg["id"], "--identity", "alice", "--json"))
    assert msg["id"] not in {h["id"] for h in found(bd, store, "bob", "search", "tokenizer")}
    ok(bd(store, "task", "delete", task["id"], "--version", "2", "--identity", "alice", "--json"))
    assert found(bd, store, "bob", "search", "tuesdays OR tokenizer") == []


def test_rebuilt_index_searches_like_the_incremental_one(store: Path, bd) -> None:
    for n in range(30):
        send(bd, store, "alice", "bob", "-s", f"note {n}", "-m", f"word{n % 3} common")
    ws = Workspace.open(store)
    before = search.search(ws, None, "common", limit=50)
    ws.rebuild_index()
    ws.close()
    ws = Workspace.open(store)
    assert search.search(ws, None, "common", limit=50) == before
    assert len(before) == 30


@pytest.mark.parametrize("query", [
    '"unclosed', "a OR", "OR a", "NOT", "-a", "(a", "a)", "()", " ", "x" * 600,
    " ".join(["w"] * 40), "a\x00b",
])
def test_malformed_queries_are_one_line_errors(store: Path, bd, query: str) -> None:
    err = error(bd(store, "search", "--json", "--", query), "invalid_input")
    assert "\n" not in err["message"] and "fts5" not in err["message"].lower()
    text = bd(store, "search", "--", query)
    assert text.code == 1 and text.err.count("\n") == 1


@pytest.mark.parametrize("query", [
    'a"b', "NEAR(a b)", "a:b", "{a b}", "^a", "a + b", "col:*", "AND*", "'; DROP TABLE records",
    "a* *", "é OR ü", "x" * 400,
])
def test_fts_operators_are_taken_as_text(store: Path, bd, query: str) -> None:
    result = bd(store, "search", "--json", "--", query)
    assert result.code in (0, 1)
    if result.code == 1:
        assert "fts5" not in result.json()["error"]["message"].lower()


def test_to_fts_quotes_every_term() -> None:
    assert search.to_fts('parser "a b" lex* -x OR y') == \
        '"parser" AND "a b" AND "lex"* NOT "x" OR "y"'
    assert search.to_fts("subject:foo body:bar") == 'title : "foo" AND body : "bar"'
    assert search.to_fts("a:b") == '"a:b"'
    with pytest.raises(InvalidInput):
        search.to_fts('a"b')
    with pytest.raises(InvalidInput):
        search.to_fts("(a OR)")


def test_http_search_follows_the_token_and_reports_bad_queries(store: Path, bd) -> None:
    httpx = pytest.importorskip("httpx")
    from beadsmail import tokens
    from beadsmail.server.runner import Background

    secret = send(bd, store, "bob", "carol", "-s", "secret plan", "-m", "only for carol")
    ws = Workspace.open(store)
    ok(bd(store, "agent", "register", "--id", "dave", "--role", "worker", "--identity", "dave"))
    carol = {"Authorization": "Bearer " + tokens.create(ws.loc.state_dir, "carol")["token"]}
    dave = {"Authorization": "Bearer " + tokens.create(ws.loc.state_dir, "dave")["token"]}
    with Background(ws, identity="alice", projects=["proj"], require_tokens=True) as bg:
        get = lambda params, h: httpx.get(bg.url + "/api/search", params=params, headers=h)  # noqa: E731
        assert [h["id"] for h in get({"q": "secret"}, carol).json()] == [secret["id"]]
        assert get({"q": "secret"}, dave).json() == []
        assert get({"q": "secret", "from": "bob", "kind": "mail"}, carol).json()[0]["snippet"]
        bad = get({"q": '"open'}, carol)
        assert bad.status_code == 400 and "quote" in bad.json()["error"]["message"]
        assert get({"q": "x", "kind": "nope"}, carol).status_code == 400
        assert get({"q": "x" * 501}, carol).status_code == 400
        assert get({}, carol).status_code == 400
        assert httpx.get(bg.url + "/api/search", params={"q": "secret"}).status_code == 401
    ws.close()
