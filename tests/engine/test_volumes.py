"""Persistent volumes on the embedded engine with three logical agents (a0 a1 a2, one cpu and
1000 MiB of disk each): ``mount -t volume`` reserves disk on one agent, tasks see the volume at
their PATH (a bind mount in their own mount namespace, or the symlink fallback), are placed on
its agent only, and its data outlives kills and engine restarts; ``umount`` detaches it,
``vol rm`` destroys it (refused while used); services get one volume per instance; the files
API resolves a volume's path without a way out; bad input is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dshell.errors import ExitCode, UsageError
from dshell.testing.fixtures import CliRunner

from dshell_local import control
from dshell_local.allocator import DEFAULT_ROLE

from .conftest import need, wait_until
from .helpers import node, ok, task

AGENTS = "".join(
    f'[[agents]]\nid = "a{i}"\nhostname = "h{i}"\ncpus = 1\nmem = 1024\ndisk = 1000\n'
    f"ports = [[{36000 + 20 * i}, {36019 + 20 * i}]]\n"
    for i in range(3)
)


def vols(cli: CliRunner) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in json.loads(ok(cli, "vol ls -o json"))}


def ended(cli: CliRunner, ident: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (t := task(cli, ident))["state"] in ("FINISHED", "FAILED", "KILLED") and t,
        what=f"{ident} ended",
    )


def running(cli: CliRunner, ident: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[return-value]
        lambda: (t := task(cli, ident))["state"] == "RUNNING" and t, what=f"{ident} running"
    )


def launch(cli: CliRunner, args: str, script: str) -> str:
    return ok(cli, ["run", "-d", *args.split(), "--shell", script]).strip()


def cat(cli: CliRunner, path: str) -> str:
    return ok(cli, f"cat {path}")


def cat_when_there(cli: CliRunner, path: str) -> str | None:
    """The file's content, or None while it does not exist yet (for polling)."""
    res = cli(f"cat {path}")
    return res.stdout if res.status == 0 else None


@pytest.fixture
def three(engine_dirs: Path, engine_config: Callable[[str], Path]) -> None:
    engine_config(AGENTS)
    control.start()


