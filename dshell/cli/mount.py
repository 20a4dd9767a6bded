"""mount and umount: attach clusters (and volumes) to the namespace."""

from __future__ import annotations

from ._click import click
from .common import out_fmt, session_of
from .options import output_options


@click.command()
@click.option("-t", "--type", "type_", metavar="TYPE", help="Backend type (see `dshell backends`).")
@click.option("-o", "options", metavar="OPTIONS", help="mount(8)-style options: k=v,k2=v2.")
@click.argument("source", required=False)
@click.argument("target", required=False)
@output_options(short=False)
@click.pass_context
def mount(
    ctx: click.Context,
    type_: str | None,
    options: str | None,
    source: str | None,
    target: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Attach a cluster at TARGET; bare `mount` lists the mount table (and the volumes).

    \b
    Like mount(8), -o takes mount options; the output format is --output.
      dshell mount -t slurm -o partition=debug localhost /hpc
      dshell mount -t slurm ssh://me@login:22 /hpc2
      dshell mount --output json
    \b
    Persistent volumes (type volume: a reserved disk share with a directory on one agent;
    size in MiB or 128M/1G, role and agent optional):
      dshell mount -t volume -o size=128M,agent=a1 db /local/vol/db
      dshell run --volume db:data -- sh -c 'date >> data/log'
    """
    from ..core import mounts as core
    from ..core.volumes import mount_rows
    from ..render.views import MOUNT

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    if source is None and target is None:
        if type_ or options:
            raise click.UsageError("mount: -t/-o need SOURCE and TARGET")
        out.listing([*session.mounts(), *mount_rows(session)], MOUNT, fmt)
        return
    if target is None:
        raise click.UsageError("mount: missing TARGET (usage: mount -t TYPE SOURCE TARGET)")
    added = core.mount(session, type_, source or "", target, options)
    out.info(f"mounted {added.source or added.type} on {added.target} type {added.type}")


@click.command()
@click.argument("target")
@click.pass_context
def umount(ctx: click.Context, target: str) -> None:
    """Detach the cluster mounted at TARGET. Its tasks and data are untouched.

    \b
    A volume (/MOUNT/vol/NAME) is detached from the namespace and keeps its data (refused
    while a task uses it); `mount -t volume NAME /MOUNT/vol/NAME` attaches it again and
    `vol rm NAME` destroys it."""
    from ..core import mounts as core

    session = session_of(ctx)
    removed = core.umount(session, target)
    out, _ = out_fmt(session, None)
    out.info(f"unmounted {removed.target}")
