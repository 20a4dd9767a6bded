"""Exit codes and the errors that carry them.

Every failure dshell reports is a :class:`DshellError` subclass carrying one :class:`ExitCode`.
Only the process boundary (``dshell.__main__`` and the REPL loop) turns these into an exit
status and a message; library code raises, it never calls ``sys.exit``.

The codes are a public contract: they are listed in the README and each one is pinned by a
test (``tests/test_exit_codes.py``). Never renumber one.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """dshell's exit statuses (an attached ``run``/``exec`` exits with the task's own status)."""

    OK = 0
    ERROR = 1  # the operation failed (a generic, expected failure)
    USAGE = 2  # bad command line, bad spec, bad input (click's own code for usage errors)
    CONFIG = 3  # the config file or mount table is unreadable or invalid
    NOT_FOUND = 4  # no such task, service, agent, mount or path
    AMBIGUOUS = 5  # a prefix or glob matched several objects where one was needed
    BACKEND = 6  # the backend answered with an error
    UNREACHABLE = 7  # the backend could not be reached (socket, network, timeout connecting)
    PLUGIN = 8  # a backend plugin could not be loaded
    TIMEOUT = 9  # a --timeout expired while waiting
    UNSUPPORTED = 10  # the backend lacks the capability the verb needs
    PARTIAL = 11  # some mounts answered, others failed: the output is incomplete
    CONFLICT = 12  # the object is in a state that forbids the operation (already exists, busy)
    DSHELL_FAILED = 125  # dshell itself failed during an attached run/exec (as docker run does)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class DshellError(Exception):
    """Base of every error dshell reports to a user; ``code`` is the exit status."""

    code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(DshellError):
    code = ExitCode.USAGE


class ConfigError(DshellError):
    code = ExitCode.CONFIG


class NotFoundError(DshellError):
    code = ExitCode.NOT_FOUND


class AmbiguousError(DshellError):
    code = ExitCode.AMBIGUOUS

    def __init__(self, message: str, candidates: list[str]) -> None:
        shown = "\n".join(f"  {c}" for c in candidates[:20])
        more = f"\n  … and {len(candidates) - 20} more" if len(candidates) > 20 else ""
        super().__init__(f"{message}; candidates:\n{shown}{more}")
        self.candidates = candidates


class BackendError(DshellError):
    code = ExitCode.BACKEND


class UnreachableError(DshellError):
    code = ExitCode.UNREACHABLE


class PluginError(DshellError):
    code = ExitCode.PLUGIN


class TimeoutExpired(DshellError):
    code = ExitCode.TIMEOUT


class UnsupportedError(DshellError):
    code = ExitCode.UNSUPPORTED

    def __init__(self, backend: str, capability: str, verb: str | None = None) -> None:
        what = f" (needed by '{verb}')" if verb else ""
        super().__init__(f"backend '{backend}' does not support {capability}{what}")
        self.backend = backend
        self.capability = capability


class PartialError(DshellError):
    """Raised after partial output was printed: some mounts failed."""

    code = ExitCode.PARTIAL


class ConflictError(DshellError):
    code = ExitCode.CONFLICT


class DeploymentFailed(DshellError):
    """A deployment ended FAILED or ABORTED (exit 1; a timed-out wait is TimeoutExpired)."""

    code = ExitCode.ERROR


class Interrupted(DshellError):
    code = ExitCode.INTERRUPTED


class TaskExit(Exception):
    """An attached run/exec ended: the process exits with the task's own status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def status_from_wait(exit_code: int | None, signal: int | None) -> int:
    """Shell convention: the exit code, or 128+N for a task killed by signal N."""
    if signal:
        return 128 + signal
    return exit_code if exit_code is not None else int(ExitCode.DSHELL_FAILED)


def report(session: Any, out: Any, exc: DshellError) -> int:
    """The one place a DshellError becomes a message on stderr and an exit status (shared by
    the command tree's boundary and the click-free fast path). In an attached run, dshell's
    own failure exits 125 (``docker run``), naming the error."""
    code = exc.code
    if getattr(session, "attached", False) and code not in (
        ExitCode.INTERRUPTED,
        ExitCode.USAGE,
    ):
        out.error(f"{exc.message} [{code.name}]")
        return int(ExitCode.DSHELL_FAILED)
    if code is not ExitCode.PARTIAL or exc.message:
        out.error(exc.message)
    if exc.hint:
        out.info(f"hint: {exc.hint}")
    return int(code)


def report_os_error(session: Any, out: Any, exc: OSError) -> int:
    """An OS error outside any backend's handling (a full disk under ``> file``, a vanished
    cwd): its reason and file on stderr, exit 1; the traceback under ``--debug``. Shared like
    :func:`report`; a broken pipe is not one of these (the caller re-raises it)."""
    if getattr(session, "debug", False):
        import traceback

        traceback.print_exc(file=session.env.stderr)
    out.error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
    return int(ExitCode.ERROR)
