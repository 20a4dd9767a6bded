"""Batch jobs on the embedded engine: the job verbs, retries, timeouts, concurrency policies,
pipelines, cron on a controllable clock, and crash recovery — against the real daemon.

Runs append a line to a file owned by the test, so order and "exactly once" are checked on
what the runs did, not on timing. Schedules run on the test clock (``DSHELL_ENGINE_CLOCK``):
the test moves time forward by writing the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dshell.testing.fixtures import CliRunner

from dshell_local import control
from dshell_local.client import EngineClient

from .conftest import pid_alive, wait_until
from .helpers import ok

pytestmark = pytest.mark.engine

T0 = datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC).timestamp()  # ten seconds past a minute


def show(cli: CliRunner, name: str) -> dict[str, Any]:
    return json.loads(ok(cli, f"job show {name} -o json"))


def history(cli: CliRunner, name: str) -> list[dict[str, Any]]:
    return json.loads(ok(cli, f"job history {name} -o json"))


def runs_where(cli: CliRunner, name: str, pred: Callable[[list[dict[str, Any]]], bool]) -> Any:
    return wait_until(lambda: (h := history(cli, name)) and pred(h) and h, what=f"{name} runs")


def lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def clock(
    engine_dirs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """The engine's test clock, at T0 until moved; the engine is started on it."""
    path = tmp_path / "clock"

    def set_to(stamp: float) -> None:
        path.write_text(f"{stamp}\n")

    set_to(T0)
    monkeypatch.setenv("DSHELL_ENGINE_CLOCK", str(path))
    control.start()
    return set_to


