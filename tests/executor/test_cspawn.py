"""The two ways the spawner starts a task — glibc's posix_spawn through ctypes (the child
changes directory; the GIL is released) and ``os.posix_spawn`` after a process-wide chdir (tty
tasks, C libraries without the chdir action) — give the child the same world and fail with the
same messages."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import pytest

from dshell_local.executor import cspawn
from dshell_local.executor.protocol import SpawnSpec
from dshell_local.executor.spawner import Spawner, SpawnError

PROBE = (
    'pwd; echo "sid=$(ps -o sid= -p $$ | tr -d " ") pid=$$"; '
    'grep -E "^Sig(Ign|Blk):" /proc/self/status; env | sort; cat; echo err >&2'
)
MODES = [pytest.param(True, id="libc"), pytest.param(False, id="os.posix_spawn")]


def _spec(tmp_path: Path, name: str, argv: list[str], **fields: object) -> SpawnSpec:
    sb = tmp_path / name
    sb.mkdir(exist_ok=True)
    base: dict[str, object] = {
        "task_id": name, "argv": argv, "env": {"PATH": "/usr/bin:/bin", "ONE": "1 2=3"},
        "cwd": str(sb), "stdout": str(sb / "stdout"), "stderr": str(sb / "stderr"),
    }  # fmt: skip
    base.update(fields)
    return SpawnSpec(**base)  # type: ignore[arg-type]


def _run(spawner: Spawner, spec: SpawnSpec) -> tuple[int, str, str]:
    pid = spawner.spawn(spec).pid
    _, status = os.waitpid(pid, 0)
    os.chdir("/")  # what the executor does after a batch (the os.posix_spawn way chdirs)
    out = Path(spec.stdout).read_text().replace(str(pid), "PID")
    return os.waitstatus_to_exitcode(status), out, Path(spec.stderr).read_text()


@pytest.mark.skipif(not cspawn.available(), reason="no posix_spawn_file_actions_addchdir_np")
def test_both_ways_give_the_child_the_same_world(tmp_path: Path) -> None:
    seen = {}
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as the executor has it: reset in the child
    try:
        for use_libc in (True, False):
            spawner = Spawner(use_libc=use_libc)
            assert spawner.parallel is use_libc
            name = f"probe-{use_libc}"
            seen[use_libc] = _run(spawner, _spec(tmp_path, name, [PROBE], shell=True))
    finally:
        signal.signal(signal.SIGHUP, old)
    libc, posix = ((c, o.replace(f"probe-{m}", "SB"), e) for m, (c, o, e) in seen.items())
    assert libc == posix
    code, out, err = libc
    lines = out.splitlines()
    assert lines[0] == str(tmp_path / "SB")  # the sandbox is the cwd
    assert lines[1] == "sid=PID pid=PID"  # its own session
    assert "SigBlk:\t0000000000000000" in lines  # nothing blocked
    ignored = int(next(x for x in lines if x.startswith("SigIgn:")).split()[1], 16)
    assert not ignored & (1 << (signal.SIGHUP - 1)) and not ignored & (1 << (signal.SIGPIPE - 1))
    assert "ONE=1 2=3" in lines and not any(x.startswith("DSHELL") for x in lines)
    assert err == "err\n" and code == 0  # stdin is /dev/null: cat ends at once


@pytest.mark.parametrize("use_libc", MODES)
def test_output_files_are_appended_and_can_be_one(use_libc: bool, tmp_path: Path) -> None:
    spawner = Spawner(use_libc=use_libc)
    spec = _spec(tmp_path, "shared", ["echo out; echo err >&2"], shell=True)
    spec = SpawnSpec(**{**_fields(spec), "stderr": spec.stdout})
    Path(spec.stdout).write_text("before\n")
    assert _run(spawner, spec)[1] == "before\nout\nerr\n"


@pytest.mark.parametrize("use_libc", MODES)
def test_relative_commands_and_path_entries_resolve_in_the_sandbox(
    use_libc: bool, tmp_path: Path
) -> None:
    spawner = Spawner(use_libc=use_libc)
    spec = _spec(tmp_path, "rel", ["./run.sh"])
    script = Path(spec.cwd) / "run.sh"
    script.write_text("#!/bin/sh\necho ran in $(pwd)\n")
    script.chmod(0o755)
    assert _run(spawner, spec)[1] == f"ran in {spec.cwd}\n"
    (Path(spec.cwd) / "bin").mkdir()
    (Path(spec.cwd) / "bin" / "tool").write_bytes(script.read_bytes())
    (Path(spec.cwd) / "bin" / "tool").chmod(0o755)
    spec = SpawnSpec(**{**_fields(spec), "argv": ["tool"], "env": {"PATH": "bin:/bin"}})
    assert _run(spawner, spec)[1] == f"ran in {spec.cwd}\n" * 2  # appended to the first


@pytest.mark.parametrize("use_libc", MODES)
@pytest.mark.parametrize(
    ("case", "err", "fragment"),
    [
        ("no sandbox", errno.ENOENT, "sandbox"),
        ("no command", errno.ENOENT, "command not found"),
        ("missing file", errno.ENOENT, "No such file"),
        ("not executable", errno.EACCES, "permission denied"),
        ("stdout unwritable", errno.ENOENT, "cannot open stdout"),
    ],
)
def test_failures_say_what_failed(
    use_libc: bool, case: str, err: int, fragment: str, tmp_path: Path
) -> None:
    spawner = Spawner(use_libc=use_libc)
    spec = _spec(tmp_path, "bad", ["/bin/true"])
    data = Path(spec.cwd) / "data.txt"
    data.write_text("not a program")
    fields = _fields(spec)
    if case == "no sandbox":
        fields["cwd"] = str(tmp_path / "gone")
    elif case == "no command":
        fields["argv"] = ["no-such-command-here"]
    elif case == "missing file":
        fields["argv"] = [str(tmp_path / "nothing")]
    elif case == "not executable":
        fields["argv"] = [str(data)]
    else:
        fields["stdout"] = str(tmp_path / "no-dir" / "stdout")
    with pytest.raises(SpawnError) as info:
        spawner.spawn(SpawnSpec(**fields))  # type: ignore[arg-type]
    os.chdir("/")
    assert info.value.errno == err, info.value.message
    assert fragment in info.value.message, info.value.message


GIL_PROBE = """
import os, sys, threading, time
from dshell_local.executor.protocol import SpawnSpec
from dshell_local.executor.spawner import Spawner
sb, use_libc = sys.argv[1], sys.argv[2] == "1"
fifo = os.path.join(sb, "stdout")
os.mkfifo(fifo)
opened = []

