"""Verbs through the command tree on the fake backend."""

from __future__ import annotations

import json


def test_version_and_module(dshell_exe) -> None:
    r = dshell_exe("--version")
    assert r.returncode == 0 and r.stdout.startswith("dshell ")
    assert dshell_exe("--help").stdout.count("Verbs") == 1


def test_mount_umount_list(fake_mount, cli) -> None:
    assert cli("mount -t fake -o agents=3 src /g").status == 0
    rows = json.loads(cli("mount --output json").stdout)
    assert [(m["target"], m["type"]) for m in rows] == [("/f", "fake"), ("/g", "fake")]
    assert rows[1]["options"] == {"agents": "3"} and rows[1]["kind"] == "Mount"
    assert cli("umount /g").status == 0
    assert cli("umount /g").status == 4
    bad = cli("mount -t fake -o bogus=1 x /h")
    assert bad.status == 2 and "bogus" in bad.stderr
    assert cli("mount -t nosuch x /h").status == 4
    assert cli("mount -t fake x /").status == 2


def test_ls_cd_pwd(fake_mount, cli) -> None:
    assert cli("ls /").lines[1:] == ["f\tmount\t-\t-\tfake fake"]
    assert [line.split("\t")[0] for line in cli("ls /f").lines[1:]] == [
        "tasks",
        "agents",
        "svc",
        "vol",
        "fw",
    ]
    cli("run --on /f -- echo hi")
    assert "echo.000001" in cli("ls /f/tasks").stdout
    assert [x.split("\t")[0] for x in cli("ls /f/tasks/echo.000001").lines[1:]] == [
        "stdout",
        "stderr",
    ]
    assert cli("ls /f/agents -q").lines == ["agent-0", "agent-1"]
    assert cli("cd /f/tasks; pwd").stdout == "/f/tasks\n"
    assert cli("cd /nope").status == 4
    assert cli("cd /f; cd ..; pwd").stdout == "/\n"


def test_cat_tail(fake_mount, cli) -> None:
    cli("run --on /f -- echo hello world")
    assert cli("cat /f/tasks/echo.000001/stdout").stdout == "hello world\n"
    assert cli("cat echo.000001", cwd="/f").stdout == "hello world\n"
    assert cli("tail -n 1 /f/tasks/echo.000001/stdout").stdout == "hello world\n"
    assert cli("cat /f/tasks/echo.000001/../../x").status in (2, 4)
    agent = json.loads(cli("cat /f/agents/agent-0").stdout)
    assert agent["kind"] == "Agent" and agent["attributes"] == {"rack_id": "r0"}


def test_run_detached_and_attached(fake_mount, cli) -> None:
    r = cli("run --on /f -d --instances 2 -- sleep 5")
    assert r.lines == ["sleep.000001", "sleep.000002"]
    r = cli("run --on /f -- echo hi there")
    assert r.status == 0 and r.stdout == "hi there\n"
    assert cli("run --on /f").status == 2
    assert cli("run --on /f --mem lots -- true").status == 2
    assert cli("run --on /f --shell 'echo a' -- echo b").status == 2


def test_run_uses_current_mount(fake_mount, cli) -> None:
    assert cli("cd /f; run -d -- sleep 1").lines == ["sleep.000001"]


def test_idempotency_key(fake_mount, cli) -> None:
    a = cli("run --on /f -d --idempotency-key k1 -- sleep 1").lines
    b = cli("run --on /f -d --idempotency-key k1 -- sleep 1").lines
    assert a == b == ["sleep.000001"]


