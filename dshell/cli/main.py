"""The command tree (one lazy click group) and ``invoke``, which maps exceptions to codes.

Only the invoked verb's module is imported; ``dshell --help`` lists verbs from the table
below without importing any of them. The CLI, the REPL and runbooks all run commands
through :func:`invoke`, so they cannot drift.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import DshellError, ExitCode, Interrupted, TaskExit, report, report_os_error
from ._click import click

#: verb -> (module under dshell.cli, attribute, one-line help). Assembled explicitly.
VERBS: dict[str, tuple[str, str, str]] = {
    "ps": ("ps", "ps", "List tasks across the mounts under a path."),
    "inspect": ("inspect", "inspect", "Show one task with its full state history."),
    "run": (
        "run",
        "run",
        "Launch a task; attached by default (streams output, exits with its status).",
    ),
    "exec": ("exec_", "exec_", "Run a command inside a running task's sandbox."),
    "kill": ("kill", "kill", "Stop tasks: SIGTERM, grace period, then SIGKILL."),
    "top": ("top", "top", "Live view of agents and tasks (-n 1 for one snapshot)."),
    "svc": ("svc", "svc", "Long-running services."),
    "job": ("job", "job", "Batch jobs: run now, on schedules, after other jobs; retries."),
    "fw": ("fw", "fw", "Nested frameworks: launch one on a cluster and mount it; ls, rm."),
    "mount": ("mount", "mount", "Attach a cluster at a path; bare 'mount' lists mounts."),
    "umount": ("mount", "umount", "Detach a mounted cluster (never deletes its data)."),
    "ls": ("fs", "ls", "List a namespace directory or a task's sandbox."),
    "cd": ("fs", "cd", "Change the current namespace path."),
    "pwd": ("fs", "pwd", "Print the current namespace path."),
    "cat": ("fs", "cat", "Print files of a task's sandbox (stdout, stderr, …)."),
    "tail": ("fs", "tail", "Print the end of a task's output; -f follows it."),
    "nodes": ("nodes", "nodes", "List agents (nodes) with their resources; `nodes up` undrains."),
    "drain": ("drain", "drain", "Take a node out of service (no new work placed on it)."),
    "maint": ("maint", "maint", "Maintenance windows of nodes: schedule, ls, cancel."),
    "quota": ("quota", "quota", "Quota limits and weights of roles: set, ls, rm."),
    "reserve": ("quota", "reserve", "Reserve part of a node for one role."),
    "unreserve": ("quota", "unreserve", "Give back a role's reservation on a node."),
    "vol": ("vol", "vol", "Persistent volumes: ls, show, rm (`mount -t volume` creates one)."),
    "events": ("events", "events", "Stream state changes with sequence numbers."),
    "wait": ("wait", "wait", "Wait until tasks reach a state (default: finished)."),
    "backends": ("backends", "backends", "List installed backend plugins and their capabilities."),
    "engine": ("engine", "engine", "Control the embedded engine daemon (start, stop, status)."),
    "completion": (
        "completion",
        "completion",
        "Print a shell completion script (bash, zsh, fish).",
    ),
    "help": ("help", "help_", "List verbs, or show the help of one."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(VERBS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = VERBS.get(cmd_name)
        if entry is None:
            return None
        import importlib

        module = importlib.import_module(f"dshell.cli.{entry[0]}")
        cmd = getattr(module, entry[1])
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, entry[2]) for name, entry in VERBS.items()]
        with formatter.section("Verbs"):
            formatter.write_dl(rows)


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT, invoke_without_command=False)
@click.version_option(package_name="dshell", message="dshell %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors.")
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default=None,
    help="Colour output (default auto; NO_COLOR is honoured).",
)
@click.pass_context
def root(ctx: click.Context, debug: bool, color: str | None) -> None:
    """dshell: a shell for clusters.

    \b
    Run without arguments for the interactive shell (REPL). Run a runbook with
    `dshell FILE`, `dshell -c 'cmd; cmd'`, or lines on stdin; it stops at the first
    failing line (`set +e` turns that off). Every verb takes -h for its help.
    """
    session = ctx.obj
    if debug:
        session.debug = True
    if color:
        session.env.color = color


def invoke(session: Any, argv: list[str], *, prog: str = "dshell") -> int:
    """Run one command line (already split) in ``session``; return its exit status.

    This is the process boundary shared by the CLI, the REPL and runbooks: exceptions become
    exit codes and one message on stderr here, and nowhere else.
    """
    from ..render import Output

    out = Output(session.env)
    try:
        root.main(args=argv, prog_name=prog, standalone_mode=False, obj=session)
        return int(ExitCode.OK)
    except TaskExit as exc:
        return exc.status
    except DshellError as exc:
        return report(session, out, exc)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except SystemExit as exc:  # click exits 1 itself when stdout is a closed pipe (EPIPE)
        return exc.code if isinstance(exc.code, int) else int(ExitCode.ERROR)
    except click.ClickException as exc:
        exc.show(file=session.env.stderr)
        return int(ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        out.error(Interrupted("interrupted").message)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        raise
    except OSError as exc:
        return report_os_error(session, out, exc)
    finally:
        session.attached = False


def internal_error(session: Any, exc: BaseException) -> int:
    """A bug: say so, with the traceback under --debug."""
    from ..render import Output

    if session.debug:
        import traceback  # only here: 5 ms on every command's start otherwise

        traceback.print_exception(exc, file=session.env.stderr)
    Output(session.env).error(
        f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)"
    )
    return int(ExitCode.ERROR)


def stdout_closed() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
