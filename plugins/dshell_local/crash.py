"""Named crash points for recovery tests: the engine stops hard (``os._exit``) there.

Enabled only by ``DSHELL_ENGINE_CRASH_POINT=name[:count]`` (crash at the count-th pass,
default 1). Unset — every normal run — :meth:`CrashPoints.hit` is one attribute test.
Points: ``after_commit`` (a launch's write-ahead record is durable, nothing spawned),
``after_spawn`` (the executor spawned the task, its pid not yet recorded),
``while_killing`` (KILLING is durable and SIGTERM sent, the grace period not over),
``svc_after_launch`` / ``svc_after_kill`` (the services controller), ``job_after_commit``
(a batch job's run and its attempt are durable, its task not yet submitted) and
``job_after_launch`` (the run's task is submitted, the run not yet updated).
"""

from __future__ import annotations

import logging
import os

POINTS = frozenset(
    {
        "after_commit",
        "after_spawn",
        "while_killing",
        "svc_after_launch",
        "svc_after_kill",
        "job_after_commit",
        "job_after_launch",
    }
)
ENV = "DSHELL_ENGINE_CRASH_POINT"
EXIT_CODE = 86

log = logging.getLogger(__name__)


class CrashPoints:
    """The crash point armed for this engine process, if any."""

    def __init__(self, spec: str | None) -> None:
        self.name: str | None = None
        self.remaining = 0
        if spec:
            name, _, count = spec.partition(":")
            if name not in POINTS:
                raise ValueError(f"{ENV}: unknown crash point {name!r}; known: {sorted(POINTS)}")
            self.name = name
            self.remaining = int(count) if count else 1

    @classmethod
    def from_env(cls) -> CrashPoints:
        return cls(os.environ.get(ENV))

    def hit(self, name: str) -> None:
        """Crash here if ``name`` is armed and its count is reached."""
        if self.name != name:
            return
        self.remaining -= 1
        if self.remaining <= 0:
            log.warning("crash point %s reached: exiting hard", name)
            logging.shutdown()
            os._exit(EXIT_CODE)
