"""Slurm backend benchmark: dshell's overhead over the Slurm tools it drives.

Prints, measured in the same run (machines here are shared and noisy: differences and ratios,
never absolute asserts):

- ``dshell ps /hpc -o tsv`` vs ``squeue --json`` with 500 jobs queued (goal: within 100 ms),
  dshell run as users run it (the installed ``dshell`` script when there is one), and beside
  them the ``squeue --Format`` that ``ps`` itself runs (only the listing's columns); with
  ``python -c pass`` and ``python -S -c pass`` beside it, because an interpreter's own start
  (its site-packages' ``.pth`` files: on these machines one imports certifi, 30-60 ms) is part
  of every dshell command and of no Slurm command;
- submitting 200 jobs with ``dshell run -d`` (one process each) vs a plain ``sbatch`` loop;
- the SSH path, against the loopback sshd of the tests (``ssh://root@127.0.0.1:PORT``, the
  same 500 jobs): ``dshell ps`` on an ssh:// mount vs ``ssh … squeue --json`` (OpenSSH, a new
  connection each time) and vs one paramiko exec of ``squeue --json`` on an open connection;
  then, inside one process, repeated listings on one mount (the connection is reused: the
  bench counts the connections it opened) against the local client commands.

Uses the Slurm that ``SLURM_CONF`` points at (tests/run-all.sh exports it), else starts a
private one with tests/services/services.sh (root, slurm-wlm and munge installed); likewise
the sshd of ``DSHELL_TEST_SSH_KEY``/``DSHELL_TEST_KNOWN_HOSTS`` (127.0.0.1:2222), else a private
one on 127.0.0.1:2224. The jobs it queues are held or trivial, and are cancelled at the end.

    python bench/slurm.py [-n 11] [--queued 500] [--submit 200] [--no-ssh]
"""

from __future__ import annotations

import argparse
import getpass
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


def dshell_cmd() -> list[str]:
    """What users run: the installed ``dshell`` script beside this interpreter (pip's
    console script), else ``python -m dshell`` (which also imports runpy, ~5-9 ms)."""
    script = Path(sys.executable).with_name("dshell")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dshell"]


DSHELL = dshell_cmd()


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


def rounds(cases: list[list[str]], n: int, env: dict[str, str]) -> list[list[float]]:
    """ms samples of each case, run in turn n times (the machine is shared: load drifts, and
    interleaving puts every case under the same drift); one warm-up run each first."""
    for argv in cases:
        timed(argv, env)
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(n):
        for argv, out in zip(cases, samples, strict=True):
            out.append(timed(argv, env))
    return samples


def diff_ms(a: list[float], b: list[float]) -> float:
    """Median of the per-round differences b - a."""
    return statistics.median(y - x for x, y in zip(a, b, strict=True))


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


def row(case: str, ms: float) -> None:
    print(f"{case:52} {ms:10.1f}")


def paramiko_ms(login: dict[str, str], argv: list[str], n: int) -> tuple[float, float, float]:
    """Median ms of: one exec of ``argv`` on an open connection, connect + auth + that exec,
    and one exec of ``true`` (what any remote command costs there: the session and the
    account's shell start-up, ~/.bashrc included)."""
    sys.path.insert(0, str(ROOT))
    from dshell.net.ssh import SshConnection, SshTarget

    def conn() -> SshConnection:
        target = SshTarget.parse(login["source"])
        return SshConnection(target, known_hosts=login["known_hosts"], identity=login["key"])

    def once(c: SshConnection, command: list[str] = argv) -> float:
        t0 = time.perf_counter()
        done = c.run(command)
        assert done.returncode == 0, done.stderr
        return (time.perf_counter() - t0) * 1000

    warm = conn()
    once(warm)
    exec_ms = statistics.median(once(warm) for _ in range(n))
    true_ms = statistics.median(once(warm, ["true"]) for _ in range(n))
    warm.close()
    fresh = []
    for _ in range(n):
        c = conn()
        fresh.append(once(c))
        c.close()
    return exec_ms, statistics.median(fresh), true_ms


