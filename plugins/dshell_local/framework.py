"""The built-in meta-framework: it holds the tasks waiting for resources and answers offers.

It receives offers from the allocator by direct call (no scheduler API round trip). Services,
health checks, deployments and batch jobs will live here later; for now it places plain tasks,
first fit in submission order per role, skipping any shape that already failed in one pass so
a long queue of identical waiting tasks costs one check per offer round.
"""

from __future__ import annotations

from dshell.model import Resources

from .allocator import Launch, Offer


def _shape(res: Resources) -> tuple[float, float, float, int, float]:
    return (res.cpus, res.mem, res.disk, res.ports, res.gpus)


class MetaFramework:
    """Queues of waiting tasks by role; first-fit placement onto offers."""

    id = "dshell"
    name = "dshell"

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Resources]] = {}  # role -> task -> resources
        self._role_of: dict[str, str] = {}

    def add(self, task_id: str, role: str, res: Resources) -> None:
        self.pending.setdefault(role, {})[task_id] = res
        self._role_of[task_id] = role

    def remove(self, task_id: str) -> bool:
        role = self._role_of.pop(task_id, None)
        if role is None:
            return False
        self.pending[role].pop(task_id, None)
        return True

    def waiting(self) -> list[tuple[str, Resources]]:
        return [(t, r) for queue in self.pending.values() for t, r in queue.items()]

    def demand(self) -> dict[str, int]:
        return {role: len(q) for role, q in self.pending.items() if q}

    def resource_offers(self, offers: list[Offer], max_tasks: int | None) -> list[Launch]:
        if not offers:
            return []
        role = offers[0].role
        queue = self.pending.get(role, {})
        left = {o.id: o.resources for o in offers}
        failed: set[tuple[float, float, float, int, float]] = set()
        launches: list[Launch] = []
        for task_id, res in list(queue.items()):
            if max_tasks is not None and len(launches) >= max_tasks:
                break
            shape = _shape(res)
            if shape in failed:
                continue
            for offer in offers:
                if res.fits_in(left[offer.id]):
                    left[offer.id] = left[offer.id] - res
                    launches.append(Launch(offer.id, task_id, res))
                    self.remove(task_id)
                    break
            else:
                failed.add(shape)
        return launches

    def launch_refused(self, task_id: str, role: str, res: Resources) -> None:
        """The allocator could not honour a launch (no port passed the test bind): requeue."""
        queue = self.pending.setdefault(role, {})
        queue[task_id] = res
        self._role_of[task_id] = role
