"""Each exit code is pinned: renumbering one breaks scripts, so it breaks this test."""

from __future__ import annotations

from dshell.errors import ExitCode

PINNED = {
    "OK": 0,
    "ERROR": 1,
    "USAGE": 2,
    "CONFIG": 3,
    "NOT_FOUND": 4,
    "AMBIGUOUS": 5,
    "BACKEND": 6,
    "UNREACHABLE": 7,
    "PLUGIN": 8,
    "TIMEOUT": 9,
    "UNSUPPORTED": 10,
    "PARTIAL": 11,
    "CONFLICT": 12,
    "DSHELL_FAILED": 125,
    "INTERRUPTED": 130,
}


def test_codes_are_pinned() -> None:
    assert {c.name: c.value for c in ExitCode} == PINNED


def test_readme_lists_every_code() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name, value in PINNED.items():
        assert f"| {value} | `{name}` |" in readme, f"README lacks the row for {name}"


def test_usage_error(fake_mount, cli) -> None:
    assert cli("ps --no-such-flag").status == 2


def test_config_error(dshell_dirs, cli) -> None:
    dshell_dirs.config.mkdir(parents=True)
    (dshell_dirs.config / "mounts.toml").write_text("[[mount]\nbroken")
    r = cli("mount")
    assert r.status == 3 and "mounts.toml" in r.stderr


def test_not_found(fake_mount, cli) -> None:
    assert cli("inspect /f/tasks/nope").status == 4


def test_ambiguous(fake_mount, cli) -> None:
    cli("run --on /f -d -- sleep 1")
    cli("run --on /f -d -- sleep 2")
    r = cli("inspect /f/tasks/sleep", cwd="/f")
    assert r.status == 5 and "sleep.000001" in r.stderr and "sleep.000002" in r.stderr


def test_backend_and_unreachable(dshell_dirs, monkeypatch, cli) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    assert cli("mount -t fake -o fail=backend x /b").status == 0
    assert cli("mount -t fake -o fail=unreachable x /u").status == 0
    assert cli("ps /b").status == 6
    assert cli("ps /u").status == 7


def test_plugin_error(dshell_dirs, monkeypatch, cli) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "broken=no_such_module_xyz:Backend")
    r = cli("mount -t broken x /b")
    assert r.status == 8 and "broken" in r.stderr


def test_timeout(fake_mount, cli) -> None:
    cli("run --on /f -d -- sleep 100")
    r = cli("wait /f/tasks/sleep.000001 --timeout 0.3")
    assert r.status == 9


def test_unsupported(dshell_dirs, monkeypatch, cli) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    cli("mount -t fake -o caps=tasks,agents x /ro")
    r = cli("run --on /ro -d -- true")
    assert r.status == 10 and "launching tasks" in r.stderr
    assert cli("svc ls /ro").status == 10
    assert cli("top /ro -n 1").status == 10
    assert cli("mount -t fake -o caps=run y /rw").status == 0
    r = cli("run --on /rw -d --after 1 -- true")  # a backend without dependencies
    assert r.status == 10 and "task dependencies (run --after)" in r.stderr


def test_partial(fake_mount, cli) -> None:
    cli("mount -t fake -o fail=unreachable x /down")
    cli("run --on /f -d -- sleep 100")
    r = cli("ps /")
    assert r.status == 11
    assert "sleep.000001" in r.stdout
    assert r.stderr.count("warning") == 1 and "/down" in r.stderr


def test_conflict(fake_mount, cli) -> None:
    assert cli("mount -t fake x /f").status == 12


def test_attached_run_exits_with_task_status(fake_mount, cli) -> None:
    assert cli("run --on /f -- exit 7").status == 7
    assert cli("run --on /f -- oom").status == 128 + 9


def test_attached_run_dshell_failure_is_125(dshell_dirs, monkeypatch, cli) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "fake=dshell.testing.fake:FakeBackend")
    cli("mount -t fake -o fail=unreachable x /u")
    r = cli("run --on /u -- echo hi")
    assert r.status == 125 and "UNREACHABLE" in r.stderr


def test_interrupted_code() -> None:
    assert ExitCode.INTERRUPTED == 130
