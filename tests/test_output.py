"""The output contract: formats, streams, TTY behaviour."""

from __future__ import annotations

import json

import yaml


def _three(cli) -> None:
    cli("run --on /f -d --name web --label tier=front -- sleep 100")
    cli("run --on /f -d --name 'db[1]' -- sleep 100")
    cli("run --on /f -- echo done")


def test_tsv_when_piped(fake_mount, cli) -> None:
    _three(cli)
    r = cli("ps /f")
    header, *rows = r.lines
    assert header.split("\t")[:4] == ["MOUNT", "ID", "NAME", "STATE"]
    assert len(rows) == 2 and all(row.count("\t") == header.count("\t") for row in rows)
    assert "\x1b[" not in r.stdout and r.stderr == ""


def test_table_on_tty_prints_brackets_verbatim(fake_mount, cli) -> None:
    _three(cli)
    r = cli("ps /f", tty=True)
    assert "db[1]" in r.stdout and "NAME" in r.stdout and "\t" not in r.stdout


def test_json_is_normalized_model(fake_mount, cli) -> None:
    _three(cli)
    data = json.loads(cli("ps /f -a -o json").stdout)
    assert {d["kind"] for d in data} == {"Task"} and {d["apiVersion"] for d in data} == {
        "dshell/v1"
    }
    assert all(d["created_at"].endswith("Z") for d in data)
    assert {d["mount"] for d in data} == {"/f"}


def test_empty_json_listing_is_array(fake_mount, cli) -> None:
    r = cli("ps /f -o json")
    assert r.status == 0 and json.loads(r.stdout) == []


def test_jsonl_yaml_name_quiet_jsonpath(fake_mount, cli) -> None:
    _three(cli)
    lines = cli("ps /f -o jsonl").lines
    assert len(lines) == 2 and all(json.loads(x)["kind"] == "Task" for x in lines)
    assert [d["name"] for d in yaml.safe_load(cli("ps /f -o yaml").stdout)] == ["web", "db[1]"]
    assert cli("ps /f -o name").lines == ["task/web.000001", "task/db[1].000002"]
    assert cli("ps /f -q").lines == ["web.000001", "db[1].000002"]
    assert cli("ps /f -o 'jsonpath=$[*].name'").lines == ["web", "db[1]"]
    assert cli("ps /f -o 'jsonpath={[*].id}'").lines == ["web.000001", "db[1].000002"]


def test_bad_format_is_usage(fake_mount, cli) -> None:
    r = cli("ps /f -o xml")
    assert r.status == 2 and "xml" in r.stderr
    assert cli("ps /f -o 'jsonpath=$[[['").status == 2


def test_wide_has_more_columns(fake_mount, cli) -> None:
    _three(cli)
    assert "LABELS" in cli("ps /f -o wide").lines[0]
    assert "tier=front" in cli("ps /f -o wide").stdout


def test_selector_sort_limit_all(fake_mount, cli) -> None:
    _three(cli)
    assert cli("ps /f -q -l tier=front").lines == ["web.000001"]
    assert cli("ps /f -q -a --sort-by name").lines == ["db[1].000002", "echo.000003", "web.000001"]
    assert cli("ps /f -q -a --limit 1").lines == ["web.000001"]
    assert cli("ps /f -q --state FINISHED").lines == ["echo.000003"]
    bad = cli("ps /f --sort-by nope")
    assert bad.status == 2 and "nope" in bad.stderr


def test_no_color_and_color_flag(fake_mount, cli, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    r = cli("ps /nowhere", tty=True)
    assert r.status == 4 and "\x1b[" not in r.stderr
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b[" in cli("ps /nowhere", tty=True).stderr
    assert "\x1b[" not in cli(["--color", "never", "ps", "/nowhere"], tty=True).stderr


def test_messages_on_stderr_data_on_stdout(fake_mount, cli) -> None:
    r = cli("mount -t fake x /g")
    assert r.stdout == "" and "mounted" in r.stderr


def test_head_closes_pipe_quietly(fake_mount, dshell_exe) -> None:
    import subprocess
    import sys

    for i in range(5):
        dshell_exe("run", "--on", "/f", "-d", "--", "sleep", str(i))
    p = subprocess.run(
        f"{sys.executable} -m dshell ps /f -a -o jsonl | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.stderr == ""


def test_inspect_shows_history(fake_mount, cli) -> None:
    cli("run --on /f -- echo hi")
    doc = json.loads(cli("inspect /f/tasks/echo.000001").stdout)
    assert [h["state"] for h in doc["history"]] == ["STAGING", "RUNNING", "FINISHED"]
    assert doc["exit_code"] == 0


def test_json_has_every_field_even_defaults(fake_mount, cli) -> None:
    """A stable schema for scripts: default values (state UP, null exit code) are present."""
    agent = json.loads(cli("nodes /f -o json").stdout)[0]
    assert agent["state"] == "UP" and agent["reason"] is None and "raw" not in agent
    cli("run --on /f -d -- sleep 9")
    task = json.loads(cli("ps /f -o json").stdout)[0]
    assert task["exit_code"] is None and task["labels"] == {} and "health" in task
