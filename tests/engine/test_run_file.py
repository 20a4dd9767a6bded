"""`run -f` and spec round trips on the real engine: Marathon, Aurora and native files run
unchanged; an Aurora service exported as Marathon JSON deploys again to an equal spec."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from dshell.specs import load_text
from dshell.testing.fixtures import CliRunner

from dshell_local.client import EngineClient

from .test_services import ok

pytestmark = pytest.mark.engine

DATA = Path(__file__).resolve().parents[1] / "specs" / "data"


def test_run_file_marathon_app_attached(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    app = tmp_path / "hello.json"
    app.write_text(json.dumps({"id": "/hello", "cmd": "echo hello from marathon", "cpus": 0.1,
                               "mem": 32, "healthChecks": [{"protocol": "TCP"}]}))  # fmt: skip
    res = cli(f"run -f {app}")
    assert res.status == 0 and res.stdout == "hello from marathon\n", res.stderr
    assert "healthChecks" in res.stderr or "health_checks" in res.stderr  # named, not dropped
    res = cli(f"run -f {app}", stdin="")
    assert res.status == 0


def test_run_file_group_detached_and_dry_run(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    group = tmp_path / "g.json"
    group.write_text(json.dumps({"id": "/g", "apps": [
        {"id": "a", "cmd": "sleep 30", "cpus": 0.1, "mem": 32, "instances": 2},
        {"id": "b", "cmd": "sleep 30", "cpus": 0.1, "mem": 32},
    ]}))  # fmt: skip
    dry = cli(f"run -f {group} --dry-run")
    assert dry.status == 0 and "[[group.service]]" in dry.stdout
    assert "would run 2 x g-a" in dry.stderr and "would run 1 x g-b" in dry.stderr
    assert engine.list_tasks(all=True) == []
    ids = ok(cli, f"run -d -f {group}").split()
    assert len(ids) == 3
    names = sorted(t.name for t in engine.list_tasks())
    assert names == ["g-a", "g-a", "g-b"]


def test_run_file_refuses_before_launching(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "/x", "cmd": "true", "cpus": "lots"}')
    res = cli(f"run -f {bad}")
    assert res.status == 2 and "bad.json" in res.stderr and "cpus" in res.stderr
    res = cli(f"run -f {bad} -- echo")
    assert res.status == 2
    assert engine.list_tasks(all=True) == []


def test_aurora_service_round_trips_through_marathon_json(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, f"svc deploy -f {DATA / 'side-by-side.aurora'} --no-wait")
    exported = json.loads(ok(cli, "svc show web -o marathon"))
    exported["id"] = "/web2"
    again = tmp_path / "web2.json"
    again.write_text(json.dumps(exported))
    ok(cli, f"svc deploy -f {again} --no-wait")
    a = load_text(ok(cli, "svc show web --format json"), "web.json").services[0]
    b = load_text(ok(cli, "svc show web2 --format json"), "web2.json").services[0]
    assert b.name == "web2"
    assert msgspec.structs.replace(b, name=a.name) == a


def test_dry_run_plans_persistent_volumes_and_reads_stdin(
    engine: EngineClient, cli: CliRunner
) -> None:
    text = (DATA / "resident-db.json").read_text()
    res = cli("svc deploy -f - --dry-run -o json", stdin=text)
    assert res.status == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan[0]["service"] == "postgres" and "persistent volume" in plan[0]["message"]
    assert plan[0]["spec"]["volumes"][0]["container_path"]
    # a resident app must not run more instances than asked during an upgrade: refused
    bad = text.replace(
        '"instances": 1,', '"instances": 1, "upgradeStrategy": {"maximumOverCapacity": 1},'
    )
    res = cli("svc deploy -f -", stdin=bad)
    assert res.status == 2 and "persistent volumes" in res.stderr
    assert engine.list_tasks(all=True) == []


def test_aurora_job_key_and_bind(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    aurora = tmp_path / "two.aurora"
    aurora.write_text(
        "hello = Process(name = 'hello', cmdline = 'echo {{greeting}} from {{mesos.instance}}')\n"
        "task = Task(processes = [hello], resources = Resources(cpu = 0.1, ram = 32*MB,"
        " disk = 16*MB))\n"
        "jobs = [\n"
        "  Job(cluster = 'local', role = 'me', environment = 'devel', name = 'a', task = task),\n"
        "  Job(cluster = 'local', role = 'me', environment = 'devel', name = 'b', task = task),\n"
        "]\n"
    )
    res = cli(f"run -f {aurora} --job local/me/devel/b --bind greeting=hi")
    assert res.status == 0, res.stderr
    assert res.stdout == "hi from 0\n"
    res = cli(f"run -f {aurora} --job nope --bind greeting=hi")
    assert res.status == 2 and "nope" in res.stderr


def test_run_file_multi_process_aurora_job(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    aurora = tmp_path / "seq.aurora"
    aurora.write_text(
        "one = Process(name = 'one', cmdline = 'echo first')\n"
        "two = Process(name = 'two', cmdline = 'echo second')\n"
        "jobs = [Job(cluster = 'local', role = 'me', environment = 'devel', name = 'seq',\n"
        "  task = SequentialTask(processes = [one, two],\n"
        "    resources = Resources(cpu = 0.1, ram = 32*MB, disk = 16*MB)))]\n"
    )
    res = cli(f"run -f {aurora}")
    assert res.status == 0, res.stderr
    (task,) = engine.list_tasks(all=True)
    assert ok(cli, f"cat /local/tasks/{task.id}/one/stdout") == "first\n"
    assert ok(cli, f"cat /local/tasks/{task.id}/two/stdout") == "second\n"
    shown = json.loads(ok(cli, f"inspect {task.id} -o json"))
    procs = shown["processes"] if "processes" in shown else shown[0]["processes"]
    assert [(p["name"], p["state"]) for p in procs] == [("one", "SUCCESS"), ("two", "SUCCESS")]
