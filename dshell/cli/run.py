"""run: launch tasks."""

from __future__ import annotations

import signal as signals
from typing import TYPE_CHECKING

from ..errors import DshellError, ExitCode, TaskExit, UsageError
from ._click import click
from .common import out_fmt, session_of
from .options import parse_kv, spec_options

if TYPE_CHECKING:
    from ..model import Constraint
    from ..session import Session


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1)
@click.option(
    "--shell", "shell_cmd", metavar="STRING", help="Run STRING with /bin/sh -c instead of argv."
)
@click.option("--name", help="Task name (default: the command's basename).")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--mem", default="64", show_default=True, help="Memory limit: MiB, or 512M, 2G.")
@click.option("--disk", default=None, help="Disk: MiB, or 1G.")
@click.option(
    "--env", "-e", "env", multiple=True, metavar="K=V", help="Environment variable (repeatable)."
)
@click.option(
    "--port",
    "ports",
    multiple=True,
    metavar="NAME[=PORT]",
    help="Ask for a host port (any free one, or PORT), exported as PORT0…/PORT_<NAME>.",
)
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--role", help="Resource role (default: your user name).")
@click.option(
    "--tier",
    type=click.Choice(["preemptible", "preferred"]),
    help="Preemption tier (default: preemptible): preferred tasks may take the place of "
    "preemptible ones of a lower --priority when resources are short.",
)
@click.option("--priority", type=int, help="Preemption priority (default 0; higher wins).")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="Label (repeatable).")
@click.option(
    "-C",
    "--constraint",
    "constraints",
    multiple=True,
    metavar="FIELD:OP[:VALUE]",
    help="Placement constraint, Marathon's (repeatable): hostname:UNIQUE, rack:GROUP_BY:3, "
    "rack:MAX_PER:2, rack:LIKE:r[12], rack:IS:r1, rack:CLUSTER.",
)
@click.option(
    "--volume",
    "volumes",
    multiple=True,
    metavar="NAME:PATH[:ro]",
    help="Persistent volume NAME at PATH (relative: in the sandbox); the task runs on the "
    "volume's agent (repeatable). Create one with `mount -t volume`.",
)
@click.option("--idempotency-key", metavar="KEY", help="The same key never launches twice.")
@click.option(
    "--after",
    "after",
    multiple=True,
    metavar="ID",
    help="Start only after task ID succeeded (repeatable; Slurm: --dependency=afterok).",
)
@click.option("--partition", metavar="NAME", help="Partition/queue to run in (Slurm).")
@click.option(
    "--on",
    "on",
    metavar="PATH",
    help="Cluster to run on (default: the current mount, else /local).",
)
@click.option(
    "-f",
    "--file",
    "spec_file",
    metavar="SPEC",
    help="Run the tasks of a spec file (native, Marathon, Aurora, Chronos…) or -.",
)
@spec_options
@click.option("--dry-run", is_flag=True, help="With -f: print what would run; launch nothing.")
@click.option("-d", "--detach", is_flag=True, help="Print the task id(s) and return at once.")
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open (with -t).")
@click.option("-t", "--tty", is_flag=True, help="Give the task a terminal.")
@click.pass_context
def run(
    ctx: click.Context,
    command: tuple[str, ...],
    shell_cmd: str | None,
    name: str | None,
    cpus: float,
    mem: str,
    disk: str | None,
    env: tuple[str, ...],
    ports: tuple[str, ...],
    instances: int,
    role: str | None,
    tier: str | None,
    priority: int | None,
    labels: tuple[str, ...],
    constraints: tuple[str, ...],
    volumes: tuple[str, ...],
    idempotency_key: str | None,
    after: tuple[str, ...],
    partition: str | None,
    on: str | None,
    spec_file: str | None,
    spec_format: str | None,
    binds: tuple[str, ...],
    job_key: str | None,
    dry_run: bool,
    detach: bool,
    interactive: bool,
    tty: bool,
) -> None:
    """Launch a task: `run [OPTIONS] -- CMD [ARGS…]` (argv, no shell) or `--shell 'STRING'`.

    \b
    Attached by default: output streams live and dshell exits with the task's status
    (128+N if it died of signal N). Ctrl-C while attached KILLS the task. If dshell itself
    fails while attached it exits 125; a command that cannot start exits 127 (not found) or
    126 (not executable), as docker run does. With -d the task id is printed and dshell
    returns.
      dshell run -- echo hello
      dshell run -d --name web --port http --instances 3 -- python3 -m http.server
      dshell run -d --instances 3 -C hostname:UNIQUE -- python3 -m http.server
    """
    from ..core import launch
    from ..model import Resources, RunSpec

    session = session_of(ctx)
    if spec_file:
        if command or shell_cmd:
            raise UsageError("run: give -f SPEC or a command, not both")
        if after or partition or tier or priority is not None:
            raise UsageError(
                "run -f: --after, --partition, --tier and --priority go with a command"
            )
        bind = parse_kv(binds, "--bind")
        _run_file(session, spec_file, (spec_format, bind, job_key), on, detach, dry_run)
        return
    if dry_run:
        raise UsageError("run: --dry-run goes with -f SPEC")
    if bool(command) == bool(shell_cmd):
        raise UsageError("run: give a command after -- or --shell 'STRING' (not both)")
    spec = RunSpec(
        command=[shell_cmd] if shell_cmd else list(command),
        shell=bool(shell_cmd),
        name=name,
        resources=Resources(
            cpus=cpus,
            mem=launch.parse_size(mem, "--mem"),
            disk=launch.parse_size(disk, "--disk") if disk else 0.0,
        ),
        env=parse_kv(env, "--env"),
        ports=[p.partition("=")[0] for p in ports],
        port_numbers=_port_numbers(ports),
        instances=instances,
        role=role,
        tier=tier,
        priority=priority,
        labels=parse_kv(labels, "--label"),
        constraints=_constraints(constraints),
        volumes=_volumes(volumes),
        idempotency_key=idempotency_key,
        tty=tty or interactive,
        after=list(after),
        partition=partition,
    )
    session.attached = not detach  # from here on, dshell's own failures exit 125
    mount = launch.launch_mount(session, on)
    out, _ = out_fmt(session, None)
    if spec.tty and not detach:
        from .interactive import run_tty

        raise TaskExit(run_tty(session, mount, spec))
    backend, tasks = launch.submit(session, mount, spec)
    if detach:
        for t in tasks:
            out.write(t.id + "\n")
        out.flush()
        return
    raise TaskExit(follow(session, backend, tasks))


