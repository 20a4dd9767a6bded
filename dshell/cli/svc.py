"""svc: long-running services (the meta-framework verbs)."""

from __future__ import annotations

from typing import Any

from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options


@click.group()
def svc() -> None:
    """Long-running services: deploy, scale, restart, roll back, wait until healthy.

    Backends without services end these verbs with UNSUPPORTED (10).
    """


@svc.command("ls")
@click.argument("path", required=False)
@output_options()
@click.pass_context
def svc_ls(
    ctx: click.Context, path: str | None, output: str | None, quiet: bool, raw: bool
) -> None:
    """List services of every mount under PATH."""
    from ..core import services
    from ..render.views import SERVICE

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    result = services.ls(session, path)
    out.listing(result.rows, SERVICE, fmt)
    result.finish(out)


@svc.command("status")
@click.argument("name")
@output_options()
@click.pass_context
def svc_status(ctx: click.Context, name: str, output: str | None, quiet: bool, raw: bool) -> None:
    """Show a service: instances, health, version and its current deployment."""
    from ..core import services
    from ..render import Format

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    svc_obj = services.call(session, "status", name)
    out.document(svc_obj, fmt if fmt.name not in (None, "table", "wide", "tsv") else Format("yaml"))


def _simple(verb: str, doc: str, *extra: Any) -> None:
    """A service verb that passes its arguments through to the backend."""

    @click.pass_context
    def cmd(
        ctx: click.Context, name: str, wait: bool, timeout: float | None, **params: Any
    ) -> None:
        from ..core import services
        from ..render import Format, Output

        session = session_of(ctx)
        result = services.call(session, verb, name, wait=wait, timeout=timeout, **params)
        if result is not None:
            Output(session.env).document(result, Format("json"))

    cmd.__doc__ = doc
    for param in extra:
        cmd = param(cmd)
    cmd = click.option("--timeout", type=DURATION, help="Give up waiting after this long.")(cmd)
    cmd = click.option("--wait/--no-wait", default=True, help="Wait for the change to finish.")(cmd)
    cmd = click.argument("name")(cmd)
    svc.command(verb)(cmd)


_simple(
    "scale", "Set the number of instances.", click.argument("instances", type=click.IntRange(min=0))
)
_simple("restart", "Restart every instance, rolling.")
_simple("stop", "Stop every instance; the service stays defined (svc start brings it back).")
_simple("start", "Start a stopped service at its instance count.")
_simple("rm", "Stop a service and forget it.")
_simple("pause", "Pause the running deployment.")
_simple("resume", "Resume a paused deployment.")
_simple("abort", "Abort the running deployment where it is.")
_simple(
    "rollback",
    "Go back to the previous (or --to) version.",
    click.option("--to", "to_version", metavar="VERSION", help="The version to go back to."),
)
_simple("endpoints", "host:port of each instance per named port.")
_simple("versions", "List the versions of a service.")
_simple(
    "logs",
    "Output of every instance, merged (each line prefixed with its instance).",
    click.option("-f", "--follow", is_flag=True, help="Keep following, including new instances."),
)


@svc.command("deploy", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1)
@click.option(
    "-f", "--file", "spec_file", metavar="SPEC", help="Spec file (native, Marathon, Aurora) or -."
)
@click.option("--name", help="Service name (with a command).")
@click.option("--instances", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the plan; launch nothing.")
@click.option("--force", is_flag=True, help="Replace a deployment that is still running.")
@click.option("--wait/--no-wait", default=True, help="Wait for the deployment to finish.")
@click.option("--timeout", type=DURATION, help="Give up waiting after this long.")
@click.pass_context
def svc_deploy(
    ctx: click.Context,
    command: tuple[str, ...],
    spec_file: str | None,
    name: str | None,
    instances: int,
    dry_run: bool,
    force: bool,
    wait: bool,
    timeout: float | None,
) -> None:
    """Deploy (or update) a service from flags `--name N -- CMD` or a spec `-f FILE`."""
    from ..core import services
    from ..errors import UsageError

    session = session_of(ctx)
    if not spec_file and not (name and command):
        raise UsageError("svc deploy: give -f SPEC, or --name NAME -- CMD")
    services.call(
        session,
        "deploy",
        name or "-",
        command=list(command),
        spec_file=spec_file,
        instances=instances,
        dry_run=dry_run,
        force=force,
        wait=wait,
        timeout=timeout,
    )
