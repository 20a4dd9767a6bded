"""Run one query on every mount a path spans, concurrently, and merge the rows.

A mount that fails does not fail the listing: its error is kept beside the rows, the core
returns what the others answered, and the command reports PARTIAL after printing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import DshellError, NotFoundError, PartialError, UnsupportedError

if TYPE_CHECKING:
    from ..backend import Backend, Mount
    from ..render import Output
    from ..session import Session

T = TypeVar("T")


@dataclass
class Fanned(Generic[T]):
    rows: list[T] = field(default_factory=list)
    errors: list[tuple[str, DshellError]] = field(default_factory=list)  # (mount target, error)

    def finish(self, out: Output) -> None:
        """Warn once per failed mount; raise PARTIAL (or the lone error) after output."""
        if not self.errors:
            return
        if not self.rows and len(self.errors) == 1:
            raise self.errors[0][1]
        for target, err in self.errors:
            out.warn(f"{target}: {err.message}")
        raise PartialError("")


def target_mounts(session: Session, path: str | None) -> list[Mount]:
    from ..nspath import mounts_under

    abspath = session.abspath(path)
    mounts = mounts_under(session.mounts(), abspath)
    if not mounts:
        if abspath == "/":
            return []
        raise NotFoundError(f"{abspath}: no mount there (see `mount`)")
    return mounts


def fan_out(
    session: Session,
    mounts: Sequence[Mount],
    call: Callable[[Backend, Mount], list[T]],
) -> Fanned[T]:
    """``call`` on each mount's backend (threads when several); rows tagged with the mount."""
    result: Fanned[T] = Fanned()

    def one(mount: Mount) -> list[T]:
        rows = call(session.backend(mount), mount)
        for r in rows:
            if hasattr(r, "mount"):
                r.mount = mount.target
            if hasattr(r, "backend") and not getattr(r, "backend", None):
                r.backend = mount.type
        return rows

    if len(mounts) == 1:
        try:
            result.rows.extend(one(mounts[0]))
        except DshellError as exc:
            result.errors.append((mounts[0].target, exc))
        return result
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, len(mounts))) as pool:
        futures = [(m, pool.submit(one, m)) for m in mounts]
        for mount, fut in futures:
            try:
                result.rows.extend(fut.result())
            except UnsupportedError:
                continue  # e.g. `ps /` over a zk mount: it has no tasks to add, not a failure
            except DshellError as exc:
                result.errors.append((mount.target, exc))
    return result


def sort_rows(rows: list[Any], key: str | None) -> list[Any]:
    """Sort by a dotted field (``resources.mem``); None sorts first; unknown field: USAGE."""
    if not key or not rows:
        return rows
    from ..errors import UsageError

    def get(obj: Any) -> Any:
        for part in key.split("."):
            if not hasattr(obj, part):
                fields = ", ".join(getattr(type(rows[0]), "__struct_fields__", ()))
                raise UsageError(f"--sort-by: unknown field {key!r} (fields: {fields})")
            obj = getattr(obj, part)
        return obj

    return sorted(rows, key=lambda r: (get(r) is not None, _sortable(get(r))))


def _sortable(value: Any) -> Any:
    if isinstance(value, int | float | str):
        return value
    return str(value)
