"""Aurora configuration files: evaluate in a child process, then validate and convert.

The file is Python, so it never runs in the shell's process: ``python -m
dshell.specs.aurora_eval`` evaluates it under a wall-clock limit (``timeout``, default 10 s) and
rlimits on memory and CPU, and prints the jobs as JSON. This module checks that JSON and turns
each job into a ServiceSpec (``service=True``) or a BatchJobSpec (cron and ad-hoc jobs).

Errors name the file and line: the child reports the line of a failing statement from the
traceback; for problems found afterwards the line is that of the keyword argument
(``ram = ...``) in the file, found by :class:`AuroraLines`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path as FsPath
from typing import Any

from dshell.specs import aurora_convert
from dshell.specs.common import check_file
from dshell.specs.issues import Issue, Issues, Path, SpecError
from dshell.specs.model import LoadedSpec, ServiceSpec, kind_of
from dshell.specs.reader import Reader

DEFAULT_TIMEOUT = 10.0
DEFAULT_MEMORY_MB = 1024


class AuroraLines:
    """Lines of an Aurora file: a path's last key as a keyword argument (``ram = ...``)."""

    def __init__(self, text: str, job_lines: dict[int, int]) -> None:
        self.text = text
        self.job_lines = job_lines

    def line(self, path: Path) -> int | None:
        index = path[1] if len(path) > 1 and isinstance(path[1], int) else 0
        job_line = self.job_lines.get(index)
        for key in reversed(path):
            if isinstance(key, str) and key != "jobs":
                found = [
                    self.text.count("\n", 0, m.start()) + 1
                    for m in re.finditer(rf"\b{re.escape(key)}\s*=", self.text)
                ]
                if found and len(path) == 3 and job_line:
                    # A field of the Job itself: the occurrence nearest to the job.
                    return min(found, key=lambda n: abs(n - job_line))
                if found:
                    return found[0]
        return job_line


def _child_env() -> dict[str, str]:
    # The child must import this very dshell, installed or not.
    root = str(FsPath(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _fail(source: str, message: str) -> SpecError:
    return SpecError([Issue(source, None, "", message)])


def evaluate(
    text: str,
    source_name: str,
    *,
    path: str | None,
    bind: dict[str, str],
    timeout: float,
    memory_mb: int,
) -> list[dict[str, Any]]:
    """Run the evaluator; the exported jobs, or a SpecError."""
    display = path or source_name
    request = {"text": text, "path": display, "bind": bind, "mem_mb": memory_mb}
    request["cpu_s"] = int(timeout) + 1
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "dshell.specs.aurora_eval"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=os.path.dirname(os.path.abspath(path)) if path else None,
            env=_child_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _fail(
            source_name,
            f"evaluation did not finish within {timeout:g} s (does the file loop forever?)",
        ) from None
    try:
        result = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise _fail(source_name, _crash_message(proc))
    if not result.get("ok"):
        raise SpecError(
            [
                Issue(
                    source_name if e.get("file") == display else str(e.get("file")),
                    e.get("line"),
                    "",
                    str(e.get("message")),
                )
                for e in result.get("errors", [])
            ]
        )
    return list(result.get("jobs", []))


def _crash_message(proc: subprocess.CompletedProcess[str]) -> str:
    """Why the evaluator ended without a result: a signal, os._exit, a limit."""
    if proc.returncode < 0:
        import signal

        name = signal.Signals(-proc.returncode).name
        why = " (CPU time limit)" if name in ("SIGXCPU", "SIGKILL") else ""
        what = f"was killed by {name}{why}"
    else:
        what = f"exited with status {proc.returncode} without a result (does it call exit?)"
    tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-1:]
    return f"evaluating the file failed: the evaluator {what}" + (f": {tail[0]}" if tail else "")


def _select(jobs: list[dict[str, Any]], job_key: str | None, source: str) -> list[int]:
    """Indexes of the jobs matching ``job_key`` (cluster/role/environment/name, or name)."""
    if job_key is None:
        return list(range(len(jobs)))
    keys = [aurora_convert.job_key(j.get("data", {})) for j in jobs]
    want = job_key.strip("/")
    parts = want.split("/")
    if len(parts) not in (1, 4):
        raise SpecError(
            [
                Issue(
                    source,
                    None,
                    "",
                    f"bad job key {job_key!r}: expected "
                    "cluster/role/environment/name or a job name",
                )
            ]
        )
    hits = [
        i
        for i, k in enumerate(keys)
        if (k == want if len(parts) == 4 else k.rsplit("/", 1)[-1] == want)
    ]
    if len(hits) != 1:
        why = "no job matches" if not hits else "several jobs match"
        raise SpecError(
            [Issue(source, None, "", f"{why} {job_key!r}; the file defines: " + ", ".join(keys))]
        )
    return hits


def load(
    text: str,
    source_name: str,
    *,
    path: str | None = None,
    bind: dict[str, str] | None = None,
    job_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_mb: int = DEFAULT_MEMORY_MB,
    allow_gpus: bool = False,
    **_opts: Any,
) -> LoadedSpec:
    """Load the jobs of an Aurora file (all of them, or the one ``job_key`` names)."""
    jobs = evaluate(
        text, source_name, path=path, bind=dict(bind or {}), timeout=timeout, memory_mb=memory_mb
    )
    chosen = _select(jobs, job_key, source_name)
    names = [str(jobs[i].get("data", {}).get("name")) for i in chosen]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        keys = ", ".join(aurora_convert.job_key(jobs[i].get("data", {})) for i in chosen)
        second = [i for i, n in zip(chosen, names, strict=True) if n == twice[0]][1]
        raise SpecError(
            [
                Issue(
                    source_name,
                    jobs[second].get("line"),
                    "",
                    f"several jobs are named {twice[0]!r}: pick"
                    f" one with a job key (one of: {keys})",
                )
            ]
        )
    index = AuroraLines(text, {i: int(j["line"]) for i, j in enumerate(jobs) if j.get("line")})
    issues = Issues(source_name, index, "aurora")
    loaded = LoadedSpec(kind="service", format="aurora", source=source_name)
    for i in chosen:
        spec = aurora_convert.convert(Reader(jobs[i].get("data"), ("jobs", i), issues))
        if spec is None:
            continue
        if isinstance(spec, ServiceSpec):
            loaded.services.append(spec)
        else:
            loaded.jobs.append(spec)
    check_file(loaded, issues, allow_gpus=allow_gpus)
    issues.check()
    loaded.kind = kind_of(len(loaded.services), 0, len(loaded.jobs))
    loaded.warnings = issues.warning_texts()
    return loaded
