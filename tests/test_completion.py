"""Completion: the command-tree spec, live values, `__complete`, and the generated scripts
(committed copies up to date; bash, zsh and fish driven for real)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dshell.backend import Backend, Capability, Mount
from dshell.completion import FILES, answer, complete_main, script, write
from dshell.completion.live import MountIds, Snapshot, candidates, complete_path
from dshell.completion.tree import analyse, build_tree
from dshell.session import Env, Session

from conftest import require_service

ROOT = Path(__file__).resolve().parent.parent
REGEN = "python -m dshell.completion --write completions/"


@pytest.fixture(scope="module")
def tree():
    return build_tree()


@pytest.fixture
def tasks(fake_mount, cli):
    """Three tasks on /f: two running (web, db), one finished (echo)."""
    for argv in (["--name", "web", "--", "sleep", "100"], ["--name", "db", "--", "sleep", "9"]):
        assert cli(["run", "--on", "/f", "-d", *argv]).status == 0
    assert cli(["run", "--on", "/f", "--", "echo", "hi"]).status == 0
    return fake_mount


# ---- the spec and analyse ------------------------------------------------------------------------


def test_tree_has_every_verb_with_options(tree) -> None:
    from dshell.cli.main import VERBS

    assert [s.name for s in tree.subs] == list(VERBS)
    ps = tree.sub("ps")
    assert ps is not None and ps.opt("--state") is not None and ps.opt("-h") is not None
    assert ps.opt("-o").kind == "choice" and "json" in ps.opt("-o").choices
    assert tree.sub("svc").sub("deploy") is not None


@pytest.mark.parametrize(
    ("words", "current", "kind", "prefix"),
    [
        ([], "p", "sub", "p"),
        (["svc"], "st", "sub", "st"),
        (["ps"], "--st", "option", "--st"),
        (["ps", "--state"], "R", "choice", "R"),
        (["ps"], "--output=js", "choice", "js"),
        (["ps", "-o"], "", "choice", ""),
        (["ps"], "/f/", "path", "/f/"),
        (["kill", "-s", "TERM"], "we", "ref", "we"),
        (["kill", "a", "b"], "c", "ref", "c"),
        (["svc", "status"], "w", "service", "w"),
        (["umount"], "/", "mount", "/"),
        (["mount", "-t"], "fa", "backend", "fa"),
        (["mount", "-t", "fake", "src"], "/x", "path", "/x"),
        (["run", "--on"], "/f", "path", "/f"),
        (["run", "sleep"], "-x", "command", "-x"),  # options end at the command
        (["run", "--"], "sl", "command", "sl"),
        (["pwd"], "x", "none", "x"),
        (["nosuch"], "x", "none", "x"),
        (["--color", "never"], "p", "sub", "p"),
    ],
)
def test_analyse(tree, words, current, kind, prefix) -> None:
    want = analyse(tree, words, current)
    assert (want.kind, want.prefix) == (kind, prefix)


# ---- live values from a snapshot ---------------------------------------------------------------

SNAP = Snapshot(
    mounts=(Mount(target="/f", type="fake"), Mount(target="/hpc", type="slurm", source="login")),
    ids={
        "/f": MountIds("/f", tasks=("web.1", "web.2", "db.3"), services=("api",), agents=("a0",)),
        "/hpc": MountIds("/hpc", tasks=("777",), error="unreachable: no route"),
    },
    backends=("fake", "slurm"),
)


def test_ids_are_scoped_to_the_current_mount() -> None:
    assert [v for v, _ in candidates("task", "web", SNAP, "/f")] == ["web.1", "web.2"]
    assert [v for v, _ in candidates("task", "", SNAP, "/")] == ["777", "db.3", "web.1", "web.2"]
    assert [v for v, _ in candidates("service", "", SNAP, "/f/svc")] == ["api"]
    assert [v for v, _ in candidates("agent", "", SNAP, "/")] == ["a0"]
    assert [v for v, _ in candidates("mount", "/h", SNAP, "/")] == ["/hpc"]
    assert [v for v, _ in candidates("backend", "s", SNAP, "/")] == ["slurm"]


@pytest.mark.parametrize(
    ("prefix", "cwd", "expected"),
    [
        ("/", "/", ["/f/", "/hpc/"]),
        ("", "/", ["f/", "hpc/"]),
        ("/f/", "/", ["/f/agents/", "/f/fw/", "/f/svc/", "/f/tasks/", "/f/vol/"]),
        ("/f/t", "/", ["/f/tasks/"]),
        ("/f/tasks/w", "/", ["/f/tasks/web.1/", "/f/tasks/web.2/"]),
        ("tasks/d", "/f", ["tasks/db.3/"]),
        ("../hpc/tasks/", "/f", ["../hpc/tasks/777/"]),
        ("/f/svc/", "/", ["/f/svc/api"]),
        ("/f/agents/a", "/", ["/f/agents/a0"]),
        ("/nowhere/", "/", []),
    ],
)
def test_paths(prefix, cwd, expected) -> None:
    assert [v for v, _ in complete_path(prefix, SNAP, cwd)] == expected


def test_ref_is_a_path_when_it_has_a_slash() -> None:
    assert [v for v, _ in candidates("ref", "/f/tasks/d", SNAP, "/")] == ["/f/tasks/db.3/"]
    assert [v for v, _ in candidates("ref", "d", SNAP, "/")] == ["db.3"]


def test_sandbox_files_are_listed_on_demand() -> None:
    from dshell.model import FileEntry

    def list_dir(path: str):
        assert path == "/f/tasks/web.1"
        return [FileEntry(name="stdout", kind="file"), FileEntry(name="logs", kind="dir")]

    got = complete_path("/f/tasks/web.1/", SNAP, "/", list_dir)
    assert [v for v, _ in got] == ["/f/tasks/web.1/logs/", "/f/tasks/web.1/stdout"]


# ---- __complete against the fake backend ---------------------------------------------------------


def test_answer_with_the_fake_backend(tasks) -> None:
    session = Session(env=Env())
    ids = [v for v, _ in answer(session, "task", "")]
    assert len(ids) == 3 and sum(i.startswith("web.") for i in ids) == 1
    assert [v for v, _ in answer(session, "path", "/f/tasks/web")] == [f"/f/tasks/{ids[-1]}/"]
    web = next(i for i in ids if i.startswith("web."))
    assert [v for v, _ in answer(session, "ref", f"/f/tasks/{web}/std")] == [
        f"/f/tasks/{web}/stderr",
        f"/f/tasks/{web}/stdout",
    ]
    assert "fake" in [v for v, _ in answer(session, "backend", "")]
    assert [v for v, _ in answer(session, "agent", "")] == ["agent-0", "agent-1"]


def test_complete_main_prints_one_per_line(tasks, capsys) -> None:
    assert complete_main(["mount", "/"]) == 0
    assert capsys.readouterr().out == "/f\n"
    assert complete_main([]) == 2


def test_complete_main_never_prints_a_traceback(dshell_dirs, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DSHELL_BACKENDS", "broken")  # a bad entry: Registry.discover raises
    assert complete_main(["backend", ""]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err


def test_an_unreachable_mount_contributes_nothing(fake_mount, dshell_exe) -> None:
    from dshell.namespace import MountTable

    MountTable().update(
        lambda ms: [*ms, Mount(target="/down", type="fake", options={"fail": "unreachable"})]
    )
    r = dshell_exe("-c", "ls /")  # sanity: the table has both mounts
    assert "down" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "dshell.completion", "__complete", "task", ""],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_dshell_executable_answers___complete(fake_mount) -> None:
    main = (ROOT / "dshell" / "__main__.py").read_text()
    assert "__complete" in main, (
        "dshell/__main__.py lacks the __complete hook; add in main(), before _run: "
        'if args[:1] == ["__complete"]: from .completion import complete_main; '
        "return complete_main(args[1:])"
    )
    r = subprocess.run(
        [sys.executable, "-m", "dshell", "__complete", "mount", ""],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "/f\n", "")


# ---- generated scripts ---------------------------------------------------------------------------


def test_committed_scripts_are_current(tmp_path) -> None:
    write(tmp_path)
    for name in FILES.values():
        committed = ROOT / "completions" / name
        assert committed.exists(), f"completions/{name} is missing: run `{REGEN}`"
        assert committed.read_text() == (tmp_path / name).read_text(), (
            f"completions/{name} is stale: run `{REGEN}`"
        )


def test_completion_verb_prints_the_script(cli) -> None:
    r = cli(["completion", "bash"])
    assert r.status == 0 and r.stdout == script("bash")


@pytest.fixture
def shim(tmp_path, tasks):
    """`dshell` on PATH answering `__complete` (the scripts' only call back into dshell)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "dshell"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} -m dshell.completion "$@"\n')
    exe.chmod(0o755)
    for shell in FILES:
        (tmp_path / FILES[shell]).write_text(script(shell))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    return tmp_path, env


