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