def test_kill_refs_prefix_glob_stdin(fake_mount, cli) -> None:
    for _ in range(3):
        cli("run --on /f -d --name web -- sleep 100")
    cli("run --on /f -d --name db -- sleep 100")
    amb = cli("kill web", cwd="/f")
    assert amb.status == 5 and "web.000001" in amb.stderr
    assert cli("kill db", cwd="/f").status == 0  # unique prefix
    many = cli("kill 'web.*'", cwd="/f")
    assert many.status == 2 and "--yes" in many.stderr  # off a TTY: needs --yes
    assert cli("ps -q", cwd="/f").lines == ["web.000001", "web.000002", "web.000003"]
    r = cli("kill --yes -", cwd="/f", stdin="web.000001\nweb.000002\n")
    assert r.status == 0
    assert cli("ps -q", cwd="/f").lines == ["web.000003"]
    assert cli("kill -s HUP web.000003", cwd="/f").status == 0
    assert cli("kill -s NOPE web.000003", cwd="/f").status == 2


def test_kill_stdin_is_usage_when_stdin_is_runbook(fake_mount, dshell_exe) -> None:
    r = dshell_exe(input="kill -\n")
    assert r.returncode == 2 and "runbook" in r.stderr


def test_pipeline_ps_kill(fake_mount, cli) -> None:
    cli("run --on /f -d -- sleep 100")
    cli("run --on /f -d -- sleep 100")
    assert cli("ps /f -q | kill --yes -").status == 0
    assert cli("ps /f -q").lines == []


def test_nodes_events_top_wait(fake_mount, cli) -> None:
    assert cli("nodes /f -q").lines == ["agent-0", "agent-1"]
    cli("run --on /f -- echo x")
    events = [json.loads(x) for x in cli("events /f --no-follow").lines]
    assert [e["seq"] for e in events] == [1, 2, 3] and events[0]["kind"] == "Event"
    cli("run --on /f -d -- sleep 9")
    snap = json.loads(cli("top /f -n 1 -o json").stdout)
    assert snap["kind"] == "TopSnapshot" and [t["task_id"] for t in snap["tasks"]] == [
        "sleep.000002"
    ]
    assert cli("top /f -n 1 -o tsv").lines[0].startswith("MOUNT\tID")
    assert json.loads(cli("wait /f/tasks/echo.000001 -o json").stdout)[0]["state"] == "FINISHED"


def test_svc_on_backend_without_services(fake_mount, cli) -> None:
    r = cli("svc scale /f/svc/web 3")
    assert r.status == 10 and "services" in r.stderr


def test_job_on_backend_without_batch_jobs(fake_mount, cli) -> None:
    r = cli("job run /f/jobs/nightly")
    assert r.status == 10 and "batch jobs" in r.stderr
    assert cli("job create --on /f --name x -- true").status == 10
    assert cli("job ls /f").status == 10
    assert cli("job graph /f").status == 10
    assert cli("job show /f/nightly").status == 2  # not a job path


def test_backends_lists_broken_plugin_by_name(dshell_dirs, monkeypatch, cli) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend,broken=nope_mod:X")
    r = cli("backends")
    assert r.status == 0
    rows = {line.split("\t")[0]: line for line in r.lines[1:]}
    assert "broken" in rows["broken"] and rows["fake"].split("\t")[1] == "yes"
    assert "local" in rows


def test_help_verb(cli) -> None:
    assert "Verbs" in cli("help").stdout
    assert "--grace" in cli("help kill").stdout
    assert "--dry-run" in cli("help svc deploy").stdout


def test_plugin_discovery_cache_follows_installs(dshell_dirs, monkeypatch) -> None:
    """The entry-point cache is keyed on sys.path mtimes: a new install is seen at once."""
    from dshell import plugins

    first = plugins._entry_points()
    assert ("local", "dshell_local.backend:LocalBackend", "dshell") in first
    cache = dshell_dirs.state / "plugins.cache"
    assert cache.exists()
    calls = []
    import importlib.metadata as md

    monkeypatch.setattr(md, "entry_points", lambda **kw: calls.append(kw) or [])
    assert plugins._entry_points() == first and calls == []  # served from the cache
    monkeypatch.setattr(plugins, "_path_key", lambda: [["changed", 1]])
    assert plugins._entry_points() == [] and calls  # key changed: scanned again
