"""backends: the installed backend plugins."""

from __future__ import annotations

import msgspec

from ..errors import DshellError
from ..render.views import Column, View
from ._click import click
from .common import out_fmt, session_of
from .options import output_options


class BackendInfo(msgspec.Struct, kw_only=True):
    name: str
    provider: str
    target: str
    available: bool
    reason: str | None = None
    capabilities: list[str] = []


VIEW = View(
    "backend",
    (
        Column("NAME", lambda b, _h: b.name),
        Column("AVAILABLE", lambda b, _h: "yes" if b.available else "no"),
        Column("PROVIDER", lambda b, _h: b.provider),
        Column("CAPABILITIES", lambda b, _h: ",".join(b.capabilities) or "-"),
        Column("REASON", lambda b, _h: b.reason or "-"),
        Column("TARGET", lambda b, _h: b.target, wide=True),
    ),
    lambda b: b.name,
)


@click.command()
@output_options()
@click.pass_context
def backends(ctx: click.Context, output: str | None, quiet: bool, raw: bool) -> None:
    """List backend plugins (entry points in group dshell.backends) with their availability
    and capabilities. A plugin that fails to load is listed as broken, with the reason."""
    session = session_of(ctx)
    out, fmt = out_fmt(session, output, quiet, raw)
    reg = session.registry
    rows = []
    for name in reg.names():
        ref = reg.refs[name]
        try:
            cls = reg.load(name)
            avail = cls.availability()
            caps = sorted(c.name.lower() for c in cls.capabilities)
            rows.append(
                BackendInfo(
                    name=name,
                    provider=ref.provider,
                    target=ref.target,
                    available=avail.available,
                    reason=avail.reason,
                    capabilities=caps,
                )
            )
        except DshellError as exc:
            out.warn(exc.message)
            rows.append(
                BackendInfo(
                    name=name,
                    provider=ref.provider,
                    target=ref.target,
                    available=False,
                    reason=f"broken: {exc.message}",
                )
            )
    out.listing(rows, VIEW, fmt)
