r"""How a task sees its persistent volumes: bind mounts in its own mount namespace, or symlinks.

The engine wraps a volume task's argv (the executor protocol is unchanged): with bind mounts,
``unshare --mount --propagation private /bin/sh -c PROLOGUE …`` bind-mounts each volume at its
PATH (remounted read-only for ``:ro``), marks the sandbox's ``.dshell/volumes.ready`` and
execs the command, so the task keeps its pid, session and cgroup; without them the same
prologue only links ``<sandbox>/PATH`` to the volume. Which one applies is probed once at
engine start (:func:`probe_mode`) and shown by ``engine status``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import msgspec

FORCE_ENV = "DSHELL_VOLUME_MOUNTS"  # "symlink": use the fallback even where bind mounts work
# $1: bind|link, $2: the file that says "set up", $3: how many volumes, then SRC DST MODE
# MAKE per volume, then the command. A volume it cannot set up ends the task with status 125.
PROLOGUE = r"""
how=$1 ready=$2 n=$3; shift 3
while [ "$n" -gt 0 ]; do
  src=$1 dst=$2 mode=$3 make=$4; shift 4; n=$((n - 1))
  if [ "$how" = link ]; then
    mkdir -p -- "${dst%/*}" && ln -sfn -- "$src" "$dst" && continue
    echo "dshell: cannot link volume $src at $dst" >&2; exit 125
  fi
  if [ "$make" = yes ]; then
    mkdir -p -- "$dst" || { echo "dshell: cannot create mount point $dst" >&2; exit 125; }
  elif [ ! -d "$dst" ]; then
    echo "dshell: volume mount point $dst is not a directory" >&2; exit 125
  fi
  MOUNT --bind "$src" "$dst" || { echo "dshell: cannot bind-mount $src at $dst" >&2; exit 125; }
  if [ "$mode" = ro ]; then
    MOUNT -o remount,bind,ro "$dst" || { echo "dshell: cannot make $dst read-only" >&2; exit 125; }
  fi
done
mkdir -p -- "${ready%/*}" && : > "$ready"
exec "$@"
"""
READY_FILE = ".dshell/volumes.ready"  # in the sandbox, once the volumes are in place
READY_WAIT = 5.0  # seconds an exec waits for a just-started task's volumes


class MountMode(msgspec.Struct, kw_only=True):
    """How tasks see their volumes here (what ``engine status`` says)."""

    bind: bool
    why: str = ""  # why there is no mount namespace

    def describe(self) -> str:
        if self.bind:
            return "bind mounts in a private mount namespace"
        return f"symlinks (no mount namespace: {self.why})"


def probe_mode(scratch: Path) -> MountMode:
    """Whether a task can get its own mount namespace with bind mounts here (tried once)."""
    if os.environ.get(FORCE_ENV) == "symlink":
        return MountMode(bind=False, why=f"{FORCE_ENV}=symlink")
    if os.geteuid() != 0:
        return MountMode(bind=False, why="the engine does not run as root")
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        return MountMode(bind=False, why="util-linux unshare/mount not found")
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=".probe-") as tmp:
        src, dst = Path(tmp, "src"), Path(tmp, "dst")
        src.mkdir()
        (src / "probe").write_text("ok")
        ready = f"{tmp}/ready"
        argv = wrap_argv(MountMode(bind=True), ready, [(str(src), str(dst), "rw", "yes")], [])
        try:
            done = subprocess.run(
                [*argv, "/bin/cat", f"{dst}/probe"],
                capture_output=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return MountMode(bind=False, why=f"probe failed: {exc}")
        if done.returncode != 0 or done.stdout != b"ok":
            err = done.stderr.decode(errors="replace").strip().splitlines()
            return MountMode(bind=False, why=f"probe failed: {err[-1] if err else done.returncode}")
        if any(dst.iterdir()):
            return MountMode(bind=False, why="probe failed: the bind mount leaked out")
    return MountMode(bind=True)


def wrap_argv(
    mode: MountMode, ready: str, mounts: list[tuple[str, str, str, str]], argv: list[str]
) -> list[str]:
    flat = [ready, str(len(mounts)), *(field for m in mounts for field in m)]
    how = "bind" if mode.bind else "link"
    if not mode.bind:
        return ["/bin/sh", "-c", PROLOGUE, "dshell-volumes", how, *flat, *argv]
    unshare = shutil.which("unshare") or "unshare"
    script = PROLOGUE.replace("MOUNT", shutil.which("mount") or "mount")
    return [
        unshare, "--mount", "--propagation", "private",
        "/bin/sh", "-c", script, "dshell-volumes", how, *flat, *argv,
    ]  # fmt: skip
