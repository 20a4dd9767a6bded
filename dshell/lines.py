"""Running one command line: ``;`` sequences of ``|`` pipelines (the syntax is in
:mod:`dshell.lexer`). Used by runbooks and the REPL; it imports nothing interactive.

Execution rules:

- The pipelines of a sequence run one after another; the line's status is the last one's.
  A pipeline ended by Ctrl-C (status 130) stops the rest of the line, as in sh.
- A pipeline of one dshell command runs through :func:`dshell.cli.main.invoke`. The first
  command of a pipeline is a dshell command (an unknown word is a usage error, exit 2) unless
  it starts with ``!`` (``!ls -la``), which runs it as a system command.
- In a longer pipeline, a stage naming a dshell verb (``ps`` or ``dshell ps``) runs inside
  this process with its plain output: stdout is a buffer (so tables become tsv) and stdin
  is the previous stage's output (so ``ps -q | kill -`` works). Any other stage, or one
  forced with ``|!``, runs as a system command (an argv list, never a shell) fed the
  previous stage's bytes; the last stage writes to the real stdout.
- System commands after the last in-process stage run concurrently with it, so
  ``tail -f ID | grep ERROR`` streams. In-process stages before it run to completion first.
- The pipeline's status is the last stage's. A system command that cannot be started is 127
  (not found) or 126 (not executable); one killed by signal N is 128+N.
- Ctrl-C kills the pipeline's system commands and makes the status 130.
- ``cd`` (and mount changes) made by an in-process stage stay in the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from .errors import ExitCode

if TYPE_CHECKING:
    import subprocess

    from .lexer import Command, LexError
    from .session import Session

#: A command that exists only in one front end (the REPL's ``exit``, ``history``…).
Builtin = Callable[["Session", list[str]], int]
Builtins = Mapping[str, Builtin]

INTERRUPTED = int(ExitCode.INTERRUPTED)

#: What subprocess accepts for a standard stream.
_Std = int | IO[Any] | None


@dataclass(frozen=True)
class Stage:
    kind: str  # "verb" | "builtin" | "system"
    argv: list[str]


class ReaderGone(Exception):
    """The next stage stopped reading. Deliberately not an OSError: click turns EPIPE into
    ``sys.exit(1)``, and a verb must simply stop, as a writer killed by SIGPIPE does."""


class _PipeRaw(io.RawIOBase):
    """The write end of a pipe to the next stage, raising :class:`ReaderGone` on EPIPE."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__()
        self._file = file

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        try:
            return os.write(self._file.fileno(), data)
        except BrokenPipeError:
            raise ReaderGone from None

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self._file.close()
        super().close()


class _StartError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def run_line(
    session: Session,
    line: str,
    *,
    builtins: Builtins | None = None,
    errexit: Callable[[], bool] | None = None,
) -> int:
    """Run every pipeline of ``line`` in ``session``; return the status of the last one.

    With ``errexit`` (runbooks), the first failing pipeline ends the line while it answers
    true, as ``sh -e`` does with ``a; b``."""
    from .lexer import LexError, parse

    try:
        pipelines = parse(line)
    except LexError as exc:
        syntax_error(session, line, exc)
        return int(ExitCode.USAGE)
    status = 0
    for pipeline in pipelines:
        stages = [classify(cmd, builtins, first=i == 0) for i, cmd in enumerate(pipeline.commands)]
        try:
            status = run_pipeline(session, stages, builtins)
        except KeyboardInterrupt:
            status = _interrupted(session)
        if status == INTERRUPTED or (status != 0 and errexit is not None and errexit()):
            break
    return status


def syntax_error(session: Session, line: str, exc: LexError) -> None:
    """The message, then the line with a caret under the column (one-line input only)."""
    from .render import Output

    out = Output(session.env)
    out.error(exc.message)
    if "\n" not in line and exc.column <= len(line) + 1:
        out.info(f"  {line}\n  {' ' * (exc.column - 1)}^")


