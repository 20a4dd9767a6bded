"""The swap check behind the memory limits (cgroups.SwapCheck): no swap device, no swap limit
written; a device turned on is seen once the re-read interval has passed; unreadable counts
as on."""

from __future__ import annotations

from pathlib import Path

from dshell_local.executor.cgroups import SwapCheck

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
DEVICE = "/swapfile\tfile\t1048572\t0\t-2\n"


def test_no_device_is_off_and_the_answer_is_kept_for_the_interval(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text(HEADER)
    check = SwapCheck(every=3600.0, path=str(swaps))
    assert check.on() is False
    swaps.write_text(HEADER + DEVICE)
    assert check.on() is False  # read again only after the interval


def test_a_device_turned_on_or_off_is_seen_on_the_next_read(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text(HEADER)
    check = SwapCheck(every=0.0, path=str(swaps))  # every call reads
    assert check.on() is False
    swaps.write_text(HEADER + DEVICE)
    assert check.on() is True
    swaps.write_text(HEADER)
    assert check.on() is False


def test_unreadable_counts_as_on(tmp_path: Path) -> None:
    assert SwapCheck(path=str(tmp_path / "missing")).on() is True
