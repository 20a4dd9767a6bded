"""svc: long-running services (the meta-framework verbs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options, parse_kv, spec_options

if TYPE_CHECKING:
    from ..backend import Backend
    from ..model import Service
    from ..session import Session


@click.group()
def svc() -> None:
    """Long-running services: deploy, scale, restart, roll back, wait until healthy.

    \b
    Mutating verbs wait for the change by default (--no-wait returns at once) and exit
    0 when it succeeded, 1 when the deployment failed or was aborted, 9 when --timeout
    passed first. Backends without services end these verbs with UNSUPPORTED (10).
      dshell svc deploy -f web.toml
      dshell svc deploy --name web --port http --instances 3 -- python3 -m http.server $PORT0
      dshell svc status web
    """


def _wait_options(fn: Any) -> Any:
    fn = click.option("--timeout", type=DURATION, help="Give up waiting after this long (exit 9).")(
        fn
    )
    return click.option("--wait/--no-wait", default=True, help="Wait for the change to finish.")(fn)


class _Display:
    """A rich progress bar per service while a deployment runs (TTY only, on stderr)."""

    def __init__(self, session: Session) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=session.env.stderr, no_color=not session.env.use_color(True))
        self.progress = Progress(
            TextColumn("{task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def __call__(self, svc: Service) -> None:
        dep = svc.deployment
        text = f"{svc.running} running"
        if dep is not None:
            text = f"{dep.cause} {dep.from_version or '-'}→{dep.version} {dep.state.lower()}"
            text += f", {dep.failures} failed" if dep.failures else ""
        if svc.message:
            text += f" ({svc.message})"
        if svc.name not in self.tasks:
            self.tasks[svc.name] = self.progress.add_task(text, name=svc.name, total=None)
        self.progress.update(
            self.tasks[svc.name], description=text, completed=svc.healthy, total=svc.instances
        )

    def stop(self) -> None:
        self.progress.stop()


def _progress(session: Session) -> _Display | None:
    """The progress display on a TTY, else None (plain blocking waits)."""
    return _Display(session) if session.env.stderr_isatty else None


def _finish(
    session: Session,
    backend: Backend,
    name: str,
    until: str,
    timeout: float | None,
    deployment: str | None = None,
) -> None:
    """Wait for ``until``; then exit non-zero if ``deployment`` did not succeed."""
    from ..core import services

    progress = _progress(session)
    try:
        services.wait_until(backend, name, until, timeout, progress)
    finally:
        if progress is not None:
            progress.stop()
    if until == "deployed":
        services.check_outcome(services.deployment_outcome(backend, name, deployment))


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
    """A service: state, version, deployment and each instance (agent, ports, health)."""
    from ..core import services
    from ..render.views import SERVICE, SERVICE_MEMBER

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    found = services.call(session, "status", name)
    if fmt.name not in (None, "table", "wide", "tsv") or fmt.quiet:
        out.document(found, fmt)
        return
    out.listing([found], SERVICE, fmt)
    dep = found.deployment
    if dep is not None:
        out.info(
            f"deployment {dep.id}: {dep.cause} {dep.from_version or '-'} -> {dep.version}, "
            f"{dep.state}, {dep.step}/{dep.total_steps} ready, {dep.failures} failed"
        )
    if found.message:
        out.info(found.message)
    out.write("\n")
    out.listing(found.members, SERVICE_MEMBER, fmt)


def _simple(verb: str, doc: str, *extra: Any, wait: bool = True) -> None:
    """A service verb: the backend does it, then (with --wait) dshell waits for the result."""

    @click.pass_context
    def cmd(ctx: click.Context, name: str, **params: Any) -> None:
        from ..core import services
        from ..render.views import SERVICE

        session = session_of(ctx)
        waiting = params.pop("wait", False)
        timeout = params.pop("timeout", None)
        output, quiet, raw = params.pop("output"), params.pop("quiet"), params.pop("raw")
        _mount, backend, svc_name = services.locate(session, name)
        result = services.call(session, verb, name, **params)
        if output or quiet:
            out, fmt = out_fmt(session, output, quiet, raw)
            out.listing(result if isinstance(result, list) else [result], SERVICE, fmt)
        until = services.WAIT_FOR.get(verb)
        if waiting and until:
            dep_id = None
            if until == "deployed" and getattr(result, "deployment", None) is not None:
                dep_id = result.deployment.id
            _finish(session, backend, svc_name, until, timeout, dep_id)

    cmd.__doc__ = doc
    for param in extra:
        cmd = param(cmd)
    cmd = output_options()(cmd)  # prints the service(s) after the change when given
    if wait:
        cmd = _wait_options(cmd)
    cmd = click.argument("name")(cmd)
    svc.command(verb.replace("_", "-"))(cmd)


_simple(
    "scale",
    "Set the number of instances (a rolling change within the upgrade strategy).",
    click.argument("instances", type=click.IntRange(min=0)),
)
_simple("restart", "Restart every instance, rolling (a new version of the same config).")
_simple("stop", "Stop every instance (dependants first); `svc start` brings them back.")
_simple("start", "Start a stopped service at its instance count.")
_simple("rm", "Stop a service (or every service of a group) and forget it.")
_simple("pause", "Pause the running deployment where it is.", wait=False)
_simple("resume", "Resume a paused deployment.")
_simple("abort", "Abort the running deployment, leaving the instances as they are.", wait=False)
_simple(
    "rollback",
    "Go back to the previous version (or --to VERSION), rolling.",
    click.option("--to", "to_version", metavar="VERSION", help="The version to go back to."),
)


def _listing(verb: str, view: str, doc: str) -> None:
    """A service verb that lists what the backend answers (in every output format)."""

    @click.pass_context
    def cmd(ctx: click.Context, name: str, output: str | None, quiet: bool, raw: bool) -> None:
        from ..core import services
        from ..render import views

        session = session_of(ctx)
        out, fmt = out_fmt(session, output, quiet, raw)
        out.listing(services.call(session, verb, name), getattr(views, view), fmt)

    cmd.__doc__ = doc
    svc.command(verb)(click.argument("name")(output_options()(cmd)))


_listing("versions", "SERVICE_VERSION", "The versions of a service's configuration (current: *).")
_listing("deployments", "DEPLOYMENT", "The recent deployments of a service, the running one last.")
_listing(
    "endpoints",
    "ENDPOINT",
    "host:port of each running instance per named port (-q: one address per line).",
)


@svc.command("wait")
@click.argument("name")
@click.option(
    "--healthy",
    "until",
    flag_value="healthy",
    default=True,
    help="Until every instance is ready (default).",
)
@click.option("--deployed", "until", flag_value="deployed", help="Until no deployment runs.")
@click.option("--stopped", "until", flag_value="stopped", help="Until no instance is left.")
@click.option("--timeout", type=DURATION, help="Give up after this long (exit 9).")
@click.pass_context
def svc_wait(ctx: click.Context, name: str, until: str, timeout: float | None) -> None:
    """Wait until a service is healthy (or deployed, or stopped)."""
    from ..core import services

    session = session_of(ctx)
    _mount, backend, svc_name = services.locate(session, name)
    _finish(session, backend, svc_name, until, timeout)


@svc.command("show")
@click.argument("name")
@click.option(
    "-o",
    "--format",
    "fmt_name",
    type=click.Choice(["native", "toml", "json", "yaml", "marathon"]),
    default="native",
    show_default=True,
    help="The spec format to print (json and yaml: the native spec's fields).",
)
@click.option("--version", "version", metavar="VERSION", help="An older version's spec.")
@click.pass_context
def svc_show(ctx: click.Context, name: str, fmt_name: str, version: str | None) -> None:
    """Print a service's spec (a file `svc deploy -f` takes back)."""
    from ..core import services

    session = session_of(ctx)
    spec = services.call(session, "spec", name, version=version)
    session.env.stdout.write(_export(spec, fmt_name))