BASH = """
source "$1"; shift
COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
_dshell
printf '%s\\n' "${COMPREPLY[@]}"
"""


def bash_complete(shim, *words: str) -> list[str]:
    where, env = shim
    r = subprocess.run(
        ["bash", "--norc", "-c", BASH, "_", str(where / FILES["bash"]), "dshell", *words],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return [line for line in r.stdout.splitlines() if line]


def test_bash_static(shim) -> None:
    assert bash_complete(shim, "p") == ["ps", "pwd"]
    assert bash_complete(shim, "svc", "st") == ["start", "status", "stop"]
    assert bash_complete(shim, "ps", "--st") == ["--state"]
    assert bash_complete(shim, "ps", "--state", "RU") == ["RUNNING"]
    assert bash_complete(shim, "ps", "--output", "=", "js") == ["json", "jsonl", "jsonpath="]
    assert bash_complete(shim, "--color", "never", "ki") == ["kill"]
    assert bash_complete(shim, "completion", "") == ["bash", "zsh", "fish"]
    assert bash_complete(shim, "nosuch", "") == []


def test_bash_live(shim) -> None:
    ids = bash_complete(shim, "kill", "")
    assert len(ids) == 3 and any(i.startswith("web.") for i in ids)
    web = next(i for i in ids if i.startswith("web."))
    assert bash_complete(shim, "kill", "-y", "we") == [web]
    assert bash_complete(shim, "ls", "/") == ["/f/"]
    assert bash_complete(shim, "cat", f"/f/tasks/{web}/stdo") == [f"/f/tasks/{web}/stdout"]
    assert bash_complete(shim, "umount", "") == ["/f"]


def test_zsh(shim) -> None:
    require_service(shutil.which("zsh") is not None, "zsh (Debian package zsh)")
    where, env = shim
    # Outside a completion widget, stand-ins for compadd/_describe print what they get.
    prog = textwrap.dedent("""\
        compadd() { print -r -- "compadd $*" }
        _describe() { print -r -- "describe ${(j: :)${(P)4}}" }
        _files() { print files }
        compdef() { }
        source "$1"; shift
        words=("$@"); CURRENT=$#
        _dshell
        """)

    def run(*words: str) -> str:
        r = subprocess.run(
            ["zsh", "-f", "-c", prog, "_", str(where / FILES["zsh"]), "dshell", *words],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert r.stderr == "", r.stderr
        return r.stdout

    assert "ps:List tasks" in run("p")
    assert run("ps", "--st").startswith("compadd -- --state --service")
    assert "compadd -P --output= -- table wide" in run("ps", "--output=j")
    assert "compadd -P  -S  -- /f/agents/ /f/fw/ /f/svc/ /f/tasks/ /f/vol/" in run("ls", "/f/")
    assert run("svc", "deploy", "-f", "x") == "files\n"


def test_fish(shim) -> None:
    require_service(shutil.which("fish") is not None, "fish (Debian package fish)")
    where, env = shim

    def run(line: str) -> list[str]:
        r = subprocess.run(
            ["fish", "--no-config", "-c", f"source {where / FILES['fish']}; complete -C '{line}'"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
        assert r.stderr == "", r.stderr
        return [line.split("\t")[0] for line in r.stdout.splitlines()]

    assert run("dshell p") == ["ps", "pwd"]
    assert run("dshell ps --st") == ["--state"]
    assert run("dshell ps --output=js") == ["--output=json", "--output=jsonl", "--output=jsonpath="]
    assert run("dshell ls /") == ["/f/"]
    assert len(run("dshell kill ")) == 3


class AutostartBackend(Backend):
    """Records the options it was mounted with (like the engine's autostart option)."""

    name = "auto"
    capabilities = frozenset({Capability.TASKS})
    options = {"autostart": "start on first use"}
    seen: list[dict[str, str]] = []

    def list_tasks(self, query):
        AutostartBackend.seen.append(dict(self.mount.options))
        return []

    def get_task(self, task_id):
        raise NotImplementedError

    def list_agents(self):
        return []


def test_completion_never_starts_a_cluster() -> None:
    from dshell.completion.live import fetch
    from dshell.plugins import PluginRef, Registry

    registry = Registry(refs={"auto": PluginRef("auto", f"{__name__}:AutostartBackend", "test")})
    ids = fetch(registry, Mount(target="/a", type="auto", options={"x": "1"}))
    assert ids.error is None
    assert AutostartBackend.seen == [{"x": "1", "autostart": "no"}]