def reader():  # Python in another thread: it can only run if the spawning thread let go
    time.sleep(0.05)
    fd = os.open(fifo, os.O_RDONLY)  # the child's open of its stdout waits for this
    opened.append(time.monotonic())
    while os.read(fd, 4096):
        pass

threading.Thread(target=reader, daemon=True).start()
spec = SpawnSpec(task_id="gil", argv=["/bin/echo", "hi"], env={}, cwd=sb, stdout=fifo,
                 stderr=os.path.join(sb, "stderr"))
pid = Spawner(use_libc=use_libc).spawn(spec).pid
os.waitpid(pid, 0)
print("spawned", bool(opened))
"""


@pytest.mark.skipif(not cspawn.available(), reason="no posix_spawn_file_actions_addchdir_np")
@pytest.mark.parametrize("use_libc", MODES)
def test_other_threads_run_while_the_child_prepares_its_exec(
    use_libc: bool, tmp_path: Path
) -> None:
    """The child opens its stdout, a FIFO here, before it execs, and the spawning thread waits
    for that (vfork). Only a thread that runs meanwhile can open the FIFO's other end: through
    glibc it does; ``os.posix_spawn`` holds the GIL, so there the spawn never ends."""
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-c", GIL_PROBE, str(tmp_path), "1" if use_libc else "0"],
            capture_output=True, text=True, timeout=2 if not use_libc else 30, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        # the probe is killed, but its child still waits in the FIFO's open: let it through
        fd = os.open(tmp_path / "stdout", os.O_RDONLY | os.O_NONBLOCK)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the child (now /bin/echo) has written
            try:
                if os.read(fd, 64) or not _fifo_writers(tmp_path / "stdout"):
                    break
            except BlockingIOError:
                pass
            time.sleep(0.01)
        os.close(fd)
        assert not use_libc, "the spawn through glibc blocked the other thread"
        return
    assert use_libc, f"os.posix_spawn let another thread run: {done.stdout} {done.stderr}"
    assert done.stdout == "spawned True\n", done.stderr


def _fifo_writers(fifo: Path) -> list[int]:
    """Processes holding ``fifo`` open (a bounded /proc scan)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(fifo) for fd in fds):
                found.append(int(pid))
        except OSError:
            continue
    return found


def _fields(spec: SpawnSpec) -> dict[str, object]:
    return {f: getattr(spec, f) for f in spec.__struct_fields__}
