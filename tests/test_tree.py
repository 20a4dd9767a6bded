"""Walk the whole command tree and check the conventions every verb must follow."""

from __future__ import annotations

import pytest
from dshell.cli._click import click
from dshell.cli.main import VERBS, root

KEEP_MOUNT_O = {("mount",), ("fw", "launch")}  # mount(8)'s -o OPTIONS; format only as --output


def walk(cmd: click.Command, path: tuple[str, ...] = ()):
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None, f"{' '.join((*path, name))} does not load"
            yield from walk(sub, (*path, name))


ALL = list(walk(root))


def test_every_verb_of_the_issue_is_wired() -> None:
    wanted = {
        "ps",
        "inspect",
        "run",
        "exec",
        "kill",
        "top",
        "svc",
        "mount",
        "umount",
        "ls",
        "cd",
        "pwd",
        "cat",
        "tail",
        "nodes",
        "events",
        "wait",
        "help",
    }
    assert wanted <= set(VERBS)


@pytest.mark.parametrize(("path", "cmd"), ALL[1:], ids=[" ".join(p) for p, _ in ALL[1:]])
def test_help_text_and_output_flag(path, cmd) -> None:
    assert cmd.help and cmd.help.strip(), f"{' '.join(path)} has no help text"
    opts = {o: p for p in cmd.params if isinstance(p, click.Option) for o in p.opts}
    if "--output" in opts:
        if path in KEEP_MOUNT_O:
            assert opts["--output"].name == "output" and "-o" not in opts["--output"].opts
        else:
            assert "-o" in opts["--output"].opts, f"{' '.join(path)}: -o must be --output"
            assert "-q" in opts and "--quiet" in opts


def test_listing_verbs_take_output_flags() -> None:
    for name in ("ps", "nodes", "ls", "events", "wait", "inspect", "top", "backends", "mount"):
        cmd = root.get_command(click.Context(root), name)
        if isinstance(cmd, click.Group):  # `nodes` lists through its default sub-verb
            cmd = cmd.get_command(click.Context(cmd), "ls")
        params = {o for p in cmd.params for o in p.opts}
        assert "--output" in params, name
    ps_params = {o for p in root.get_command(click.Context(root), "ps").params for o in p.opts}
    assert {"--sort-by", "-l", "--selector", "-a", "--all", "--limit"} <= ps_params
