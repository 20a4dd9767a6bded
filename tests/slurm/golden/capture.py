"""Capture the golden inputs of the Slurm parser tests from the real Slurm tools.

Starts a private Slurm (tests/services/services.sh, 3 nodes), submits one job per scenario,
and writes what ``squeue --json``, the listing's ``squeue --Format`` columns, ``sinfo --json``
and ``sstat --parsable2`` print into this directory. Needs root and the Debian packages
slurm-wlm and munge. Takes ~90 s (a TIMEOUT job needs a minute of wall time). Then derive
the variants and regenerate the expectations:

    python tests/slurm/golden/capture.py
    python tests/slurm/golden/make_variants.py
    DSHELL_UPDATE_GOLDEN=1 python -m pytest tests/slurm/test_parse.py

Scenarios (job name → what it shows): completed, failed (exit 3), signalled (SIGKILL),
running, held (JobHeldUser), dependent (Dependency), never (DependencyNeverSatisfied →
CANCELLED), cancelled, array (0-5%2: running tasks + a pending remainder), big (Resources),
labelled (dshell labels, output patterns, features), timeout (TIMEOUT).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dshell_slurm.early import LISTING_ENV, listing_argv

HERE = Path(__file__).resolve().parent
SERVICES = HERE.parents[1] / "services" / "services.sh"


def svc(svc_dir: str, script: str) -> None:
    subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "$0"; {script}', str(SERVICES)],
        env={**os.environ, "SVC": svc_dir},
        check=True,
    )


def sh(*argv: str, stdin: str | None = None) -> str:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True).stdout


def sbatch(*args: str) -> str:
    return sh("sbatch", "--parsable", *args).strip().split(";")[0]


def squeue_states() -> dict[str, str]:
    doc = json.loads(sh("squeue", "--json"))
    return {j["name"]: j["job_state"] for j in doc["jobs"]}


def wait_for(pred: object, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting for {what}: {squeue_states()}")
        time.sleep(0.5)


def submit_all(work: str) -> None:
    sbatch("-J", "completed", "--wrap", "echo hello")
    failed = sbatch("-J", "failed", "--wrap", "echo oops >&2; exit 3")
    sbatch("-J", "signalled", "--wrap", "kill -9 $$")
    running = sbatch("-J", "running", "--mem=64M", "--wrap", "sleep 600")
    sbatch("-J", "held", "--hold", "--wrap", "true")
    sbatch("-J", "dependent", f"--dependency=afterok:{running}", "--wrap", "true")
    sbatch("-J", "never", f"--dependency=afterok:{failed}", "--wrap", "true")
    cancelled = sbatch("-J", "cancelled", "--wrap", "sleep 600")
    sbatch("-J", "array", "--array=0-5%2", "-o", f"{work}/arr-%A_%a.out", "--wrap", "sleep 600")
    sbatch(
        "-J",
        "labelled",
        "--constraint=rack2",
        "--cpus-per-task=2",
        "--mem=128M",
        "-o",
        f"{work}/dshell-%j.out",
        "-e",
        f"{work}/dshell-%j.err",
        '--comment=dshell-labels={"app":"web","tier":"1"}',
        "--wrap",
        "sleep 600",
    )
    sbatch("-J", "timeout", "--time=1", "--wrap", "sleep 600")
    wait_for(lambda: squeue_states().get("cancelled") == "RUNNING", "cancelled to run")
    sh("scancel", cancelled)
    sbatch("-J", "big", "-N", "3", "--exclusive", "--wrap", "true")


def main() -> None:
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        sys.exit("needs root and the slurm-wlm package")
    svc_dir = tempfile.mkdtemp(prefix="dsg", dir="/tmp")
    os.environ["SLURM_CONF"] = f"{svc_dir}/slurm/slurm.conf"
    work = tempfile.mkdtemp(prefix="dsgw", dir="/tmp")
    os.chdir(work)
    try:
        svc(svc_dir, "slurm_start 3")
        submit_all(work)
        wait_for(lambda: squeue_states().get("timeout") == "TIMEOUT", "the TIMEOUT job", 150)
        wait_for(lambda: squeue_states().get("never") == "CANCELLED", "the never job")
        time.sleep(3)  # let sstat gather a sample of the running jobs
        (HERE / "squeue-22.05.json").write_text(sh("squeue", "--json"))
        listing = subprocess.run(  # the listing's columns, of the same jobs
            listing_argv({}), env={**os.environ, **LISTING_ENV}, capture_output=True, check=True
        ).stdout
        (HERE / "squeue-22.05.columns").write_bytes(listing)
        (HERE / "sinfo-22.05.json").write_text(sh("sinfo", "--json"))
        doc = json.loads((HERE / "squeue-22.05.json").read_text())
        ids = ",".join(str(j["job_id"]) for j in doc["jobs"] if j["job_state"] == "RUNNING")
        fmt = "--format=JobID,AveCPU,MaxRSS,NTasks"
        out = sh("sstat", "-a", "--noheader", "--parsable2", fmt, "-j", ids)
        (HERE / "sstat-22.05.txt").write_text(out)
        sh("scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=disk replacement")
        svc(svc_dir, 'stop_pidfile "$SVC/slurm/slurmd-n2.pid"')  # else it returns to service
        sh("scontrol", "update", "NodeName=n2", "State=DOWN", "Reason=bad dimm")
        sh("scontrol", "update", "NodeName=n3", "State=DRAIN", "Reason=maint")
        wait_for(lambda: "IDLE" not in sh("sinfo", "-h", "-o", "%T").upper(), "drain")
        (HERE / "sinfo-22.05-maint.json").write_text(sh("sinfo", "--json"))
    finally:
        svc(svc_dir, "slurm_stop")
        shutil.rmtree(svc_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"captured into {HERE}")


if __name__ == "__main__":
    main()
