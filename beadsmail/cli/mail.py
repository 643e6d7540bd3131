"""``bd mail`` (send, inbox, read, ack, reply, delete, watch, check) and ``bd show``,
``bd cleanup``, ``bd whoami``. Text renderings are in ``cli.mailtext``."""

import sys
from typing import Annotated

import typer

from beadsmail import cleanup as cleanup_mod
from beadsmail import mail, wake
from beadsmail import search as search_mod
from beadsmail.cli import fast, mailtext
from beadsmail.cli.common import Identity, Json, identity, identity_source, session, workspace
from beadsmail.cli.output import emit, emit_line, emit_written
from beadsmail.errors import InvalidInput

MessageId = Annotated[str, typer.Argument(help="Message id (or a unique prefix of one).")]
Session = Annotated[str | None, typer.Option(
    "--session", help="Session id (else BEADS_SESSION): remember what this session was shown.")]
Urgent = Annotated[bool, typer.Option("--urgent", help="Priority 0 (urgent).")]
Priority = Annotated[int | None, typer.Option(
    "--priority", "-p", help="0 (urgent) to 4 (lowest); wins over --urgent and the type.")]
Type = Annotated[str | None, typer.Option(
    "--type", "-t", help=f"Message type: {', '.join(mail.TYPES)} (default request).")]
Context = Annotated[str | None, typer.Option("--context", help="JSON context payload.")]
Metadata = Annotated[str | None, typer.Option("--metadata", help="JSON object of metadata.")]
Action = Annotated[str, typer.Option(
    "--action", help="Action requested: none, acknowledge, respond or execute.")]
Body = Annotated[str, typer.Option("--body", "-m", help="Message body ('-' reads stdin).")]
Strict = Annotated[bool | None, typer.Option(
    "--strict/--no-strict", help="Refuse (exit 1, nothing stored) a send that would leave a "
    "dead letter: an unknown, unregistered or stopped agent, an empty @group, a missing "
    "#channel (default: config mail.strict).", show_default=False)]
Query = Annotated[str, typer.Argument(help=(
    "Words to find (all must match); \"a phrase\"; word* (prefix); a OR b; -word or NOT word "
    "(exclude); subject:word, body:word; ( ) to group."))]
Since = Annotated[str | None, typer.Option(
    "--since", help="Only since this time (ISO time or an age: 90s, 15m, 2h, 7d).")]
SearchLimit = Annotated[int, typer.Option("--limit", "-n", help="At most N hits (1-200).")]


def _payload(context: str | None, metadata: str | None) -> dict:
    return {"context": mail.parse_json(context, "--context", (dict, list, str)),
            "metadata": mail.parse_json(metadata, "--metadata", (dict,))}


def register(app: typer.Typer) -> None:
    mail_app = typer.Typer(help="Mail between agents: send, inbox, read, ack, reply, watch.",
                           no_args_is_help=True)
    _register_writes(mail_app)
    _register_reads(mail_app)
    _register_top(app)
    app.add_typer(mail_app, name="mail")


