"""The early listing ``squeue`` of ``dshell ps`` (dshell_slurm.early, "Early listings" in
dshell.backend): started before dshell's heavy imports, collected by the backend instead of a
second squeue, and reported exactly as the backend's own squeue always was.

A scripted ``squeue`` on PATH stands in for Slurm here (it logs each run and answers from a
captured document, or fails on demand); tests/slurm/test_slurm_cli.py runs the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dshell.backend import Mount
from dshell.errors import ExitCode
from dshell.namespace import MountTable

from dshell_slurm.early import Started, listing_argv, local_env, prefetch_listing, squeue_argv
from dshell_slurm.runner import LocalRunner

from .conftest import BACKENDS, PLUGINS

GOLDEN = Path(__file__).parent / "golden" / "squeue-22.05.json"
COLUMNS = GOLDEN.with_suffix(".columns")  # the listing's columns of the same jobs
SCRIPT = """#!/bin/sh
echo "$*" >> {log}
case "$(cat {mode}) $1" in
  "ok --json") exec cat {golden} ;;
  "ok "*) exec cat {columns} ;;
  unreachable*) echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2
               exit 1 ;;
  garbage*) echo "this is not JSON" ;;
  slow*) exec sleep 30 ;;
esac
"""
Exe = Callable[..., subprocess.CompletedProcess[str]]
LISTING = " ".join(listing_argv({})[1:])


class FakeSqueue:
    """The scripted squeue: ``mode`` says how it answers, ``runs()`` what it was run with."""

    def __init__(self, root: Path) -> None:
        self.log, self.mode_file = root / "squeue.log", root / "mode"
        bin_dir = root / "bin"
        bin_dir.mkdir()
        script = bin_dir / "squeue"
        script.write_text(
            SCRIPT.format(log=self.log, mode=self.mode_file, golden=GOLDEN, columns=COLUMNS)
        )
        script.chmod(0o755)
        self.bin = str(bin_dir)
        self.mode("ok")

    def mode(self, mode: str) -> None:
        self.mode_file.write_text(mode)

    def runs(self) -> list[str]:
        """The argument lines of every run so far ("listing" for the listing's own
        arguments), and forget them."""
        lines = self.log.read_text().split("\n")[:-1] if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        return [line.replace(LISTING, "listing") for line in lines]


@pytest.fixture
def squeue(dshell_dirs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSqueue:
    fake = FakeSqueue(tmp_path)
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DSHELL_BACKENDS", BACKENDS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([PLUGINS, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("DSHELL_NO_FASTPATH", raising=False)
    return fake


def mount(*mounts: Mount) -> None:
    MountTable().update(lambda _: list(mounts))


def hpc(target: str = "/hpc", **options: str) -> Mount:
    return Mount(target=target, type="slurm", source="localhost", options=options)


def both_ways(exe: Exe, squeue: FakeSqueue, *args: str) -> tuple[Any, list[str], list[str]]:
    """(fast path, its squeue runs, runs of the command tree); asserts both print the same."""
    fast = exe(*args)
    fast_runs = squeue.runs()
    tree = exe(*args, env={"DSHELL_NO_FASTPATH": "1"})
    tree_runs = squeue.runs()
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        tree.returncode,
        tree.stdout,
        tree.stderr,
    )
    return fast, fast_runs, tree_runs


# ---- through the real CLI ---------------------------------------------------------------------


def test_the_listing_reads_the_early_squeue_and_starts_no_other(
    squeue: FakeSqueue, dshell_exe: Exe
) -> None:
    mount(hpc(user="root"))
    for args in (["ps", "/hpc", "-o", "tsv"], ["ps", "/hpc/tasks", "-a", "-o", "json"]):
        fast, fast_runs, tree_runs = both_ways(dshell_exe, squeue, *args)
        assert fast.returncode == 0, fast.stderr
        assert fast_runs == tree_runs == ["listing --user=root"]
        assert "/hpc" in fast.stdout  # rows, not just a header


#: What a ``ps`` may import before its early squeue starts once the plan is saved: dshell's own
#: small modules; nothing the interpreter has not loaded already (typing, pathlib, json,
#: tomllib, subprocess, importlib.metadata... cost 30-80 ms together on a clean interpreter).
LIGHT = {
    "__future__",
    "dshell",
    "dshell.fastpath",
    "dshell.prestart",
    "dshell.xdg",
    "dshell.nspath",
    "dshell_slurm",
    "dshell_slurm.early",
}


def test_the_early_squeue_starts_before_the_heavy_imports(squeue: FakeSqueue) -> None:
    mount(hpc(), Mount(target="/local", type="local", source="localhost"))
    probe = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from dshell.fastpath import start_listings\n"
        "registry, started = start_listings(['ps', '/hpc', '-o', 'tsv'])\n"
        "new = sorted(set(sys.modules) - before)\n"
        "heavy = {'msgspec', 'dataclasses', 'dshell_slurm.backend'} & set(sys.modules)\n"
        "print(sorted(started), sorted(heavy), registry is None)\n"
        "print(' '.join(new))\n"
        "started['/hpc'].communicate(30)\n"
    )

    def run() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        assert squeue.runs() == ["listing"]
        return out.stdout.split("\n")

    first = run()  # plans from the table and the installed backends, and saves the plan
    assert first[0] == "['/hpc'] [] False", first
    second = run()  # the saved plan: no registry, and nothing heavy before squeue starts
    assert second[0] == "['/hpc'] [] True", second
    assert set(second[1].split()) <= LIGHT, second[1]


@pytest.mark.parametrize(
    ("mode", "options", "status", "message"),
    [
        ("unreachable", {}, ExitCode.UNREACHABLE, "Unable to contact slurm controller"),
        ("garbage", {}, ExitCode.BACKEND, "squeue printed invalid JSON"),
        ("slow", {"timeout": "0.5"}, ExitCode.UNREACHABLE, "squeue did not answer in 0.5 s"),
    ],
)
def test_a_failing_early_squeue_is_reported_as_before(
    squeue: FakeSqueue,
    dshell_exe: Exe,
    mode: str,
    options: dict[str, str],
    status: int,
    message: str,
) -> None:
    mount(hpc(**options))
    squeue.mode(mode)
    fast, fast_runs, tree_runs = both_ways(dshell_exe, squeue, "ps", "/hpc", "-o", "tsv")
    assert fast.returncode == status and message in fast.stderr, fast.stderr
    # unreadable columns are asked again as --json, which reports what is wrong
    assert fast_runs == tree_runs == (["listing", "--json"] if mode == "garbage" else ["listing"])


def test_ps_everywhere_starts_one_squeue_per_slurm_mount(
    squeue: FakeSqueue, dshell_exe: Exe
) -> None:
    local = Mount(target="/local", type="local", source="localhost")
    mount(hpc("/a", user="root"), hpc("/b"), local)
    fast, fast_runs, tree_runs = both_ways(dshell_exe, squeue, "ps", "/", "-o", "tsv")
    assert fast.returncode == 0, fast.stderr
    assert sorted(fast_runs) == sorted(tree_runs) == ["listing", "listing --user=root"]
    assert "/a\t" in fast.stdout and "/b\t" in fast.stdout


def test_a_listing_that_fails_first_kills_its_early_squeue(
    squeue: FakeSqueue, dshell_exe: Exe
) -> None:
    mount(hpc(timeout="30"))
    squeue.mode("slow")  # would run 30 s: the bad format must not wait for it
    bad = dshell_exe("ps", "/hpc", "-o", "nonsense", timeout=20)
    assert bad.returncode == ExitCode.USAGE and "nonsense" in bad.stderr


def test_a_json_listing_mount_starts_squeue_json_early(squeue: FakeSqueue, dshell_exe: Exe) -> None:
    mount(hpc(listing="json"))
    fast, fast_runs, tree_runs = both_ways(dshell_exe, squeue, "ps", "/hpc", "-o", "tsv")
    assert fast.returncode == 0 and fast_runs == tree_runs == ["--json"], fast.stderr
    assert "/hpc\t" in fast.stdout


def test_a_hand_written_table_lists_as_before(squeue: FakeSqueue, dshell_exe: Exe) -> None:
    """Not render_table's layout: no early start, the same listing."""
    table = '# mine\n[[mount]]\ntarget = "/hpc"  # cluster\ntype = "slurm"\nsource = "localhost"\n'
    config = Path(os.environ["DSHELL_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "mounts.toml").write_text(table)
    fast, fast_runs, tree_runs = both_ways(dshell_exe, squeue, "ps", "/hpc", "-o", "tsv")
    assert fast.returncode == 0 and fast_runs == tree_runs == ["listing"], fast.stderr


# ---- the pieces -------------------------------------------------------------------------------


def _pid_of(runner: LocalRunner, argv: list[str]) -> int:
    done = runner.run(argv)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_the_runner_collects_an_adopted_command_once() -> None:
    argv = ["sh", "-c", "echo $$"]
    runner = LocalRunner({"SLURM_CONF": "/etc/slurm.conf"})
    started = Started.spawn(argv, local_env(runner.env))
    assert started is not None
    runner.adopt(started)
    assert _pid_of(runner, argv) == started.pid  # the early process, not a new one
    assert _pid_of(runner, argv) != started.pid  # consumed: the next run is its own
    runner.close()


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["sh", "-c", "echo $$; sleep 30"], {"SLURM_CONF": "/etc/slurm.conf"}),  # other argv
        (["sh", "-c", "echo $$"], {"SLURM_CONF": "/elsewhere.conf"}),  # other environment
    ],
)
def test_the_runner_ignores_a_different_command_and_kills_it(
    argv: list[str], extra: dict[str, str]
) -> None:
    runner = LocalRunner({"SLURM_CONF": "/etc/slurm.conf"})
    started = Started.spawn(argv, local_env(extra))
    assert started is not None
    runner.adopt(started)
    assert _pid_of(runner, ["sh", "-c", "echo $$"]) != started.pid
    runner.close()
    assert started.returncode is not None  # reaped (killed if it still ran)
    with pytest.raises(ChildProcessError):
        os.waitpid(started.pid, 0)  # nothing left to reap


def test_the_hook_starts_only_local_squeue_that_can_start(monkeypatch: pytest.MonkeyPatch) -> None:
    assert prefetch_listing("ssh://alice@login:22", {}) is None
    monkeypatch.setenv("PATH", "/nonexistent")
    assert prefetch_listing("localhost", {}) is None  # the listing reports it, as always
    assert squeue_argv({"user": "a"}, ["1", "2_3"]) == [
        "squeue",
        "--json",
        "--user=a",
        "--jobs=1,2_3",
    ]