def in_process_ms(
    mounts: dict[str, dict[str, str]], n: int, env: dict[str, str]
) -> dict[str, tuple[float, int, float]]:
    """Per mount, inside this process: the median ms of ``list_tasks`` on one backend, the SSH
    connections it opened, and the median of (list_tasks - a local ``squeue --json`` run in
    the same round)."""
    sys.path.insert(0, str(ROOT / "plugins"))
    from dshell.backend import Mount, TaskQuery
    from dshell.net import ssh

    from dshell_slurm.backend import SlurmBackend

    opened = [0]
    connect = ssh.SshConnection._connect

    def counting(self: ssh.SshConnection) -> object:
        opened[0] += 1
        return connect(self)

    ssh.SshConnection._connect = counting  # type: ignore[method-assign]
    out = {}
    for name, spec in mounts.items():
        opened[0] = 0
        options = {k: v for k, v in spec.items() if k != "source"}
        backend = SlurmBackend(
            Mount(target="/b", type="slurm", source=spec["source"], options=options)
        )
        backend.list_tasks(TaskQuery())  # connects (ssh), warms caches
        times, squeue = [], []
        for _ in range(n):
            squeue.append(timed(["squeue", "--json"], env))
            t0 = time.perf_counter()
            backend.list_tasks(TaskQuery())
            times.append((time.perf_counter() - t0) * 1000)
        backend.close()
        out[name] = (statistics.median(times), opened[0], diff_ms(squeue, times))
    ssh.SshConnection._connect = connect  # type: ignore[method-assign]
    return out


