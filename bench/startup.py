"""Cold-start benchmark: dshell's non-interactive commands vs `python -c pass`.

Prints medians over N runs and each as a ratio to `python -c pass` measured in the same run
(machines here are shared and noisy: ratios, never absolute asserts).

Budgets (issue 2): `--version` within 4x of `python -c pass`; `--help` under 250 ms here;
`ps -o tsv` on a small /local under 150 ms (issue 3 measures it with 1,000 and 10,000 tasks).

    python bench/startup.py [-n 21]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def median_ms(argv: list[str], n: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=21)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dsb", dir="/tmp")
    env = {
        **os.environ,
        "DSHELL_CONFIG_DIR": f"{tmp}/c",
        "DSHELL_STATE_DIR": f"{tmp}/s",
        "DSHELL_RUNTIME_DIR": f"{tmp}/r",
        "DSHELL_BACKENDS": "fake=dshell.testing.fake:FakeBackend",
    }
    py = sys.executable
    # Measure what an installed CLI does: bytecode cached (pip compiles it on install).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for pkg in ("dshell", "plugins"):
        compileall.compile_dir(str(root / pkg), quiet=1)
    subprocess.run(
        [py, "-m", "dshell", "mount", "-t", "fake", "x", "/f"],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "dshell --version": [py, "-m", "dshell", "--version"],
        "dshell --help": [py, "-m", "dshell", "--help"],
        "dshell ps /f -o tsv (fake)": [py, "-m", "dshell", "ps", "/f", "-o", "tsv"],
    }
    # warm the page cache and .pyc files once
    for argv in cases.values():
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
        )
    base = None
    print(f"{'command':32} {'median ms':>10} {'x python':>9}")
    for name, argv in cases.items():
        ms = median_ms(argv, args.n, env)
        base = base or ms
        print(f"{name:32} {ms:10.1f} {ms / base:9.2f}")


if __name__ == "__main__":
    main()
