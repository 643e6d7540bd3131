"""``bd setup`` against realistic existing agent configuration, and ``bd prime``: add,
re-run (no change), dry run, remove (byte-for-byte back), and the hooks it writes run."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import GIT_ENV

pytest.importorskip("tomlkit")

BD = shlex.join([sys.executable, "-m", "beadsmail"])

CLAUDE_MCP = """{
  "mcpServers": {
    "github": {
      "command": "npx",
      "args": [
        "-y",
        "@modelcontextprotocol/server-github"
      ],
      "env": {
        "GITHUB_TOKEN": "${GITHUB_TOKEN}"
      }
    }
  }
}"""
CLAUDE_SETTINGS = """{
  "permissions": {
    "allow": [
      "Bash(npm run test:*)"
    ]
  },
  "hooks": {
    "PostToolUse": [
      {
        "matcher": "Edit|Write",
        "hooks": [
          {
            "type": "command",
            "command": "npx prettier --write \\"$CLAUDE_FILE_PATHS\\""
          }
        ]
      }
    ],
    "SessionStart": [
      {
        "matcher": "startup",
        "hooks": [
          {
            "type": "command",
            "command": "cat docs/context.md"
          }
        ]
      }
    ]
  },
  "model": "sonnet"
}
"""
CODEX_CONFIG = """# my Codex settings
model = "gpt-5-codex"
approval_policy = "on-request"

# documentation lookups
[mcp_servers.docs]
command = "npx"
args = ["-y", "docs-mcp"]  # pinned below
env = { "DOCS_TOKEN" = "x" }

