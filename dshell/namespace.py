"""The namespace: a mount table (persisted like fstab) and path resolution.

The table lives in ``config_dir()/mounts.toml``::

    # dshell mount table: SOURCE TARGET TYPE OPTIONS, one [[mount]] each
    [[mount]]
    target = "/local"
    type = "local"
    source = "localhost"
    options = {}

When the file does not exist, ``/local`` (the embedded engine) is mounted by default; once a
user changes the table, the file says exactly what is mounted (an empty table is kept empty).

Every change is a read-modify-write under a file lock with an atomic replace (tmp + fsync +
rename), so two REPLs changing mounts at once lose nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .backend import Mount
from .errors import ConfigError, ConflictError, NotFoundError, UsageError
from .nspath import normpath, serving
from .prestart import cached, keep, mount_rows
from .xdg import mount_table

DEFAULT_MOUNTS = (Mount(target="/local", type="local", source="localhost"),)

#: The parsed table, kept in the state dir with the text it was parsed from: reading the
#: table then costs no TOML parser (tomllib's import and parse are ~5 ms of every command).
TABLE_CACHE = "mounts.cache"

#: The directories every mount has, in the order ``ls`` shows them.
MOUNT_DIRS = ("tasks", "agents", "svc", "vol", "fw")


@dataclass(frozen=True)
class Resolved:
    """A namespace path split into the mount that serves it and the rest (no leading /)."""

    path: str
    mount: Mount | None  # None: the path is above every mount (e.g. "/")
    rest: str

    @property
    def parts(self) -> list[str]:
        return [p for p in self.rest.split("/") if p]


class MountTable:
    """The persisted mount table. Reads are cheap; writes lock and replace atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(mount_table())

    # ---- reading -----------------------------------------------------------------------------

    def load(self) -> list[Mount]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return list(DEFAULT_MOUNTS)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the mount table: {exc.strerror}") from exc
        rows = cached(TABLE_CACHE, text)
        if mount_rows(rows):
            return [Mount(target=r[0], type=r[1], source=r[2], options=r[3]) for r in rows]
        mounts = parse_table(text, str(self.path))
        _keep(text, mounts)
        return mounts

    # ---- writing -----------------------------------------------------------------------------

    def update(self, change: Callable[[list[Mount]], list[Mount]]) -> list[Mount]:
        """Apply ``change`` to the current table under the lock; persist and return the result."""
        from .paths import locked

        with locked(Path(str(self.path) + ".lock"), timeout=10, what="the mount table"):
            mounts = change(self.load())
            self._write(mounts)
        return mounts

    def add(self, mount: Mount) -> list[Mount]:
        def change(mounts: list[Mount]) -> list[Mount]:
            if any(m.target == mount.target for m in mounts):
                raise ConflictError(f"{mount.target}: already mounted (umount it first)")
            return [*mounts, mount]

        return self.update(change)

    def remove(self, target: str) -> Mount:
        removed: list[Mount] = []

        def change(mounts: list[Mount]) -> list[Mount]:
            keep = [m for m in mounts if m.target != target]
            removed.extend(m for m in mounts if m.target == target)
            if not removed:
                raise NotFoundError(f"{target}: not mounted")
            nested = [m.target for m in keep if m.target.startswith(target + "/")]
            if nested:
                raise ConflictError(f"{target}: busy, mounts below it: {', '.join(nested)}")
            return keep

        self.update(change)
        return removed[0]

    def _write(self, mounts: list[Mount]) -> None:
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=".mounts.", dir=self.path.parent)
        text = render_table(mounts)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _keep(text, mounts)


def _keep(text: str, mounts: list[Mount]) -> None:
    """Keep the mounts parsed from ``text`` (the cache's key is the whole text: any change
    to the file, however small or quick, misses)."""
    keep(TABLE_CACHE, text, [(m.target, m.type, m.source, m.options) for m in mounts])


def _toml_str(value: str) -> str:
    import json

    # A JSON string is a valid TOML basic string (json.dumps never emits "\/"), but for DEL,
    # which JSON leaves raw and TOML forbids (the whole table would no longer read).
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render_table(mounts: list[Mount]) -> str:
    lines = ["# dshell mount table (fstab-like): one [[mount]] per mounted cluster or volume", ""]
    for m in mounts:
        opts = ", ".join(f"{_toml_str(k)} = {_toml_str(v)}" for k, v in sorted(m.options.items()))
        lines += [
            "[[mount]]",
            f"target = {_toml_str(m.target)}",
            f"type = {_toml_str(m.type)}",
            f"source = {_toml_str(m.source)}",
            f"options = {{{opts}}}",
            "",
        ]
    return "\n".join(lines)


def parse_table(text: str, where: str) -> list[Mount]:
    import tomllib  # ~5 ms, only when the table is read

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    rows = data.get("mount", [])
    if not isinstance(rows, list):
        raise ConfigError(f"{where}: 'mount' must be an array of tables ([[mount]])")
    mounts: list[Mount] = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ConfigError(f"{where}: mount #{i} is not a table")
        for key in ("target", "type"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise ConfigError(f"{where}: mount #{i}: field '{key}' must be a non-empty string")
        options = row.get("options", {})
        if not isinstance(options, dict):
            raise ConfigError(f"{where}: mount #{i}: field 'options' must be a table")
        mounts.append(
            Mount(
                target=normpath(row["target"]),
                type=row["type"],
                source=str(row.get("source", "")),
                options={str(k): str(v) for k, v in options.items()},
            )
        )
    return mounts


def check_target(target: str) -> str:
    """A mount target must be absolute, normalized and not the root."""
    if not target.startswith("/"):
        raise UsageError(f"mount target {target!r} must be an absolute path like /hpc")
    norm = normpath(target)
    if norm == "/":
        raise UsageError("cannot mount on /")
    return norm


def resolve(mounts: list[Mount], path: str) -> Resolved:
    """Split an absolute path into (longest matching mount, rest)."""
    best = serving(mounts, path)
    if best is None:
        return Resolved(path, None, "")
    return Resolved(path, best, path[len(best.target) :].lstrip("/"))


def children(mounts: list[Mount], path: str) -> list[str]:
    """Names of the mount-tree entries directly under ``path`` that lead to mounts."""
    prefix = path.rstrip("/") + "/"
    names: set[str] = set()
    for m in mounts:
        if m.target.startswith(prefix):
            names.add(m.target[len(prefix) :].split("/", 1)[0])
    return sorted(names)


def parse_options(text: str | None) -> dict[str, str]:
    """mount(8)-style ``k=v,k2=v2,flag`` (a bare flag means ``flag=true``)."""
    options: dict[str, str] = {}
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not key:
            raise UsageError(f"bad mount option {item!r}: expected key=value")
        options[key.strip()] = value.strip() if sep else "true"
    return options
