"""End to end: the real `dshell` executable in a pseudo-terminal (pexpect).

A tiny terminal emulator (:class:`VT`) keeps the screen as a real terminal would, including
prompt_toolkit's cursor movements and partial redraws, and answers its cursor-position
requests (so the bottom toolbar is drawn). Tests wait for text in the output stream or on
the screen; every wait is bounded (≤ 20 s) and waits for text, never for time.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pexpect
import pytest

pytestmark = [pytest.mark.pty, pytest.mark.timeout(120)]

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[=>()][0-9A-Za-z]?|\r")
TOKEN = re.compile(r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07]*\x07|\x1b[=>()][0-9A-Za-z]?|.", re.S)
WAIT = 20.0
ROWS, COLS = 30, 120


class VT:
    """Just enough of a VT100 for prompt_toolkit's output: a grid of characters and a cursor."""

    def __init__(self, rows: int = ROWS, cols: int = COLS) -> None:
        self.rows, self.cols = rows, cols
        self.grid = [[" "] * cols for _ in range(rows)]
        self.r = self.c = 0
        self.replies: list[str] = []  # answers to send back (cursor position reports)

    def display(self) -> str:
        return "\n".join("".join(row).rstrip() for row in self.grid)

    def _down(self) -> None:
        if self.r == self.rows - 1:
            self.grid = [*self.grid[1:], [" "] * self.cols]  # scroll
        else:
            self.r += 1

    def feed(self, data: str) -> None:
        for m in TOKEN.finditer(data):
            if m.group(2) is not None:
                self._csi(m.group(1), m.group(2))
            elif len(m.group(0)) == 1:
                self._char(m.group(0))

    def _char(self, ch: str) -> None:
        if ch == "\r":
            self.c = 0
        elif ch == "\n":
            self._down()
        elif ch == "\b":
            self.c = max(0, self.c - 1)
        elif ch == "\t":
            self.c = min(self.cols - 1, (self.c // 8 + 1) * 8)
        elif ch >= " ":
            if self.c >= self.cols:
                self.c = 0
                self._down()
            self.grid[self.r][self.c] = ch
            self.c += 1

    def _csi(self, params: str, final: str) -> None:
        if params.startswith("?"):
            return  # modes (cursor visibility, autowrap, bracketed paste)
        nums = [int(p) if p else 0 for p in params.split(";")] if params else []
        n = max(nums[0], 1) if nums else 1
        if final == "A":
            self.r = max(0, self.r - n)
        elif final == "B":
            self.r = min(self.rows - 1, self.r + n)
        elif final == "C":
            self.c = min(self.cols - 1, self.c + n)
        elif final == "D":
            self.c = max(0, self.c - n)
        elif final == "G":
            self.c = min(self.cols - 1, n - 1)
        elif final == "H":
            self.r = min(self.rows - 1, n - 1)
            self.c = min(self.cols - 1, (nums[1] if len(nums) > 1 and nums[1] else 1) - 1)
        elif final == "J":
            self.grid[self.r][self.c :] = [" "] * (self.cols - self.c)
            for row in range(self.r + 1, self.rows):
                self.grid[row] = [" "] * self.cols
        elif final == "K":
            self.grid[self.r][self.c :] = [" "] * (self.cols - self.c)
        elif final == "n" and nums == [6]:
            self.replies.append(f"\x1b[{self.r + 1};{self.c + 1}R")


def dshell_executable() -> str:
    beside = Path(sys.executable).with_name("dshell")
    found = str(beside) if beside.exists() else shutil.which("dshell")
    assert found, "the dshell executable is not installed (pip install -e .)"
    return found


class Screen:
    """Reads a child's output into a :class:`VT`; finds text in the stream or on the screen."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.vt = VT()
        self.raw = ""
        self.text = ""  # the whole output stream, escapes stripped
        self.mark = 0  # stream matches are searched in text[mark:]

    def _read(self) -> None:
        try:
            chunk = self.child.read_nonblocking(4096, timeout=0.1)
        except (pexpect.TIMEOUT, pexpect.EOF):
            return
        self.raw += chunk
        self.vt.feed(chunk)
        while self.vt.replies:
            self.child.send(self.vt.replies.pop(0))
        self.text = ANSI.sub("", self.raw)

    def on_screen(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """Wait until a regex matches the screen as a terminal would show it now."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        while not (found := rx.search(self.vt.display())):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the screen:\n{self.vt.display()}")
            self._read()
        return found

    def wait(self, pattern: str, timeout: float = WAIT) -> re.Match[str]:
        """Wait for a regex in the text that arrived since the last wait."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            found = rx.search(self.text, self.mark)
            if found:
                self.mark = found.end()
                return found
            if time.monotonic() > deadline:
                tail = self.text[self.mark :][-2000:]
                raise AssertionError(f"no {pattern!r} on the screen within {timeout}s:\n{tail}")
            if not self.child.isalive():
                with_rest = self.child.read() if not self.child.closed else ""
                self.text += ANSI.sub("", with_rest)
                if not rx.search(self.text, self.mark):
                    raise AssertionError(f"dshell exited before {pattern!r}:\n{self.text[-2000:]}")
            self._read()


@pytest.fixture
def web(fake_mount, cli) -> str:
    r = cli(["run", "--on", "/f", "-d", "--name", "web", "--", "sleep", "100"])
    assert r.status == 0
    return r.stdout.strip()


@pytest.fixture
def repl(web):
    env = {**os.environ, "TERM": "xterm", "NO_COLOR": "1"}
    env.pop("PROMPT_TOOLKIT_NO_CPR", None)
    child = pexpect.spawn(
        dshell_executable(), env=env, dimensions=(ROWS, COLS), encoding="utf-8", timeout=WAIT
    )
    screen = Screen(child)
    yield screen
    if child.isalive():
        child.terminate(force=True)


def prompt(path: str) -> str:
    return re.escape(f"dshell:{path}> ")


def test_repl_in_a_real_terminal(repl: Screen, web: str) -> None:
    screen = repl
    screen.wait(r"`help` lists verbs")
    screen.wait(prompt("/"))
    # The bottom toolbar, on the terminal's last line, once the first refresh is done.
    screen.on_screen(r"\n /f │ / │ ids \d+s ago  F5 refresh ids · Ctrl-R search · Ctrl-D exit$")

    screen.child.send("pwd\r")
    screen.wait(r"\n/\n.*" + prompt("/"))

    screen.child.send("mount\r")
    screen.wait(r"TARGET.*/f\s+fake.*" + prompt("/"))

    screen.child.send("cd /f\r")
    screen.wait(prompt("/f"))

    screen.child.send("ps | grep web\r")
    screen.wait(rf"\n/f\t{re.escape(web)}\tweb\tRUNNING\t.*" + prompt("/f"))

    screen.child.send("pw\t")  # Tab completes the verb…
    screen.on_screen(prompt("/f") + "pwd")
    screen.child.send("\r")  # …and the completed line runs
    screen.wait(r"\n/f\n.*" + prompt("/f"))

    screen.child.send(f"kill --yes {web[:5]}\t")  # a live id from the refresher
    screen.on_screen(prompt("/f") + re.escape(f"kill --yes {web}"))
    screen.child.send("\r")
    screen.wait(rf"killed /f/tasks/{re.escape(web)}.*" + prompt("/f"))

    screen.child.send("exit\r")
    screen.child.expect(pexpect.EOF, timeout=WAIT)
    screen.child.close()
    assert screen.child.exitstatus == 0


def test_ctrl_c_cancels_the_command_not_the_shell(repl: Screen) -> None:
    screen = repl
    screen.wait(prompt("/"))
    screen.child.send("pwd | sh -c 'cat; exec sleep 60'\r")
    screen.wait(r"\n/\n")  # the pipeline runs (and would for a minute)
    screen.child.send("\x03")  # the terminal sends SIGINT to the foreground group
    screen.wait(r"interrupted.*" + prompt("/"))
    screen.child.send("abc\x03")  # at the prompt, Ctrl-C only clears the line
    screen.wait(prompt("/"))
    screen.child.send("exit 4\r")
    screen.child.expect(pexpect.EOF, timeout=WAIT)
    screen.child.close()
    assert screen.child.exitstatus == 4
