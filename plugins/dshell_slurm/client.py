"""Slurm's client commands, one method each, with failures mapped to dshell errors.

Every call is an argv list run by a :class:`~dshell_slurm.runner.Runner` (here, or on a login
node over SSH). Slurm's own error text is kept in the messages: NotFoundError for unknown jobs
and nodes, UnreachableError when the controller does not answer, BackendError otherwise.
"""

from __future__ import annotations

import signal as signals
from typing import Any

from dshell.backend import Mount, Prefetched
from dshell.errors import BackendError, DshellError, NotFoundError, UsageError

from . import columns, decode
from .early import (
    LISTING_ENV,
    client_env,
    columns_listing,
    is_local,
    listing_argv,
    squeue_argv,
)
from .parse import errors_of, text
from .parse_nodes import SSTAT_FORMAT, parse_sstat
from .runner import Runner, failure, make_runner
from .submit import parse_sbatch

SSTAT_BATCH = 200  # job ids per sstat call


class SlurmClient:
    """The commands one mount runs; the connection (SSH) is opened on first use."""

    def __init__(self, mount: Mount, timeout: float) -> None:
        self.mount = mount
        self.timeout = timeout
        self._runner: Runner | None = None
        self._accounting: bool | None = None

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            opts = self.mount.options
            self._runner = make_runner(
                self.mount.source,
                env=client_env(opts),
                timeout=self.timeout,
                known_hosts=opts.get("known_hosts"),
                identity=opts.get("identity"),
            )
        return self._runner

    def adopt(self, started: Prefetched) -> None:
        """A listing started early (:mod:`dshell_slurm.early`): local mounts collect it in
        their next identical call; an ssh:// mount never starts one, and is not connected
        here just to refuse it."""
        if is_local(self.mount.source):
            self.runner.adopt(started)
        else:
            started.close()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    # ---- running ---------------------------------------------------------------------------

    def call(
        self, argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> bytes:
        """stdout of a Slurm command, or the dshell error carrying Slurm's message."""
        done = self.runner.run(argv, stdin=stdin, env=env)
        if done.returncode != 0:
            raise failure(argv, done, self.runner.where)
        return done.stdout

    def run(self, argv: list[str], *, stdin: bytes | None = None) -> str:
        return self.call(argv, stdin=stdin).decode("utf-8", "replace")

    def json(self, argv: list[str], *, slim: bool = False) -> dict[str, Any]:
        """A tool's ``--json`` document (``slim``: only the job fields the parsers read)."""
        out = self.call(argv)
        try:
            doc = decode.jobs(out) if slim else decode.document(out)
        except ValueError as exc:
            raise BackendError(f"{argv[0]} printed invalid JSON: {exc}") from exc
        errors = errors_of(doc)
        if errors and not doc.get("jobs") and not doc.get("nodes"):
            raise BackendError(f"{argv[0]}: {'; '.join(errors)}")
        return doc

    # ---- commands --------------------------------------------------------------------------

    def _mine(self, job: dict[str, Any]) -> bool:
        """The mount's partition/account/user filters (squeue 22.05 --json ignores its own)."""
        opts = self.mount.options
        if opts.get("partition") and opts["partition"] not in text(job.get("partition")).split(","):
            return False
        if opts.get("account") and text(job.get("account")) != opts["account"]:
            return False
        return not (opts.get("user") and text(job.get("user_name")) != opts["user"])

    def jobs(self, job_ids: list[str] | None = None, *, raw: bool = False) -> list[dict[str, Any]]:
        """Job records of this mount, shaped as ``squeue --json`` prints them: from the
        listing's columns (:mod:`dshell_slurm.columns`), or ``--json`` itself for ``raw``
        (every field, for ``--raw`` and ``inspect``) and when the columns are ambiguous."""
        columns_wanted = not raw and columns_listing(self.mount.options)
        found = self._listed(job_ids) if columns_wanted else None
        if found is None:
            doc = self.json(squeue_argv(self.mount.options, job_ids), slim=not raw)
            found = doc.get("jobs") or []
        return [j for j in found if isinstance(j, dict) and self._mine(j)]

    def _listed(self, job_ids: list[str] | None) -> list[dict[str, Any]] | None:
        """The listing's records; None when they cannot be trusted (a value held the
        separator or a newline) or this squeue does not know a column (then ``--json``)."""
        argv = listing_argv(self.mount.options, job_ids)
        done = self.runner.run(argv, env=LISTING_ENV)
        if done.returncode != 0:
            if b"format specification" in done.stderr:  # an older squeue lacks a column
                return None
            raise failure(argv, done, self.runner.where)
        jobs = columns.parse(done.stdout)
        if jobs is not None and (ids := columns.described(jobs)):
            try:  # only the jobs whose Reason column was a description
                full = self.json(squeue_argv(self.mount.options, ids), slim=True)
            except DshellError:  # ended meanwhile: they keep what the listing said
                full = {}
            columns.describe(jobs, full.get("jobs") or [])
        return jobs

    # ---- accounting (slurmdbd) ---------------------------------------------------------------

    def accounting(self) -> bool:
        """Whether the cluster keeps accounting (asked once per mount and process)."""
        if self._accounting is None:
            from .parse_acct import accounting_enabled  # not on the hot path of ps

            try:
                config = self.run(["scontrol", "show", "config"])
            except DshellError:
                return False  # the listing that needs it reports the cluster's state
            self._accounting = accounting_enabled(config)
        return self._accounting

    def sacct(
        self, job_ids: list[str] | None = None, *, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Finished (and other) jobs from ``sacct --json``, in the squeue job shape.

        ``job_ids`` looks those up whatever their age; else the jobs of the last ``since``
        seconds (sacct's own default window is today). Exit codes that Slurm 22.05's JSON
        loses are recovered from sacct's text format.
        """
        from .parse_acct import (
            EXIT_FORMAT,
            fix_exit_codes,
            needs_exit_codes,
            parse_exit_codes,
            sacct_jobs,
        )

        opts = self.mount.options
        argv = ["sacct", "--json"]
        argv.append(f"--user={opts['user']}" if opts.get("user") else "--allusers")
        if opts.get("partition"):
            argv.append(f"--partition={opts['partition']}")
        if opts.get("account"):
            argv.append(f"--accounts={opts['account']}")
        if job_ids:
            argv.append("--jobs=" + ",".join(job_ids))
        elif since:
            argv.append(f"--starttime=now-{int(since)}")
        try:
            doc = self.json(argv)
        except BackendError as exc:
            if "Nothing found" in exc.message:  # sacct's answer for unknown job ids
                return []
            raise
        jobs = [j for j in sacct_jobs(doc) if self._mine(j)]
        lost = needs_exit_codes(jobs)
        if lost:
            text_argv = ["sacct", "-X", "--noheader", "--parsable2", f"--format={EXIT_FORMAT}"]
            out = self.run([*text_argv, argv[2], "--jobs=" + ",".join(lost)])
            fix_exit_codes(jobs, parse_exit_codes(out))
        return jobs

    def nodes(self) -> dict[str, Any]:
        return self.json(["sinfo", "--json"])

    def sbatch(self, argv: list[str], stdin: bytes | None) -> str:
        """Submit; the new job id."""
        return parse_sbatch(self.run(argv, stdin=stdin))

    def scancel(self, task_id: str, signal: int | None = None) -> None:
        """Cancel a job (or signal it and its batch shell); a job already ending is fine."""
        argv = ["scancel"]
        if signal is not None:
            try:
                argv += [f"--signal={signals.Signals(signal).name[3:]}", "--full"]
            except ValueError as exc:
                raise UsageError(f"kill: unknown signal {signal}") from exc
        try:
            self.run([*argv, task_id])
        except BackendError as exc:
            if "already completing or completed" not in exc.message:
                raise

    def sstat(self, job_ids: list[str]) -> dict[int, tuple[float, float, int]]:
        """Usage of running jobs by raw job id; empty where Slurm gathers none."""
        usage: dict[int, tuple[float, float, int]] = {}
        argv = ["sstat", "-a", "--noheader", "--parsable2", f"--format={SSTAT_FORMAT}", "-j"]
        for start in range(0, len(job_ids), SSTAT_BATCH):
            try:
                usage.update(
                    parse_sstat(self.run([*argv, ",".join(job_ids[start:][:SSTAT_BATCH])]))
                )
            except (BackendError, NotFoundError):
                break  # no job accounting gather plugin: allocation only
        return usage

    def update_node(self, node: str, state: str, reason: str | None = None) -> None:
        """``scontrol update NodeName=… State=…`` (DRAIN needs a reason)."""
        if not node or any(c.isspace() or c in "=;" for c in node):
            raise UsageError(f"bad node name {node!r}")
        argv = ["scontrol", "update", f"NodeName={node}", f"State={state}"]
        self.run([*argv, f"Reason={reason}"] if reason else argv)
