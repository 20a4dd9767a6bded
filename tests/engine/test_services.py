"""Services on the embedded engine: svc verbs, health and readiness, rolling deployments,
backoff, groups, lifecycle, recovery — against the real engine daemon.

Instances are ``svcapp.py``: each reports start, ready and end to a collector file owned by
the test, so deployment invariants are checked on the order of events, not on sampling.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from dshell.testing.fixtures import CliRunner

from dshell_local import control
from dshell_local.client import EngineClient

from .conftest import pid_alive, wait_until

pytestmark = pytest.mark.engine

APP = Path(__file__).with_name("svcapp.py")


def spec(
    tmp: Path,
    name: str = "web",
    *,
    instances: int = 2,
    version: str = "1",
    mhc: float = 1.0,
    moc: float = 1.0,
    checks: bool = True,
    readiness: bool = False,
    env: dict[str, str] | None = None,
    extra: str = "",
) -> Path:
    """A native spec of a svcapp service (SVC_VERSION makes each version a new config)."""
    envs = {"SVC_VERSION": version, **(env or {})}
    env_toml = ", ".join(f'{k} = "{v}"' for k, v in envs.items())
    text = f"""
[service]
name = "{name}"
command = ["{sys.executable}", "{APP}", "{tmp / "events"}"]
instances = {instances}
ports = ["http"]
resources = {{ cpus = 0.05, mem = 64 }}
env = {{ {env_toml} }}
kill_grace_period = 5
{extra}
[service.upgrade_strategy]
minimum_health_capacity = {mhc}
maximum_over_capacity = {moc}

[service.backoff]
seconds = 0.1
factor = 2.0
max_launch_delay = 1.0
"""
    if checks:
        text += """
[[service.health_checks]]
protocol = "HTTP"
port_name = "http"
path = "/health"
delay = 0
interval = 0.1
timeout = 1
grace_period = 5
max_consecutive_failures = 2
"""
    if readiness:
        text += """