def classify(cmd: Command, builtins: Builtins | None = None, *, first: bool = False) -> Stage:
    """Whether a command runs in-process (a verb or a front end's builtin) or as a process.

    The first command of a pipeline is always a dshell command unless it starts with ``!``
    (``!ls -la``): a mistyped verb in a runbook must fail as a usage error, never run some
    program of that name. After a ``|``, a word that is not a verb is a system command.
    """
    from .cli.main import VERBS

    argv = list(cmd.argv)
    if cmd.system:
        return Stage("system", argv)
    if first and argv[0].startswith("!"):
        forced = [argv[0][1:], *argv[1:]] if argv[0] != "!" else argv[1:]
        if forced and forced[0]:
            return Stage("system", forced)
    if argv[0] == "dshell" and len(argv) > 1 and (argv[1] in VERBS or argv[1].startswith("-")):
        return Stage("verb", argv[1:])
    if builtins and argv[0] in builtins:
        return Stage("builtin", argv)
    return Stage("verb" if first or argv[0] in VERBS else "system", argv)


def run_pipeline(session: Session, stages: list[Stage], builtins: Builtins | None = None) -> int:
    """Run the stages of one pipeline (see the module docstring); return the last status."""
    if len(stages) == 1 and stages[0].kind != "system":
        return run_stage(session, stages[0], builtins)
    last_in = max((i for i, s in enumerate(stages) if s.kind != "system"), default=-1)
    data: bytes | None = None  # the previous stage's output; None: the session's stdin
    for stage in stages[: max(last_in, 0)]:
        if stage.kind == "system":
            status, data = _system_buffered(session, stage.argv, data)
        else:
            status, data = _inproc_buffered(session, stage, data, builtins)
        if status == INTERRUPTED:
            return status
    feeder = stages[last_in] if last_in >= 0 else None
    return _run_tail(session, feeder, stages[last_in + 1 :], data, builtins)


# ---- in-process stages -------------------------------------------------------------------------


def run_stage(
    session: Session,
    stage: Stage,
    builtins: Builtins | None = None,
    stdin: bytes | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """One verb or builtin in a copy of ``session`` whose streams are swapped as given."""
    changes: dict[str, Any] = {}
    if stdin is not None:
        changes.update(stdin=_text_reader(stdin), stdin_isatty=False)
    if stdout is not None:
        changes.update(stdout=stdout, stdout_isatty=False)
    child = session
    if changes:
        child = dataclasses.replace(session, env=dataclasses.replace(session.env, **changes))
        child.stdin_is_script = session.stdin_is_script and stdin is None
    try:
        # click prints --help and --version to sys.stdout; send them where the stage writes.
        with contextlib.redirect_stdout(child.env.stdout):
            if stage.kind == "builtin" and builtins:
                return builtins[stage.argv[0]](child, stage.argv)
            from .cli.main import invoke

            return invoke(child, stage.argv)
    except ReaderGone:
        return 141  # the next stage stopped reading (`ps | head -1`): normal in a pipeline
    finally:
        if child is not session:
            _share_back(session, child)


def _share_back(session: Session, child: Session) -> None:
    """Keep what a stage changed in the session: the cwd, the backends, the mount table."""
    session.cwd = child.cwd
    if session._registry is None:
        session._registry = child._registry
    if child._mounts is not session._mounts:
        session.invalidate_mounts()


def _text_reader(data: bytes) -> IO[str]:
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace", newline="")


def _text_writer(raw: IO[bytes]) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        raw,
        encoding="utf-8",
        errors="replace",
        newline="",
        line_buffering=True,
        write_through=True,
    )


def _inproc_buffered(
    session: Session, stage: Stage, data: bytes | None, builtins: Builtins | None
) -> tuple[int, bytes]:
    raw = io.BytesIO()
    out = _text_writer(raw)
    status = run_stage(session, stage, builtins, stdin=data, stdout=out)
    out.flush()
    result = raw.getvalue()
    out.detach()  # keep `raw` open after `out` is collected
    return status, result


# ---- system stages -----------------------------------------------------------------------------


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _popen(argv: list[str], stdin: _Std, stdout: _Std, stderr: _Std) -> subprocess.Popen[bytes]:
    import subprocess

    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr)
    except FileNotFoundError:
        raise _StartError(127, f"{argv[0]}: command not found") from None
    except PermissionError:
        raise _StartError(126, f"{argv[0]}: permission denied") from None
    except OSError as exc:
        raise _StartError(126, f"{argv[0]}: {exc.strerror or exc}") from None


def _status(proc: subprocess.Popen[bytes]) -> int:
    code = proc.returncode
    return 128 - code if code < 0 else code


