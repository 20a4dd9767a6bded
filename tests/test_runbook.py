"""Runbooks: -c, files, shebang files, stdin; stop at the first failure; set +e/-e."""

from __future__ import annotations

import os
import stat
import sys
import textwrap

from dshell.runbook import logical_lines


def test_logical_lines_join_continuations() -> None:
    assert list(logical_lines(["a \\\n", "  b\n", "c\n"])) == [(1, "a b"), (3, "c")]


def test_dash_c_runs_in_order(fake_mount, dshell_exe) -> None:
    r = dshell_exe("-c", "cd /f; pwd; run -- echo one; run -- echo two")
    assert r.returncode == 0 and r.stdout == "/f\none\ntwo\n"


def test_file_stops_at_first_failure_with_location(fake_mount, dshell_exe, tmp_path) -> None:
    book = tmp_path / "deploy.dsh"
    book.write_text(
        textwrap.dedent("""\
        # a runbook
        cd /f

        run -- echo before
        run -- exit 4
        run -- echo never
        """)
    )
    r = dshell_exe(str(book))
    assert r.returncode == 4
    assert r.stdout == "before\n"
    assert f"{book}:5: `run -- exit 4` failed with exit 4" in r.stderr


def test_set_plus_e_keeps_going(fake_mount, dshell_exe) -> None:
    r = dshell_exe("-c", "set +e\ncd /f\nrun -- exit 4\nrun -- echo after")
    assert r.returncode == 0 and r.stdout == "after\n"
    r = dshell_exe(
        "-c", "set +e\nrun --on /f -- exit 4\nset -e\nrun --on /f -- exit 5\nrun --on /f -- echo no"
    )
    assert r.returncode == 5 and r.stdout == ""


def test_semicolons_stop_at_the_first_failure_as_sh_e(fake_mount, dshell_exe) -> None:
    """`dshell -c 'a; b'` is one line: a failing `a` must not run `b` (sh -e), and `set +e`
    works between semicolons too."""
    r = dshell_exe("-c", "cd /f; run -- exit 3; run -- echo never")
    assert r.returncode == 3 and "never" not in r.stdout
    assert "-c:1:" in r.stderr
    r = dshell_exe("-c", "cd /f; set +e; run -- exit 3; run -- echo after")
    assert r.returncode == 0 and r.stdout == "after\n"
    r = dshell_exe("-c", "set -x")
    assert r.returncode == 2 and "use set -e or set +e" in r.stderr


def test_shebang_file(fake_mount, tmp_path) -> None:
    import subprocess

    script = tmp_path / "book"
    script.write_text("#!/usr/bin/env dshell\nrun --on /f -- echo from-shebang\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    r = subprocess.run(
        [str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert r.returncode == 0 and r.stdout == "from-shebang\n", r.stderr


def test_lines_on_stdin(fake_mount, dshell_exe) -> None:
    r = dshell_exe(input="cd /f\nrun -- echo piped\nps -q\n")
    assert r.returncode == 0 and r.stdout == "piped\n"


def test_usage_error_line_stops_with_code_2(fake_mount, dshell_exe) -> None:
    r = dshell_exe("-c", "ps --bogus\nrun --on /f -- echo no")
    assert r.returncode == 2 and "-c:1:" in r.stderr and r.stdout == ""


def test_unreadable_runbook(dshell_exe, tmp_path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    r = dshell_exe("-c", "")
    assert r.returncode == 0
