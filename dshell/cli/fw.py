"""fw: nested frameworks (launch, ls, rm)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options

if TYPE_CHECKING:
    from ..render.views import View


def _view() -> View:
    from ..render.views import Column, View, _num, field

    return View(
        "framework",
        (
            Column("NAME", field("name")),
            Column("KIND", field("kind")),
            Column("HOST", field("host")),
            Column("STATE", field("state")),
            Column("CPUS", lambda f, _h: _num(f.resources.cpus), align="right"),
            Column("MEM", lambda f, _h: _num(f.resources.mem), align="right"),
            Column("MOUNT", field("mount")),
            Column("SERVICE", field("service"), wide=True),
        ),
        lambda f: f.mount,
    )


@click.group()
def fw() -> None:
    """Nested frameworks: launched as services of a cluster, then mounted below it.

    \b
    `fw launch KIND --name NAME` starts the framework on the current mount (or --on PATH)
    with health checks and restarts, waits until it is ready and mounts it at PATH/fw/NAME;
    `fw rm NAME` unmounts it and stops its whole process tree.
      dshell fw launch engine --name team-a --cpus 1 --mem 512
      dshell ls /local/fw
      dshell run --on /local/fw/team-a -- echo hello
      dshell fw rm team-a
    """


@fw.command("launch")
@click.argument("kind")
@click.option("--name", required=True, help="The framework's name (its mount is PATH/fw/NAME).")
@click.option("--on", metavar="PATH", help="The host cluster (default: the current mount).")
@click.option("-o", "options", metavar="OPTIONS", help="The kind's options: k=v,k2=v2.")
@click.option(
    "--cpus",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="CPU share given to the framework.",
)
@click.option("--mem", default="512", show_default=True, help="Memory share: MiB, or 512M, 2G.")
@click.option("--disk", default=None, help="Disk share: MiB, or 1G.")
@click.option(
    "--ports",
    type=click.IntRange(min=0),
    default=None,
    help="Host ports handed to the framework (default: the kind's).",
)
@click.option("--timeout", type=DURATION, help="Give up waiting for it to be ready (exit 9).")
@output_options(short=False)
@click.pass_context
def fw_launch(
    ctx: click.Context,
    kind: str,
    name: str,
    on: str | None,
    options: str | None,
    cpus: float,
    mem: str,
    disk: str | None,
    ports: int | None,
    timeout: float | None,
    output: str | None,
    quiet: bool,
    raw: bool,
) -> None:
    """Launch a framework of KIND (engine, ray…) and mount it at PATH/fw/NAME.

    Like mount(8), -o takes the kind's options; the output format is --output. Anything
    deployed is removed again if the framework does not become ready.
    """
    from ..core import fw as core
    from ..core.launch import parse_size
    from ..model import Resources
    from ..namespace import parse_options

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    res = Resources(
        cpus=cpus,
        mem=parse_size(mem, "--mem"),
        disk=parse_size(disk, "--disk") if disk else 0.0,
        ports=ports or 0,
    )
    opts = parse_options(options)
    launched = core.launch(
        session, kind, name, on, opts, res, timeout if timeout is not None else core.DEFAULT_TIMEOUT
    )
    if output or quiet:
        out.listing([launched], _view(), fmt)
    out.info(f"launched {launched.kind} framework {launched.name} on {launched.mount}")


@fw.command("ls")
@click.argument("path", required=False)
@output_options()
@click.pass_context
def fw_ls(ctx: click.Context, path: str | None, output: str | None, quiet: bool, raw: bool) -> None:
    """List the frameworks of every mount under PATH: kind, host, state and resources."""
    from ..core import fw as core

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    result = core.ls(session, path)
    out.listing(result.rows, _view(), fmt)
    result.finish(out)


@fw.command("rm")
@click.argument("name")
@click.option("--timeout", type=DURATION, help="Give up waiting for it to stop (exit 9).")
@click.pass_context
def fw_rm(ctx: click.Context, name: str, timeout: float | None) -> None:
    """Unmount framework NAME (or HOST/fw/NAME) and stop its whole process tree."""
    from ..core import fw as core

    session = session_of(ctx)
    out, _ = out_fmt(session, None)
    removed = core.rm(session, name, timeout if timeout is not None else 120.0)
    out.info(f"removed framework {removed.name} ({removed.mount})")
