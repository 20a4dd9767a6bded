"""The click-free ``ps`` path (dshell/fastpath.py) agrees with the command tree's ``ps``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dshell.backend import Mount, Prefetched
from dshell.fastpath import parse_ps, start_listings
from dshell.plugins import PluginRef, Registry
from dshell.session import Session
from dshell.testing.fake import FakeBackend

SIMPLE = [
    [],
    ["/f"],
    ["-a"],
    ["--all", "/f"],
    ["-q"],
    ["--quiet", "-a", "/"],
    ["-o", "tsv"],
    ["-ojson", "/f"],
    ["--output", "jsonl"],
    ["--output=name", "-a"],
    ["/f", "-o", "jsonpath=$[*].id"],
    ["-o", "wide", "-a", "-q", "/f"],
]
OTHERS = [
    ["--help"],
    ["-aq"],
    ["--state", "running"],
    ["-w"],
    ["/f", "/g"],
    ["-o"],
    ["--limit", "3"],
    ["-l", "a=b"],
    ["--sort-by", "name"],
    ["--raw", "-o", "json"],
    ["--"],
    ["--bogus"],
]


def _click_params(args: list[str]) -> dict[str, object]:
    from dshell.cli.ps import ps

    ctx = ps.make_context("ps", list(args))
    return dict(ctx.params)


@pytest.mark.parametrize("args", SIMPLE)
def test_simple_lines_parse_as_the_command_tree_parses_them(args: list[str]) -> None:
    fast = parse_ps(args)
    assert fast is not None
    tree = _click_params(args)
    assert {k: tree[k] for k in fast} == fast
    # every other option of ps is at its default, so the fast path may ignore it
    rest = {k: v for k, v in tree.items() if k not in fast}
    assert rest == {
        "states": (),
        "service": None,
        "watch": False,
        "sort_by": None,
        "selector": (),
        "limit": None,
        "raw": False,
    }


@pytest.mark.parametrize("args", OTHERS)
def test_anything_else_goes_to_the_command_tree(args: list[str]) -> None:
    assert parse_ps(args) is None


@pytest.mark.parametrize(
    "args",
    [
        ["ps", "/f", "-o", "tsv", "-a"],
        ["ps", "/", "-o", "json", "-a"],
        ["ps", "/f", "-q"],
        ["ps", "/nowhere", "-o", "tsv"],
        ["ps", "/f", "-o", "nonsense"],
    ],
)
def test_same_output_and_status_both_ways(fake_mount, dshell_exe, args: list[str]) -> None:
    assert dshell_exe("run", "--on", "/f", "-d", "--", "sleep", "9").returncode == 0
    fast = dshell_exe(*args)
    tree = dshell_exe(*args, env={"DSHELL_NO_FASTPATH": "1"})
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        tree.returncode,
        tree.stdout,
        tree.stderr,
    )


def test_the_fast_path_imports_no_click(fake_mount) -> None:
    probe = (
        "import sys\n"
        "from dshell.__main__ import main\n"
        "main(['ps', '/f', '-o', 'tsv'])\n"
        "sys.stderr.write('CLICK=' + str('click' in sys.modules) + '\\n')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert "CLICK=False" in r.stderr, r.stderr
    assert r.stdout.startswith("MOUNT\t")


# ---- early listings (dshell.backend, "Early listings") ----------------------------------------


class _Handle:
    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class Recorder(FakeBackend):
    """A backend that keeps the early listings it is given."""

    def __init__(self, mount: Mount) -> None:
        super().__init__(mount)
        self.adopted: list[object] = []

    def adopt_listing(self, started: Prefetched) -> None:
        self.adopted.append(started)


def test_the_session_hands_each_early_listing_to_its_backend_once(tmp_path: Path) -> None:
    refs = {
        "rec": PluginRef("rec", f"{__name__}:Recorder", "test"),
        "fake": PluginRef("fake", "dshell.testing.fake:FakeBackend", "test"),
    }
    mine, unused, refused = _Handle(), _Handle(), _Handle()
    session = Session(
        _registry=Registry(refs=refs),
        prefetched={"/r": mine, "/nowhere": unused, "/f": refused},
    )
    state = {"state": str(tmp_path / "s.json")}
    backend = session.backend(Mount(target="/r", type="rec", options=state))
    assert session.backend(Mount(target="/r", type="rec", options=state)) is backend
    assert isinstance(backend, Recorder) and backend.adopted == [mine]
    session.backend(Mount(target="/f", type="fake", options=state))
    assert refused.closed == 1  # a backend with no use for it closes it at once
    assert unused.closed == 0
    session.close()
    assert (mine.closed, unused.closed, refused.closed) == (0, 1, 1)


def test_only_backends_with_a_hook_start_anything(fake_mount, monkeypatch) -> None:
    early = start_listings(["ps", "/f", "-o", "tsv"])
    assert early is not None and early[1] == {}  # the fake backend's package has no hook
    assert set(early[0].refs) >= {"fake", "local"}
    assert start_listings(["ps", "/nowhere", "-o", "tsv"]) is None
    assert start_listings(["ps", "--state", "running", "/f"]) is None
    monkeypatch.setenv("DSHELL_NO_FASTPATH", "1")
    assert start_listings(["ps", "/f"]) is None


def test_a_full_disk_is_reported_the_same_both_ways(fake_mount) -> None:  # type: ignore[no-untyped-def]
    argv = [sys.executable, "-m", "dshell", "ps", "/f", "-o", "tsv"]

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        with open("/dev/full", "w", encoding="utf-8") as full:
            return subprocess.run(
                argv, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                env={**os.environ, **env},
            )  # fmt: skip

    fast, tree = run({}), run({"DSHELL_NO_FASTPATH": "1"})
    assert fast.returncode == tree.returncode == 1
    assert fast.stderr == tree.stderr == "dshell: error: No space left on device\n"


def test_the_collector_is_off_only_for_the_fast_listing(fake_mount, monkeypatch) -> None:
    """A one-shot ``ps`` runs without the garbage collector; any line the tree takes (``ps -w``
    can run for hours) runs with it, as does the caller after an in-process listing."""
    import gc

    from dshell import __main__ as entry
    from dshell.cli import main as tree

    seen: list[bool] = []
    real_invoke = tree.invoke

    def invoke(*args: Any, **kwargs: Any) -> int:
        seen.append(gc.isenabled())
        return real_invoke(*args, **kwargs)

    monkeypatch.setattr(tree, "invoke", invoke)
    assert entry.main(["ps", "/f", "-o", "tsv"]) == 0 and gc.isenabled()
    assert seen == []  # the fast path answered
    assert entry.main(["ps", "--state", "running", "/f"]) == 0
    assert seen == [True] and gc.isenabled()