class _Streams:
    """Where system commands read and write, with temp files standing in for streams
    without a file descriptor (tests' StringIO), copied through afterwards."""

    def __init__(self, session: Session) -> None:
        self.env = session.env
        self.session = session
        self._err_tmp: IO[bytes] | None = None
        self._out_tmp: IO[bytes] | None = None

    def stdin(self) -> tuple[_Std, bytes | None]:
        """The first command's stdin, and bytes to feed it when that is a pipe."""
        import subprocess

        if self.session.stdin_is_script:
            return subprocess.DEVNULL, None  # never let a command eat the runbook itself
        fd = _fileno(self.env.stdin)
        if fd is not None:
            return fd, None
        if self.env.stdin_isatty:
            return subprocess.DEVNULL, None
        return subprocess.PIPE, self.env.stdin.read().encode()

    def stdout(self) -> _Std:
        import tempfile

        self.env.stdout.flush()  # what dshell wrote so far comes first
        fd = _fileno(self.env.stdout)
        if fd is None:
            self._out_tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed in copy_back
            return self._out_tmp
        return fd

    def stderr(self) -> _Std:
        import tempfile

        fd = _fileno(self.env.stderr)
        if fd is None:
            if self._err_tmp is None:
                self._err_tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed in copy_back
            return self._err_tmp
        return fd

    def copy_back(self) -> None:
        for tmp, stream in ((self._out_tmp, self.env.stdout), (self._err_tmp, self.env.stderr)):
            if tmp is not None:
                tmp.seek(0)
                stream.write(tmp.read().decode("utf-8", "replace"))
                stream.flush()
                tmp.close()
        self._out_tmp = self._err_tmp = None


def _system_buffered(session: Session, argv: list[str], data: bytes | None) -> tuple[int, bytes]:
    """A system command between in-process stages: its whole output is collected."""
    import subprocess

    streams = _Streams(session)
    stdin, feed = (subprocess.PIPE, data) if data is not None else streams.stdin()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(_popen(argv, stdin, subprocess.PIPE, streams.stderr()))
        out, _ = procs[0].communicate(feed)
    except _StartError as exc:
        return _start_failed(session, exc), b""
    except KeyboardInterrupt:
        _kill(procs)
        return _interrupted(session), b""
    finally:
        streams.copy_back()
    return _status(procs[0]), out


def _run_tail(
    session: Session,
    feeder: Stage | None,
    tail: list[Stage],
    data: bytes | None,
    builtins: Builtins | None,
) -> int:
    """The last in-process stage (``feeder``) and the system commands after it, together."""
    import subprocess

    if not tail:
        assert feeder is not None
        return run_stage(session, feeder, builtins, stdin=data)
    streams = _Streams(session)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        first_in, feed = (subprocess.PIPE, data) if feeder or data is not None else streams.stdin()
        last_out = streams.stdout()
        prev: _Std = first_in
        for i, stage in enumerate(tail):
            out = last_out if i == len(tail) - 1 else subprocess.PIPE
            procs.append(_popen(stage.argv, prev, out, streams.stderr()))
            if i > 0 and procs[-2].stdout is not None:
                procs[-2].stdout.close()  # only the next command holds the pipe now
            prev = procs[-1].stdout
        fed = _feed(session, procs[0], feeder, feed, builtins)
        if fed == INTERRUPTED:
            _kill(procs)
            return INTERRUPTED
        for proc in procs:
            proc.wait()
        return _status(procs[-1])
    except _StartError as exc:
        _kill(procs)
        return _start_failed(session, exc)
    except KeyboardInterrupt:
        _kill(procs)
        return _interrupted(session)
    finally:
        streams.copy_back()


def _feed(
    session: Session,
    proc: subprocess.Popen[bytes],
    feeder: Stage | None,
    data: bytes | None,
    builtins: Builtins | None,
) -> int:
    """Write into the first system command: the feeder stage's output, or ``data``."""
    if proc.stdin is None:
        return 0
    if feeder is None:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.write(data or b"")
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        return 0
    writer = _text_writer(io.BufferedWriter(_PipeRaw(proc.stdin)))
    try:
        return run_stage(session, feeder, builtins, stdin=data, stdout=writer)
    finally:
        with contextlib.suppress(ReaderGone, OSError, ValueError):
            writer.close()


def _kill(procs: list[subprocess.Popen[bytes]]) -> None:
    """Ctrl-C: the terminal sent SIGINT already; whatever survived it is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        proc.wait()


def _start_failed(session: Session, exc: _StartError) -> int:
    from .render import Output

    Output(session.env).error(exc.message)
    return exc.status


def _interrupted(session: Session) -> int:
    from .render import Output

    Output(session.env).error("interrupted")
    return INTERRUPTED