[profiles.fast]
model = "gpt-5-mini"
"""
CODEX_HOOKS = """{
  "hooks": {
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [
          {
            "type": "command",
            "command": "python3 ~/.codex/guard.py",
            "timeout": 10
          }
        ]
      }
    ]
  }
}
"""
GEMINI_SETTINGS = """{
  "theme": "GitHub",
  "mcpServers": {
    "fs": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "."],
      "trust": false
    }
  },
  "hooks": {
    "BeforeTool": [
      {
        "matcher": "run_shell_command",
        "hooks": [
          {
            "name": "guard",
            "type": "command",
            "command": "./scripts/guard.sh"
          }
        ]
      }
    ]
  }
}
"""
AGENTS_MD = "# Agents\n\nRun `make test` before you commit.\n"


@pytest.fixture
def place(worktrees: list[Path], bd, tmp_path: Path):
    assert bd(worktrees[0], "init").code == 0
    home = tmp_path / "home"
    wt = worktrees[1]
    files = {
        wt / ".mcp.json": CLAUDE_MCP, wt / ".claude" / "settings.json": CLAUDE_SETTINGS,
        home / ".codex" / "config.toml": CODEX_CONFIG, home / ".codex" / "hooks.json": CODEX_HOOKS,
        wt / ".gemini" / "settings.json": GEMINI_SETTINGS, wt / "AGENTS.md": AGENTS_MD,
        home / ".claude.json": '{\n  "numStartups": 3,\n  "projects": {}\n}\n',
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return wt, home, files


CASES = [("claude", "project", (".mcp.json", ".claude/settings.json")),
         ("claude", "user", ("~/.claude.json", "~/.claude/settings.json")),
         ("codex", "user", ("~/.codex/config.toml", "~/.codex/hooks.json")),
         ("gemini", "project", (".gemini/settings.json",)),
         ("agents-md", "project", ("AGENTS.md",))]


def snapshot(wt: Path, home: Path) -> dict[str, bytes]:
    found = {}
    for base, tag in ((wt, ""), (home, "~/")):
        for path in base.rglob("*"):
            if path.is_file() and ".git" not in path.parts:
                found[tag + str(path.relative_to(base))] = path.read_bytes()
    return found


def setup(bd, wt: Path, home: Path, *args: str):
    return bd(wt, "setup", *args, "--bd", BD, "--json", env={"HOME": str(home),
                                                             "CODEX_HOME": str(home / ".codex")})


@pytest.mark.parametrize(("agent", "scope", "paths"), CASES)
def test_add_rerun_dry_run_and_remove(place, bd, agent: str, scope: str, paths) -> None:
    wt, home, _ = place
    before = snapshot(wt, home)
    dry = setup(bd, wt, home, agent, "--scope", scope, "--dry-run")
    assert dry.code == 0, dry.err
    assert snapshot(wt, home) == before  # a dry run writes nothing
    assert all(f["diff"] for f in dry.json()["files"])
    added = setup(bd, wt, home, agent, "--scope", scope)
    assert added.code == 0, added.err
    assert {f["action"] for f in added.json()["files"]} <= {"create", "update"}
    after = snapshot(wt, home)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {p.replace("~/", "~/", 1) for p in paths}
    for name in changed & set(before):  # the user's own entries are all still there, in order
        assert_kept(name, before[name].decode(), after[name].decode())
    again = setup(bd, wt, home, agent, "--scope", scope)
    assert [f["action"] for f in again.json()["files"]] == ["unchanged"] * len(paths)
    assert snapshot(wt, home) == after
    removed = setup(bd, wt, home, agent, "--scope", scope, "--remove")
    assert removed.code == 0, removed.err
    assert snapshot(wt, home) == before  # byte for byte


def assert_kept(name: str, old: str, new: str) -> None:
    if name.endswith(".json"):
        old_data, new_data = json.loads(old), json.loads(new)
        assert list(new_data)[:len(old_data)] == list(old_data)
        for key, value in old_data.items():
            if isinstance(value, dict):
                assert list(new_data[key])[:len(value)] == list(value)
                for inner, item in value.items():
                    if isinstance(item, list):  # hook groups: the user's come first, unchanged
                        assert new_data[key][inner][:len(item)] == item
                    else:
                        assert new_data[key][inner] == item
            else:
                assert new_data[key] == value
    else:
        assert [line for line in old.splitlines() if line in new.splitlines()] == \
            old.splitlines(), "a line of the user's file was lost or changed"
        if name.endswith(".toml"):
            assert "# documentation lookups" in new and "# pinned below" in new
            assert new.index("[mcp_servers.docs]") < new.index("[mcp_servers.beadsmail]")


def test_setup_refuses_a_foreign_entry_of_the_same_name(place, bd) -> None:
    wt, home, files = place
    (wt / ".mcp.json").write_text('{"mcpServers": {"beadsmail": {"command": "other"}}}')
    result = setup(bd, wt, home, "claude")
    assert result.code == 1
    assert "already has an MCP server named 'beadsmail'" in result.json()["error"]["message"]
    assert (wt / ".mcp.json").read_text() == '{"mcpServers": {"beadsmail": {"command": "other"}}}'
    broken = setup(bd, wt, home, "gemini", "--scope", "user")
    assert broken.code == 0  # no user file yet: created
    bad = home / ".gemini" / "settings.json"
    bad.write_text("{not json")
    result = setup(bd, wt, home, "gemini", "--scope", "user")
    assert result.code == 1 and "is not valid JSON" in result.json()["error"]["message"]
    assert bad.read_text() == "{not json"


def hook_commands(config: dict, event: str) -> list[str]:
    return [h["command"] for g in config["hooks"][event] for h in g["hooks"]
            if "beadsmail" in h["command"]]


def run_hook(command: str, wt: Path, event: dict, identity: str) -> str:
    env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": identity}
    proc = subprocess.run(command, shell=True, cwd=wt, env=env, input=json.dumps(event),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize(("agent", "path", "start", "after"), [
    ("claude", ".claude/settings.json", "SessionStart", "PostToolUse"),
    ("codex", ".codex/hooks.json", "SessionStart", "PostToolUse"),
    ("gemini", ".gemini/settings.json", "SessionStart", "AfterTool")])
def test_the_hooks_it_writes_run_and_answer_in_the_agents_format(place, bd, agent, path,
                                                                   start, after) -> None:
    wt, home, _ = place
    assert setup(bd, wt, home, agent).code == 0
    config = json.loads((wt / path).read_text())
    [prime_cmd], [check_cmd] = hook_commands(config, start), hook_commands(config, after)
    assert bd(wt, "mail", "send", "bob", "-s", "Review the parser", "-m", "please", "--urgent",
              env={"BEADS_IDENTITY": "alice"}).code == 0
    event = {"session_id": f"{agent}-1", "hook_event_name": start, "cwd": str(wt)}
    reply = json.loads(run_hook(prime_cmd, wt, event, "bob"))["hookSpecificOutput"]
    assert reply["hookEventName"] == start
    assert "you are bob" in reply["additionalContext"]
    assert "[URGENT] Review the parser (from alice" in reply["additionalContext"]
    # the after-tool check is quiet: prime already showed that mail to this session
    quiet = run_hook(check_cmd, wt, {**event, "hook_event_name": after}, "bob")
    assert quiet.strip() == ("{}" if agent == "gemini" else "")
    assert bd(wt, "mail", "send", "bob", "-s", "Second", "-m", "more",
              env={"BEADS_IDENTITY": "alice"}).code == 0
    reply = json.loads(run_hook(check_cmd, wt, {**event, "hook_event_name": after},
                                "bob"))["hookSpecificOutput"]
    assert reply["hookEventName"] == after
    assert reply["additionalContext"].startswith("bd: 1 new message for bob: \"Second\"")


def test_prime_is_short_and_never_repeats_shown_mail(place, bd) -> None:
    wt, _, _ = place
    for n in range(12):
        bd(wt, "mail", "send", "bob", "-s", f"Note {n} " + "x" * 100, "-m", "b",
           env={"BEADS_IDENTITY": "alice"})
    bd(wt, "task", "create", "--title", "Write the parser", "--assign", "bob",
       env={"BEADS_IDENTITY": "alice"})
    first = bd(wt, "prime", "--session", "s1", "--json", env={"BEADS_IDENTITY": "bob"}).json()
    assert first["unread"] == 12 and len(first["mail"]) == 8
    assert [t["title"] for t in first["tasks"]] == ["Write the parser"]
    assert len(first["text"]) < 6000  # ~1,500 tokens at most
    second = bd(wt, "prime", "--session", "s1", "--json", env={"BEADS_IDENTITY": "bob"}).json()
    assert second["already_shown"] == 12 and second["mail"] == []
    assert "nothing new" in second["text"]
    wrong = bd(wt, "prime", "--hook", "nobody")
    assert wrong.code == 1 and "unknown --hook 'nobody'" in wrong.err


def test_the_mcp_entry_it_writes_starts_the_server(place, bd) -> None:
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client, StdioServerParameters

    wt, home, _ = place
    assert setup(bd, wt, home, "claude", "--identity", "carol").code == 0
    entry = json.loads((wt / ".mcp.json").read_text())["mcpServers"]["beadsmail"]
    env = {**os.environ, **GIT_ENV, **entry["env"]}

    async def main() -> str:
        params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                       cwd=str(wt), env=env)
        async with Client(params) as client:
            return (await client.call_tool("whoami", {})).structured_content["identity"]

    assert anyio.run(main) == "carol"


def test_bd_itself_stays_light(place) -> None:
    """Neither the MCP SDK nor tomlkit is imported unless bd mcp or bd setup codex runs."""
    wt, _, _ = place
    code = ("import sys\nfrom beadsmail.cli import main\n"
            "for args in (['mail', 'check', '--hook', 'gemini'], ['prime'], ['mail', 'inbox']):\n"
            "    try:\n        main(args)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('mcp', 'tomlkit', 'pydantic', 'anyio', 'starlette')))")
    env = {**os.environ, **GIT_ENV, "BEADS_IDENTITY": "bob"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=wt, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
