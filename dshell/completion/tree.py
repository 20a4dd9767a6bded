"""The static completion spec: verbs, sub-verbs, options and what each value is, read once
from the click command tree; and :func:`analyse`, which says what the word at the cursor is.

Value kinds: ``choice`` (a fixed list), ``value`` (free text), ``file`` (a local file),
``command`` (a system command line), ``verb``, and the live kinds answered from the clusters
(:data:`LIVE_KINDS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Kinds whose values come from the clusters (``dshell __complete KIND PREFIX``).
LIVE_KINDS = ("path", "ref", "task", "service", "agent", "mount", "backend")

OUTPUT_CHOICES = ("table", "wide", "tsv", "json", "jsonl", "yaml", "name", "jsonpath=")
SIGNAL_CHOICES = ("TERM", "KILL", "HUP", "INT", "QUIT", "USR1", "USR2", "STOP", "CONT")


@dataclass(frozen=True)
class Opt:
    """An option: its spellings, and the kind of value it takes (None: a flag)."""

    names: tuple[str, ...]
    kind: str | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


@dataclass(frozen=True)
class Arg:
    """A positional argument: its kind, and whether it repeats (``nargs=-1``)."""

    name: str
    kind: str | None
    choices: tuple[str, ...] = ()
    repeat: bool = False


@dataclass(frozen=True)
class Node:
    """A command (the root, a verb or a sub-verb)."""

    name: str
    help: str = ""
    opts: tuple[Opt, ...] = ()
    args: tuple[Arg, ...] = ()
    subs: tuple[Node, ...] = ()
    interspersed: bool = True  # False: options end at the first argument (`run CMD -x`)
    path: tuple[str, ...] = field(default=(), compare=False)

    def sub(self, name: str) -> Node | None:
        return next((s for s in self.subs if s.name == name), None)

    def opt(self, name: str) -> Opt | None:
        return next((o for o in self.opts if name in o.names), None)

    def arg_at(self, index: int) -> Arg | None:
        if index < len(self.args):
            return self.args[index]
        if self.args and self.args[-1].repeat:
            return self.args[-1]
        return None

    def walk(self) -> list[Node]:
        """This node and every node below it, depth first, in order."""
        out = [self]
        for s in self.subs:
            out.extend(s.walk())
        return out


# ---- reading the click tree ------------------------------------------------------------------


def build_tree() -> Node:
    """The spec of the whole command tree (imports every verb module)."""
    from ..cli._click import click
    from ..cli.main import root

    ctx = click.Context(root, info_name="dshell", **root.context_settings)
    return _node(root, ctx, ())


def _first_line(text: str | None) -> str:
    line = (text or "").strip().split("\n", 1)[0].strip()
    return line.replace("\b", "").strip()


def _node(cmd: Any, ctx: Any, path: tuple[str, ...]) -> Node:
    from ..cli._click import click

    opts = tuple(_opt(path, p) for p in cmd.params if isinstance(p, click.Option) and not p.hidden)
    # The help option from the context, not cmd.get_params(): click caches that option on the
    # command the first time it is asked, with whatever context asked first.
    if cmd.add_help_option and ctx.help_option_names:
        opts += (Opt(tuple(ctx.help_option_names), None, (), "Show the help and exit."),)
    args = tuple(_arg(path, p) for p in cmd.params if isinstance(p, click.Argument))
    subs: list[Node] = []
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
            subs.append(_node(sub, sub_ctx, (*path, name)))
    return Node(
        name=path[-1] if path else "dshell",
        help=cmd.get_short_help_str(limit=70) if path else "",
        opts=opts,
        args=args,
        subs=tuple(subs),
        # Groups stop options at their sub-verb; that matters only for leaf commands.
        interspersed=bool(subs) or bool(ctx.allow_interspersed_args),
        path=path,
    )


def _choices(ptype: Any) -> tuple[str, ...] | None:
    from ..cli._click import click

    if isinstance(ptype, click.Choice):
        return tuple(str(c) for c in ptype.choices)
    return None


def _opt(path: tuple[str, ...], param: Any) -> Opt:
    names = tuple(param.opts) + tuple(param.secondary_opts)
    helptext = _first_line(param.help)
    if param.is_flag or param.count:
        return Opt(names, None, (), helptext)
    choices = _choices(param.type)
    if choices is not None:
        return Opt(names, "choice", choices, helptext)
    name = param.name
    if name == "output":
        return Opt(names, "choice", OUTPUT_CHOICES, helptext)
    if name == "sig":
        return Opt(names, "choice", SIGNAL_CHOICES, helptext)
    kind = {
        "on": "path",
        "service": "service",
        "agent": "agent",
        "spec_file": "file",
        "file": "file",
    }.get(name, "value")
    if name == "type_" and path == ("mount",):
        kind = "backend"
    return Opt(names, kind, (), helptext)


#: Positional argument names and what they hold.
_ARG_KINDS = {
    "path": "path",
    "paths": "ref",  # `cat ID` or `cat /M/tasks/ID/stdout`
    "ref": "ref",
    "refs": "ref",
    "task": "task",
    "agent": "agent",
    "agents": "agent",
    "node": "agent",
    "service": "service",
    "words": "verb",
    "command": "command",
}


def _arg(path: tuple[str, ...], param: Any) -> Arg:
    name = param.name or ""
    choices = _choices(param.type)
    repeat = param.nargs == -1
    if choices is not None:
        return Arg(name, "choice", choices, repeat)
    kind = _ARG_KINDS.get(name)
    if name == "target":
        kind = {"umount": "mount", "tail": "ref"}.get(path[-1], "path")
    elif name == "name" and path[:1] == ("svc",):
        kind = "service"
    return Arg(name, kind, (), repeat)


# ---- the word at the cursor --------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    """What the word being typed should be.

    ``kind`` is ``sub`` (a verb or sub-verb of ``node``), ``option``, ``none``, or a value
    kind; ``prefix`` is the text typed so far (after ``inline``, e.g. ``--output=``).
    """

    kind: str
    prefix: str
    node: Node
    choices: tuple[str, ...] = ()
    inline: str = ""


def analyse(tree: Node, words: list[str] | tuple[str, ...], current: str) -> Want:
    """What ``current`` should complete to, after ``words`` (the words after ``dshell``)."""
    node = tree
    expect: Opt | None = None
    npos = 0
    dashdash = False
    for w in words:
        if expect is not None:
            expect = None
        elif not dashdash and w == "--":
            dashdash = True
        elif not dashdash and w.startswith("-") and len(w) > 1:
            opt = node.opt(w)
            if opt is not None and opt.kind is not None and "=" not in w:
                expect = opt
        elif node.subs and npos == 0:
            sub = node.sub(w)
            if sub is None:
                return Want("none", current, node)
            node = sub
        else:
            npos += 1
            dashdash = dashdash or not node.interspersed
    if expect is not None:
        return Want(expect.kind or "none", current, node, expect.choices)
    if not dashdash and current.startswith("-"):
        name, eq, value = current.partition("=")
        opt = node.opt(name) if eq else None
        if opt is not None and opt.kind is not None:
            return Want(opt.kind, value, node, opt.choices, inline=name + "=")
        return Want("option", current, node)
    if node.subs and npos == 0:
        return Want("sub", current, node)
    arg = node.arg_at(npos)
    if arg is None or arg.kind is None:
        return Want("none", current, node)
    return Want(arg.kind, current, node, arg.choices)


def static_candidates(want: Want, verbs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(value, description) for the kinds known without asking a cluster."""
    if want.kind == "sub":
        return [(s.name, s.help) for s in want.node.subs]
    if want.kind == "option":
        return [(n, o.help) for o in want.node.opts for n in o.names]
    if want.kind == "choice":
        return [(c, "") for c in want.choices]
    if want.kind == "verb":
        return verbs
    return []