def _export(spec: Any, fmt_name: str) -> str:
    import json

    from ..specs import export

    if fmt_name in ("native", "toml"):
        return export.dump_toml(spec)
    if fmt_name == "marathon":
        return json.dumps(export.to_marathon(spec), indent=2) + "\n"
    data = export.to_native(spec)
    if fmt_name == "yaml":
        import yaml

        return str(yaml.safe_dump(data, sort_keys=False))
    return json.dumps(data, indent=2) + "\n"


@svc.command("diff")
@click.argument("name")
@click.option("-f", "--file", "spec_file", required=True, metavar="SPEC", help="Spec file or -.")
@spec_options
@click.pass_context
def svc_diff(
    ctx: click.Context,
    name: str,
    spec_file: str,
    spec_format: str | None,
    binds: tuple[str, ...],
    job_key: str | None,
) -> None:
    """Compare a spec file with the deployed service: exit 0 same, 1 different, 2 error."""
    import difflib

    from ..core import services
    from ..errors import TaskExit, UsageError

    session = session_of(ctx)
    bind = parse_kv(binds, "--bind")
    loaded = services.load_specs(spec_file, spec_format, bind, job_key, session.env.stdin)
    wanted = [s for s in loaded.all_services() if s.name.strip("/") == name.strip("/")]
    if not wanted:
        raise UsageError(f"{spec_file}: no service named {name!r} in this file")
    current = services.call(session, "spec", name)
    old = _export(current, "native").splitlines(keepends=True)
    new = _export(wanted[0], "native").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, f"{name} (deployed)", spec_file))
    session.env.stdout.write("".join(lines))
    if lines:
        raise TaskExit(1)


