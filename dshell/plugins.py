"""Backend discovery: entry points in group ``dshell.backends``, listed lazily.

Names are listed without importing anything; a backend class is imported only when a mount
of its type is used. A plugin that fails to import is reported by name (PLUGIN exit code),
never a crash. ``DSHELL_BACKENDS="name=module:Class,…"`` adds backends without installing
them (for plugin authors and dshell's own tests); it never shadows an installed name.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import NotFoundError, PluginError, UsageError

if TYPE_CHECKING:
    from .backend import Backend, Mount

GROUP = "dshell.backends"


@dataclass(frozen=True)
class PluginRef:
    """A backend known by name: where its class lives and who provides it."""

    name: str
    target: str  # "module:Class"
    provider: str  # distribution name, or "DSHELL_BACKENDS"


def _path_key() -> list[list[object]]:
    """What installing or removing a distribution changes: sys.path dirs and their mtimes."""
    key: list[list[object]] = []
    cwd = os.getcwd()
    for entry in sys.path:
        if entry in ("", cwd):  # `python -m`'s cwd entry: its mtime changes all the time
            continue
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def _entry_points(group: str = GROUP) -> list[tuple[str, str, str]]:
    """(name, target, distribution) of every installed backend (or entry point of ``group``).

    Scanning distributions with importlib.metadata costs ~20 ms per command, so the result is
    cached in the state dir, keyed on the mtimes of the sys.path directories (an install or
    uninstall adds or removes a dist-info directory there, which changes them).
    """
    import json

    from .paths import state_dir

    cache = state_dir() / ("plugins.cache.json" if group == GROUP else f"{group}.cache.json")
    key = _path_key()
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("key") == key:
            return [tuple(row) for row in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    from importlib.metadata import entry_points

    rows = [
        (ep.name, ep.value, getattr(ep.dist, "name", None) or "?")
        for ep in entry_points(group=group)
    ]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "entry_points": rows}), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only state dir only costs the scan next time
    return rows


def cached_entry_points(group: str) -> list[tuple[str, str, str]]:
    """(name, target, distribution) of the entry points of ``group``, cached as above (e.g.
    ``dshell.frameworks``: the kinds of ``fw launch``)."""
    return _entry_points(group)


@dataclass
class Registry:
    """The backends of one session, and the live backend instance of each mount."""

    refs: dict[str, PluginRef] = field(default_factory=dict)
    _classes: dict[str, type[Backend]] = field(default_factory=dict)
    _instances: dict[str, Backend] = field(default_factory=dict)

    @classmethod
    def discover(cls, environ: dict[str, str] | None = None) -> Registry:
        reg = cls()
        for name, target, dist in _entry_points():
            reg.refs.setdefault(name, PluginRef(name, target, dist))
        extra = (environ if environ is not None else os.environ).get("DSHELL_BACKENDS", "")
        for item in filter(None, (s.strip() for s in extra.split(","))):
            name, sep, target = item.partition("=")
            if not sep or ":" not in target:
                raise UsageError(f"DSHELL_BACKENDS: bad entry {item!r}: expected name=module:Class")
            reg.refs.setdefault(name, PluginRef(name, target, "DSHELL_BACKENDS"))
        return reg

    def names(self) -> list[str]:
        return sorted(self.refs)

    def load(self, name: str) -> type[Backend]:
        """Import and return the backend class for ``name``."""
        if name in self._classes:
            return self._classes[name]
        ref = self.refs.get(name)
        if ref is None:
            known = ", ".join(self.names()) or "none"
            raise NotFoundError(f"unknown backend type {name!r} (installed: {known})")
        module_name, _, attr = ref.target.partition(":")
        try:
            module = importlib.import_module(module_name)
            cls_ = getattr(module, attr)
        except (ImportError, AttributeError, SyntaxError) as exc:
            raise PluginError(
                f"backend plugin {name!r} ({ref.target}, from {ref.provider}) is broken: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        from .backend import Backend

        if not (isinstance(cls_, type) and issubclass(cls_, Backend)):
            raise PluginError(f"backend plugin {name!r}: {ref.target} is not a dshell Backend")
        self._classes[name] = cls_
        return cls_

    def backend_for(self, mount: Mount) -> Backend:
        """The (cached) backend instance serving ``mount``."""
        inst = self._instances.get(mount.target)
        if inst is None or inst.mount != mount:
            inst = self.load(mount.type)(mount)
            self._instances[mount.target] = inst
        return inst

    def forget(self, target: str) -> None:
        inst = self._instances.pop(target, None)
        if inst is not None:
            inst.close()

    def close(self) -> None:
        for target in list(self._instances):
            self.forget(target)