def _run_file(
    session: Session,
    spec_file: str,
    how: tuple[str | None, dict[str, str], str | None],
    on: str | None,
    detach: bool,
    dry_run: bool,
) -> None:
    """``run -f``: every service and job of a spec file as plain tasks (one submission each;
    checks, deployments and schedules are what `svc deploy` and the job verbs are for)."""
    from ..core import launch
    from ..specs import load_file
    from ..specs.runspecs import to_runspecs

    fmt, bind, job_key = how
    loaded = load_file(spec_file, fmt=fmt, bind=bind, job_key=job_key, stdin=session.env.stdin)
    out, _ = out_fmt(session, None)
    for warning in loaded.warnings:
        out.warn(warning)
    runs, notes = to_runspecs(loaded, spec_file)
    for note in notes:
        out.warn(note)
    if dry_run:
        from ..specs.export import dump_toml

        out.write(dump_toml(loaded))
        for run in runs:
            out.info(
                f"would run {run.instances} x {run.name}: "
                + (run.command[0] if run.shell else " ".join(run.command))
            )
        return
    session.attached = not detach and len(runs) == 1 and runs[0].instances == 1
    mount = launch.launch_mount(session, on)
    submitted = [launch.submit(session, mount, run) for run in runs]
    if session.attached:
        backend, tasks = submitted[0]
        raise TaskExit(follow(session, backend, tasks))
    for _backend, tasks in submitted:
        for t in tasks:
            out.write(t.id + "\n")
    out.flush()


def _port_numbers(ports: tuple[str, ...]) -> list[int]:
    """``--port NAME=HOSTPORT`` asks for that host port (Marathon's requirePorts)."""
    numbers = []
    for p in ports:
        _name, eq, number = p.partition("=")
        if eq and not (number.isdigit() and 0 < int(number) < 65536):
            raise UsageError(f"run: --port {p!r}: the host port must be 1..65535")
        numbers.append(int(number) if eq else 0)
    return numbers if any(numbers) else []


def _volumes(texts: tuple[str, ...]) -> list[str]:
    from ..volumes import parse_ref

    return [str(parse_ref(t)) for t in texts]


def _constraints(texts: tuple[str, ...]) -> list[Constraint]:
    """Each -C parsed and validated here, so a bad one exits USAGE before anything is sent."""
    if not texts:
        return []
    from ..constraints import parse_constraint

    try:
        return [parse_constraint(t) for t in texts]
    except UsageError as exc:
        raise UsageError(f"run: --constraint: {exc.message}") from None


def _no_status(out, task, mount: str) -> int:  # type: ignore[no-untyped-def]
    """A task that ended without a status of its own (it never started, or was lost): say
    why, and exit as ``docker run`` does: 127 command not found, 126 not executable, else 125."""
    why = ": ".join(x for x in (task.reason, task.message) if x) or "no exit status"
    out.error(f"{task.mount or mount}/tasks/{task.id} {task.state}: {why}")
    text = (task.message or "").lower()
    if "no such file or directory" in text:
        return 127
    if "permission denied" in text or "exec format error" in text:
        return 126
    return int(ExitCode.DSHELL_FAILED)


def follow(session, backend, tasks) -> int:  # type: ignore[no-untyped-def]
    """Stream each task's output, then return the highest status (as srun does)."""
    from ..core import launch
    from ..errors import status_from_wait
    from ..render import Output

    out = Output(session.env)
    try:
        statuses = []
        for task in tasks:
            for chunk in launch.attach(backend, task):
                out.raw_bytes(chunk.data, stderr=chunk.stream == "stderr")
            final = backend.wait_task(task.id)
            if final.exit_code is None and not final.signal:
                statuses.append(_no_status(out, final, task.mount))
            else:
                statuses.append(status_from_wait(final.exit_code, final.signal))
        return max(statuses) if statuses else 0
    except KeyboardInterrupt:
        for task in tasks:
            try:
                backend.kill(task.id)
            except DshellError as exc:
                out.error(f"could not kill {task.id}: {exc.message}")
        out.error(f"interrupted: killed {', '.join(t.id for t in tasks)}")
        return 128 + int(signals.SIGINT)
