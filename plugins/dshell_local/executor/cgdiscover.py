"""Find the cgroup hierarchies the executor may use, and create its parent cgroup in each.

v1 (what these machines have): each controller is its own hierarchy (``cpu`` and ``cpuacct``
are separate mounts here; elsewhere they are often co-mounted, which is handled). The parent
``--cgroup-name`` is created under the executor's *own* cgroup of each hierarchy, read from
``/proc/self/cgroup`` (``memory:/process_api/<id>`` but ``cpu:/`` on these machines): creating
groups elsewhere, or moving processes out of that memory group, is not allowed here.

v2 is used only when the unified hierarchy is mounted with ``memory`` in its
``cgroup.controllers``; it needs the controllers enabled in the executor's own cgroup, which the
kernel refuses when that cgroup holds processes (and is not the root), in which case the executor
falls back to rlimits and says why.
"""

from __future__ import annotations

import errno
import os
from typing import NamedTuple

V1_WANTED = ("memory", "cpu", "cpuacct", "pids")
V2_WANTED = ("memory", "cpu", "pids")


class Hierarchy(NamedTuple):
    """One mounted hierarchy and the executor's place in it."""

    controllers: tuple[str, ...]  # the wanted controllers it carries
    home: str  # the executor's own cgroup directory
    parent: str  # home/<cgroup-name>: task cgroups are created in here


class Discovery(NamedTuple):
    """The isolation found, its hierarchies and a human-readable detail."""

    kind: str  # cgroup-v1 | cgroup-v2 | rlimit
    hierarchies: list[Hierarchy]
    detail: str


class _Mount(NamedTuple):
    point: str
    root: str
    fstype: str
    options: frozenset[str]


def _mounts() -> list[_Mount]:
    mounts = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(rfields) < 3 or rfields[0] not in ("cgroup", "cgroup2"):
                continue
            point = fields[4].replace("\\040", " ")
            mounts.append(_Mount(point, fields[3], rfields[0], frozenset(rfields[2].split(","))))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller name (``""`` for the unified hierarchy) → the executor's cgroup path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as f:
        for line in f:
            _, ctls, path = line.rstrip("\n").split(":", 2)
            for ctl in ctls.split(",") if ctls else [""]:
                own[ctl] = path
    return own


def _join(mount: _Mount, own_path: str) -> str:
    rel = own_path
    if mount.root != "/" and own_path.startswith(mount.root):
        rel = own_path[len(mount.root) :]
    return os.path.normpath(mount.point + "/" + rel.lstrip("/"))


def _make_parent(home: str, name: str) -> str:
    parent = os.path.join(home, name)
    try:
        os.mkdir(parent)
    except FileExistsError:
        pass
    return parent


def discover(cgroup_name: str, mode: str = "auto") -> Discovery:
    """Pick the isolation for ``mode`` (auto | cgroup | rlimit) and prepare the parent cgroups."""
    if mode == "rlimit":
        return Discovery("rlimit", [], "rlimit: cgroups disabled by --isolation rlimit")
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        found = _discover_v2(cgroup_name)
    else:
        found = _discover_v1(cgroup_name)
    return found


def _discover_v1(name: str) -> Discovery:
    mounts = [m for m in _mounts() if m.fstype == "cgroup"]
    own = _own_cgroups()
    hierarchies: list[Hierarchy] = []
    missing = []
    seen: set[str] = set()
    for ctl in V1_WANTED:
        mount = next((m for m in mounts if ctl in m.options), None)
        if mount is None or ctl not in own:
            missing.append(ctl)
            continue
        if mount.point in seen:
            continue
        seen.add(mount.point)
        ctls = tuple(c for c in V1_WANTED if c in mount.options)
        home = _join(mount, own[ctl])
        try:
            parent = _make_parent(home, name)
        except OSError as exc:
            return _rlimit(f"cgroup v1 {ctl} not writable ({home}: {exc.strerror})")
        hierarchies.append(Hierarchy(ctls, home, parent))
    if "memory" in missing:
        return _rlimit("cgroup v1 memory controller not mounted")
    used = sorted(c for h in hierarchies for c in h.controllers)
    detail = f"cgroup v1: {', '.join(used)} under {name!r}"
    if missing:
        detail += f"; not available: {', '.join(missing)}"
    return Discovery("cgroup-v1", hierarchies, detail)


def _discover_v2(name: str) -> Discovery:
    mount = next((m for m in _mounts() if m.fstype == "cgroup2"), None)
    own = _own_cgroups().get("")
    if mount is None or own is None:
        return _rlimit("cgroup v2 hierarchy not found")
    with open(os.path.join(mount.point, "cgroup.controllers"), encoding="ascii") as f:
        available = set(f.read().split())
    ctls = tuple(c for c in V2_WANTED if c in available)
    if "memory" not in ctls:
        return _rlimit("cgroup v2 without the memory controller")
    home = _join(mount, own)
    enable = " ".join(f"+{c}" for c in ctls).encode()
    try:
        _write(os.path.join(home, "cgroup.subtree_control"), enable)
        parent = _make_parent(home, name)
        _write(os.path.join(parent, "cgroup.subtree_control"), enable)
    except OSError as exc:
        why = "it holds processes" if exc.errno == errno.EBUSY else exc.strerror
        return _rlimit(f"cgroup v2: cannot enable {', '.join(ctls)} in {home} ({why})")
    return Discovery("cgroup-v2", [Hierarchy(ctls, home, parent)], f"cgroup v2: {', '.join(ctls)}")


def _rlimit(why: str) -> Discovery:
    return Discovery("rlimit", [], f"rlimit fallback ({why})")


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