@svc.command("logs")
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep following, including new instances.")
@click.option("--stderr", "stream", flag_value="stderr", help="Show stderr instead of stdout.")
@click.option("--stdout", "stream", flag_value="stdout", default=True, hidden=True)
@click.pass_context
def svc_logs(ctx: click.Context, name: str, follow: bool, stream: str) -> None:
    """Output of every instance, merged, each line prefixed with its instance."""
    from ..core import svclogs

    session = session_of(ctx)
    svclogs.logs(session, name, follow=follow, stream=stream)


@svc.command("deploy", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1)
@click.option(
    "-f", "--file", "spec_file", metavar="SPEC", help="Spec file (native, Marathon, Aurora) or -."
)
@spec_options
@click.option("--name", help="Service name (with a command).")
@click.option("--instances", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option(
    "--mem", type=click.FloatRange(min=0, min_open=True), default=64, show_default=True, help="MiB."
)
@click.option(
    "--port", "ports", multiple=True, metavar="NAME", help="A named host port (repeatable)."
)
@click.option("--env", "-e", "env", multiple=True, metavar="K=V", help="Environment (repeatable).")
@click.option("--shell", "use_shell", is_flag=True, help="Run the command with /bin/sh -c.")
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    metavar="PATH:SIZE",
    help="A persistent volume per instance at PATH in its sandbox, e.g. data:128M (repeatable; "
    "instances relaunch on their volume's agent; `svc rm` destroys the volumes).",
)
@click.option(
    "--tier",
    type=click.Choice(["preferred", "preemptible"]),
    help="Preemption tier of the instances (default: preferred).",
)
@click.option("--priority", type=int, help="Preemption priority (default 0; higher wins).")
@click.option(
    "--on", metavar="PATH", help="Cluster to deploy on (default: current mount, else /local)."
)
@click.option("--dry-run", is_flag=True, help="Print the plan (and placement); launch nothing.")
@click.option("--force", is_flag=True, help="Replace a deployment that is still running.")
@click.option("--rollback-on-failure", is_flag=True, help="Roll back if the new version fails.")
@output_options()
@_wait_options
@click.pass_context
def svc_deploy(
    ctx: click.Context,
    command: tuple[str, ...],
    spec_file: str | None,
    spec_format: str | None,
    binds: tuple[str, ...],
    job_key: str | None,
    name: str | None,
    instances: int,
    cpus: float,
    mem: float,
    ports: tuple[str, ...],
    env: tuple[str, ...],
    use_shell: bool,
    volumes: tuple[str, ...],
    tier: str | None,
    priority: int | None,
    on: str | None,
    dry_run: bool,
    force: bool,
    rollback_on_failure: bool,
    output: str | None,
    quiet: bool,
    raw: bool,
    wait: bool,
    timeout: float | None,
) -> None:
    """Deploy (or update) services from a spec `-f FILE` or from flags `--name N -- CMD`.

    \b
    Everything is validated before anything launches; --dry-run prints the plan.
      dshell svc deploy -f shop.toml --dry-run
      dshell svc deploy --name web --port http -- python3 -m http.server $PORT0
    """
    from ..core import services
    from ..errors import UsageError
    from ..render.views import PLAN

    session = session_of(ctx)
    if spec_file and (command or name):
        raise UsageError("svc deploy: give -f SPEC, or --name NAME -- CMD (not both)")
    if spec_file and volumes:
        raise UsageError("svc deploy: --volume goes with --name NAME -- CMD (a spec has volumes)")
    if spec_file and (tier is not None or priority is not None):
        raise UsageError("svc deploy: --tier/--priority go with --name NAME -- CMD, not -f")
    out, fmt = out_fmt(session, output, quiet, raw)
    if spec_file:
        bind = parse_kv(binds, "--bind")
        loaded = services.load_specs(spec_file, spec_format, bind, job_key, session.env.stdin)
        for warning in loaded.warnings:
            out.warn(warning)
        svcs, groups = list(loaded.services), list(loaded.groups)
    elif name and command:
        svc = _from_flags(name, command, instances, cpus, mem, ports, env, use_shell)
        svcs, groups = [_with_volumes(svc, volumes)], []
        if tier is not None or priority is not None:  # a spec file says them itself
            import msgspec

            tiered = msgspec.structs.replace(svcs[0], tier=tier, priority=priority or 0)
            svcs = [tiered]
    else:
        raise UsageError("svc deploy: give -f SPEC, or --name NAME -- CMD")
    _mount, backend, plan = services.deploy(
        session,
        on,
        svcs,
        groups,
        force=force,
        dry_run=dry_run,
        rollback_on_failure=rollback_on_failure,
    )
    if dry_run:
        _show_dry_run(out, fmt, plan, [*svcs, *groups])
        return
    if output or not wait:
        out.listing(plan, PLAN, fmt)
    if not wait:
        return
    for item in plan:
        if item.deployment:
            _finish(session, backend, item.service, "deployed", timeout, item.deployment)


