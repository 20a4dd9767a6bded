"""Persistent volumes as functions: ``mount -t volume``, ``umount`` of a volume, ``vol``.

A volume lives at ``/<mount>/vol/<NAME>`` of a cluster whose backend declares VOLUMES; the
backend's ``admin_call`` verbs are ``vol_ls``, ``vol_create`` (name, size MiB, role, agent),
``vol_show``, ``vol_umount`` and ``vol_rm`` (name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backend import Capability, Mount, require
from ..errors import DshellError, UsageError
from ..namespace import parse_options, resolve
from ..volumes import check_name, parse_size
from .launch import launch_mount

if TYPE_CHECKING:
    from ..backend import Backend
    from ..model import Volume
    from ..session import Session

MOUNT_OPTIONS = ("size", "role", "agent")


def volume_target(session: Session, target: str) -> tuple[Mount, str] | None:
    """(cluster mount, volume name) when ``target`` is ``/<mount>/vol/<NAME>`` (and not a
    mount point of its own); None otherwise."""
    path = session.abspath(target)
    if any(m.target == path for m in session.mounts()):
        return None
    res = resolve(session.mounts(), path)
    parts = res.parts
    if res.mount is None or len(parts) != 2 or parts[0] != "vol":
        return None
    return res.mount, parts[1]


def _backend(session: Session, mount: Mount, verb: str) -> Backend:
    backend = session.backend(mount)
    require(backend, Capability.VOLUMES, verb)
    return backend


def _mounted(vol: Volume, mount: Mount) -> Volume:
    vol.mount = mount.target
    return vol


def mount_volume(session: Session, source: str, target: str, options: str | None) -> Mount:
    """``mount -t volume -o size=128M[,role=R][,agent=A] NAME /M/vol/NAME``: create the
    volume, or attach a detached one again. The answer is its row of the mount table."""
    where = volume_target(session, target)
    if where is None:
        raise UsageError(
            f"mount -t volume: the target must be /MOUNT/vol/NAME of a mounted cluster, "
            f"not {target!r}"
        )
    mount, name = where
    check_name(name, "mount -t volume")
    if source and source != name:
        raise UsageError(
            f"mount -t volume: SOURCE {source!r} and the target's name {name!r} differ"
        )
    opts = parse_options(options)
    unknown = sorted(set(opts) - set(MOUNT_OPTIONS))
    if unknown:
        raise UsageError(
            f"mount -t volume: no option {unknown[0]!r} (options: {', '.join(MOUNT_OPTIONS)})"
        )
    size = parse_size(opts["size"], "mount -t volume") if "size" in opts else None
    backend = _backend(session, mount, "mount -t volume")
    vol = backend.admin_call(
        "vol_create", name=name, size=size, role=opts.get("role"), agent=opts.get("agent")
    )
    return row(_mounted(vol, mount))


def row(vol: Volume) -> Mount:
    """A volume as a row of the mount table (type ``volume``)."""
    options = {"size": f"{vol.size:g}M"}
    if vol.agent_id:
        options["agent"] = vol.agent_id
    if vol.role:
        options["role"] = vol.role
    return Mount(
        target=f"{vol.mount}/vol/{vol.name}", type="volume", source=vol.name, options=options
    )


def mount_rows(session: Session) -> list[Mount]:
    """The attached volumes of every mounted cluster with VOLUMES whose backend is up (a
    listing never starts an engine: ``passive``)."""
    rows = []
    for mount in session.mounts():
        try:
            backend = session.backend(mount)
            if Capability.VOLUMES not in backend.capabilities:
                continue
            vols = backend.admin_call("vol_ls", passive=True)
        except DshellError:
            continue  # the mount table itself is still listed
        rows += [row(_mounted(v, mount)) for v in vols if v.attached]
    return rows


def umount_volume(session: Session, mount: Mount, name: str) -> Volume:
    """Detach ``/M/vol/NAME`` from the namespace; its data stays."""
    check_name(name, "umount")
    backend = _backend(session, mount, "umount")
    return _mounted(backend.admin_call("vol_umount", name=name), mount)


def _locate(session: Session, ref: str, on: str | None) -> tuple[Mount, str]:
    """A volume by name (in the current mount, or --on PATH) or by path /M/vol/NAME."""
    if "/" in ref:
        where = volume_target(session, ref)
        if where is None:
            raise UsageError(f"{ref}: not a volume path (expected /MOUNT/vol/NAME)")
        return where
    return launch_mount(session, on), check_name(ref, "vol")


def vol_list(session: Session, on: str | None = None) -> list[Volume]:
    mount = launch_mount(session, on)
    backend = _backend(session, mount, "vol ls")
    return [_mounted(v, mount) for v in backend.admin_call("vol_ls")]


def vol_show(session: Session, ref: str, on: str | None = None) -> Volume:
    mount, name = _locate(session, ref, on)
    return _mounted(_backend(session, mount, "vol show").admin_call("vol_show", name=name), mount)


def vol_rm(session: Session, ref: str, on: str | None = None) -> Volume:
    """Destroy a volume and its data (refused while a task uses it)."""
    mount, name = _locate(session, ref, on)
    return _mounted(_backend(session, mount, "vol rm").admin_call("vol_rm", name=name), mount)
