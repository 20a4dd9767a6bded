"""exec: run a command inside a running task."""

from __future__ import annotations

from ..backend import Capability, require
from ..errors import TaskExit
from ._click import click
from .common import session_of
from .options import parse_kv


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.argument("ref")
@click.argument("command", nargs=-1, required=True)
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal (`exec -it TASK -- sh`).")
@click.option(
    "--env", "-e", "env", multiple=True, metavar="K=V", help="Extra environment variable."
)
@click.pass_context
def exec_(
    ctx: click.Context,
    ref: str,
    command: tuple[str, ...],
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
) -> None:
    """Run COMMAND in a running task's sandbox, environment and cgroups.

    Output streams live; dshell exits with the command's status (125 if dshell itself fails).
      dshell exec web.01jh -- ls -la
      dshell exec -it web.01jh -- sh
    """
    from ..core.refs import resolve_tasks

    session = session_of(ctx)
    if command[:1] == ("--",):  # `exec REF -- CMD`: click keeps the -- after a positional
        command = command[1:]
    if not command:
        raise click.UsageError("exec: missing COMMAND after --")
    tref = resolve_tasks(session, [ref], finished=False, one=True)[0]
    require(tref.backend, Capability.EXEC, "exec")
    if tty or interactive:
        require(tref.backend, Capability.TTY, "exec -it")
    session.attached = True
    handle = tref.backend.exec(tref.task.id, list(command), tty=tty, env=parse_kv(env, "--env"))
    if tty or interactive:
        from .interactive import pump_tty

        raise TaskExit(pump_tty(session, handle, tty=tty))
    from ..render import Output

    out = Output(session.env)
    try:
        for chunk in handle.chunks():
            out.raw_bytes(chunk.data, stderr=chunk.stream == "stderr")
        raise TaskExit(handle.status())
    finally:
        handle.close()