def bench_ssh(args: argparse.Namespace, env: dict[str, str], login: dict[str, str]) -> None:
    conf = env["SLURM_CONF"]
    opts = f"slurm_conf={conf},identity={login['key']},known_hosts={login['known_hosts']}"
    subprocess.run(
        [*DSHELL, "mount", "-t", "slurm", "-o", opts, login["source"], "/remote"],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    host, port = login["source"].removeprefix("ssh://").split(":")
    remote = ["env", f"SLURM_CONF={conf}", "squeue", "--json"]
    ssh = [
        "ssh",
        "-i",
        login["key"],
        "-p",
        port,
        "-o",
        f"UserKnownHostsFile={login['known_hosts']}",
    ]
    ssh += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", host, *remote]
    cases = [
        ["squeue", "--json"],
        ssh,
        [*DSHELL, "ps", "/remote", "-o", "tsv"],
        [*DSHELL, "ps", "/hpc", "-o", "tsv"],
    ]
    samples = rounds(cases, args.n, env)
    squeue, plain, ps, local_ps = (statistics.median(x) for x in samples)
    exec_ms, fresh_ms, true_ms = paramiko_ms(login, remote, args.n)
    print(f"SSH path ({login['source']}, {args.queued} jobs queued)")
    row("squeue --json (local)", squeue)
    row("ssh login squeue --json (OpenSSH, new connection)", plain)
    row("paramiko: connect + auth + exec squeue --json", fresh_ms)
    row("paramiko: exec squeue --json on an open connection", exec_ms)
    row("paramiko: exec true on an open connection", true_ms)
    row("dshell ps /hpc -o tsv (local mount)", local_ps)
    row("dshell ps /remote -o tsv (ssh:// mount)", ps)
    print(f"  remote ps - ssh squeue: {diff_ms(samples[1], samples[2]):+.1f} ms; ", end="")
    print(f"remote ps - local ps: {diff_ms(samples[3], samples[2]):+.1f} ms (paired runs)")
    mounts = {
        "local": {"source": "localhost", "slurm_conf": conf},
        "ssh": {
            "source": login["source"],
            "slurm_conf": conf,
            "identity": login["key"],
            "known_hosts": login["known_hosts"],
        },
    }
    inproc = in_process_ms(mounts, args.n, env)
    for name, (ms, opened, _) in inproc.items():
        print(f"  in one process, list_tasks on a {name} mount: {ms:.1f} ms", end="")
        print(
            f" ({args.n + 1} listings, {opened} SSH connection(s) opened)" if name == "ssh" else ""
        )
    over = inproc["ssh"][2] - inproc["local"][2]
    print(f"  SSH overhead per listing on a reused connection: {over:+.1f} ms; ", end="")
    print(f"paramiko exec - local squeue: {exec_ms - squeue:+.1f} ms")


def bench_listing(args: argparse.Namespace, env: dict[str, str], work: str) -> None:
    py = sys.executable
    subprocess.run(
        [*DSHELL, "mount", "-t", "slurm", "-o", f"workdir={work}", "localhost", "/hpc"],
        env=env,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    queue_held(args.queued, env)
    from dshell_slurm.early import listing_argv

    cases = [
        ["squeue", "--json"],
        [*DSHELL, "ps", "/hpc", "-o", "tsv"],
        [py, "-c", "pass"],
        [*DSHELL, "--version"],
        [py, "-S", "-c", "pass"],
        listing_argv({}),
    ]
    samples = rounds(cases, args.n, env)
    squeue, ps, pypass, version, nosite, columns = (statistics.median(x) for x in samples)
    ps_over = diff_ms(samples[0], samples[1])
    quiet = [*DSHELL, "ps", "/hpc", "-q"]
    listed = subprocess.run(quiet, env=env, capture_output=True, text=True, check=True)
    rows = listed.stdout.count("\n")
    inproc, _, backend_over = in_process_ms({"local": {"source": "localhost"}}, args.n, env)[
        "local"
    ]
    print(f"dshell is run as: {' '.join(DSHELL)}")
    print(f"{'case':52} {'median ms':>10}")
    row("python -c pass", pypass)
    row("  python -S -c pass (without site and its .pth files)", nosite)
    row("dshell --version", version)
    row(f"squeue --json ({args.queued} jobs queued)", squeue)
    row("  squeue --Format of the listing's columns (what ps runs)", columns)
    row(f"dshell ps /hpc -o tsv ({rows} rows)", ps)
    row("  the backend alone: list_tasks in one process", inproc)
    print(
        f"  ps - squeue: {ps_over:+.1f} ms (median of paired runs; goal: within +100 ms); ", end=""
    )
    print(f"ratio {ps / squeue:.2f}x")
    print(f"  ps - squeue - python startup: {ps_over - pypass:+.1f} ms; ", end="")
    print(f"backend alone - squeue: {backend_over:+.1f} ms (paired); load: ", end="")
    print(" ".join(f"{x:.1f}" for x in os.getloadavg()))


def bench_submit(args: argparse.Namespace, env: dict[str, str], work: str) -> None:
    k = args.submit
    # --chdir: the jobs' slurm-N.out files go to the bench's work dir, as dshell's do
    plain = ["sbatch", "-J", "bench-sbatch", f"--chdir={work}", "--wrap", "true"]
    sbatch = loop_ms([plain] * k, env)
    run = [*DSHELL, "run", "-d", "--on", "/hpc", "--name", "bench-run", "--", "true"]
    dshell = loop_ms([run] * k, env)
    print(f"{k} submissions: sbatch loop {sbatch:.0f} ms ({sbatch / k:.1f} ms/job), ", end="")
    print(f"dshell run -d loop {dshell:.0f} ms ({dshell / k:.1f} ms/job)")
    print(
        f"  per job: {dshell / k - sbatch / k:+.1f} ms; ratio {dshell / sbatch:.2f}x; load: ",
        end="",
    )
    print(" ".join(f"{x:.1f}" for x in os.getloadavg()))


def ssh_login(tmp: str) -> tuple[dict[str, str] | None, str | None]:
    """The test sshd (exported by tests/run-all.sh), else a private one; (login, its SVC)."""
    key, known = os.environ.get("DSHELL_TEST_SSH_KEY"), os.environ.get("DSHELL_TEST_KNOWN_HOSTS")
    if key and known and os.path.exists(key):
        return {
            "source": f"ssh://{getpass.getuser()}@127.0.0.1:2222",
            "key": key,
            "known_hosts": known,
        }, None
    if os.geteuid() != 0 or not os.path.exists("/usr/sbin/sshd"):
        return None, None
    svc = f"{tmp}/sshsvc"
    os.environ["SSH_PORT"] = "2224"
    services(svc, "sshd_start")
    login = {
        "source": f"ssh://{getpass.getuser()}@127.0.0.1:2224",
        "key": f"{svc}/ssh/id_ed25519",
        "known_hosts": f"{svc}/ssh/known_hosts",
    }
    return login, svc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=11, help="runs per median")
    ap.add_argument("--queued", type=int, default=500)
    ap.add_argument("--submit", type=int, default=200)
    ap.add_argument("--no-ssh", action="store_true", help="skip the SSH path")
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
    sshsvc = None
    try:
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        bench_listing(args, env, work)
        if not args.no_ssh:  # before the submissions: the same 500 queued jobs, nothing else
            login, sshsvc = ssh_login(tmp)
            if login is None:
                print("SSH path skipped: no test sshd (run as root with openssh-server)")
            else:
                bench_ssh(args, env, login)
        bench_submit(args, env, work)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        for name in ("bench-held", "bench-sbatch", "bench-run"):
            subprocess.run(["scancel", "-n", name], env=env, check=False)
        if sshsvc:
            services(sshsvc, "sshd_stop")
        if svc:
            services(svc, "slurm_stop")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
