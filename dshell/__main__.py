"""The process boundary: ``dshell`` and ``python -m dshell``.

Decides the mode (one command, a runbook, lines on stdin, or the REPL), runs it, and turns
what happened into an exit status. ``--version`` is answered before anything is imported.
"""

from __future__ import annotations

import gc
import os
import sys

GLOBAL_FLAGS = {"--debug"}
GLOBAL_VALUED = {"--color"}


def _split_globals(argv: list[str]) -> tuple[list[str], list[str]]:
    """Leading global options, then the rest."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in GLOBAL_FLAGS or any(arg.startswith(g + "=") for g in GLOBAL_VALUED):
            i += 1
        elif arg in GLOBAL_VALUED and i + 1 < len(argv):
            i += 2
        else:
            break
    return argv[:i], argv[i:]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        from . import __version__

        sys.stdout.write(f"dshell {__version__}\n")
        return 0
    if args[:1] == ["__complete"]:  # shell completion's live values: fast, never a traceback
        from .completion import complete_main

        status = complete_main(args[1:])
    else:
        status = _run(args, exit_early=argv is None)
    if argv is None:
        sys.exit(status)
    return status


def _exit_now(status: int) -> None:
    """End the process without the interpreter's finalization, if the output is flushed.

    Finalization (a last garbage collection, then the teardown of every imported module)
    costs 25-45 ms after a ``ps`` here, and a listing that returned has nothing left for it:
    its session is closed (child processes reaped, connections closed) and dshell registers no
    atexit handlers. If flushing fails, return: the interpreter's exit then reports it as it
    always does.
    """
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return
    os._exit(status)


def _run(args: list[str], *, exit_early: bool = False) -> int:
    """Run the command line; ``exit_early``: a process of its own, which a finished ``ps``
    listing may end at once (:func:`_exit_now`)."""
    globals_, rest = _split_globals(args)
    early = None
    if rest[:1] == ["ps"]:  # start the listing's own command before dshell's heavy imports
        # a one-shot listing collects no garbage: the collector's passes over every object the
        # imports create cost 3-10 ms, and it is on again before anything long-running (-w)
        gc.disable()
        from .fastpath import start_listings

        early = start_listings(rest)
    from .session import Env, Session

    registry, started = early if early is not None else (None, {})
    session = Session(env=Env(), _registry=registry, prefetched=started)
    session.debug = "--debug" in globals_
    for g in globals_:
        if g.startswith("--color"):
            session.env.color = g.split("=", 1)[1] if "=" in g else globals_[globals_.index(g) + 1]
    try:
        if rest[:1] == ["ps"]:  # scripted listings skip the command tree (dshell/fastpath.py)
            from .fastpath import try_ps

            try:
                status = try_ps(session, rest)
                if status is not None and exit_early:
                    session.close()
                    _exit_now(status)
            finally:
                gc.enable()
            if status is not None:
                return status
        from .cli.main import VERBS, invoke

        if rest[:1] == ["-c"]:
            from .runbook import run_text

            if len(rest) < 2:
                sys.stderr.write("dshell: error: -c needs a command string\n")
                return 2
            return run_text(session, rest[1], source="-c")
        if (
            rest
            and rest[0] not in VERBS
            and not rest[0].startswith("-")
            and os.path.isfile(rest[0])
        ):
            from .runbook import run_file

            return run_file(session, rest[0])
        if (not rest and not globals_) or (not rest and globals_):
            if session.env.stdin_isatty:
                from .repl import run_repl

                return run_repl(session)
            from .runbook import run_stream

            session.stdin_is_script = True
            return run_stream(session, sys.stdin, source="<stdin>")
        return invoke(session, args)
    except BrokenPipeError:
        from .cli.main import stdout_closed

        stdout_closed()
        return 141  # 128 + SIGPIPE, quietly, as a killed writer would
    except KeyboardInterrupt:
        sys.stderr.write("dshell: interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001 - the process boundary: a bug, reported once
        from .cli.main import internal_error

        return internal_error(session, exc)
    finally:
        session.close()


if __name__ == "__main__":
    main()