def test_verbs_runs_are_tasks_and_errors(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    ok(cli, f"job create --name hello --shell -- 'echo hi >> {out}'")
    listing = ok(cli, "job ls -o tsv").splitlines()
    assert listing[1].split("\t")[1:3] == ["hello", "IDLE"]
    assert ok(cli, "job run hello").strip() == "hello/1"
    runs_where(cli, "hello", lambda h: h[-1]["state"] == "SUCCESS")
    job = show(cli, "hello")
    assert job["success_count"] == 1 and job["error_count"] == 0 and job["last_success"]
    (run,) = job["runs"]
    assert run["exit_code"] == 0 and run["attempts"] == 1 and run["duration"] is not None
    task = run["task_id"]
    ps = json.loads(ok(cli, "ps -a -o json"))
    (mine,) = [t for t in ps if t["id"] == task]
    assert mine["labels"]["dshell.job"] == "hello" and mine["labels"]["dshell.job.run"] == "1"
    assert ok(cli, f"cat /local/tasks/{task}/stdout") == ""  # its sandbox is there
    assert lines(out) == ["hi"]
    assert show(cli, "/local/jobs/hello")["name"] == "hello"  # the path form
    assert "successes:    1" in ok(cli, "job show hello -o table")
    human = cli("job show hello", tty=True)
    assert human.status == 0 and "last success:" in human.stdout and "SUCCESS" in human.stdout
    assert ok(cli, "job show hello").splitlines()[1].split("\t")[1] == "hello"  # tsv
    # kill, pause/resume, rm, and errors with their exit codes
    ok(cli, "job create --name long -- sleep 30")
    ok(cli, "job run long")
    runs_where(cli, "long", lambda h: h[-1]["state"] == "RUNNING")
    assert ok(cli, "job kill long 1").strip() == "long/1"
    (killed,) = runs_where(cli, "long", lambda h: h[-1]["state"] == "KILLED")
    assert "killed by a user" in killed["message"]
    assert show(cli, "long")["error_count"] == 0
    assert json.loads(ok(cli, "job pause long -o json"))[0]["state"] == "PAUSED"
    assert json.loads(ok(cli, "job resume long -o json"))[0]["state"] == "IDLE"
    assert cli("job show nope").status == 4
    assert cli("job kill long 7").status == 4
    assert cli("job create --name hello -- true").status == 12
    res = cli("job create --name x --schedule '61 * * * *' -- true")
    assert res.status == 2 and "61" in res.stderr
    assert cli("job create --name x").status == 2
    res = cli("job create --name x --schedule '0 0 31 2 *' -- true")  # the engine finds it
    assert res.status == 2 and "never fires" in res.stderr
    ok(cli, "job rm long")
    assert cli("job show long").status == 4


def test_retries_with_backoff_and_until_success(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, "job create --name flaky --retries 2 --backoff 0.05 --shell -- exit 3")
    ok(cli, "job run flaky")
    (run,) = runs_where(cli, "flaky", lambda h: h[-1]["state"] == "FAILED")
    assert run["attempts"] == 3 and len(run["tasks"]) == 3 and run["exit_code"] == 3
    job = show(cli, "flaky")
    assert job["error_count"] == 1 and job["success_count"] == 0 and job["last_failure"]
    # -1: until it succeeds (here: on the third attempt)
    count = tmp_path / "count"
    script = f"echo x >> {count}; test $(wc -l < {count}) -ge 3"
    ok(cli, ["job", "create", "--name", "stubborn", "--retries", "-1", "--backoff", "0.05",
             "--shell", "--", script])  # fmt: skip
    ok(cli, "job run stubborn")
    (run,) = runs_where(cli, "stubborn", lambda h: h[-1]["state"] == "SUCCESS")
    assert run["attempts"] == 3 and len(lines(count)) == 3


def test_timeout_kills_and_records_timed_out(engine: EngineClient, cli: CliRunner) -> None:
    ok(cli, "job create --name slow --timeout 0.3 --grace 0.2 -- sleep 30")
    ok(cli, "job run slow")
    (run,) = runs_where(cli, "slow", lambda h: h[-1]["state"] not in ("PENDING", "STARTING",
                                                                      "RUNNING"))  # fmt: skip
    assert run["state"] == "TIMED_OUT" and "timed out" in run["message"]
    assert run["signal"] in (15, 9)
    assert show(cli, "slow")["error_count"] == 1


def test_pipeline_runs_in_order(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "order"
    for name, after in (
        ("a", ""),
        ("b", "--after a"),
        ("c", "--after b"),
        ("d", "--after a --after c"),
    ):
        ok(cli, f"job create --name {name} {after} --shell -- 'echo {name} >> {out}'")  # fmt: skip
    assert (
        ok(cli, "job graph")
        == "a\n|-- b\n|   `-- c\n|       `-- d  (after a, c)\n`-- d  (after a, c)\n"
    )
    assert '"a" -> "b";' in ok(cli, "job graph -o dot")
    assert ok(cli, "job graph -q").split() == ["a", "b", "c", "d"]
    res = cli("job create --replace --name a --after d -- true")
    assert res.status == 2 and "a -> b -> c -> d -> a" in res.stderr
    assert cli("job create --name e --after nope -- true").status == 2
    ok(cli, "job run a")
    runs_where(cli, "d", lambda h: h[-1]["state"] == "SUCCESS")
    assert lines(out) == ["a", "b", "c", "d"]  # d waited for c, not only for a
    assert [r["cause"] for r in history(cli, "c")] == ["parents"]
    assert len(history(cli, "d")) == 1


def test_cron_fires_on_the_test_clock(
    clock: Callable[[float], None], cli: CliRunner, tmp_path: Path
) -> None:
    out = tmp_path / "ticks"
    ok(cli, f"job create --name tick --schedule '*/5 * * * *' --tz Europe/Paris --shell "
            f"-- 'echo tick >> {out}'")  # fmt: skip
    job = show(cli, "tick")
    assert job["state"] == "SCHEDULED" and job["schedules"] == ["*/5 * * * * (Europe/Paris)"]
    assert job["next_runs"] == ["2030-01-01T00:05:00.000Z", "2030-01-01T00:10:00.000Z",
                                "2030-01-01T00:15:00.000Z"]  # fmt: skip
    assert history(cli, "tick") == []
    clock(T0 + 290.5)  # 00:05:00.5
    (run,) = runs_where(cli, "tick", lambda h: h[-1]["state"] == "SUCCESS")
    assert run["cause"] == "schedule" and run["due_at"] == "2030-01-01T00:05:00.000Z"
    assert show(cli, "tick")["next_runs"][0] == "2030-01-01T00:10:00.000Z"
    assert lines(out) == ["tick"]


def test_concurrency_policies(clock: Callable[[float], None], cli: CliRunner) -> None:
    for policy in ("allow", "forbid", "replace"):
        ok(cli, f"job create --name {policy} --schedule '* * * * *' --concurrency {policy} "
                "-- sleep 30")  # fmt: skip
    clock(T0 + 50.5)  # 00:01:00.5: a first run of each
    for policy in ("allow", "forbid", "replace"):
        runs_where(cli, policy, lambda h: h[-1]["state"] == "RUNNING")
    clock(T0 + 110.5)  # 00:02:00.5: the next is due while the first still runs
    allow = runs_where(cli, "allow", lambda h: len(h) == 2 and h[-1]["state"] == "RUNNING")
    assert allow[0]["state"] == "RUNNING"
    forbid = runs_where(cli, "forbid", lambda h: len(h) == 2)
    assert forbid[0]["state"] == "RUNNING" and forbid[1]["state"] == "SKIPPED"
    assert "FORBID" in forbid[1]["message"]
    replace = runs_where(cli, "replace", lambda h: len(h) == 2 and h[0]["state"] == "KILLED")
    assert "replaced" in replace[0]["message"]
    runs_where(cli, "replace", lambda h: h[1]["state"] == "RUNNING")
    for policy in ("allow", "forbid", "replace"):
        ok(cli, f"job kill {policy}")


def test_runs_missed_while_down_obey_the_deadline(
    clock: Callable[[float], None],
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ok(cli, "job create --name strict --schedule '* * * * *' --deadline 30s -- true")
    ok(cli, "job create --name lenient --schedule '* * * * *' -- true")
    ok(cli, "job create --name paused --schedule '* * * * *' -- true")
    ok(cli, "job create --name trigger -- true")
    ok(cli, "job pause paused")
    control.stop(kill_tasks=False, timeout=30)
    monkeypatch.setenv("DSHELL_ENGINE_CRASH_POINT", "job_after_commit:1")
    control.start()
    crashed = control.status()
    cli("job run trigger")  # the engine crashes while launching it
    wait_until(lambda: crashed is None or not pid_alive(crashed.pid), what="the engine to crash")
    monkeypatch.delenv("DSHELL_ENGINE_CRASH_POINT")
    clock(T0 + 4 * 60 + 35)  # 00:04:45: due at 01..04, the latest 45 s ago
    control.start()
    (trig,) = runs_where(cli, "trigger", lambda h: h[-1]["state"] == "SUCCESS")
    assert trig["attempts"] == 1 and len(trig["tasks"]) == 1
    (skipped,) = runs_where(cli, "strict", lambda h: len(h) == 1)
    assert skipped["state"] == "SKIPPED" and "4 run(s) missed" in skipped["message"]
    assert "deadline" in skipped["message"]
    first, caught = runs_where(cli, "lenient", lambda h: len(h) == 2 and h[1]["state"] == "SUCCESS")
    assert first["state"] == "SKIPPED" and "3 run(s) missed" in first["message"]
    assert caught["cause"] == "catch-up" and caught["due_at"] == "2030-01-01T00:04:00.000Z"
    for name in ("strict", "lenient"):
        assert show(cli, name)["next_runs"][0] == "2030-01-01T00:05:00.000Z"
    assert history(cli, "paused") == []
    clock(T0 + 4 * 60 + 55)  # 00:05:05: on time again, within the deadline
    runs_where(cli, "strict", lambda h: len(h) == 2 and h[1]["state"] == "SUCCESS")


def _file_job(tmp_path: Path, out: Path) -> None:
    path = tmp_path / "once.toml"
    path.write_text(
        f'[job]\nname = "once"\nshell = "echo ran >> {out}"\n'
        "resources = { cpus = 0.05, mem = 32 }\n"
    )


@pytest.mark.parametrize("point", ["job_after_commit", "job_after_launch"])
def test_crash_points_never_launch_twice_nor_lose_a_run(
    point: str,
    engine_dirs: Path,
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("DSHELL_ENGINE_CRASH_POINT", f"{point}:1")
    control.start()
    _file_job(tmp_path, out)
    ok(cli, f"job create -f {tmp_path / 'once.toml'}")
    crashed = control.status()
    cli("job run once")  # the engine may crash before it answers: the run is durable anyway
    wait_until(lambda: crashed is None or not pid_alive(crashed.pid), what="the engine to crash")
    monkeypatch.delenv("DSHELL_ENGINE_CRASH_POINT")
    control.start()
    (run,) = runs_where(cli, "once", lambda h: h[-1]["state"] == "SUCCESS")
    assert run["attempts"] == 1 and len(run["tasks"]) == 1
    ps = json.loads(ok(cli, "ps -a -o json"))
    assert [t["id"] for t in ps if t["labels"].get("dshell.job") == "once"] == run["tasks"]
    assert lines(out) == ["ran"]


SPECS = Path(__file__).resolve().parent.parent / "specs"
METRONOME = {
    "id": "nightly.backup",
    "run": {"cmd": "echo backup", "cpus": 0.05, "mem": 32, "disk": 0,
            "restart": {"policy": "ON_FAILURE", "activeDeadlineSeconds": 60}},
    "schedules": [{"id": "nightly", "cron": "20 0 * * *", "timezone": "Europe/Berlin",
                   "startingDeadlineSeconds": 60, "concurrencyPolicy": "FORBID"}],
}  # fmt: skip


def test_create_from_spec_files(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    ok(cli, f"job create -f {SPECS / 'data' / 'cron_hello.aurora'}")
    aurora = show(cli, "cron_hello_world")
    assert aurora["schedules"] == ["*/5 * * * *"] and aurora["concurrency_policy"] == "FORBID"
    ok(cli, f"job create -f {SPECS / 'data' / 'chronos-dependent.json'}")
    chronos = show(cli, "db_export")
    assert chronos["schedules"] == ["R5/2026-12-01T00:00:00Z/PT1H"] and chronos["retries"] == 2
    assert show(cli, "hostings_earnings_summary")["parents"] == ["db_export"]
    res = cli("job create -f - --format metronome", stdin=json.dumps(METRONOME))
    assert res.status == 0, res.stderr
    backup = show(cli, "nightly.backup")
    assert backup["schedules"] == ["20 0 * * * (Europe/Berlin)"] and backup["retries"] == -1
    assert backup["starting_deadline"] == 60 and backup["next_runs"][0].endswith("23:20:00.000Z")
    assert "db_export\n`-- hostings_earnings_summary\n" in ok(cli, "job graph")
    # bad files: every error with file, line and field; nothing stored
    before = ok(cli, "job ls -q")
    res = cli(f"job create -f {SPECS / 'bad' / 'chronos.json'}")
    assert res.status == 2 and "chronos.json:" in res.stderr and "scheduleTimeZone" in res.stderr
    two = tmp_path / "two.toml"
    two.write_text(
        '[[job]]\nname = "first"\ncommand = ["true"]\n\n'
        '[[job]]\nname = "second"\ncommand = ["true"]\nafter = ["missing"]\n'
    )
    res = cli(f"job create -f {two}")
    assert res.status == 2 and "missing" in res.stderr
    cycle = tmp_path / "cycle.toml"
    cycle.write_text(
        '[[job]]\nname = "x"\ncommand = ["true"]\nafter = ["y"]\n\n'
        '[[job]]\nname = "y"\ncommand = ["true"]\nafter = ["x"]\n'
    )
    res = cli(f"job create -f {cycle}")
    assert res.status == 2 and "x -> y -> x" in res.stderr
    res = cli(f"job create -f {SPECS / 'data' / 'web.toml'}")
    assert res.status == 2 and "svc deploy" in res.stderr
    assert ok(cli, "job ls -q") == before
