"""The REPL driven through prompt_toolkit's pipe input; run_line pipelines; the completer and
the background refresher (including a backend that hangs)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time

import psutil
import pytest
from dshell.backend import Backend, Capability, Mount
from dshell.lines import run_line
from dshell.namespace import MountTable
from dshell.repl.app import Repl
from dshell.repl.completer import DshellCompleter, TreeCache
from dshell.repl.refresher import Refresher
from dshell.repl.toolbar import toolbar_fragments
from dshell.session import Env, Session
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

pytestmark = pytest.mark.timeout(90)


class Text(io.StringIO):
    def __init__(self, tty: bool = False) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def make_session(cwd: str = "/") -> Session:
    env = Env(stdin=Text(tty=True), stdout=Text(), stderr=Text(), environ=dict(os.environ))
    return Session(env=env, cwd=cwd)


def drive(keys: str, session: Session | None = None) -> tuple[int, str, str, Repl]:
    """Type ``keys`` into a REPL; return (exit status, stdout, stderr, the repl)."""
    session = session or make_session()
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        inp.send_text(keys)
        repl = Repl(session, refresh_interval=3600, redraw_interval=None)
        status = repl.run()
    return status, session.env.stdout.getvalue(), session.env.stderr.getvalue(), repl  # type: ignore[attr-defined]


@pytest.fixture
def web(fake_mount, cli) -> str:
    """A running task named web on /f; its id."""
    r = cli(["run", "--on", "/f", "-d", "--name", "web", "--", "sleep", "100"])
    assert r.status == 0
    return r.stdout.strip()


# ---- the loop ----------------------------------------------------------------------------------


def test_pwd_cd_ps_exit(web) -> None:
    status, out, err, _ = drive("pwd\ncd /f\npwd\nps\nexit\n")
    assert status == 0
    lines = out.splitlines()
    assert lines[:2] == ["/", "/f"]
    assert lines[2].startswith("MOUNT\tID") and web in lines[3]
    assert "help" in err  # the banner


def test_exit_status_and_ctrl_d(fake_mount) -> None:
    assert drive("exit 3\n")[0] == 3
    assert drive("\x04")[0] == 0  # Ctrl-D on an empty line
    status, _, err, _ = drive("exit x\nexit\n")
    assert status == 0 and "usage: exit [N]" in err


def test_ctrl_c_at_the_prompt_clears_the_line(fake_mount) -> None:
    status, out, _, _ = drive("cd /f\x03pwd\nexit\n")
    assert status == 0 and out == "/\n"


def test_errors_do_not_end_the_shell(fake_mount) -> None:
    status, out, err, repl = drive("ls /nowhere\nps 'oops\npwd\nexit\n")
    assert status == 0 and out == "/\n"
    assert "/nowhere: no such path" in err
    assert "syntax error at column 4: unterminated single quote" in err
    assert repl.last_status == 0


def test_ctrl_c_cancels_an_in_process_command(fake_mount, monkeypatch) -> None:
    from dshell.core import fs

    def interrupted(session, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(fs, "check_dir", interrupted)
    session = make_session()
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        repl = Repl(session, refresh_interval=3600, redraw_interval=None)
        assert repl.execute("cd /f") == 130
        inp.send_text("pwd\nexit 7\n")
        assert repl.run() == 7
    assert session.env.stdout.getvalue() == "/\n"  # type: ignore[attr-defined]
    assert "interrupted" in session.env.stderr.getvalue()  # type: ignore[attr-defined]


def _sigint_when_child_runs(name: str, found: list[int]) -> threading.Thread:
    """Send SIGINT to this process once a child process called ``name`` exists."""

    def watch() -> None:
        me = psutil.Process()
        for _ in range(400):  # a bounded wait (≤ 20 s), not a timing assertion
            kids = [p for p in me.children(recursive=True) if p.name() == name]
            if kids:
                found.append(kids[0].pid)
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_kills_a_system_stage_not_the_repl(fake_mount) -> None:
    found: list[int] = []
    watcher = _sigint_when_child_runs("sleep", found)
    status, out, err, repl = drive("pwd | sleep 60\npwd\nexit\n")
    watcher.join()
    assert found, "the system stage never started"
    assert not psutil.pid_exists(found[0]) or psutil.Process(found[0]).status() == "zombie"
    assert status == 0 and out == "/\n" and "interrupted" in err
    assert repl.history_lines()[-3:] == ["pwd | sleep 60", "pwd", "exit"]


def test_history_file_and_builtin(fake_mount) -> None:
    from dshell.paths import state_dir

    drive("pwd\ncd /f\nexit\n")
    assert (state_dir() / "history").read_text().count("\n+") == 3
    _, out, _, _ = drive("history 2\nhistory | grep cd\nexit\n")
    assert out.splitlines()[:2] == ["    3  exit", "    4  history 2"]
    assert out.splitlines()[2:] == ["    2  cd /f", "    5  history | grep cd"]


def test_help_lists_verbs_and_repl_commands(fake_mount) -> None:
    _, out, _, _ = drive("help\nhelp exit\nexit\n")
    assert "Verbs:" in out and "  ps " in out
    assert "Shell commands (REPL only):" in out and "history [N]" in out
    assert "usage: exit [N]" in out


def test_mount_table_is_reread_before_each_line(fake_mount) -> None:
    session = make_session()
    repl = Repl(session)
    repl.execute("mount")
    MountTable().update(lambda ms: [*ms, Mount(target="/g", type="fake", source="other")])
    repl.execute("mount")
    first, second = session.env.stdout.getvalue().split("SOURCE")[1:]  # type: ignore[attr-defined]
    assert "/g" not in first and "/g\tfake" in second


# ---- run_line ------------------------------------------------------------------------------------


def test_pipelines(web, cli) -> None:
    r = cli("ps /f | grep web")
    assert r.status == 0 and r.stdout.startswith(f"/f\t{web}\tweb\tRUNNING")
    r = cli("ps /f -q | kill -", stdin="")
    assert r.status == 0 and f"killed /f/tasks/{web}" in r.stderr
    assert cli("ps /f -q").stdout == ""
    r = cli("mount | grep fake | wc -l")
    assert r.stdout.strip() == "1"
    assert cli("ps | grep nothing-like-this").status == 1  # the last stage's status
    assert cli("pwd |! cat").stdout == "/\n"  # forced system cat, not dshell's cat


def test_in_process_stage_output_is_tsv_and_cd_persists(fake_mount) -> None:
    session = make_session()
    session.env.stdout_isatty = True  # a terminal: a lone `mount` would be a table
    assert run_line(session, "cd /f |! cat -A") == 0
    assert session.cwd == "/f"
    assert session.env.stdout.getvalue() == ""  # type: ignore[attr-defined]
    assert run_line(session, "mount |! cat") == 0
    assert session.env.stdout.getvalue().startswith("SOURCE\tTARGET")  # type: ignore[attr-defined]


def test_statuses(fake_mount, cli) -> None:
    r = cli("pwd; nosuch-command-xyz")  # a mistyped verb is a usage error, never a program
    assert r.status == 2 and "No such command" in r.stderr
    assert cli("!nosuch-command-xyz").status == 127
    assert cli("!sh -c 'exit 5'").status == 5
    assert cli("! true").status == 0
    assert cli("pwd | sh -c 'exit 3'").status == 3
    assert cli("pwd | sh -c 'kill -TERM $$'").status == 128 + signal.SIGTERM
    r = cli("ps && pwd")
    assert r.status == 2 and "column 4" in r.stderr and "^" in r.stderr
    assert cli("dshell pwd").stdout == "/\n"
    assert cli("echo ok | dshell cat --help").stdout.startswith("Usage: dshell cat")


def test_head_closing_the_pipe_is_not_an_error(fake_mount, cli) -> None:
    for _ in range(3):
        cli(["run", "--on", "/f", "-d", "--", "sleep", "9"])
    r = cli("ps /f | head -1")
    assert r.status == 0 and r.stdout.startswith("MOUNT") and r.stdout.count("\n") == 1


# ---- completion --------------------------------------------------------------------------------


@pytest.fixture
def completer(web):
    session = make_session()
    refresher = Refresher(MountTable(), dict(os.environ), timeout=10)
    refresher.refresh()
    builtins = [("exit", "Leave"), ("history", "History")]
    comp = DshellCompleter(session, refresher.snapshot, TreeCache(), builtins=lambda: builtins)
    yield comp
    refresher.stop()


def complete(comp: DshellCompleter, text: str) -> list[str]:
    event = CompleteEvent(completion_requested=True)
    return [c.text for c in comp.get_completions(Document(text), event)]


def test_complete_verbs_and_builtins(completer) -> None:
    assert complete(completer, "p") == ["ps", "pwd"]
    assert complete(completer, "ex") == ["exec", "exit"]
    assert complete(completer, "svc st") == ["start", "status", "stop"]
    assert complete(completer, "help sv") == ["svc"]


def test_complete_options_and_choices(completer) -> None:
    assert complete(completer, "ps --st") == ["--state"]
    assert complete(completer, "dshell ps --st") == ["--state"]
    assert complete(completer, "ps --state RU") == ["RUNNING"]
    assert complete(completer, "ps -o js") == ["json", "jsonl", "jsonpath="]
    assert complete(completer, "ps --output=y") == ["--output=yaml"]
    assert complete(completer, "mount -t fa") == ["fake"]


def test_complete_paths_and_ids(completer, web) -> None:
    assert complete(completer, "ls /") == ["/f/"]
    assert complete(completer, "cd /f/t") == ["/f/tasks/"]
    assert complete(completer, "ls /f/tasks/") == [f"/f/tasks/{web}/"]
    assert complete(completer, "kill w") == [web]
    assert complete(completer, "cd /f; kill w") == [web]
    assert complete(completer, "ps | kill w") == [web]
    assert complete(completer, "kill 'w") == [f"'{web}'"]
    assert complete(completer, f"cat /f/tasks/{web}/std") == [
        f"/f/tasks/{web}/stderr",
        f"/f/tasks/{web}/stdout",
    ]


def test_no_completion_for_system_commands(completer) -> None:
    assert complete(completer, "ps | grep w") == []
    assert complete(completer, "ps |! kill w") == []
    assert complete(completer, "ps # kill w") == []


def test_completion_replaces_the_typed_word(completer, web) -> None:
    (c,) = completer.get_completions(Document("kill 'w"), CompleteEvent())
    assert c.start_position == -2 and c.display_text == web


# ---- the refresher with a backend that hangs -----------------------------------------------------

STARTED = threading.Event()
RELEASE = threading.Event()


class HangBackend(Backend):
    """Every listing blocks until the test releases it."""

    name = "hang"
    capabilities = frozenset({Capability.TASKS})

    def list_tasks(self, query):
        STARTED.set()
        RELEASE.wait(60)
        return []

    def get_task(self, task_id):
        raise NotImplementedError

    def list_agents(self):
        return []


@pytest.fixture
def hanging(web, monkeypatch):
    monkeypatch.setenv(
        "DSHELL_BACKENDS", os.environ["DSHELL_BACKENDS"] + f",hang={__name__}:HangBackend"
    )
    MountTable().update(
        lambda ms: [
            *ms,
            Mount(target="/hang", type="hang"),
            Mount(target="/down", type="fake", options={"fail": "unreachable"}),
        ]
    )
    STARTED.clear()
    RELEASE.clear()
    yield web
    RELEASE.set()


def test_a_hanging_mount_does_not_block_completion(hanging) -> None:
    web = hanging
    session = make_session(cwd="/f")
    repl = Repl(session, refresh_timeout=0.3)
    repl.refresher.refresh()  # /hang does not answer within the timeout
    assert STARTED.is_set() and not RELEASE.is_set()
    status = repl.refresher.status()
    assert status.problems["/hang"].startswith("slow")
    assert status.problems["/down"] == "unreachable"
    comp = DshellCompleter(session, repl.refresher.snapshot, TreeCache())
    assert complete(comp, "kill w") == [web]  # answered while /hang still hangs
    text = "".join(t for _, t in toolbar_fragments(repl, now=status.last + 3))  # type: ignore[operator]
    assert " /f /hang /down │ /f │ ids 3s ago" in text
    assert "/hang: slow" in text and "/down: unreachable" in text
    repl.refresher.refresh()  # still hanging: it is not asked again, still reported slow
    assert repl.refresher.status().problems["/hang"].startswith("slow")


def test_toolbar_says_refreshing(hanging) -> None:
    repl = Repl(make_session(), refresh_timeout=30)
    worker = threading.Thread(target=repl.refresher.refresh)
    worker.start()
    assert STARTED.wait(20)
    text = "".join(t for _, t in toolbar_fragments(repl))
    assert "refreshing…" in text
    RELEASE.set()
    worker.join(20)
    last = repl.refresher.status().last
    assert last is not None
    assert "ids 0s ago" in "".join(t for _, t in toolbar_fragments(repl, now=last))


def test_background_refresher_runs_after_each_command(web) -> None:
    session = make_session()
    with create_pipe_input() as inp, create_app_session(input=inp, output=DummyOutput()):
        repl = Repl(session, refresh_interval=3600, redraw_interval=None)
        repl.refresher.start()
        assert repl.refresher.wait_rounds(1, 20)
        repl.execute("pwd")
        assert repl.refresher.wait_rounds(2, 20)
        repl.refresher.stop()
    assert web in repl.refresher.snapshot().ids["/f"].tasks
