"""mount / umount as functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backend import Mount
from ..errors import UsageError
from ..namespace import check_target, parse_options

if TYPE_CHECKING:
    from ..session import Session


def mount(
    session: Session, type_: str | None, source: str, target: str, options: str | None
) -> Mount:
    """Validate with the backend, then persist (nothing is written for a bad mount)."""
    if not type_:
        raise UsageError("mount: -t TYPE is required (see `dshell backends` for the types)")
    if type_ == "volume":  # a persistent volume of a mounted cluster, at /MOUNT/vol/NAME
        from .volumes import mount_volume

        return mount_volume(session, source, target, options)
    path = check_target(session.abspath(target))
    new = Mount(target=path, type=type_, source=source, options=parse_options(options))
    cls = session.registry.load(type_)
    unknown = sorted(set(new.options) - set(cls.options)) if cls.options else []
    if unknown:
        known = ", ".join(sorted(cls.options))
        raise UsageError(
            f"mount: backend {type_!r} has no option {unknown[0]!r} (options: {known})"
        )
    cls(new).validate_mount()
    session.table.add(new)
    session.invalidate_mounts()
    return new


def umount(session: Session, target: str) -> Mount:
    from .volumes import row, umount_volume, volume_target

    where = volume_target(session, target)
    if where is not None:  # /MOUNT/vol/NAME: detach the volume, keep its data
        return row(umount_volume(session, *where))
    path = session.abspath(target)
    removed = session.table.remove(path)
    session.registry.forget(path)
    session.invalidate_mounts()
    if session.cwd == path or session.cwd.startswith(path + "/"):
        session.cwd = "/"
    return removed