def _show_dry_run(out: Any, fmt: Any, plan: list[Any], specs: list[Any]) -> None:
    """The normalized spec and the plan: TOML then the plan table for people; in json/yaml
    each plan item carries its service's normalized spec."""
    import msgspec

    from ..render.views import PLAN
    from ..specs.model import GroupSpec

    services = {}
    for spec in specs:
        for svc in spec.all_services() if isinstance(spec, GroupSpec) else [spec]:
            services[svc.name.strip("/")] = svc
    if fmt.name in (None, "table", "wide") and not fmt.quiet:
        from ..specs.export import dump_toml

        for spec in specs:
            out.write(dump_toml(spec))
        out.write("\n")
    else:
        for item in plan:
            svc = services.get(item.service)
            item.spec = msgspec.to_builtins(svc) if svc is not None else None
    out.listing(plan, PLAN, fmt)


def _with_volumes(svc: Any, volumes: tuple[str, ...]) -> Any:
    """``--volume PATH:SIZE``: Marathon's resident app (per-instance persistent volumes, its
    upgrade strategy defaults: minimumHealthCapacity 0.5, maximumOverCapacity 0)."""
    if not volumes:
        return svc
    import msgspec

    from ..specs.model import UpgradeStrategySpec, VolumeSpec
    from ..volumes import parse_service_volume

    vols = []
    for text in volumes:
        path, size = parse_service_volume(text)
        vols.append(VolumeSpec(container_path=path, size=size))
    upgrade = UpgradeStrategySpec(minimum_health_capacity=0.5, maximum_over_capacity=0.0)
    return msgspec.structs.replace(svc, volumes=vols, upgrade_strategy=upgrade)


def _from_flags(
    name: str,
    command: tuple[str, ...],
    instances: int,
    cpus: float,
    mem: float,
    ports: tuple[str, ...],
    env: tuple[str, ...],
    use_shell: bool,
) -> Any:
    from ..specs.model import PortSpec, ResourceSpec, ServiceSpec

    return ServiceSpec(
        name=name,
        command=[" ".join(command)] if use_shell else list(command),
        shell=use_shell,
        instances=instances,
        resources=ResourceSpec(cpus=cpus, mem=mem),
        ports=[PortSpec(name=p) for p in ports],
        env=parse_kv(env, "--env"),
    )
