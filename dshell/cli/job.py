"""job: batch jobs — retries, schedules (cron, ISO 8601) and pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ._click import click
from .common import out_fmt, session_of
from .options import DURATION, output_options, parse_kv, spec_options

if TYPE_CHECKING:
    from ..model import Job
    from ..render import Output
    from ..specs.model import BatchJobSpec


@click.group()
def job() -> None:
    """Batch jobs: run now, on cron or ISO 8601 schedules, or after other jobs (pipelines).

    \b
    Each run is an ordinary task (see `ps`, its sandbox under /local/tasks/). Failed runs
    are retried with backoff; runs that outlive --timeout are killed (TIMED_OUT). Backends
    without batch jobs end these verbs with UNSUPPORTED (10); an unknown job is NOT_FOUND (4).
      dshell job create --name nightly --schedule '0 3 * * *' --tz Europe/Paris -- ./backup.sh
      dshell job create --name report --after nightly --retries 2 -- ./report.sh
      dshell job create -f jobs.toml
      dshell job show nightly
    """


def _schedule(expr: str, tz: str, deadline: float | None, policy: str) -> Any:
    from ..specs.model import ScheduleSpec
    from ..specs.schedule import cron_error, iso8601_error, timezone_error

    iso = expr.startswith("R")
    why = iso8601_error(expr) if iso else cron_error(expr)
    if why is not None:
        raise UsageError(f"job create: --schedule {expr!r}: {why}")
    if why := timezone_error(tz):
        raise UsageError(f"job create: --tz: {why}")
    return ScheduleSpec(
        id="default",
        cron=None if iso else expr,
        iso8601=expr if iso else None,
        timezone=tz,
        starting_deadline=deadline,
        concurrency_policy=policy.upper(),
    )


def _from_flags(name: str, command: tuple[str, ...], opts: dict[str, Any]) -> BatchJobSpec:
    from ..specs.model import BackoffSpec, BatchJobSpec, ResourceSpec

    schedules = [
        _schedule(expr, opts["tz"], opts["deadline"], opts["concurrency"])
        for expr in opts["schedules"]
    ]
    for i, sched in enumerate(schedules[1:], start=1):
        sched.id = f"s{i}"
    backoff = BackoffSpec()
    if opts["backoff"] is not None:
        backoff = BackoffSpec(seconds=opts["backoff"], factor=2.0)
    return BatchJobSpec(
        name=name,
        command=[" ".join(command)] if opts["use_shell"] else list(command),
        shell=opts["use_shell"],
        resources=ResourceSpec(cpus=opts["cpus"], mem=opts["mem"]),
        env=parse_kv(opts["env"], "--env"),
        schedules=schedules,
        retries=opts["retries"],
        retry_backoff=backoff,
        timeout=opts["timeout"],
        after=list(opts["after"]),
        kill_grace_period=opts["grace"],
    )


@job.command("create", context_settings={"allow_interspersed_args": False})
@click.argument("command", nargs=-1)
@click.option(
    "-f",
    "--file",
    "spec_file",
    metavar="SPEC",
    help="Native, Chronos, Metronome or Aurora job file, or -.",
)
@spec_options
@click.option("--name", help="Job name (with a command).")
@click.option(
    "--schedule",
    "schedules",
    multiple=True,
    metavar="CRON|ISO8601",
    help="'*/5 * * * *' or 'R5/2026-12-01T00:00:00Z/PT1H' (repeatable).",
)
@click.option("--tz", default="UTC", show_default=True, help="Time zone of the schedules.")
@click.option("--deadline", type=DURATION, help="Starting deadline: skip a run later than this.")
@click.option(
    "--concurrency",
    type=click.Choice(["allow", "forbid", "replace"], case_sensitive=False),
    default="allow",
    show_default=True,
    help="When a run is due while another is still going.",
)
@click.option(
    "--after",
    multiple=True,
    metavar="JOB",
    help="Run after this job succeeds (repeatable: after each of them).",
)
@click.option(
    "--retries",
    type=click.IntRange(min=-1),
    default=0,
    show_default=True,
    help="Retries of a failed run (-1: until it succeeds).",
)
@click.option("--backoff", type=DURATION, help="First retry delay (doubles each time).")
@click.option("--timeout", type=DURATION, help="Kill a run that takes longer (TIMED_OUT).")
@click.option("--grace", type=DURATION, help="Kill grace period (SIGTERM to SIGKILL).")
@click.option("--cpus", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option(
    "--mem", type=click.FloatRange(min=0, min_open=True), default=64, show_default=True, help="MiB."
)
@click.option("--env", "-e", "env", multiple=True, metavar="K=V", help="Environment (repeatable).")
@click.option("--shell", "use_shell", is_flag=True, help="Run the command with /bin/sh -c.")
@click.option("--replace", is_flag=True, help="Replace jobs that exist (their runs are kept).")
@click.option("--on", metavar="PATH", help="Cluster (default: the current mount, else /local).")
@output_options()
@click.pass_context
def job_create(
    ctx: click.Context,
    command: tuple[str, ...],
    spec_file: str | None,
    spec_format: str | None,
    binds: tuple[str, ...],
    job_key: str | None,
    name: str | None,
    replace: bool,
    on: str | None,
    output: str | None,
    quiet: bool,
    raw: bool,
    **opts: Any,
) -> None:
    """Create jobs from a spec `-f FILE` or from flags `--name N [...] -- CMD`.

    \b
    Every job of a file is validated (spec, schedules, parents, cycles, resources) before
    any is stored.
      dshell job create --name tick --schedule '*/5 * * * *' --deadline 30s -- date
      dshell job create -f chronos.json
    """
    from ..core import jobs
    from ..render.views import JOB

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    if spec_file and (command or name):
        raise UsageError("job create: give -f SPEC, or --name NAME -- CMD (not both)")
    if spec_file:
        bind = parse_kv(binds, "--bind")
        loaded = jobs.load_jobs(spec_file, spec_format, bind, job_key, session.env.stdin)
        for warning in loaded.warnings:
            out.warn(warning)
        specs = list(loaded.jobs)
    elif name and command:
        specs = [_from_flags(name, command, opts)]
    else:
        raise UsageError("job create: give -f SPEC, or --name NAME -- CMD")
    created = jobs.create(session, on, specs, replace=replace)
    if output or quiet:
        out.listing(created, JOB, fmt)
    else:
        for j in created:
            out.info(
                f"created job {j.name}" + (f", next run {j.next_runs[0]}" if j.next_runs else "")
            )


@job.command("ls")
@click.argument("path", required=False)
@output_options()
@click.pass_context
def job_ls(
    ctx: click.Context, path: str | None, output: str | None, quiet: bool, raw: bool
) -> None:
    """List the jobs of every mount under PATH."""
    from ..core import jobs
    from ..render.views import JOB

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    result = jobs.ls(session, path)
    out.listing(result.rows, JOB, fmt)
    result.finish(out)


def _show_detail(out: Output, found: Job) -> None:
    rows = [
        ("name", found.name),
        ("state", found.state),
        ("command", " ".join(found.command)),
        ("schedule", "; ".join(found.schedules) or "-"),
        ("policy", found.concurrency_policy),
        ("deadline", "-" if found.starting_deadline is None else f"{found.starting_deadline:g}s"),
        ("after", ", ".join(found.parents) or "-"),
        ("retries", str(found.retries)),
        ("timeout", "-" if found.timeout is None else f"{found.timeout:g}s"),
        ("next runs", ", ".join(found.next_runs) or "-"),
        ("last success", found.last_success or "-"),
        ("last failure", found.last_failure or "-"),
        ("successes", str(found.success_count)),
        ("errors", str(found.error_count)),
    ]
    out.write("".join(f"{k + ':':<14}{v}\n" for k, v in rows))


@job.command("show")
@click.argument("name")
@output_options()
@click.pass_context
def job_show(ctx: click.Context, name: str, output: str | None, quiet: bool, raw: bool) -> None:
    """A job: schedule, next runs, last success/failure, counts and its recent runs."""
    from ..core import jobs
    from ..render.views import JOB, JOB_RUN

    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    found = jobs.call(session, "show", name)
    if fmt.name not in (None, "table", "wide", "tsv") or fmt.quiet:
        out.document(found, fmt)
        return
    if fmt.name == "tsv" or (fmt.name is None and not session.env.stdout_isatty):
        out.listing([found], JOB, fmt)
    else:
        _show_detail(out, found)
    out.write("\n")
    out.listing(found.runs, JOB_RUN, fmt)


def _verb(verb: str, doc: str, view: str, *extra: Any) -> None:
    """A job verb that prints what the backend answers (-o for the format)."""

    @click.pass_context
    def cmd(
        ctx: click.Context, name: str, output: str | None, quiet: bool, raw: bool, **params: Any
    ) -> None:
        from ..core import jobs
        from ..render import views

        session = session_of(ctx)
        out, fmt = out_fmt(session, output, quiet, raw)
        result = jobs.call(session, verb, name, **params)
        rows = result if isinstance(result, list) else [result]
        if verb in ("run", "kill") and not output:
            fmt = out_fmt(session, None, True)[1]  # ids: what scripts use next
        if output or quiet or verb in ("run", "kill", "history"):
            out.listing(rows, getattr(views, view), fmt)
        else:
            out.info(f"job {name}: {verb} done ({rows[0].state})" if rows else f"{verb} done")

    cmd.__doc__ = doc
    for param in extra:
        cmd = param(cmd)
    cmd = output_options()(cmd)
    cmd = click.argument("name")(cmd)
    job.command(verb)(cmd)


_verb("run", "Start a run now (prints JOB/RUN).", "JOB_RUN")
_verb(
    "kill",
    "Kill the active runs of a job, or only RUN (no retry follows).",
    "JOB_RUN",
    click.argument("run", type=int, required=False),
)
_verb("rm", "Kill a job's active runs and forget the job and its history.", "JOB")
_verb(
    "history",
    "The runs of a job, oldest first: state, cause, duration, attempts, exit code.",
    "JOB_RUN",
    click.option("--limit", type=click.IntRange(min=0), help="Only the newest N runs."),
)
_verb("pause", "Stop scheduling a job (due times pass without runs).", "JOB")
_verb("resume", "Schedule a paused job again (from now on: no catch-up).", "JOB")


@job.command("graph")
@click.argument("path", required=False)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["text", "dot", "json"]),
    default="text",
    show_default=True,
    help="Text tree, Graphviz DOT or JSON.",
)
@click.option("-q", "--quiet", is_flag=True, help="Job names only, parents before children.")
@click.pass_context
def job_graph(ctx: click.Context, path: str | None, output: str, quiet: bool) -> None:
    """The dependency graph of the jobs under PATH (`-o dot | dot -Tsvg > jobs.svg`)."""
    import json

    from .. import jobgraph
    from ..core import jobs

    session = session_of(ctx)
    out, _fmt = out_fmt(session, None)
    result = jobs.ls(session, path)
    parents = {j.name: list(j.parents) for j in result.rows}
    if quiet:
        depth = jobgraph.depth_of(parents)
        out.write("".join(f"{n}\n" for n in sorted(parents, key=lambda n: (depth[n], n))))
    elif output == "dot":
        out.write(jobgraph.as_dot(parents, {j.name: j.state for j in result.rows}))
    elif output == "json":
        out.write(json.dumps([{"job": n, "after": p} for n, p in parents.items()], indent=2) + "\n")
    else:
        out.write(jobgraph.as_text(parents))
    out.flush()
    result.finish(out)
