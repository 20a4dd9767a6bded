"""Cold start: non-interactive commands never import the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["prompt_toolkit", "paramiko", "kazoo", "asyncio", "aiohttp", "psutil", "ray", "pydantic"]

PROBE = """
import json, sys
heavy_names = json.loads(sys.argv[2])
from dshell.__main__ import main
main(json.loads(sys.argv[1]))  # given argv: a finished `ps` does not end the process here
heavy = {h for h in heavy_names if h in sys.modules}
sys.stderr.write("HEAVY=" + json.dumps(sorted(heavy)) + "\\n")
"""


def _loaded(args: list[str]) -> list[str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    line = [x for x in r.stderr.splitlines() if x.startswith("HEAVY=")]
    assert line, r.stderr
    return json.loads(line[-1][6:])


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["ps", "/f", "-o", "tsv"],
        ["ps", "/f", "-o", "json"],
        ["mount"],
        ["kill", "--help"],
        ["run", "--on", "/f", "--", "echo", "x"],
    ],
)
def test_no_heavy_imports(fake_mount, args) -> None:
    assert _loaded(args) == []


def test_version_builds_no_command_tree() -> None:
    probe = (
        "import sys; sys.argv=['dshell','--version']\n"
        "from dshell.__main__ import main\n"
        'main(["--version"])\n'
        "print(sorted(m for m in sys.modules if m.startswith(('click','dshell.cli','rich'))))"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert r.stdout.splitlines()[-1] == "[]"


def test_only_invoked_verb_module_is_imported(fake_mount) -> None:
    probe = (
        # (--sort-by: a plain `ps /f -q` takes the click-free path, dshell/fastpath.py)
        "import sys\nfrom dshell.__main__ import main\nmain(['ps','/f','-q','--sort-by','id'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('dshell.cli.')))"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = eval(r.stdout.splitlines()[-1])
    assert "dshell.cli.ps" in loaded
    assert not {"dshell.cli.run", "dshell.cli.kill", "dshell.cli.svc", "dshell.cli.top"} & set(
        loaded
    )
