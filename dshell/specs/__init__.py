"""Spec loaders: native (TOML/JSON/YAML), Marathon, Aurora, Chronos and Metronome files -> one
normalized model (:mod:`dshell.specs.model`).

Every loader is a pure function ``load(text, source_name, **opts) -> LoadedSpec`` that raises
:class:`~dshell.specs.issues.SpecError` (a UsageError, exit status 2) listing every problem of
the file with its line and field. :func:`load_file` is the front door: it reads a path (or
``-`` for stdin), detects the format and calls the right loader.

Importing this package is cheap (no rich, prompt_toolkit or asyncio); Aurora files are
evaluated in a separate process, and pystachio is only imported there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any

from dshell.errors import UsageError
from dshell.specs.issues import Issue, SpecError
from dshell.specs.model import BatchJobSpec, GroupSpec, LoadedSpec, ServiceSpec

__all__ = [
    "FORMATS",
    "BatchJobSpec",
    "GroupSpec",
    "Issue",
    "LoadedSpec",
    "ServiceSpec",
    "SpecError",
    "detect",
    "load_file",
    "load_text",
]

# --format values; "toml", "json" and "yaml" mean the native schema in that syntax.
FORMATS = ("native", "toml", "json", "yaml", "marathon", "aurora", "chronos", "metronome")
_EXTENSIONS = {
    ".toml": "toml",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".aurora": "aurora",
    ".py": "aurora",
}
_NATIVE_KEYS = ("service", "group", "job")


def _kind_of_data(data: Any) -> str | None:
    """The format of parsed JSON/YAML data, from its keys (see docs/specs.md, Detection)."""
    items = data if isinstance(data, list) and data else [data]
    first = items[0]
    if not isinstance(first, dict):
        return None
    keys = set(first)
    if keys & set(_NATIVE_KEYS) and not keys & {"id", "name", "cmd", "command"}:
        return "native"
    if "run" in keys and "id" in keys:
        return "metronome"
    if "name" in keys and "command" in keys and keys & {"schedule", "parents"}:
        return "chronos"
    if "apps" in keys or "groups" in keys or ("id" in keys and keys & {"cmd", "args", "container"}):
        return "marathon"
    return None


def _sniff(text: str) -> str:
    """The syntax of text with no telling extension: json, toml, aurora or yaml."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and not stripped.startswith(
        ("[service", "[[", "[group", "[job")
    ):
        return "json"
    lines = [line.strip() for line in text.splitlines()]
    if any(
        line.startswith(("[service]", "[[service]]", "[group]", "[[group]]", "[job]", "[[job]]"))
        for line in lines
    ):
        return "toml"
    if (
        any(line.startswith("jobs") and "=" in line for line in lines)
        or "Job(" in text
        or "Service(" in text
    ):
        return "aurora"
    return "yaml"


def detect(text: str, name: str) -> tuple[str, str]:
    """``(format, syntax)`` of a spec: by extension first, then by content."""
    syntax = _EXTENSIONS.get(os.path.splitext(name)[1].lower()) or _sniff(text)
    if syntax in ("toml", "aurora"):
        return ("native" if syntax == "toml" else "aurora"), syntax
    from dshell.specs.lines import parse_json, parse_yaml

    data, _ = (parse_json if syntax == "json" else parse_yaml)(text, name)
    fmt = _kind_of_data(data)
    if fmt is None:
        raise SpecError(
            [
                Issue(
                    name,
                    1,
                    "",
                    "cannot tell the spec format: expected a native"
                    " spec (service/group/job), a Marathon app or group, a Chronos"
                    " or a Metronome job; give --format",
                )
            ]
        )
    return fmt, syntax


def _loader(fmt: str) -> Callable[..., LoadedSpec]:
    if fmt == "native":
        from dshell.specs import native

        return native.load
    if fmt == "marathon":
        from dshell.specs import marathon

        return marathon.load
    if fmt == "aurora":
        from dshell.specs import aurora

        return aurora.load
    from dshell.specs import jobs

    return jobs.load_chronos if fmt == "chronos" else jobs.load_metronome


def load_text(
    text: str, source_name: str, *, fmt: str | None = None, path: str | None = None, **opts: Any
) -> LoadedSpec:
    """Load spec ``text`` (named ``source_name`` in messages) in ``fmt``, or detect it."""
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown spec format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    if fmt in ("toml", "json", "yaml"):
        fmt, syntax = "native", fmt
    elif fmt in ("marathon", "chronos", "metronome"):
        syntax = "yaml" if source_name.endswith((".yaml", ".yml")) else "json"
    elif fmt in ("native", "aurora"):
        syntax = _EXTENSIONS.get(os.path.splitext(source_name)[1].lower()) or _sniff(text)
        syntax = "aurora" if fmt == "aurora" else ("toml" if syntax == "aurora" else syntax)
    else:
        fmt, syntax = detect(text, source_name)
    loaded = _loader(fmt)(text, source_name, syntax=syntax, path=path, **opts)
    if opts.get("bind") and fmt != "aurora":
        loaded.warnings.append(f"{source_name}: --bind is only used by Aurora files (ignored)")
    return loaded


def load_file(
    path_or_dash: str,
    *,
    fmt: str | None = None,
    bind: Mapping[str, str] | None = None,
    job_key: str | None = None,
    stdin: IO[str] | str | None = None,
    allow_gpus: bool = False,
    timeout: float | None = None,
) -> LoadedSpec:
    """Read and load a spec file (``-`` reads stdin, or the ``stdin`` text/stream given).

    ``bind`` (Aurora ``--bind key=value``) and ``job_key`` (``cluster/role/env/name`` or a job
    name) only apply to Aurora files; ``timeout`` bounds their evaluation (default 10 s).
    ``allow_gpus`` lets a spec ask for GPUs (this machine has none by default).
    """
    if path_or_dash == "-":
        source = stdin if stdin is not None else sys.stdin
        text = source if isinstance(source, str) else source.read()
        name, path = "<stdin>", None
    else:
        try:
            with open(path_or_dash, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            raise UsageError(f"{path_or_dash}: not UTF-8 text ({e.reason})") from None
        except OSError as e:
            raise UsageError(f"cannot read spec {path_or_dash}: {e.strerror or e}") from None
        name, path = path_or_dash, path_or_dash
    opts: dict[str, Any] = {"allow_gpus": allow_gpus}
    if bind:
        opts["bind"] = dict(bind)
    if job_key is not None:
        opts["job_key"] = job_key
    if timeout is not None:
        opts["timeout"] = timeout
    return load_text(text, name, fmt=fmt, path=path, **opts)
