"""Backend discovery: entry points in group ``dshell.backends``, listed lazily.

Names are listed without importing anything; a backend class is imported only when a mount
of its type is used. A plugin that fails to import is reported by name (PLUGIN exit code),
never a crash. ``DSHELL_BACKENDS="name=module:Class,…"`` adds backends without installing
them (for plugin authors and dshell's own tests); it never shadows an installed name.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import NotFoundError, PluginError, UsageError
from .prestart import cached, hook, keep, package_of
from .prestart import path_key as _path_key

if TYPE_CHECKING:
    from .backend import Backend, Mount

GROUP = "dshell.backends"


class PluginRef(NamedTuple):
    """A backend known by name: where its class lives and who provides it."""

    name: str
    target: str  # "module:Class"
    provider: str  # distribution name, or "DSHELL_BACKENDS"


def _entry_points(group: str = GROUP) -> list[tuple[str, str, str]]:
    """(name, target, distribution) of every installed backend (or entry point of ``group``).

    Scanning distributions with importlib.metadata costs ~20 ms per command, so the result is
    cached in the state dir, keyed on the mtimes of the sys.path directories (an install or
    uninstall adds or removes a dist-info directory there, which changes them).
    """
    name = "plugins.cache" if group == GROUP else f"{group}.cache"
    key = _path_key()
    rows = cached(name, key)
    if isinstance(rows, list) and all(
        isinstance(r, tuple) and len(r) == 3 and all(isinstance(f, str) for f in r) for r in rows
    ):
        return rows
    from importlib.metadata import entry_points

    rows = [
        (ep.name, ep.value, getattr(ep.dist, "name", None) or "?")
        for ep in entry_points(group=group)
    ]
    keep(name, key, rows)  # a read-only state dir only costs the scan next time
    return rows


def cached_entry_points(group: str) -> list[tuple[str, str, str]]:
    """(name, target, distribution) of the entry points of ``group``, cached as above (e.g.
    ``dshell.frameworks``: the kinds of ``fw launch``)."""
    return _entry_points(group)


def env_targets(var: str, environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(name, ``module:Class``) of ``var="name=module:Class,…"`` (``DSHELL_BACKENDS``,
    ``DSHELL_FRAMEWORKS``: plugins used without installing them); UsageError on a bad entry."""
    extra = (environ if environ is not None else os.environ).get(var, "")
    found = []
    for item in filter(None, (s.strip() for s in extra.split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise UsageError(f"{var}: bad entry {item!r}: expected name=module:Class")
        found.append((name, target))
    return found


def import_class(target: str, base: type, broken: str, wrong: str) -> Any:
    """Import ``module:Class`` and check it subclasses ``base``; a PluginError saying
    ``"{broken} is broken: …"`` when it cannot be imported, ``wrong`` when it is not one."""
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, SyntaxError) as exc:
        raise PluginError(f"{broken} is broken: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(wrong)
    return cls


class Registry:
    """The backends of one session, and the live backend instance of each mount.

    A plain class, not a dataclass: the fast path reads the registry before it starts a
    backend's early listing, and importing dataclasses would delay that by ~10 ms.
    """

    def __init__(self, refs: dict[str, PluginRef] | None = None) -> None:
        self.refs: dict[str, PluginRef] = dict(refs or {})
        self._classes: dict[str, type[Backend]] = {}
        self._instances: dict[str, Backend] = {}

    @classmethod
    def discover(cls, environ: dict[str, str] | None = None) -> Registry:
        reg = cls()
        for name, target, dist in _entry_points():
            reg.refs.setdefault(name, PluginRef(name, target, dist))
        for name, target in env_targets("DSHELL_BACKENDS", environ):
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
        from .backend import Backend

        cls_: type[Backend] = import_class(
            ref.target,
            Backend,
            f"backend plugin {name!r} ({ref.target}, from {ref.provider})",
            f"backend plugin {name!r}: {ref.target} is not a dshell Backend",
        )
        self._classes[name] = cls_
        return cls_

    def prefetcher(self, name: str) -> Callable[[str, dict[str, str]], Any] | None:
        """The early-listing hook of backend ``name``, or None (see "Early listings" in
        :mod:`dshell.backend`): ``prefetch_listing`` of the top-level package of its class.

        Only that package is imported (its ``__init__``), never the backend module: the hook
        exists to run before the backend's heavy imports. A package that fails to import has
        no hook here; loading the backend reports it.
        """
        package = self.package(name)
        return None if package is None else hook(package)

    def package(self, name: str) -> str | None:
        """The top-level package of backend ``name``'s class (None: no such backend)."""
        ref = self.refs.get(name)
        return None if ref is None else package_of(ref.target)

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