[[service.readiness_checks]]
protocol = "HTTP"
port_name = "http"
path = "/ready"
interval = 0.1
timeout = 0.05
"""
    path = tmp / f"{name.replace('/', '_')}-{version}.toml"
    path.write_text(text)
    return path


def events(tmp: Path) -> list[list[str]]:
    try:
        return [line.split() for line in (tmp / "events").read_text().splitlines()]
    except FileNotFoundError:
        return []


def status(cli: CliRunner, name: str) -> dict[str, object]:
    res = cli(f"svc status {name} -o json")
    assert res.status == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def ok(cli: CliRunner, line: str) -> str:
    res = cli(line)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def test_deploy_status_endpoints_and_ps(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, f"svc deploy -f {spec(tmp_path)} --timeout 60")
    svc = status(cli, "web")
    assert svc["state"] == "RUNNING" and svc["healthy"] == 2 and svc["version"] == "v1"
    members = svc["members"]
    assert isinstance(members, list)
    assert sorted(m["instance"] for m in members) == [0, 1]
    assert {m["health"] for m in members} == {"HEALTHY"}
    ends = json.loads(ok(cli, "svc endpoints web -o json"))
    assert {e["port"] for e in ends} == {m["ports"][0]["port"] for m in members}
    assert len(set(ok(cli, "svc endpoints web -q").split())) == 2
    ps = json.loads(ok(cli, "ps -o json"))
    assert {t["service"] for t in ps} == {"web"} and {t["health"] for t in ps} == {"HEALTHY"}
    listing = ok(cli, "svc ls -o tsv")
    assert listing.splitlines()[1].split("\t")[1:4] == ["web", "RUNNING", "2"]
    res = cli("svc scale web 3 --timeout 60", tty=True)  # with the progress display
    assert res.status == 0, res.stderr
    assert status(cli, "web")["healthy"] == 3


def test_bad_spec_launches_nothing(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[service]\nname = "web"\ncommand = ["true"]\ninstances = "two"\n')
    res = cli(f"svc deploy -f {bad}")
    assert res.status == 2 and "bad.toml" in res.stderr and "instances" in res.stderr
    assert ":4" in res.stderr  # the line of the field
    wrong_port = spec(tmp_path, extra="")
    wrong_port.write_text(wrong_port.read_text().replace('port_name = "http"', 'port_name = "x"'))
    res = cli(f"svc deploy -f {wrong_port}")
    assert res.status == 2 and "port_name" in res.stderr
    assert engine.list_tasks(all=True) == []
    assert json.loads(ok(cli, "svc ls -o json")) == []


def test_dry_run_plans_and_launches_nothing(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    plan = json.loads(ok(cli, f"svc deploy -f {spec(tmp_path, instances=3)} --dry-run -o json"))
    assert [(p["service"], p["action"], p["start"]) for p in plan] == [("web", "create", 3)]
    assert len(plan[0]["placement"]) == 3 and all(plan[0]["placement"])
    assert engine.list_tasks(all=True) == []


def rolling(tmp: Path, cli: CliRunner, n: int, mhc: float, moc: float) -> None:
    ok(cli, f"svc deploy -f {spec(tmp, instances=n, mhc=mhc, moc=moc)} --timeout 90")
    before = len(events(tmp))
    new = spec(tmp, instances=n, version="2", mhc=mhc, moc=moc)
    ok(cli, f"svc deploy -f {new} --timeout 120")
    alive: set[str] = set()
    healthy: set[str] = set()
    max_total = n + math.floor(n * moc + 1e-9)
    if mhc == 1 and moc == 0:
        max_total += 1  # Marathon's exception: one extra instance, else nothing could move
    min_healthy = math.ceil(n * mhc - 1e-9)
    for i, (event, task, _detail) in enumerate(events(tmp)):
        if event == "start":
            alive.add(task)
        elif event == "ready":
            healthy.add(task)
        elif event == "end":
            alive.discard(task)
            healthy.discard(task)
        if i >= before:
            assert len(alive) <= max_total, f"event {i}: {len(alive)} alive > {max_total}"
            assert len(healthy) >= min_healthy, f"event {i}: {len(healthy)} healthy"
    svc = status(cli, "web")
    assert svc["version"] == "v2" and svc["healthy"] == n
    assert {m["version"] for m in svc["members"]} == {"v2"}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("n", "mhc", "moc"),
    [(4, 0.5, 0.5), (3, 1.0, 0.34), (4, 0.25, 0.0), (2, 0.0, 1.0), (3, 1.0, 0.0)],
)
def test_rolling_update_bounds(
    engine: EngineClient, cli: CliRunner, tmp_path: Path, n: int, mhc: float, moc: float
) -> None:
    rolling(tmp_path, cli, n, mhc, moc)


def test_readiness_gates_the_deployment(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    gate = tmp_path / "not-ready"
    env = {"FAIL_READY": str(gate)}
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=1, readiness=True, env=env)} --timeout 60")
    gate.touch()
    new = spec(tmp_path, instances=1, version="2", readiness=True, env=env, mhc=1.0, moc=1.0)
    res = cli(f"svc deploy -f {new} --timeout 1.5")
    assert res.status == 9, res.stderr  # timed out: the new instance never became ready
    svc = status(cli, "web")
    dep = svc["deployment"]
    assert isinstance(dep, dict) and dep["state"] == "RUNNING" and dep["step"] == 0
    assert {m["version"] for m in svc["members"]} == {"v1", "v2"}  # type: ignore[union-attr]
    gate.unlink()
    ok(cli, "svc wait web --deployed --timeout 60")
    assert {m["version"] for m in status(cli, "web")["members"]} == {"v2"}  # type: ignore[union-attr]


def test_unhealthy_instance_is_killed_and_replaced(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    flag = tmp_path / "sick"
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=1, env={'FAIL_HEALTH': str(flag)})}")
    first = status(cli, "web")["tasks"][0]  # type: ignore[index]
    flag.touch()
    wait_until(
        lambda: engine.get_task(first).state.terminal, what="the unhealthy instance to be killed"
    )
    flag.unlink()
    ok(cli, "svc wait web --healthy --timeout 60")
    svc = status(cli, "web")
    assert svc["tasks"] != [first] and svc["crashes"] >= 1


def test_zero_consecutive_failures_never_kills(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    flag = tmp_path / "sick"
    path = spec(tmp_path, instances=1, env={"FAIL_HEALTH": str(flag)})
    path.write_text(
        path.read_text().replace("max_consecutive_failures = 2", "max_consecutive_failures = 0")
    )
    ok(cli, f"svc deploy -f {path} --timeout 60")
    flag.touch()
    wait_until(
        lambda: status(cli, "web")["members"][0]["health"] == "UNHEALTHY",  # type: ignore[index]
        what="the instance to be reported unhealthy",
    )
    svc = status(cli, "web")
    assert svc["members"][0]["state"] == "RUNNING" and svc["healthy"] == 0  # type: ignore[index]
    flag.unlink()
    ok(cli, "svc wait web --timeout 30")


def test_crash_loop_backs_off_and_user_kill_is_not_a_crash(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=1, checks=False)} --timeout 60")
    task = status(cli, "web")["tasks"][0]  # type: ignore[index]
    ok(cli, f"kill --yes {task}")
    wait_until(lambda: status(cli, "web")["tasks"] not in ([], [task]), what="a replacement")
    assert status(cli, "web")["crashes"] == 0
    # without checks a running instance counts as ready: the deployment may even succeed
    # before the first crash; then every crash delays the next launch
    crashing = spec(tmp_path, instances=1, version="2", checks=False, env={"SVC_EXIT": "3"})
    ok(cli, f"svc deploy -f {crashing} --no-wait")
    svc = wait_until(lambda: (s := status(cli, "web"))["crashes"] >= 4 and s, what="4 crashes")
    assert isinstance(svc, dict)
    # the delay doubles per crash from 0.1 s, capped at 1 s
    assert svc["backoff_delay"] == pytest.approx(min(1.0, 0.1 * 2 ** (svc["crashes"] - 1)))
    starts = [e for e in events(tmp_path) if e[0] == "start" and e[2] == "2"]
    assert len(starts) <= svc["crashes"] + 1  # nothing launched while backing off


def test_rollback_on_failure(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=2)} --timeout 60")
    v1 = set(status(cli, "web")["tasks"])  # type: ignore[arg-type]
    bad = spec(tmp_path, instances=2, version="2", env={"SVC_EXIT": "3"})
    res = cli(f"svc deploy -f {bad} --rollback-on-failure --timeout 60")
    assert res.status == 1 and "failed" in res.stderr
    ok(cli, "svc wait web --deployed --timeout 60")
    deps = json.loads(ok(cli, "svc deployments web -o json"))
    assert [(d["cause"], d["state"]) for d in deps] == [
        ("deploy", "SUCCEEDED"),
        ("deploy", "FAILED"),
        ("rollback", "SUCCEEDED"),
    ]
    svc = status(cli, "web")
    assert svc["version"] == "v1" and set(svc["tasks"]) == v1  # type: ignore[arg-type]


def test_second_deployment_refused_unless_forced_and_pause_resume_abort(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    gate = tmp_path / "not-ready"
    gate.touch()
    env = {"FAIL_READY": str(gate)}
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=1, readiness=True, env=env)} --no-wait")
    res = cli(f"svc deploy -f {spec(tmp_path, instances=1, version='2', env=env)} --no-wait")
    assert res.status == 12 and "--force" in res.stderr
    ok(cli, "svc pause web")
    assert status(cli, "web")["deployment"]["state"] == "PAUSED"  # type: ignore[index]
    ok(cli, "svc resume web --no-wait")
    ok(cli, "svc abort web")
    assert status(cli, "web")["deployment"] is None
    new = spec(tmp_path, instances=1, version="3", readiness=True, env=env)
    ok(cli, f"svc deploy -f {new} --no-wait")
    gate.unlink()
    ok(cli, "svc wait web --deployed --timeout 60")
    assert status(cli, "web")["version"] == "v2"  # aborted v1 deployment, then v2


def test_scale_restart_rollback_versions_kill_scale(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=1)} --timeout 60")
    ok(cli, "svc scale web 3 --timeout 60")
    assert status(cli, "web")["healthy"] == 3
    before = set(status(cli, "web")["tasks"])  # type: ignore[arg-type]
    ok(cli, "svc restart web --timeout 90")
    after = status(cli, "web")
    assert after["version"] == "v2" and not before & set(after["tasks"])  # type: ignore[arg-type]
    versions = json.loads(ok(cli, "svc versions web -o json"))
    assert [(v["version"], v["cause"], v["current"]) for v in versions] == [
        ("v1", "deploy", False),
        ("v2", "restart", True),
    ]
    ok(cli, "svc rollback web --timeout 90")
    assert status(cli, "web")["version"] == "v1"
    victim = status(cli, "web")["tasks"][0]  # type: ignore[index]
    ok(cli, f"kill --scale --yes {victim}")
    wait_until(lambda: engine.get_task(victim).state.terminal, what="the instance to end")
    ok(cli, "svc wait web --timeout 30")
    svc = status(cli, "web")
    assert svc["instances"] == 2 and victim not in svc["tasks"]  # type: ignore[operator]


def test_diff_show_and_logs(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    path = spec(tmp_path, instances=2)
    ok(cli, f"svc deploy -f {path} --timeout 60")
    assert cli(f"svc diff web -f {path}").status == 0
    changed = spec(tmp_path, instances=2, version="2")
    res = cli(f"svc diff web -f {changed}")
    assert res.status == 1 and '-SVC_VERSION = "1"' in res.stdout
    assert cli(f"svc diff web -f {tmp_path / 'missing.toml'}").status == 2
    shown = tmp_path / "shown.toml"
    shown.write_text(ok(cli, "svc show web"))
    assert cli(f"svc diff web -f {shown}").status == 0
    for port in [e["port"] for e in json.loads(ok(cli, "svc endpoints web -o json"))]:
        import urllib.request

        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
    out = ok(cli, "svc logs web")
    assert out == ""  # svcapp writes nothing on stdout


def test_group_dependencies_start_and_stop_in_order(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    db = spec(tmp_path, "db", instances=1).read_text().replace("[service", "[group.service")
    web = spec(tmp_path, "web", instances=2).read_text().replace("[service", "[group.service")
    web = web.replace('name = "web"', 'name = "web"\ndependencies = ["db"]', 1)
    group = tmp_path / "shop.toml"
    group.write_text(
        '[group]\nname = "/shop"\n'
        + db.replace("[group.service]", "[[group.service]]")
        + web.replace("[group.service]", "[[group.service]]")
    )
    ok(cli, f"svc deploy -f {group} --timeout 90")
    names = {s["name"] for s in json.loads(ok(cli, "svc ls -o json"))}
    assert names == {"shop/db", "shop/web"}
    db_tasks = set(status(cli, "shop/db")["tasks"])  # type: ignore[arg-type]
    log = events(tmp_path)
    db_ready = next(i for i, e in enumerate(log) if e[0] == "ready" and e[1] in db_tasks)
    web_start = min(i for i, e in enumerate(log) if e[0] == "start" and e[1] not in db_tasks)
    assert db_ready < web_start
    ok(cli, "svc rm /shop --timeout 60")
    log = events(tmp_path)
    db_end = next(i for i, e in enumerate(log) if e[0] == "end" and e[1] in db_tasks)
    web_end = max(i for i, e in enumerate(log) if e[0] == "end" and e[1] not in db_tasks)
    assert web_end < db_end
    assert json.loads(ok(cli, "svc ls -o json")) == []


def test_lifecycle_graceful_shutdown(engine: EngineClient, cli: CliRunner, tmp_path: Path) -> None:
    extra = (
        '[service.lifecycle]\nhttp_port_name = "http"\ngraceful_shutdown_wait = 0.3\n'
        "shutdown_wait = 0.3\n"
    )
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=1, extra=extra)} --timeout 60")
    task = status(cli, "web")["tasks"][0]  # type: ignore[index]
    ok(cli, "svc stop web --timeout 60")
    mine = [e[0] + (" " + e[2] if e[0] == "post" else "") for e in events(tmp_path) if e[1] == task]
    assert mine == ["start", "ready", "post /quitquitquit", "post /abortabortabort", "end"]


def test_engine_restart_keeps_services_and_healthy_instances(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=2)} --timeout 60")
    before = set(status(cli, "web")["tasks"])  # type: ignore[arg-type]
    control.stop(kill_tasks=False, timeout=30)
    control.start()
    svc = status(cli, "web")
    assert set(svc["tasks"]) == before and svc["healthy"] == 2  # type: ignore[arg-type]
    starts = [e for e in events(tmp_path) if e[0] == "start"]
    assert len(starts) == 2


@pytest.mark.parametrize("point", ["svc_after_launch", "svc_after_kill"])
def test_crash_in_the_middle_of_a_deployment_resumes_it(
    point: str,
    engine_dirs: Path,
    cli: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control.start()
    ok(cli, f"svc deploy -f {spec(tmp_path, instances=3, mhc=0.67, moc=0.0)} --timeout 60")
    first = control.status()
    assert first is not None
    control.stop(kill_tasks=False, timeout=30)
    monkeypatch.setenv("DSHELL_ENGINE_CRASH_POINT", f"{point}:1")
    control.start()
    cli(f"svc deploy -f {spec(tmp_path, instances=3, version='2', mhc=0.67, moc=0.0)} --no-wait")
    crashed = control.status()
    wait_until(lambda: crashed is None or not pid_alive(crashed.pid), what="the engine to crash")
    monkeypatch.delenv("DSHELL_ENGINE_CRASH_POINT")
    control.start()
    ok(cli, "svc wait web --deployed --timeout 90")
    assert status(cli, "web")["version"] == "v2"
    # health is a live signal: on a loaded machine one check can time out just after the
    # deployment ended (a single failure, not a replacement — the start log below says so)
    wait_until(lambda: status(cli, "web")["healthy"] == 3, timeout=60, what="3 healthy")
    deps = json.loads(ok(cli, "svc deployments web -o json"))
    assert [(d["version"], d["state"]) for d in deps] == [("v1", "SUCCEEDED"), ("v2", "SUCCEEDED")]
    log = events(tmp_path)
    started = [e[1] for e in log if e[0] == "start"]
    assert len(started) == len(set(started)) == 6  # 3 of v1, 3 of v2: none started twice
    ended = {e[1] for e in log if e[0] == "end"}
    v1 = {e[1] for e in log if e[0] == "start" and e[2] == "1"}
    assert ended == v1  # every v1 instance ended once; no v2 instance was restarted


RACKS = "".join(
    f'[[agents]]\nid = "a{i}"\nhostname = "h{i}"\ncpus = 1\nmem = 1024\ndisk = 100\n'
    f'ports = [[{33000 + 20 * i}, {33019 + 20 * i}]]\nattributes = {{ rack = "{rack}" }}\n'
    for i, rack in enumerate(("r1", "r1", "r2"))
)


def test_constraints_place_wait_and_refuse(
    engine_dirs: Path, engine_config: Any, cli: CliRunner, tmp_path: Path
) -> None:
    engine_config(RACKS)
    control.start()
    unique = spec(tmp_path, instances=4, checks=False, extra='constraints = ["hostname:UNIQUE"]')
    plan = json.loads(ok(cli, f"svc deploy -f {unique} --dry-run -o json"))[0]
    assert sorted(a for a in plan["placement"] if a) == ["a0", "a1", "a2"]
    assert None in plan["placement"] and "UNIQUE" in plan["message"]
    ok(cli, f"svc deploy -f {unique} --no-wait")
    svc = wait_until(
        lambda: (s := status(cli, "web"))["running"] == 3 and s["message"] and s,
        what="3 running and one waiting with its reason",
    )
    assert isinstance(svc, dict) and "UNIQUE" in svc["message"]
    assert sorted(m["agent_id"] for m in svc["members"] if m["state"] == "RUNNING") == [
        "a0",
        "a1",
        "a2",
    ]
    spread = spec(
        tmp_path, "spread", instances=2, checks=False, extra='constraints = ["rack:GROUP_BY"]'
    )
    ok(cli, f"svc deploy -f {spread} --timeout 60")
    racks = {"a0": "r1", "a1": "r1", "a2": "r2"}
    assert sorted(racks[m["agent_id"]] for m in status(cli, "spread")["members"]) == ["r1", "r2"]
    never = spec(tmp_path, "never", checks=False, extra='constraints = ["rack:CLUSTER:r9"]')
    res = cli(f"svc deploy -f {never}")
    assert res.status == 2 and "rack" in res.stderr and "r9" in res.stderr
    assert "never" not in ok(cli, "svc ls -q")


def test_required_host_ports(
    engine_dirs: Path, engine_config: Any, cli: CliRunner, tmp_path: Path
) -> None:
    engine_config(RACKS)  # a0 offers 33000-33019, a1 33020-33039, a2 33040-33059
    control.start()
    path = spec(tmp_path, instances=2, checks=False)
    fixed = 'ports = [{ name = "http", number = 33005 }]\nrequire_ports = true'
    path.write_text(path.read_text().replace('ports = ["http"]', fixed))
    ok(cli, f"svc deploy -f {path} --no-wait")
    svc = wait_until(
        lambda: (s := status(cli, "web"))["running"] == 1 and s["message"] and s,
        what="one instance on port 33005 and one waiting for it",
    )
    assert isinstance(svc, dict) and "33005" in svc["message"]
    running = [m for m in svc["members"] if m["state"] == "RUNNING"]
    assert running[0]["agent_id"] == "a0" and running[0]["ports"][0]["port"] == 33005
    nowhere = spec(tmp_path, "nowhere", checks=False)
    nowhere.write_text(
        nowhere.read_text().replace('ports = ["http"]', fixed.replace("33005", "40000"))
    )
    res = cli(f"svc deploy -f {nowhere}")
    assert res.status == 2 and "40000" in res.stderr


def test_logs_merge_instances_and_follow_new_ones(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    import os
    import subprocess
    import time

    path = tmp_path / "ticker.toml"
    path.write_text(
        '[service]\nname = "ticker"\ninstances = 2\n'
        "shell = 'while :; do echo tick $DSHELL_TASK_ID; sleep 0.1; done'\n"
        "resources = { cpus = 0.1, mem = 32 }\n"
    )
    ok(cli, f"svc deploy -f {path} --timeout 60")
    wait_until(lambda: ok(cli, "svc logs ticker").count("ticker#1 | tick") >= 2, what="output")
    out = ok(cli, "svc logs ticker")
    for line in out.splitlines():
        prefix, _, text = line.partition(" | ")
        assert prefix in ("ticker#0", "ticker#1") and text.startswith("tick ticker.")
    follow = subprocess.Popen(
        [sys.executable, "-m", "dshell", "svc", "logs", "-f", "ticker"],
        stdout=subprocess.PIPE,
        env=dict(os.environ),
        text=True,
    )
    assert follow.stdout is not None
    seen: set[str] = set()

    def read_until(want: set[str]) -> None:
        deadline = time.monotonic() + 30
        while not want <= seen and time.monotonic() < deadline:
            assert follow.stdout is not None
            seen.add(follow.stdout.readline().partition(" | ")[0])
        assert want <= seen

    try:
        read_until({"ticker#0", "ticker#1"})
        assert "ticker#2" not in seen
        ok(cli, "svc scale ticker 3 --timeout 60")  # a new instance joins the stream
        read_until({"ticker#2"})
    finally:
        follow.kill()
        follow.wait()


def test_backoff_resets_after_a_stable_run(
    engine: EngineClient, cli: CliRunner, tmp_path: Path
) -> None:
    crash = tmp_path / "crash"
    crash.touch()
    script = (
        "import os, sys, time\n"
        "if os.path.exists(os.environ['CRASH']): sys.exit(4)\n"
        "time.sleep(60)\n"
    )
    spec_file = tmp_path / "flappy.json"
    spec_file.write_text(json.dumps({"service": {
        "name": "flappy", "command": [sys.executable, "-c", script], "instances": 1,
        "env": {"CRASH": str(crash)}, "resources": {"cpus": 0.1, "mem": 32},
        "backoff": {"seconds": 0.05, "factor": 2.0, "max_launch_delay": 0.4,
                    "stable_after": 3.0},
    }}))  # fmt: skip
    ok(cli, f"svc deploy -f {spec_file} --no-wait")
    wait_until(lambda: status(cli, "flappy")["crashes"] >= 2, what="two crashes")
    assert status(cli, "flappy")["backoff_delay"] is not None
    crash.unlink()
    svc = wait_until(
        lambda: (s := status(cli, "flappy"))["crashes"] == 0 and s["running"] == 1 and s,
        what="a stable run to reset the backoff",
    )
    assert isinstance(svc, dict) and svc["backoff_delay"] is None
