"""The swap check behind the memory limits (cgroups.SwapCheck): no swap device, no swap limit
written; a device turned on is seen within the re-read interval; unreadable counts as on."""

from __future__ import annotations

import time
from pathlib import Path

from dshell_local.executor.cgroups import SwapCheck

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def test_no_device_is_off_and_a_new_one_is_seen_after_the_interval(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text(HEADER)
    check = SwapCheck(every=0.2, path=str(swaps))
    assert check.on() is False
    swaps.write_text(HEADER + "/swapfile\tfile\t1048572\t0\t-2\n")
    assert check.on() is False  # read again only after the interval
    time.sleep(0.25)
    assert check.on() is True
    swaps.write_text(HEADER)
    time.sleep(0.25)
    assert check.on() is False


def test_unreadable_counts_as_on(tmp_path: Path) -> None:
    assert SwapCheck(path=str(tmp_path / "missing")).on() is True
