"""The Aurora evaluator runs files in a child process: loops, crashes and memory hogs cost the
shell nothing but a clean UsageError naming the file (and the line, where there is one)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dshell.errors import UsageError
from dshell.specs import SpecError, load_file, load_text

from .helpers import need_pystachio


@pytest.fixture(autouse=True)
def _pystachio() -> None:
    need_pystachio()


JOB = (
    "jobs = [Service(cluster='c', role='r', environment='prod', name='web',"
    " task=SimpleTask('web', 'serve'))]\n"
)


def _error(text: str, **opts: object) -> SpecError:
    with pytest.raises(UsageError) as info:
        load_text(text, "t.aurora", **opts)  # type: ignore[arg-type]
    assert isinstance(info.value, SpecError)
    return info.value


def test_a_file_that_loops_forever_stops_at_the_time_limit() -> None:
    start = time.monotonic()
    error = _error("while True:\n  pass\n" + JOB, timeout=1.5)
    assert time.monotonic() - start < 10
    assert "did not finish within 1.5 s" in str(error)
    assert str(error).startswith("t.aurora: ")


def test_a_file_that_raises_names_its_line() -> None:
    error = _error("x = 1\n\ndef f():\n  raise RuntimeError('boom')\n\nf()\n" + JOB)
    assert str(error) == "t.aurora:4: RuntimeError: boom"


def test_a_syntax_error_names_its_line() -> None:
    assert str(_error("x = (\n" + JOB)).startswith("t.aurora:1: syntax error")


def test_os_exit_is_a_clean_error() -> None:
    error = _error("import os\nos._exit(3)\n" + JOB)
    assert "exited with status 3 without a result" in str(error)


def test_a_signal_is_a_clean_error() -> None:
    error = _error("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n" + JOB)
    assert "killed by SIGKILL" in str(error)


def test_huge_memory_is_a_clean_error() -> None:
    error = _error("x = bytearray(8 * 1024 ** 3)\n" + JOB, memory_mb=512)
    assert str(error) == "t.aurora:1: the file used more memory than allowed"


def test_output_of_the_file_does_not_corrupt_the_result() -> None:
    loaded = load_text("import os\nprint('hello')\nos.write(1, b'raw')\n" + JOB, "t.aurora")
    assert [s.name for s in loaded.services] == ["web"]


def test_unbound_template_asks_for_bind() -> None:
    text = JOB.replace("'serve'", "'serve {{version}}'")
    assert str(_error(text)) == (
        "t.aurora:1: unbound template {{version}}: give it a value with --bind version=VALUE"
    )
    loaded = load_text(text, "t.aurora", bind={"version": "3"})
    assert loaded.services[0].command == ["serve 3"]


def test_jobs_must_be_jobs() -> None:
    assert "jobs[0] is not a Job" in str(_error("jobs = [1]\n"))
    assert "non-empty list" in str(_error("x = 1\n"))


def test_job_key_picks_one_job(tmp_path: Path) -> None:
    text = JOB + "jobs.append(jobs[0](name='worker', environment='devel'))\n"
    path = tmp_path / "two.aurora"
    path.write_text(text)
    assert len(load_file(str(path)).services) == 2
    assert [s.name for s in load_file(str(path), job_key="c/r/devel/worker").services] == ["worker"]
    assert [s.name for s in load_file(str(path), job_key="web").services] == ["web"]
    with pytest.raises(UsageError, match="no job matches 'c/r/prod/worker'; the file defines"):
        load_file(str(path), job_key="c/r/prod/worker")


def test_include_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "common.aurora").write_text("server = Process(name='s', cmdline='serve')\n")
    main = tmp_path / "main.aurora"
    main.write_text(
        "include('common.aurora')\n"
        + JOB.replace(
            "SimpleTask('web', 'serve')",
            "Task(processes=[server], resources=Resources(cpu=1, ram=MB, disk=MB))",
        )
    )
    assert load_file(str(main)).services[0].command == ["serve"]


def test_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "lib.aurora").write_text("x = 1\ny = undefined_name\n")
    main = tmp_path / "main.aurora"
    main.write_text("include('lib.aurora')\n" + JOB)
    with pytest.raises(UsageError) as info:
        load_file(str(main))
    assert (
        str(info.value) == f"{tmp_path / 'lib.aurora'}:2: NameError: name 'undefined_name'"
        " is not defined"
    )
