"""The command line shared by the benchmarks that run named measurements."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Measurement = Callable[[argparse.Namespace], None]


Option = tuple[str, Callable[[str], object], object]  # flag, type, default


def run(doc: str | None, measurements: dict[str, Measurement], options: list[Option]) -> None:
    """Parse ``[names...]`` and ``options`` (``(flag, type, default)``), then run the named
    measurements (all when none is named), in order."""
    ap = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("measurements", nargs="*", help=f"any of {', '.join(measurements)} (all)")
    for flag, kind, default in options:
        ap.add_argument(flag, type=kind, default=default)
    args = ap.parse_args()
    unknown = set(args.measurements) - set(measurements)
    if unknown:
        ap.error(f"unknown measurement(s): {', '.join(sorted(unknown))}")
    for name in args.measurements or list(measurements):
        measurements[name](args)


def memcg_condition() -> str:
    """How many memory cgroups the kernel holds beyond the live directories: removed groups
    still charged with page cache ("dying"). Without memory pressure the kernel keeps them, and
    many of them (left by earlier test runs and benchmarks) slow task exits and cgroup
    operations for every later run: with 1,500 made on purpose, the engine's cgroups-on batch
    measured 0.23 of raw against 0.28 just before, and 0.31 against 0.36 after
    ``echo 3 > /proc/sys/vm/drop_caches`` removed them (same hour, paired)."""

    import os

    root = "/sys/fs/cgroup/memory"
    try:
        with open("/proc/cgroups") as f:
            counts = {p[0]: int(p[2]) for p in (line.split() for line in f) if p[0] == "memory"}
    except (OSError, ValueError, IndexError):
        return "memory cgroups: unknown"
    if "memory" not in counts or not os.path.isdir(root):
        return "memory cgroups: no v1 memory hierarchy"
    live = sum(len(dirs) for _, dirs, _ in os.walk(root)) + 1
    return f"memory cgroups: {live} live, {max(0, counts['memory'] - live)} dying"
