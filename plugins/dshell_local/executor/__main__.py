"""``python -m dshell_local.executor --runtime-dir DIR --cgroup-name NAME [--log FILE]``.

Exit status: 0 after an idle exit or SIGTERM, 2 for a usage error, 3 when another executor
already serves DIR (its lock is held), 1 when it failed to start.

``--detach`` is how clients start it: this process spawns the real executor in a new session,
waits until it listens (or fails) and exits with 0 (ready), 3 (someone else's executor won the
race: use that one) or the failure status. The executor is then an orphan, re-parented to the
nearest child subreaper (the engine) or to init, and no longer tied to whoever started it.
"""

from __future__ import annotations

import argparse
import os
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dshell_local.executor",
        description="Per-host task executor of the dshell embedded engine.",
    )
    p.add_argument("--runtime-dir", required=True, help="where executor.sock and the journal live")
    p.add_argument("--cgroup-name", required=True, help="parent cgroup, under our own cgroup")
    p.add_argument("--log", help="log file (rotated at 1 MB, 3 kept)")
    p.add_argument("--idle-exit", type=float, default=30.0, metavar="SECONDS",
                   help="exit after this long without tasks or clients (0: never)")  # fmt: skip
    p.add_argument("--isolation", choices=("auto", "rlimit"), default="auto",
                   help="auto: cgroups when usable, else rlimits; rlimit: no cgroups")  # fmt: skip
    p.add_argument("--detach", action="store_true", help="start in the background, wait ready")
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    return p


def _detach(argv: list[str]) -> int:
    """Spawn the executor in its own session and wait until it is ready or has failed."""
    r, w = os.pipe()
    os.set_inheritable(w, True)
    args = [sys.executable, "-m", "dshell_local.executor"]
    args += [a for a in argv if a != "--detach"] + ["--ready-fd", str(w)]
    # stdin from /dev/null; stdout/stderr stay ours until it is ready, so that a startup error
    # reaches whoever started us.
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    pid = os.posix_spawn(sys.executable, args, dict(os.environ), file_actions=actions, setsid=True)
    os.close(w)
    data = b""
    while chunk := os.read(r, 64):
        data += chunk
    os.close(r)
    if data.startswith(b"ready"):
        return 0
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) or 1


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.detach:
        return _detach(argv)  # without importing the daemon: that is the child's job
    from .daemon import Config, run

    cfg = Config(
        runtime_dir=os.path.abspath(args.runtime_dir),
        cgroup_name=args.cgroup_name,
        log_path=os.path.abspath(args.log) if args.log else None,
        idle_exit=args.idle_exit,
        isolation=args.isolation,
        ready_fd=args.ready_fd,
    )
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
