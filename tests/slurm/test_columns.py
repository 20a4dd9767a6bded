"""The listing's columns (dshell_slurm.columns): ``squeue --Format`` read back as ``--json``
job records, so the listing's tasks are exactly those ``--json`` gives.

The golden test compares both on one captured job set (golden/capture.py writes the columns
and the JSON of the same jobs, one right after the other); the live test does the same on the
real cluster, with names and comments chosen to break the columns; the rest are the edge
cases of a line and the backend's way back to ``--json``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dshell.backend import Mount
from dshell.errors import UnreachableError
from dshell.model import to_builtins

from dshell_slurm import columns, decode
from dshell_slurm.client import SlurmClient
from dshell_slurm.early import LISTING_COLUMNS, LISTING_ENV, SEP, listing_argv, squeue_argv
from dshell_slurm.parse import jobs_to_tasks
from dshell_slurm.runner import Completed, Runner

GOLDEN = Path(__file__).parent / "golden"


def tasks(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    return {t.id: to_builtins(t) for t in jobs_to_tasks({"jobs": jobs})}


def line(**values: str) -> bytes:
    """One listing line: every column "x"-ish unless given."""
    defaults = {key: "1" if key.endswith(("_id", "_time")) or key == "cpus" else "x"
                for _f, key in LISTING_COLUMNS}  # fmt: skip
    defaults.update(array_task_id="N/A", exit_code="0", job_state="RUNNING")
    defaults.update(values)
    return "".join(defaults[key] + SEP for _f, key in LISTING_COLUMNS).encode() + b"\n"


def test_the_columns_give_the_tasks_json_gives() -> None:
    listed = columns.parse((GOLDEN / "squeue-22.05.columns").read_bytes())
    assert listed is not None
    json_jobs = decode.jobs((GOLDEN / "squeue-22.05.json").read_bytes())["jobs"]
    by_columns, by_json = tasks(listed), tasks(json_jobs)
    assert len(by_columns) == 17  # every scenario of capture.py, array elements one by one
    assert by_columns == by_json


def test_unset_values_read_as_json_has_them() -> None:
    [job] = columns.parse(
        line(start_time="N/A", end_time="Unknown", comment="(null)", batch_host="n/a",
             state_reason="None", array_task_id="N/A", array_job_id="7")
    ) or []  # fmt: skip
    assert job["start_time"] is None and job["end_time"] is None
    assert job["comment"] == "" and job["batch_host"] == ""
    assert job["state_reason"] == "None"  # Slurm's reason name, kept as --json has it
    assert job["array_job_id"] == 0 and job["array_task_id"] is None  # not an array element
    [elem] = columns.parse(line(array_job_id="7", array_task_id="3", job_id="9")) or []
    assert (elem["array_job_id"], elem["array_task_id"], elem["job_id"]) == (7, 3, 9)


@pytest.mark.parametrize(
    ("printed", "code", "signal"),
    [("768", 3, None), ("9", None, 9), ("0", 0, None), ("3:0", 3, None), ("0:9", None, 9)],
)
def test_exit_codes_in_both_forms(printed: str, code: int | None, signal: int | None) -> None:
    [job] = columns.parse(line(job_state="FAILED", exit_code=printed)) or []
    [task] = jobs_to_tasks({"jobs": [job]})
    assert (task.exit_code, task.signal) == (code, signal)


@pytest.mark.parametrize(
    "values",
    [
        {"name": f"a{SEP}b"},  # the separator in a value: one field too many
        {"comment": "first\nsecond"},  # a newline: two short lines
        {"name": "x\n"},
    ],
)
def test_a_line_that_does_not_split_exactly_is_not_trusted(values: dict[str, str]) -> None:
    assert columns.parse(line() + line(**values)) is None


def test_no_jobs_and_a_missing_end_of_line() -> None:
    assert columns.parse(b"") == []
    assert len(columns.parse(line().rstrip(b"\n")) or []) == 1


def test_the_listing_argv() -> None:
    argv = listing_argv({"user": "a"}, ["1", "2_3"])
    assert argv[:4] == ["squeue", "--noheader", "--array", "--states=all"]
    fields = argv[4].removeprefix("--Format=").split(",")
    assert fields == [f"{f}:0{SEP}" for f, _k in LISTING_COLUMNS]  # natural width, no padding
    assert argv[5:] == ["--user=a", "--jobs=1,2_3"]
    assert LISTING_ENV == {"SLURM_TIME_FORMAT": "%s"}


# ---- the client's way back to --json ---------------------------------------------------------


class Squeue(Runner):
    """Answers the listing with ``listing`` and ``--json`` with the golden document."""

    def __init__(self, listing: Completed) -> None:
        super().__init__()
        self.listing = listing
        self.calls: list[tuple[str, dict[str, str] | None]] = []

    def run(
        self, argv: list[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> Completed:
        kind = "json" if "--json" in argv else "listing"
        self.calls.append((kind, env))
        if kind == "json":
            return Completed(0, (GOLDEN / "squeue-22.05.json").read_bytes(), b"")
        return self.listing

    def start(self, argv: list[str]) -> Any:
        raise AssertionError(argv)

    def stat(self, path: str) -> Any:
        return None

    def read(self, path: str, offset: int = 0, limit: int = 0) -> bytes:
        raise AssertionError(path)


def client(runner: Runner) -> SlurmClient:
    c = SlurmClient(Mount(target="/hpc", type="slurm", source="localhost", options={}), 30)
    c._runner = runner
    return c


def test_the_listing_is_one_squeue_with_epoch_times() -> None:
    runner = Squeue(Completed(0, (GOLDEN / "squeue-22.05.columns").read_bytes(), b""))
    assert len(client(runner).jobs()) == 17  # records: one per array element
    assert runner.calls == [("listing", LISTING_ENV)]


@pytest.mark.parametrize(
    "listing",
    [
        Completed(0, line(name=f"bad{SEP}name"), b""),  # ambiguous columns
        Completed(1, b"", b"squeue: error: Invalid job format specification: exit_code\n"),
    ],
)
def test_ambiguous_columns_or_an_older_squeue_fall_back_to_json(listing: Completed) -> None:
    runner = Squeue(listing)
    jobs = client(runner).jobs()
    assert [kind for kind, _env in runner.calls] == ["listing", "json"]
    assert tasks(jobs) == tasks(decode.jobs((GOLDEN / "squeue-22.05.json").read_bytes())["jobs"])


def test_a_failing_listing_is_reported_not_retried() -> None:
    runner = Squeue(Completed(1, b"", b"squeue: error: Unable to contact slurm controller\n"))
    with pytest.raises(UnreachableError, match="Unable to contact slurm controller"):
        client(runner).jobs()
    assert [kind for kind, _env in runner.calls] == ["listing"]


def test_raw_records_and_json_listing_mounts_come_from_json() -> None:
    runner = Squeue(Completed(0, b"", b""))
    client(runner).jobs(raw=True)
    assert [kind for kind, _env in runner.calls] == ["json"]
    runner = Squeue(Completed(0, b"", b""))
    c = SlurmClient(Mount(target="/h", type="slurm", source="localhost",
                          options={"listing": "json"}), 30)  # fmt: skip
    c._runner = runner
    assert len(c.jobs()) == 14  # the golden document's records (a pending array remainder is one)
    assert runner.calls == [("json", None)]


# ---- the real cluster ------------------------------------------------------------------------


def test_the_live_listing_matches_json(slurm_conf: str, slurm_workdir: str) -> None:
    """On the real Slurm: jobs in several states, and a name and comment with spaces, pipes,
    quotes and a tab: the listing's records make the tasks --json's make."""
    env = {**os.environ, "SLURM_CONF": slurm_conf}

    def sbatch(*args: str) -> str:
        done = subprocess.run(
            ["sbatch", "--parsable", f"--chdir={slurm_workdir}", "-o", "/dev/null", *args],
            env=env, capture_output=True, text=True, check=True, timeout=30,
        )  # fmt: skip
        return done.stdout.strip().split(";")[0]

    ids = [
        sbatch("-J", 'odd | name "quoted" \\ tab\there', "--comment=a|b c", "--hold",
               "--wrap", "true"),
        sbatch("--array=0-3%1", "-J", "arr", "--hold", "--wrap", "true"),
        sbatch("-J", "exits", "--wrap", "exit 3"),
    ]  # fmt: skip
    mount = Mount(target="/hpc", type="slurm", source="localhost",
                  options={"slurm_conf": slurm_conf})  # fmt: skip
    c = SlurmClient(mount, 30)
    try:
        ours = [j for j in c.jobs() if str(j["array_job_id"] or j["job_id"]) in ids]
        theirs = [j for j in c.jobs(raw=True) if str(j["array_job_id"] or j["job_id"]) in ids]
        assert len(tasks(ours)) == 6  # the array's four elements, one by one
        assert tasks(ours) == tasks(theirs)
        # A name holding the separator makes every listing of the cluster ask --json until
        # Slurm forgets the job (MinJobAge): not done to the shared test cluster. (Slurm
        # 22.05 prints such a name as it is: checked by hand, and the unit tests above.)
    finally:
        subprocess.run(["scancel", *ids], env=env, check=False, timeout=30)
        c.close()
    assert squeue_argv({}) == ["squeue", "--json"]


# ---- a Reason column that holds the state description ------------------------------------------

DESCRIPTION = "ReqNodeNotAvail, UnavailableNodes:n1"


def test_a_description_in_the_reason_column_is_marked() -> None:
    jobs = columns.parse(
        line(job_id="5", job_state="PENDING", state_reason=DESCRIPTION)
        + line(job_id="6", job_state="PENDING", state_reason="Priority")
        + line(job_id="7", job_state="PENDING", state_reason="")
    )
    assert jobs is not None
    assert columns.described(jobs) == ["5"]
    full = [{"job_id": 5, "state_reason": "ReqNodeNotAvail", "state_description": DESCRIPTION}]
    columns.describe(jobs, full)
    assert (jobs[0]["state_reason"], jobs[0]["state_description"]) == tuple(full[0].values())[1:]
    [task] = jobs_to_tasks({"jobs": jobs[:1]})
    assert task.message == f"ReqNodeNotAvail: {DESCRIPTION}"  # as from --json
    assert all(columns.DESCRIBED not in j for j in jobs)


def test_a_described_job_gone_from_json_keeps_its_description() -> None:
    jobs = columns.parse(line(job_id="5", job_state="PENDING", state_reason=DESCRIPTION)) or []
    columns.describe(jobs, [])
    [task] = jobs_to_tasks({"jobs": jobs})
    assert task.message == DESCRIPTION


def test_the_client_asks_json_for_the_described_jobs_only() -> None:
    listed = line(job_id="5", job_state="PENDING", state_reason=DESCRIPTION) + line(job_id="6")
    argvs: list[list[str]] = []

    class Described(Squeue):
        def run(
            self, argv: list[str], *, stdin: bytes | None = None,
            env: dict[str, str] | None = None,
        ) -> Completed:  # fmt: skip
            argvs.append(argv)
            if "--json" in argv:
                doc = {"jobs": [{"job_id": 5, "state_reason": "ReqNodeNotAvail",
                                 "state_description": DESCRIPTION}]}  # fmt: skip
                return Completed(0, json.dumps(doc).encode(), b"")
            return Completed(0, listed, b"")

    jobs = client(Described(Completed(0, b"", b""))).jobs()
    assert argvs[1] == ["squeue", "--json", "--jobs=5"]
    assert [(j["job_id"], j["state_reason"]) for j in jobs] == [(5, "ReqNodeNotAvail"), (6, "x")]
