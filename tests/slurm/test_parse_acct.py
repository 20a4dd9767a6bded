"""Accounting: the sacct parser on output captured from the real Slurm 22.05 tools with
slurmdbd (``golden/capture_sacct.sh``) and on a hand-made newer variant
(``golden/make_variants.py``); the backend's use of it with a scripted runner.

The live tests run against a cluster WITHOUT accounting (tests/services/services.sh starts no
slurmdbd), so there the backend takes the fallback: squeue, then dshell's own cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dshell.backend import Mount, TaskQuery
from dshell.errors import NotFoundError
from dshell.model import TaskState, to_builtins
from dshell.net import Completed

from dshell_slurm.backend import SlurmBackend
from dshell_slurm.parse import jobs_to_tasks
from dshell_slurm.parse_acct import (
    UNRELIABLE,
    accounting_enabled,
    fix_exit_codes,
    needs_exit_codes,
    parse_exit_codes,
    sacct_jobs,
    sacct_to_tasks,
    to_job,
)
from dshell_slurm.runner import Runner

from .test_parse import GOLDEN, check_golden, load

SAME = [
    *("id", "name", "state", "exit_code", "signal", "instance", "agent_id", "resources"),
    *("created_at", "started_at", "finished_at", "sandbox"),
]


def fixed(name: str) -> list[dict[str, Any]]:
    """A captured sacct document's jobs with the exit codes its text output recovers."""
    jobs = sacct_jobs(load(name))
    fix_exit_codes(jobs, parse_exit_codes((GOLDEN / "sacct-22.05.txt").read_text()))
    return jobs


