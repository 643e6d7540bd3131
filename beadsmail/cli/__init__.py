"""``bd``: a thin typer layer. Each command resolves inputs, calls one API function, emits."""

from __future__ import annotations

import os
import sys

from beadsmail.cli.output import fail

TYPE_CHECKING = False  # typing costs ~2.5 ms at start-up; annotations only need it here
if TYPE_CHECKING:
    import typer

MODULES = ("store", "mail", "tasks", "agents", "sync", "serve", "integrate", "hooks",
           "reservations")
# Which command modules a top-level command needs: only those are imported, so
# a command pays for its own dependencies and not for every other command's.
NEEDS = {
    "init": ("store",), "where": ("store",), "doctor": ("store",), "index": ("store",),
    "mail": ("mail",), "show": ("mail",), "search": ("mail",), "cleanup": ("mail",), "whoami": ("mail",),
    "task": ("tasks",), "agent": ("agents", "serve"), "channel": ("agents",),
    "contacts": ("agents",), "dlq": ("agents",), "audit": ("agents",), "status": ("agents",),
    "sync": ("sync",), "serve": ("serve",), "hooks": ("hooks",),
    "mcp": ("integrate",), "setup": ("integrate",), "prime": ("integrate",),
    "reserve": ("reservations",), "release": ("reservations",), "renew": ("reservations",),
    "reservations": ("reservations",), "guard": ("reservations",),
}


# Hot read commands a module runs without typer (~30 ms to import): its
# ``fast(args) -> bool`` handles the arguments it fully understands and returns
# False for anything else, which typer then parses as usual.
FAST = {"task": "tasks", "mail": "fast", "agent": "agents", "sync": "sync",
        "guard": "guardcheck"}


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    import importlib

    import typer

    app = typer.Typer(
        name="bd", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
        pretty_exceptions_enable=False,
        help="beadsmail: git-native mail, tasks and coordination for coding agents.",
    )

    def show_version(wanted: bool) -> None:
        if wanted:
            print(f"bd {version()}")
            raise typer.Exit()

    @app.callback()
    def _root(_version: bool = typer.Option(
            False, "--version", "-V", is_eager=True, callback=show_version,
            help="Print bd's version and exit.")) -> None:
        """beadsmail: git-native mail, tasks and coordination for coding agents."""

    for name in modules:
        importlib.import_module(f"beadsmail.cli.{name}").register(app)
    return app


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("beadsmail")
    except PackageNotFoundError:  # run from a source tree
        from beadsmail import __version__

        return __version__


def _fast(module: str, args: list[str]) -> bool:
    name = f"beadsmail.cli.{module}"
    __import__(name)  # (importlib itself costs a typer-free command ~0.4 ms)
    return sys.modules[name].fast(args)


def run() -> None:
    """The ``bd`` process: ``main``, then, after a typer-free command, a quick exit.

    Such a command has printed everything and holds nothing that needs tearing
    down (its commit, index transaction and hooks are done; a background packer or
    sync is already detached), while the interpreter's teardown of every module
    costs ~3.5 ms, a tenth of a ``bd mail check``: flush the output and skip it.
    """
    args = sys.argv[1:]
    try:
        main(args)
    except SystemExit as done:
        if not (args and args[0] in FAST and "typer" not in sys.modules):
            raise
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:  # the reader left (`bd ... | head`): say nothing more
            code = 141
        os._exit(code)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        if args in (["--version"], ["-V"]):  # (without building the commands)
            print(f"bd {version()}")
            sys.exit(0)
        if args and args[0] in FAST and _fast(FAST[args[0]], args[1:]):
            sys.exit(0)
        app = build_app(NEEDS.get(args[0], MODULES) if args else MODULES)
        code = app(args=args, prog_name="bd", standalone_mode=False)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `bd ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except SystemExit:
        raise
    except BaseException as exc:  # the one error translator
        if os.environ.get("BEADS_DEBUG"):
            raise
        if type(exc).__name__ == "Exit":
            sys.exit(getattr(exc, "exit_code", 0))
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.ctx.get_help() if getattr(exc, "ctx", None) else "see 'bd --help'")
            sys.exit(0)
        sys.exit(fail(exc, as_json))
    sys.exit(code if isinstance(code, int) else 0)
