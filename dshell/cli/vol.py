"""vol: list, show and destroy persistent volumes."""

from __future__ import annotations

from ._click import click
from .common import out_fmt, session_of
from .options import output_options

ON_HELP = "Cluster (default: the current mount)."


@click.group()
def vol() -> None:
    """Persistent volumes: reserved disk shares with a directory on one agent.

    \b
    `mount -t volume` creates one (Mesos RESERVE + CREATE), `run --volume NAME:PATH[:ro]`
    shows it to a task at PATH, `umount` detaches it from the namespace (the data stays),
    `vol rm` destroys it. A volume's data survives its tasks, their restarts and the
    engine's; a task using one runs only on its agent. Backends without volumes end these
    verbs with UNSUPPORTED (10); removing a volume a task uses is a CONFLICT (12).
      dshell mount -t volume -o size=128M db /local/vol/db
      dshell run -d --volume db:data -- sh -c 'date >> data/log; sleep 600'
      dshell vol ls
      dshell vol rm db
    """


@vol.command("ls")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def vol_ls(ctx: click.Context, on: str | None, output: str | None, quiet: bool, raw: bool) -> None:
    """List every volume (attached or not) with its size (MiB), agent, role and the tasks
    using it."""
    from ..core import volumes
    from ..render.views import VOLUME

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    out.listing(volumes.vol_list(session, on), VOLUME, fmt)


@vol.command("show")
@click.argument("name")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@output_options()
@click.pass_context
def vol_show(
    ctx: click.Context, name: str, on: str | None, output: str | None, quiet: bool, raw: bool
) -> None:
    """Show one volume (NAME, or its path /MOUNT/vol/NAME)."""
    from ..core import volumes
    from ..render import Format

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    doc = fmt if fmt.name else Format("yaml" if session.env.stdout_isatty else "json")
    out.document(volumes.vol_show(session, name, on), doc)


@vol.command("rm")
@click.argument("name")
@click.option("--on", "on", metavar="PATH", help=ON_HELP)
@click.pass_context
def vol_rm(ctx: click.Context, name: str, on: str | None) -> None:
    """Destroy a volume and its data, giving its disk back; refused (12) while a task that
    has not ended uses it."""
    from ..core import volumes

    session = session_of(ctx)
    gone = volumes.vol_rm(session, name, on)
    out, _ = out_fmt(session, None)
    out.info(
        f"{gone.mount}: volume {gone.name} destroyed ({gone.size:g} MiB freed on {gone.agent_id})"
    )