def by_id(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {t.id: t for t in jobs_to_tasks({"jobs": jobs})}


def test_sacct_golden() -> None:
    tasks = jobs_to_tasks({"jobs": fixed("sacct-22.05.json") + fixed("sacct-22.05-by-id.json")})
    check_golden("sacct-22.05.expected.json", to_builtins(tasks))


def test_sacct_agrees_with_squeue_on_the_same_jobs() -> None:
    """Captured together: what sacct remembers is what squeue showed while it kept the jobs."""
    squeue = {t.id: t for t in jobs_to_tasks(load("squeue-22.05-acct.json"))}
    sacct = by_id(fixed("sacct-22.05.json") + fixed("sacct-22.05-by-id.json"))
    assert set(sacct) == set(squeue)
    for tid, task in squeue.items():
        for field in SAME:
            assert getattr(sacct[tid], field) == getattr(task, field), (tid, field)
    names = {t.name: t for t in sacct.values()}
    assert (names["failed"].state, names["failed"].exit_code) == ("FAILED", 3)
    assert (names["signalled"].signal, names["signalled"].status) == (9, 137)
    assert (names["cancelled"].state, names["cancelled"].signal) == ("KILLED", 15)
    assert names["held"].state == "STAGING" and names["held"].message == "JobHeldUser"
    assert sorted(t.instance for t in sacct.values() if t.name == "array") == [0, 1, 2]


def test_22_05_json_loses_non_zero_exit_codes() -> None:
    """Slurm 22.05's sacct --json prints exit 3 as SUCCESS 0; the text format is right."""
    raw = next(j for j in load("sacct-22.05.json")["jobs"] if j["name"] == "failed")
    assert raw["exit_code"] == {"status": "SUCCESS", "return_code": 0}  # the bug, captured
    jobs = sacct_jobs(load("sacct-22.05.json"))
    failed = next(j for j in jobs if j["name"] == "failed")
    assert failed["exit_code"] is UNRELIABLE and needs_exit_codes(jobs) == [str(raw["job_id"])]
    assert by_id([failed])[str(raw["job_id"])].exit_code is None  # unknown, never a false 0
    codes = parse_exit_codes((GOLDEN / "sacct-22.05.txt").read_text())
    assert codes[str(raw["job_id"])] == (3, 0) and "7_1" in codes
    fix_exit_codes(jobs, {})
    assert failed["exit_code"] is None  # not recovered: still unknown


def test_newer_format_parses_like_22_05() -> None:
    old = by_id(fixed("sacct-22.05.json"))
    new = {t.id: t for t in sacct_to_tasks(load("sacct-24.05-variant.json"))}
    assert set(old) <= set(new)
    for tid, task in old.items():
        for field in SAME:
            assert getattr(new[tid], field) == getattr(task, field), (tid, field)
    names = {t.name: t for t in new.values()}
    assert names["labelled"].labels["app"] == "web"  # the job comment, when the site stores it
    assert names["timeout"].reason == "REASON_MAX_COMPLETION_TIME_REACHED"
    assert (names["oom"].state, names["oom"].signal) == ("FAILED", 9)
    assert names["labelled"].command == ["sbatch -J labelled"]
    remainder = sorted(t.id for t in new.values() if t.name == "remainder")
    assert remainder == ["920_3", "920_4", "920_5"]


def test_newer_format_output_paths() -> None:
    from dshell_slurm.parse import output_paths

    rec = next(j for j in load("sacct-24.05-variant.json")["jobs"] if j["name"] == "labelled")
    out, err = output_paths(to_job(rec))
    assert out.endswith(f"/dshell-{rec['job_id']}.out") and err.endswith(".err")


def test_missing_and_odd_fields_degrade() -> None:
    (bare,) = sacct_to_tasks({"jobs": [{"job_id": 5}]})
    assert (bare.id, bare.exit_code, bare.created_at) == ("5", None, None)
    (odd,) = sacct_to_tasks(
        {"jobs": [{"job_id": 6, "state": "COMPLETED", "array": [], "tres": "junk", "x": {}}]}
    )
    assert (odd.state, odd.resources.cpus) == ("FINISHED", 0.0)
    assert sacct_to_tasks({"jobs": [None, "junk"]}) == [] and sacct_to_tasks({}) == []
    assert parse_exit_codes("junk\n1.batch|0:0\n2|x:y\n3|2:0\n") == {"3": (2, 0)}


def test_accounting_enabled_from_scontrol_show_config() -> None:
    assert not accounting_enabled((GOLDEN / "scontrol-config-22.05.txt").read_text())
    assert accounting_enabled((GOLDEN / "scontrol-config-acct-22.05.txt").read_text())
    assert not accounting_enabled("AccountingStorageType = (null)\n")
    assert not accounting_enabled("")


# ---- the backend with a scripted runner -------------------------------------------------------


class Scripted(Runner):
    """Answers Slurm commands from the captured files; records every argv."""

    def __init__(self, config: str, squeue: bytes = b'{"jobs": []}') -> None:
        super().__init__()
        self.config = config
        self.squeue = squeue
        self.calls: list[list[str]] = []

    def run(
        self, argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> Completed:
        self.calls.append(argv)
        if argv[:3] == ["scontrol", "show", "config"]:
            return Completed(0, (GOLDEN / self.config).read_bytes(), b"")
        if argv[0] == "squeue":
            if any(a.startswith("--jobs=") for a in argv):
                return Completed(1, b"", b"slurm_load_jobs error: Invalid job id specified")
            return Completed(0, self.squeue, b"")
        if argv[:2] == ["sacct", "--json"]:
            ids = next((a[7:].split(",") for a in argv if a.startswith("--jobs=")), None)
            doc = load("sacct-22.05.json")
            doc["jobs"] = [j for j in doc["jobs"] if ids is None or str(j["job_id"]) in ids]
            if not doc["jobs"]:
                doc["errors"] = [{"error": "Nothing found", "error_number": 0}]
            return Completed(0, json.dumps(doc).encode(), b"")
        if argv[0] == "sacct":
            return Completed(0, (GOLDEN / "sacct-22.05.txt").read_bytes(), b"")
        raise AssertionError(argv)

    def start(self, argv: list[str]) -> Any:
        raise AssertionError(argv)

    def stat(self, path: str) -> Any:
        return None

    def read(self, path: str, offset: int = 0, limit: int = 0) -> bytes:
        raise NotFoundError(path)


def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> SlurmBackend:
    monkeypatch.setenv("DSHELL_STATE_DIR", str(tmp_path))
    backend = SlurmBackend(Mount(target="/hpc", type="slurm", source="localhost"))
    backend.slurm._runner = Scripted(config)
    return backend


def test_with_accounting_old_jobs_come_from_sacct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = scripted(tmp_path, monkeypatch, "scontrol-config-acct-22.05.txt")
    runner = backend.slurm.runner
    assert isinstance(runner, Scripted)
    failed = backend.get_task("2")  # purged from squeue: sacct, exit code from its text
    assert (failed.state, failed.exit_code, failed.name) == (TaskState.FAILED, 3, "failed")
    text_query = ["sacct", "-X", "--noheader", "--parsable2", "--format=JobID,ExitCode"]
    assert runner.calls[-1][:5] == text_query
    assert runner.calls[-1][-1] == "--jobs=2"
    listed = {t.id: t for t in backend.list_tasks(TaskQuery(all=True))}
    assert {"1", "2", "3", "6", "7_0", "7_1", "7_2", "8", "9"} <= set(listed)
    assert listed["6"].state == TaskState.KILLED and listed["6"].signal == 15
    window = next(c for c in runner.calls if c[:2] == ["sacct", "--json"] and "--jobs" not in c[-1])
    assert "--allusers" in window and "--starttime=now-86400" in window
    with pytest.raises(NotFoundError):
        backend.get_task("999")
    configs = [c for c in runner.calls if c[:2] == ["scontrol", "show"]]
    assert len(configs) == 1  # asked once per mount and process


def test_without_accounting_nothing_asks_sacct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = scripted(tmp_path, monkeypatch, "scontrol-config-22.05.txt")
    runner = backend.slurm.runner
    assert isinstance(runner, Scripted)
    assert backend.list_tasks(TaskQuery(all=True)) == []
    with pytest.raises(NotFoundError) as info:
        backend.get_task("2")
    assert info.value.hint and "MinJobAge" in info.value.hint
    assert not [c for c in runner.calls if c[0] == "sacct"]