@pytest.fixture
def fallback(
    engine_dirs: Path, engine_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same engine without mount namespaces (as where it cannot have them)."""
    monkeypatch.setenv("DSHELL_VOLUME_MOUNTS", "symlink")
    engine_config(AGENTS)
    control.start()


@pytest.mark.engine
def test_mount_reserves_disk_and_lists(three: None, cli: CliRunner) -> None:
    assert ok(cli, "mount -t volume -o size=128M,agent=a1 db /local/vol/db") == ""
    db = vols(cli)["db"]
    assert (db["agent_id"], db["size"], db["role"], db["attached"]) == (
        "a1",
        128,
        DEFAULT_ROLE,
        True,
    )
    assert db["tasks"] == [] and os.path.isdir(db["path"])
    a1 = node(cli, "a1")
    assert a1["allocated"]["disk"] == 128 and a1["reservations"][DEFAULT_ROLE]["disk"] == 128
    assert f"{DEFAULT_ROLE}:cpus=0/mem=0/disk=128" in ok(cli, "nodes -o wide")
    snap = json.loads(ok(cli, "top -n 1 -o json"))
    assert next(a for a in snap["agents"] if a["id"] == "a1")["allocated"]["disk"] == 128
    # default agent: the one with most free disk (not a1 any more)
    ok(cli, "mount -t volume -o size=0.5G,role=alice logs /local/vol/logs")
    logs = vols(cli)["logs"]
    assert logs["agent_id"] in ("a0", "a2") and logs["size"] == 512
    rows = [line.split("\t") for line in ok(cli, "mount").splitlines()]
    mine = {r[1]: r for r in rows if r[2] == "volume"}
    assert mine["/local/vol/db"][0] == "db" and "agent=a1" in mine["/local/vol/db"][3]
    assert "role=alice" in mine["/local/vol/logs"][3]
    assert {"db", "logs"} <= set(ok(cli, "ls /local/vol").split())
    assert json.loads(ok(cli, "vol show db -o json"))["agent_id"] == "a1"


@pytest.mark.engine
def test_data_survives_kill_restart_and_engine_restart(three: None, cli: CliRunner) -> None:
    status = json.loads(ok(cli, "engine status -o json"))
    assert status["volumes"].startswith(("bind mounts", "symlinks"))
    ok(cli, "mount -t volume -o size=64,agent=a2 db /local/vol/db")
    first = launch(cli, "--volume db:data", "echo one >> data/log; sleep 300")
    t = running(cli, first)
    assert t["agent_id"] == "a2" and t["volumes"] == ["db:data"]
    wait_until(
        lambda: cat_when_there(cli, f"/local/tasks/{first}/data/log") == "one\n", what="written"
    )
    assert vols(cli)["db"]["tasks"] == [first]
    assert "db:data" in ok(cli, "ps -o wide")
    assert "log" in ok(cli, f"ls /local/tasks/{first}/data")
    ok(cli, f"kill {first}")
    ended(cli, first)
    assert vols(cli)["db"]["tasks"] == []
    second = launch(cli, "--volume db:data", "echo two >> data/log")
    assert ended(cli, second)["state"] == "FINISHED"
    assert control.stop()
    control.start()
    assert vols(cli)["db"]["agent_id"] == "a2" and node(cli, "a2")["allocated"]["disk"] == 64
    third = launch(cli, "--volume db:data", "cat data/log")
    assert ended(cli, third)["state"] == "FINISHED"
    assert cat(cli, f"/local/tasks/{third}/stdout") == "one\ntwo\n"
    # the first task's sandbox still resolves its volume path (through the volume table)
    assert cat(cli, f"/local/tasks/{first}/data/log") == "one\ntwo\n"


@pytest.mark.engine
def test_a_task_runs_only_on_its_volumes_agent(three: None, cli: CliRunner) -> None:
    ok(cli, "mount -t volume -o size=10,agent=a1 db /local/vol/db")
    hog = ok(cli, "run -d --cpus 1 -C hostname:IS:h1 -- sleep 300").strip()
    assert running(cli, hog)["agent_id"] == "a1"
    user = launch(cli, "--cpus 0.5 --volume db:data", "sleep 300")
    wait_until(
        lambda: (
            "agent a1 (it holds the task's persistent volumes)"
            in (task(cli, user).get("message") or "")
        ),
        what="the reason of the wait",
    )
    assert task(cli, user)["state"] == "STAGING"  # a0 and a2 are free, but not its agent
    ok(cli, f"kill {hog}")
    assert running(cli, user)["agent_id"] == "a1"


@pytest.mark.engine
def test_rm_is_refused_while_used_then_destroys(three: None, cli: CliRunner) -> None:
    ok(cli, "mount -t volume -o size=100,agent=a0 db /local/vol/db")
    path = vols(cli)["db"]["path"]
    user = launch(cli, "--volume db:data", "sleep 300")
    running(cli, user)
    res = cli("vol rm db")
    assert res.status == ExitCode.CONFLICT and user in res.stderr, res.stderr
    res = cli("umount /local/vol/db")
    assert res.status == ExitCode.CONFLICT and "busy" in res.stderr, res.stderr
    ok(cli, f"kill {user}")
    ended(cli, user)
    ok(cli, "vol rm db")
    assert "db" not in vols(cli) and not os.path.exists(path)
    assert node(cli, "a0")["allocated"]["disk"] == 0 and not node(cli, "a0").get("reservations")
    assert cli("vol rm db").status == ExitCode.NOT_FOUND


@pytest.mark.engine
def test_umount_keeps_the_data_and_mount_reattaches(three: None, cli: CliRunner) -> None:
    ok(cli, "mount -t volume -o size=10 db /local/vol/db")
    writer = launch(cli, "--volume db:data", "echo kept > data/f")
    assert ended(cli, writer)["state"] == "FINISHED"
    ok(cli, "umount /local/vol/db")
    assert "db" not in ok(cli, "ls /local/vol").split()
    assert vols(cli)["db"]["attached"] is False
    assert "/local/vol/db" not in ok(cli, "mount")
    res = cli("run -d --volume db:data -- true")
    assert res.status == ExitCode.CONFLICT and "not mounted" in res.stderr
    res = cli("mount -t volume -o size=11 db /local/vol/db")
    assert res.status == ExitCode.CONFLICT and "size" in res.stderr
    ok(cli, "mount -t volume db /local/vol/db")  # size optional: the same volume again
    reader = launch(cli, "--volume db:data", "cat data/f")
    ended(cli, reader)
    assert cat(cli, f"/local/tasks/{reader}/stdout") == "kept\n"
    res = cli("mount -t volume -o size=10 db /local/vol/db")
    assert res.status == ExitCode.CONFLICT and "exists" in res.stderr


@pytest.mark.engine
def test_bind_mounts_stay_inside_the_task(three: None, cli: CliRunner, tmp_path: Path) -> None:
    status = json.loads(ok(cli, "engine status -o json"))
    need(status["volumes"].startswith("bind mounts"), f"no mount namespace: {status['volumes']}")
    ok(cli, "mount -t volume -o size=10 db /local/vol/db")
    spot = tmp_path / "spot"
    spot.mkdir()
    writer = launch(cli, f"--volume db:{spot}", f"echo abs > {spot}/f; echo $$ > {spot}/pid")
    assert ended(cli, writer)["state"] == "FINISHED"
    assert list(spot.iterdir()) == []  # the host's directory was only shadowed
    data = Path(vols(cli)["db"]["path"])
    assert (data / "f").read_text() == "abs\n"
    assert int((data / "pid").read_text()) == task(cli, writer)["pid"]  # exec'd: same pid
    reader = launch(cli, "--volume db:data:ro", "cat data/f; echo no > data/g")
    assert ended(cli, reader)["state"] == "FAILED"
    assert cat(cli, f"/local/tasks/{reader}/stdout") == "abs\n"
    assert "Read-only" in cat(cli, f"/local/tasks/{reader}/stderr")
    assert not (data / "g").exists()
    assert "db:data:ro" in ok(cli, "ps -a -o wide")
    sleeper = launch(cli, "--volume db:data", "sleep 300")
    running(cli, sleeper)
    assert ok(cli, f"exec {sleeper} -- cat data/f") == "abs\n"  # in the task's namespace


@pytest.mark.engine
def test_symlink_fallback(fallback: None, cli: CliRunner, tmp_path: Path) -> None:
    status = json.loads(ok(cli, "engine status -o json"))
    assert status["volumes"] == "symlinks (no mount namespace: DSHELL_VOLUME_MOUNTS=symlink)"
    ok(cli, "mount -t volume -o size=10 db /local/vol/db")
    writer = launch(cli, "--volume db:sub/data", "echo via-link > sub/data/f")
    assert ended(cli, writer)["state"] == "FINISHED"
    assert (Path(vols(cli)["db"]["path"]) / "f").read_text() == "via-link\n"
    assert cat(cli, f"/local/tasks/{writer}/sub/data/f") == "via-link\n"
    for line, why in (
        (f"run -d --volume db:{tmp_path} -- true", "an absolute path needs a mount namespace"),
        ("run -d --volume db:data:ro -- true", "read-only volumes need a mount namespace"),
    ):
        res = cli(line)
        assert res.status == ExitCode.USAGE and why in res.stderr, res.stderr


@pytest.mark.engine
def test_files_api_has_no_way_out_through_a_volume(three: None, cli: CliRunner) -> None:
    ok(cli, "mount -t volume -o size=10 db /local/vol/db")
    data = Path(vols(cli)["db"]["path"])
    sibling = data.parent / "db-evil"
    sibling.mkdir()
    (sibling / "secret").write_text("no")
    (data / "up").symlink_to("../db-evil/secret")
    (data / "abs").symlink_to("/etc/hostname")
    (data / "ok").write_text("yes")
    user = launch(cli, "--volume db:data", "sleep 300")
    running(cli, user)
    assert cat(cli, f"/local/tasks/{user}/data/ok") == "yes"
    base = f"/local/tasks/{user}"
    for path in (f"{base}/data/up", f"{base}/data/abs"):  # (the CLI folds '..' itself)
        res = cli(f"cat {path}")
        assert res.status == ExitCode.USAGE, f"{path}: {res.status} {res.stderr}"
    from dshell_local.client import EngineClient

    client = control.client()
    assert isinstance(client, EngineClient)
    with pytest.raises(UsageError) as info:
        b"".join(client.read_file(user, "/etc/hostname"))
    assert "absolute" in str(info.value)
    for rel in ("data/../../db-evil", "data/../stdout"):
        with pytest.raises(UsageError) as info:
            client.list_files(user, rel)
        assert "'..'" in str(info.value)
    client.close()


@pytest.mark.engine
def test_services_get_a_volume_per_instance(three: None, cli: CliRunner) -> None:
    script = "echo $DSHELL_TASK_ID >> data/ids; sleep 300"
    ok(cli, ["svc", "deploy", "--name", "kv", "--instances", "2", "--volume", "data:64M",
             "--shell", "--", script])  # fmt: skip
    wait_until(
        lambda: json.loads(ok(cli, "svc status kv -o json"))["running"] == 2, what="2 running"
    )
    owned = {n: v for n, v in vols(cli).items() if v.get("service") == "kv"}
    assert set(owned) == {"kv#0-data", "kv#1-data"}
    assert owned["kv#0-data"]["agent_id"] != owned["kv#1-data"]["agent_id"]  # spread
    svc = json.loads(ok(cli, "svc status kv -o json"))
    first = next(m for m in svc["members"] if m["instance"] == 0)
    assert first["agent_id"] == owned["kv#0-data"]["agent_id"]
    ok(cli, f"kill {first['task_id']}")

    def relaunched() -> Any:
        members = json.loads(ok(cli, "svc status kv -o json"))["members"]
        new = [m for m in members if m["instance"] == 0 and m["task_id"] != first["task_id"]]
        return new and new[0]["state"] == "RUNNING" and new[0]

    again = wait_until(relaunched, what="instance 0 relaunched")
    assert again["agent_id"] == first["agent_id"]  # on the agent holding its volume
    ids = Path(owned["kv#0-data"]["path"]) / "ids"
    wait_until(lambda: ids.read_text().split() == [first["task_id"], again["task_id"]])
    ok(cli, "svc rm kv")
    wait_until(lambda: not [n for n in vols(cli) if n.startswith("kv#")], what="volumes gone")
    assert not ids.exists() and node(cli, first["agent_id"])["allocated"]["disk"] == 0


@pytest.mark.engine
def test_the_engine_enforces_resident_upgrade_rules(three: None) -> None:
    import msgspec
    from dshell.specs.model import ServiceSpec, UpgradeStrategySpec, VolumeSpec

    from dshell_local.svcapi import DeployRequest, PlanItem

    client = control.client()
    base = ServiceSpec(
        name="db", command=["sleep", "300"], volumes=[VolumeSpec(container_path="d", size=8)]
    )
    for upgrade, why in (
        (UpgradeStrategySpec(), "maximum_over_capacity: must be 0"),
        (UpgradeStrategySpec(maximum_over_capacity=0.0), "minimum_health_capacity"),
    ):
        spec = msgspec.structs.replace(base, upgrade_strategy=upgrade)
        with pytest.raises(UsageError) as info:
            client.call("POST", "/services/deploy", list[PlanItem], DeployRequest(services=[spec]))
        assert why in info.value.message
    client.close()


@pytest.mark.engine
def test_bad_input_is_refused(three: None, cli: CliRunner) -> None:
    ok(cli, "mount -t volume -o size=10,agent=a0 db /local/vol/db")
    cases = {
        "mount -t volume -o size=10,agent=nosuch x /local/vol/x": (ExitCode.NOT_FOUND, "nosuch"),
        "mount -t volume -o size=-5 x /local/vol/x": (ExitCode.USAGE, "size"),
        "mount -t volume -o size=0 x /local/vol/x": (ExitCode.USAGE, "size"),
        "mount -t volume -o size=lots x /local/vol/x": (ExitCode.USAGE, "size"),
        "mount -t volume -o size=5000 x /local/vol/x": (ExitCode.USAGE, "does not fit"),
        "mount -t volume -o size=995,agent=a0 x /local/vol/x": (ExitCode.USAGE, "does not fit"),
        "mount -t volume -o size=10 db /local/vol/db": (ExitCode.CONFLICT, "exists"),
        "mount -t volume -o size=10 a..b /local/vol/a..b": (ExitCode.USAGE, "'..'"),
        "mount -t volume -o size=10 a /local/vol/a/b": (ExitCode.USAGE, "/MOUNT/vol/NAME"),
        "mount -t volume -o size=10 x /local/tasks/x": (ExitCode.USAGE, "/MOUNT/vol/NAME"),
        "mount -t volume x /local/vol/x": (ExitCode.USAGE, "size="),
        "mount -t volume -o size=1,color=red x /local/vol/x": (ExitCode.USAGE, "color"),
        "mount -t volume -o size=1,role=a/b x /local/vol/x": (ExitCode.USAGE, "role"),
        "mount -t volume -o size=1 y /local/vol/x": (ExitCode.USAGE, "differ"),
        "umount /local/vol/nosuch": (ExitCode.NOT_FOUND, "nosuch"),
        "vol rm nosuch": (ExitCode.NOT_FOUND, "nosuch"),
        "run -d --volume nosuch:data -- true": (ExitCode.NOT_FOUND, "nosuch"),
        "run -d --volume db:../x -- true": (ExitCode.USAGE, "'..'"),
        "run -d --volume db:stdout -- true": (ExitCode.USAGE, "stdout"),
        "run -d --volume db -- true": (ExitCode.USAGE, "NAME:PATH"),
        "run -d --role alice --volume db:data -- true": (ExitCode.USAGE, "belongs to role"),
        "run -d --volume db:d --volume db:d/e -- true": (ExitCode.USAGE, "overlap"),
        "run -d --volume db:/no/such/dir -- true": (ExitCode.USAGE, "/no/such/dir"),
        "svc deploy --name s --volume data -- true": (ExitCode.USAGE, "PATH:SIZE"),
        "svc deploy --name s --volume a/b:1G -- true": (ExitCode.USAGE, "one relative name"),
        "svc deploy --name s --volume data:2000 -- true": (ExitCode.USAGE, "can ever hold"),
    }
    for line, (code, text) in cases.items():
        res = cli(line)
        assert res.status == code, f"{line}: {res.status} {res.stderr}"
        assert text in res.stderr, f"{line}: {res.stderr}"
    assert set(vols(cli)) == {"db"} and node(cli, "a0")["allocated"]["disk"] == 10
    assert json.loads(ok(cli, "ps -a -o json")) == []  # nothing was launched


@pytest.mark.engine
def test_marathon_resident_app_keeps_its_volume_across_a_restart(
    three: None, cli: CliRunner
) -> None:
    app = {
        "id": "/shop/pg",
        "cmd": "echo $DSHELL_TASK_ID >> pgdata/ids; sleep 300",
        "cpus": 0.1,
        "mem": 32,
        "instances": 1,
        "container": {
            "type": "MESOS",
            "volumes": [{"containerPath": "pgdata", "mode": "RW", "persistent": {"size": 32}}],
        },
    }
    res = cli("svc deploy -f - --format marathon", stdin=json.dumps(app))
    assert res.status == 0, res.stderr
    vol = wait_until(lambda: vols(cli).get("shop.pg#0-pgdata"), what="the instance's volume")
    assert vol["service"] == "shop/pg" and vol["size"] == 32  # type: ignore[index]
    ids = Path(vol["path"]) / "ids"  # type: ignore[index]
    wait_until(lambda: ids.exists() and len(ids.read_text().split()) == 1, what="first run")
    ok(cli, "svc restart shop/pg")
    wait_until(lambda: len(ids.read_text().split()) == 2, what="the restarted instance")
    tasks = json.loads(ok(cli, "ps -a -o json"))
    assert {t["agent_id"] for t in tasks} == {vol["agent_id"]}  # type: ignore[index]
    assert all(t["volumes"] == ["shop.pg#0-pgdata:pgdata"] for t in tasks)


@pytest.mark.engine
def test_an_instance_waits_for_room_for_its_volume(three: None, cli: CliRunner) -> None:
    for i in range(3):  # every agent's disk taken by other volumes
        ok(cli, f"mount -t volume -o size=990,agent=a{i} big{i} /local/vol/big{i}")
    ok(cli, "svc deploy --no-wait --name kv --volume data:64M -- sleep 300")
    why = "instance 0 waits for its volumes: service kv: no agent has 64 MiB of disk free"
    wait_until(
        lambda: why in (json.loads(ok(cli, "svc status kv -o json")).get("message") or ""),
        what="the service's reason",
    )
    assert "kv#0-data" not in vols(cli)
    ok(cli, "vol rm big2")  # room again: the instance is launched there
    wait_until(lambda: json.loads(ok(cli, "svc status kv -o json"))["running"] == 1, what="running")
    assert vols(cli)["kv#0-data"]["agent_id"] == "a2"


@pytest.mark.engine
def test_volumes_count_against_their_roles_disk_quota(three: None, cli: CliRunner) -> None:
    """A persistent volume is reserved disk: it counts against its role's disk quota (as
    Mesos counts reservations), so a volume beyond it is refused and tasks see less room."""
    ok(cli, "quota set team disk=200")
    res = cli("mount -t volume -o size=256M,role=team big /local/vol/big")
    assert res.status == ExitCode.CONFLICT, res.stderr
    assert "quota disk 200" in res.stderr and "big" in res.stderr
    assert "big" not in vols(cli)
    ok(cli, "mount -t volume -o size=150M,role=team small /local/vol/small")
    team = next(q for q in json.loads(ok(cli, "quota ls -o json")) if q["role"] == "team")
    assert team["allocated"]["disk"] == 150
    res = cli("mount -t volume -o size=100M,role=team second /local/vol/second")
    assert res.status == ExitCode.CONFLICT and "150 allocated" in res.stderr, res.stderr
    # a task of the role asking for more disk than is left waits, with the quota as its reason
    waiting = launch(cli, "--role team --disk 100 --cpus 0.01 --mem 16", "sleep 30")
    t = wait_until(lambda: (t := task(cli, waiting))["message"] and t, what="a reason")
    assert t["state"] == "STAGING" and "quota disk" in t["message"], t  # type: ignore[index]
    ok(cli, f"kill -y {waiting}")
    ok(cli, "vol rm small")
    ok(cli, "mount -t volume -o size=200M,role=team big /local/vol/big")