def _register_writes(mail_app: typer.Typer) -> None:
    @mail_app.command()
    def send(
        recipients: Annotated[list[str], typer.Argument(
            help="Agent ids, #channel, @group or * (all agents).")],
        subject: Annotated[str, typer.Option("--subject", "-s", help="Subject line.")],
        body: Body,
        urgent: Urgent = False, priority: Priority = None, type_: Type = None,
        reply_to: Annotated[str | None, typer.Option("--reply-to", help="Parent message id.")] = None,
        ephemeral: Annotated[bool, typer.Option(
            "--ephemeral/--permanent", help="Ephemeral mail can be cleaned up once closed.")] = True,
        context: Context = None, metadata: Metadata = None, action: Action = "none",
        strict: Strict = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Send a message to one or more recipients.  Example: bd mail send worker-1 -s "Task" -m "Take bd-x1y2" --urgent"""
        fast.run_send(json_, identity_, recipients, subject, body, reply_to=reply_to,
                      urgent=urgent, priority=priority, type_=type_, ephemeral=ephemeral,
                      action=action, context=context, metadata=metadata, strict=strict)

    @mail_app.command()
    def reply(
        message_id: MessageId, body: Body,
        subject: Annotated[str | None, typer.Option(
            "--subject", "-s", help="Subject (default: 'Re: ' + the parent's).")] = None,
        urgent: Urgent = False, priority: Priority = None, type_: Type = None,
        context: Context = None, metadata: Metadata = None, action: Action = "none",
        strict: Strict = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Reply to a message's sender, in its thread.  Example: bd mail reply bd-a1b2 -m "On it" """
        ws = workspace()
        result = mail.reply(ws, identity(ws, identity_), message_id, fast.body_text(body),
                            subject=subject,
                            urgent=urgent, priority=priority, type_=type_, action=action,
                            strict=strict, **_payload(context, metadata))
        emit_written(result, json_, mailtext.sent)

    @mail_app.command()
    def ack(
        message_ids: Annotated[list[str] | None, typer.Argument(help="Message ids.")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Every open message for me.")] = False,
        session_: Session = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Acknowledge (close) messages for me.  Example: bd mail ack bd-a1b2 bd-c3d4"""
        ws = workspace()
        result = mail.ack(ws, identity(ws, identity_), message_ids or [], all_=all_,
                          session=session(session_))
        errors = [] if json_ else [  # one line each, whatever control characters an id holds
            f"error: {e['id'] if e['id'].isprintable() else repr(e['id'])}: {e['error']}"
            for e in result["errors"]]
        emit(result, json_, mailtext.acked, errors)
        if result["errors"]:
            raise typer.Exit(1)

    @mail_app.command()
    def delete(
        message_id: MessageId,
        reason: Annotated[str | None, typer.Option("--reason", "-m", help="Why.")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Delete a message everywhere (needs message.delete).  Example: bd mail delete bd-a1b2"""
        ws = workspace()
        result = mail.delete(ws, identity(ws, identity_), message_id, reason)
        emit_written(result, json_, lambda d: f"deleted {d['deleted']} (tombstone {d['tombstone']})")


def _register_reads(mail_app: typer.Typer) -> None:
    @mail_app.command()
    def inbox(
        from_: Annotated[str | None, typer.Option("--from", help="Only from this sender.")] = None,
        priority: Annotated[int | None, typer.Option(
            "--priority", "-p", help="Only this priority (0-4).")] = None,
        type_: Annotated[str | None, typer.Option("--type", "-t", help="Only this type.")] = None,
        unread: Annotated[bool, typer.Option("--unread", help="Only messages not yet read.")] = False,
        limit: Annotated[int | None, typer.Option("--limit", "-n", help="At most N.")] = None,
        wait: Annotated[float | None, typer.Option(
            "--wait", help="Block up to SECONDS until there is mail (empty result on timeout).")
        ] = None,
        session_: Session = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Open (not yet acked) mail for me, urgent first then newest.  Example: bd mail inbox --unread --json"""
        fast.run_inbox(json_, identity_, session_, wait, sender=from_, priority=priority,
                       type_=type_, unread=unread, limit=limit)

    @mail_app.command()
    def read(
        message_id: MessageId,
        peek: Annotated[bool, typer.Option("--peek", help="Do not record a read receipt.")] = False,
        session_: Session = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Show one message in full (records a read receipt; never acks).  Example: bd mail read bd-a1b2"""
        ws = workspace()
        result = mail.read(ws, identity(ws, identity_), message_id, peek=peek,
                           session=session(session_))
        emit(result, json_, mailtext.message)

    @mail_app.command()
    def watch(
        timeout: Annotated[float | None, typer.Option(
            "--timeout", help="Stop after SECONDS (default: until interrupted).")] = None,
        session_: Session = None, identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Print new mail for me as it arrives, one line each.  Example: bd mail watch --json"""
        ws = workspace()
        me = identity(ws, identity_)
        for message in wake.watch(ws, me, session=session(session_), seconds=timeout,
                                  ready=lambda: print(f"watching for new mail to {me}",
                                                      file=sys.stderr, flush=True)):
            if json_:
                emit_line(message)
            else:
                emit(message, False, mailtext.line)
                sys.stdout.flush()

    @mail_app.command()
    def check(
        session_: Session = None,
        claude: Annotated[bool, typer.Option(
            "--claude", help="Same as --hook claude.")] = False,
        hook: Annotated[str | None, typer.Option(
            "--hook", help="Print the after-tool hook reply of this agent: claude, codex or "
            "gemini (reads the hook's event on stdin).")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """One line about new unread mail, nothing if none; exit 0.  Example: bd mail check --session "$BEADS_SESSION" """
        fast.run_check(json_, "claude" if claude else hook, session_, identity_)


    @mail_app.command()
    def search(
        query: Query,
        from_: Annotated[str | None, typer.Option("--from", help="Only from this sender.")] = None,
        to: Annotated[str | None, typer.Option(
            "--to", help="Only mail with this recipient (an agent, @group or *).")] = None,
        channel: Annotated[str | None, typer.Option(
            "--channel", help="Only posts to this channel.")] = None,
        thread: Annotated[str | None, typer.Option(
            "--thread", help="Only this message's conversation.")] = None,
        since: Since = None, limit: SearchLimit = 20, identity_: Identity = None,
        json_: Json = False,
    ) -> None:
        """Search mail and channel posts I may read, best match first.  Example: bd mail search 'parser OR lexer' --since 7d"""
        fast.run_search(json_, identity_, query, sender=from_, to=to, channel=channel,
                        thread=thread, since=since, limit=limit)


def _register_top(app: typer.Typer) -> None:
    @app.command(name="search")
    def search_all(
        query: Query,
        kind: Annotated[list[str] | None, typer.Option(
            "--kind", "-k", help="Only these kinds: mail (with channel posts), task, comment.")
        ] = None,
        since: Since = None, limit: SearchLimit = 20, identity_: Identity = None,
        json_: Json = False,
    ) -> None:
        """Search mail, channel posts, tasks and comments, best match first.  Example: bd search 'flaky test*'"""
        ws = workspace()
        hits = search_mod.search(ws, identity(ws, identity_), query,
                                 kinds=tuple(kind or search_mod.KINDS), since=since, limit=limit)
        emit(hits, json_, mailtext.hits)

    @app.command()
    def show(
        record_id: Annotated[str, typer.Argument(help="Any record id (or a unique prefix).")],
        thread: Annotated[bool, typer.Option(
            "--thread", help="The whole conversation of a message, in time order.")] = False,
        json_: Json = False,
    ) -> None:
        """Show one record, or a message's whole thread.  Example: bd show bd-a1b2 --thread"""
        ws = workspace()
        result = mail.show(ws, record_id, thread=thread)
        emit(result, json_, lambda d: mailtext.thread(ws, d) if thread else mailtext.record(d))

    @app.command()
    def cleanup(
        ephemeral: Annotated[bool, typer.Option(
            "--ephemeral", help="Closed ephemeral messages (required).")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list them.")] = False,
        force: Annotated[bool, typer.Option("--force", help="Remove them.")] = False,
        older_than: Annotated[str | None, typer.Option(
            "--older-than", help="Only messages older than this (90s, 15m, 2h, 7d).")] = None,
        identity_: Identity = None, json_: Json = False,
    ) -> None:
        """Remove closed ephemeral messages.  Example: bd cleanup --ephemeral --dry-run"""
        if not ephemeral:
            raise InvalidInput("say what to clean up: bd cleanup --ephemeral [--dry-run | --force]")
        ws = workspace()
        result = cleanup_mod.cleanup(ws, identity(ws, identity_), force=force, dry_run=dry_run,
                                     older_than=older_than)
        emit_written(result, json_, mailtext.cleaned)

    @app.command()
    def whoami(session_: Session = None, identity_: Identity = None, json_: Json = False) -> None:
        """Who bd acts as here, and why.  Example: bd whoami --json"""
        ws = workspace()
        me, source = identity_source(ws, identity_)
        emit(mail.whoami(ws, me, source, session(session_)), json_, mailtext.whoami)
