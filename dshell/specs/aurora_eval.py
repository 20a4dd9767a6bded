"""Evaluate one Aurora file in this child process (``python -m dshell.specs.aurora_eval``).

An Aurora file is Python. It runs here, never in the shell: the parent
(:mod:`dshell.specs.aurora`) starts this module with a wall-clock time limit, and this process
caps its own memory and CPU time with rlimits before it reads the file, so a file that loops,
allocates without end, crashes or calls ``os._exit`` costs the shell nothing but an error.

Protocol: a JSON request on stdin (``text``, ``path``, ``bind``, ``mem_mb``, ``cpu_s``); one
JSON result on the original stdout: ``{"ok": true, "jobs": [{"data", "line"}]}`` or
``{"ok": false, "errors": [{"file", "line", "message"}]}``. Whatever the file prints goes to
stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from typing import Any

# Namespaces the engine fills in at launch; they stay templates in the normalized spec.
RUNTIME_SCOPES = ("mesos.", "thermos.")
STANDARD_BINDINGS = {
    "mesos.role": "{{role}}",
    "mesos.cluster": "{{cluster}}",
    "thermos.user": "{{role}}",
}


def _limit(mem_mb: int, cpu_s: int) -> None:
    import resource

    for which, wanted in ((resource.RLIMIT_AS, mem_mb * 1024 * 1024), (resource.RLIMIT_CPU, cpu_s)):
        _, hard = resource.getrlimit(which)
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(which, (soft, hard))
        except (ValueError, OSError):
            pass  # best effort: the parent's wall-clock limit still applies


def _error(file: str, line: int | None, message: str) -> dict[str, Any]:
    return {"ok": False, "errors": [{"file": file, "line": line, "message": message}]}


def _line_in(tb: Any, files: set[str]) -> tuple[str | None, int | None]:
    """The deepest frame of the traceback that belongs to an evaluated file."""
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(tb):
        if frame.filename in files:
            found = (frame.filename, frame.lineno)
    return found


def _line_of(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _execute(text: str, path: str, env: dict[str, Any], files: set[str]) -> dict[str, Any] | None:
    """Run the file (and its include()s) in ``env``; an error result, or None on success."""

    def include(name: str) -> None:
        target = os.path.join(os.path.dirname(path), name)
        with open(target, encoding="utf-8") as f:
            files.add(target)
            exec(compile(f.read(), target, "exec"), env)  # noqa: S102 - evaluating is the job

    env["include"] = include
    try:
        exec(compile(text, path, "exec"), env)  # noqa: S102 - evaluating is the job
    except SyntaxError as e:
        line = e.lineno
        if line is None and e.filename in (None, path) and "\x00" in text:
            line = text.count("\n", 0, text.index("\x00")) + 1  # compile() gives no line
        return _error(e.filename or path, line, f"syntax error: {e.msg}")
    except MemoryError:
        file, line = _line_in(sys.exc_info()[2], files)
        return _error(file or path, line, "the file used more memory than allowed")
    except RecursionError:
        file, line = _line_in(sys.exc_info()[2], files)
        return _error(file or path, line, "too deep a recursion")
    except BaseException as e:  # noqa: BLE001 - arbitrary user code: every failure is reported
        file, line = _line_in(e.__traceback__, files)
        return _error(file or path, line, f"{type(e).__name__}: {e}")
    return None


def _job_line(text: str, name: str) -> int | None:
    return (
        _line_of(text, rf"""\bname\s*=\s*['"]{re.escape(name)}['"]""")
        or _line_of(text, r"\b(Job|Service|MesosJob)\s*\(")
        or _line_of(text, r"^jobs\s*=")
    )


def _unbound(job: Any) -> list[str]:
    _, refs = job.interpolate()
    return [r.address() for r in refs if not r.address().startswith(RUNTIME_SCOPES)]


def _export(job: Any, bind: dict[str, str], text: str, path: str) -> dict[str, Any]:
    from pystachio import Environment, Ref

    job = job.bind({Ref.from_address(k): v for k, v in STANDARD_BINDINGS.items()})
    if bind:
        job = job.bind({Ref.from_address(k): v for k, v in bind.items()})
    missing = _unbound(job)
    if missing:
        ref = missing[0]
        return _error(
            path,
            # A template of the file, else one of pystachio's defaults: the job's line.
            _line_of(text, re.escape("{{" + ref)) or _job_line(text, ""),
            f"unbound template {{{{{ref}}}}}: give it a value with --bind {ref}=VALUE",
        )
    name = str(job.name().get()) if job.name() is not None else ""
    check = job.bind(Environment(mesos=Environment(instance=0, hostname="localhost"))).check()
    if not check.ok():
        return _error(path, _job_line(text, name), f"job {name!r}: {check.message()}")
    value, _ = job.interpolate()
    return {"ok": True, "data": json.loads(value.json_dumps()), "line": _job_line(text, name)}


def evaluate(request: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the file and export its ``jobs`` list."""
    path, text = str(request["path"]), str(request["text"])
    bind = {str(k): str(v) for k, v in dict(request.get("bind") or {}).items()}
    try:
        from dshell.specs import aurora_dsl
    except ImportError:
        return _error(path, None, "Aurora files need pystachio: pip install 'dshell[aurora]'")
    env = aurora_dsl.namespace()
    env["__name__"] = "__aurora__"
    failed = _execute(text, path, env, {path})
    if failed:
        return failed
    jobs = env.get("jobs")
    if not isinstance(jobs, list | tuple) or not jobs:
        return _error(
            path, _line_of(text, r"^jobs\s*="), "expected a non-empty list `jobs = [Job(...), ...]`"
        )
    out = []
    for i, job in enumerate(jobs):
        if not isinstance(job, aurora_dsl.MesosJob):
            return _error(
                path,
                _line_of(text, r"^jobs\s*="),
                f"jobs[{i}] is not a Job or Service (got {type(job).__name__})",
            )
        try:
            exported = _export(job, bind, text, path)
        except Exception as e:  # noqa: BLE001 - pystachio raises assorted errors on bad configs
            exported = _error(path, _job_line(text, ""), f"jobs[{i}]: {type(e).__name__}: {e}")
        if not exported["ok"]:
            return exported
        out.append({"data": exported["data"], "line": exported["line"]})
    return {"ok": True, "jobs": out}


def main() -> int:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything the file prints goes to stderr, not into the result
    try:
        request = json.loads(sys.stdin.read())
    except json.JSONDecodeError as e:
        result = _error("<request>", None, f"bad request: {e}")
    else:
        _limit(int(request.get("mem_mb", 1024)), int(request.get("cpu_s", 11)))
        result = evaluate(request)
    payload = json.dumps(result).encode()
    while payload:
        payload = payload[os.write(out_fd, payload) :]
    return 0


if __name__ == "__main__":
    sys.exit(main())
