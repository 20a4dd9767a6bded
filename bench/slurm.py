"""Slurm backend benchmark: dshell's overhead over the Slurm tools it drives.

Prints, measured in the same run (machines here are shared and noisy: differences and ratios,
never absolute asserts):

- ``dshell ps /hpc -o tsv`` vs ``squeue --json`` with 500 jobs queued (goal: within 100 ms);
- submitting 200 jobs with ``dshell run -d`` (one process each) vs a plain ``sbatch`` loop.

Uses the Slurm that ``SLURM_CONF`` points at (tests/run-all.sh exports it), else starts a
private one with tests/services/services.sh (root, slurm-wlm and munge installed). The jobs it
queues are held or trivial, and are cancelled at the end.

    python bench/slurm.py [-n 11] [--queued 500] [--submit 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "tests" / "services" / "services.sh"


def services(svc: str, script: str) -> None:
    subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "$0"; {script}', str(SERVICES)],
        env={**os.environ, "SVC": svc},
        check=True,
    )


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    return (time.perf_counter() - t0) * 1000


def median_ms(argv: list[str], n: int, env: dict[str, str]) -> float:
    timed(argv, env)  # warm caches
    return statistics.median(timed(argv, env) for _ in range(n))


def queue_held(count: int, env: dict[str, str]) -> None:
    for _ in range(count):
        subprocess.run(
            ["sbatch", "--hold", "-J", "bench-held", "--wrap", "true"],
            stdout=subprocess.DEVNULL,
            env=env,
            check=True,
        )


def loop_ms(argvs: list[list[str]], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    for argv in argvs:
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=True)
    return (time.perf_counter() - t0) * 1000


def bench(args: argparse.Namespace, env: dict[str, str], work: str) -> None:
    py = sys.executable
    subprocess.run(
        [py, "-m", "dshell", "mount", "-t", "slurm", "-o", f"workdir={work}", "localhost", "/hpc"],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    queue_held(args.queued, env)
    squeue = median_ms(["squeue", "--json"], args.n, env)
    ps = median_ms([py, "-m", "dshell", "ps", "/hpc", "-o", "tsv"], args.n, env)
    pypass = median_ms([py, "-c", "pass"], args.n, env)
    version = median_ms([py, "-m", "dshell", "--version"], args.n, env)
    quiet = [py, "-m", "dshell", "ps", "/hpc", "-q"]
    listed = subprocess.run(quiet, env=env, capture_output=True, text=True, check=True)
    rows = listed.stdout.count("\n")
    k = args.submit
    sbatch = loop_ms([["sbatch", "-J", "bench-sbatch", "--wrap", "true"]] * k, env)
    run = [py, "-m", "dshell", "run", "-d", "--on", "/hpc", "--name", "bench-run", "--", "true"]
    dshell = loop_ms([run] * k, env)
    print(f"{'case':44} {'median ms':>10}")
    print(f"{'python -c pass':44} {pypass:10.1f}")
    print(f"{'dshell --version':44} {version:10.1f}")
    print(f"{'squeue --json (' + str(args.queued) + ' jobs queued)':44} {squeue:10.1f}")
    print(f"{'dshell ps /hpc -o tsv (' + str(rows) + ' rows)':44} {ps:10.1f}")
    print(f"  ps - squeue: {ps - squeue:+.1f} ms (goal: within +100 ms); ratio {ps / squeue:.2f}x")
    print(f"  ps - squeue - python startup: {ps - squeue - pypass:+.1f} ms; uptime load: ", end="")
    print(" ".join(f"{x:.1f}" for x in os.getloadavg()))
    print(f"{k} submissions: sbatch loop {sbatch:.0f} ms ({sbatch / k:.1f} ms/job), ", end="")
    print(f"dshell run -d loop {dshell:.0f} ms ({dshell / k:.1f} ms/job)")
    print(f"  per job: {dshell / k - sbatch / k:+.1f} ms; ratio {dshell / sbatch:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=11, help="runs per median")
    ap.add_argument("--queued", type=int, default=500)
    ap.add_argument("--submit", type=int, default=200)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="dsb", dir="/tmp")
    svc = None
    if not os.environ.get("SLURM_CONF"):
        if os.geteuid() != 0 or not shutil.which("slurmctld"):
            sys.exit("set SLURM_CONF, or run as root with slurm-wlm and munge installed")
        svc = f"{tmp}/svc"
        services(svc, "slurm_start 3")
        os.environ["SLURM_CONF"] = f"{svc}/slurm/slurm.conf"
    plugins = str(ROOT / "plugins")
    env = {
        **os.environ,
        "DSHELL_CONFIG_DIR": f"{tmp}/c",
        "DSHELL_STATE_DIR": f"{tmp}/s",
        "DSHELL_RUNTIME_DIR": f"{tmp}/r",
        "DSHELL_BACKENDS": "slurm=dshell_slurm.backend:SlurmBackend",
        "PYTHONPATH": os.pathsep.join(filter(None, [plugins, os.environ.get("PYTHONPATH")])),
    }
    work = f"{tmp}/w"
    os.makedirs(work)
    try:
        bench(args, env, work)
    finally:
        for name in ("bench-held", "bench-sbatch", "bench-run"):
            subprocess.run(["scancel", "-n", name], env=env, check=False)
        if svc:
            services(svc, "slurm_stop")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
