"""The line language: how one REPL or runbook line splits into commands.

These are the documented rules, pinned by ``tests/golden/lexer/cases.txt``:

1. A line is a *sequence* of pipelines separated by ``;`` (a newline counts as ``;``). They run
   one after another; the status of the line is the status of its last pipeline. A trailing
   ``;`` is allowed; an empty pipeline (``;;``, a leading ``;``) is an error.
2. A *pipeline* is commands separated by ``|``: each command's output is the next one's input.
   A command that names a dshell verb (``ps``, ``kill``… or ``dshell ps``) runs inside dshell;
   any other command runs as a system command (no shell involved). ``|!`` works like ``|``
   but forces the next command to be a system command even if it names a verb
   (``ps |! ls``). An empty command before or after ``|`` is an error.
3. A *command* is a list of words separated by unquoted blanks (spaces and tabs).
4. Quoting, as in POSIX sh:

   - ``'…'``: everything up to the next ``'`` is literal; there are no escapes inside.
   - ``"…"``: literal, except that ``\\"``, ``\\\\`` and ``\\$`` stand for ``"``, ``\\``
     and ``$``; any other backslash is kept (``"a\\nb"`` is four characters).
   - Outside quotes, a backslash makes the next character literal (``\\ ``, ``\\;``,
     ``\\|``, ``\\#``, ``\\'``). A backslash ending the line is an error (runbooks join
     ``\\``-continued lines before they get here).
   - Quoted and unquoted parts join into one word: ``a'b c'd`` is ``ab cd``; ``''`` is an
     empty word. ``;``, ``|``, ``#`` and blanks inside quotes are ordinary characters.
5. ``#`` at the start of a word starts a comment that runs to the end of the line; inside a
   word (``a#b``) it is an ordinary character.
6. Not supported, each an error naming its column: ``||``, ``&&``, ``&`` (background jobs),
   and the redirections ``>``, ``>>``, ``<``. Quoted or escaped, they are ordinary characters
   (``grep 'a|b'``, ``echo \\>``).
7. Nothing is expanded: no globbing (``kill web.*`` passes ``web.*`` as it is, and dshell
   verbs match globs themselves), no ``$VAR``, ``~``, ``$(…)`` or backticks; parentheses
   and braces are ordinary characters.

Errors are :class:`LexError` (a usage error, exit status 2) with a 1-based ``column``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import UsageError

BLANKS = " \t"
#: Characters that end a word outside quotes.
OPERATORS = ";|&<>\n"
#: Characters that need quoting for :func:`quote` to keep a word one word.
_UNSAFE = frozenset(BLANKS + OPERATORS + "'\"\\#\r")


class LexError(UsageError):
    """A line that breaks the rules above; ``column`` is 1-based."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"syntax error at column {column}: {message}")
        self.reason = message
        self.column = column


@dataclass(frozen=True)
class Command:
    """One command of a pipeline: its words, and whether ``|!`` forced it to the system."""

    argv: tuple[str, ...]
    system: bool = False
    column: int = 1  # where the command starts, for messages


@dataclass(frozen=True)
class Pipeline:
    """Commands joined by ``|``."""

    commands: tuple[Command, ...]


@dataclass
class _Word:
    text: list[str] = field(default_factory=list)
    start: int = 0  # 0-based offset of the word's first character
    quote: str | None = None  # the open quote at the end of input (partial mode)


@dataclass
class _Scan:
    """The result of scanning: finished pipelines and the command being built."""

    pipelines: list[Pipeline] = field(default_factory=list)
    stages: list[Command] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    argv_start: int | None = None
    forced: bool = False
    pipe_col: int | None = None  # column of the last `|` still waiting for a command
    word: _Word | None = None
    comment: bool = False  # the line ended in a comment


_UNSUPPORTED = {
    "||": "'||' is not supported (use ';' to run commands one after another)",
    "&&": "'&&' is not supported (use ';'; a runbook stops at the first failing line)",
    "&": "'&' (background jobs) is not supported (use `run -d` to start a detached task)",
    ">>": "redirection '>>' is not supported (pipe into a system command instead)",
    ">": "redirection '>' is not supported (pipe into a system command instead)",
    "<": "redirection '<' is not supported (pipe into the command instead)",
}


class _Lexer:
    def __init__(self, line: str, partial: bool = False) -> None:
        self.line = line
        self.partial = partial  # stop quietly at the end (completion of an unfinished line)
        self.pos = 0
        self.scan = _Scan()

    # ---- words -------------------------------------------------------------------------------

    def _word(self) -> _Word:
        if self.scan.word is None:
            self.scan.word = _Word(start=self.pos)
        return self.scan.word

    def _end_word(self) -> None:
        word, self.scan.word = self.scan.word, None
        if word is None:
            return
        if self.scan.argv_start is None:
            self.scan.argv_start = word.start
        self.scan.argv.append("".join(word.text))

    def _quoted(self, q: str) -> None:
        word = self._word()
        opened = self.pos
        self.pos += 1
        while self.pos < len(self.line):
            c = self.line[self.pos]
            if c == q:
                self.pos += 1
                return
            if (
                q == '"'
                and c == "\\"
                and self.line[self.pos + 1 : self.pos + 2] in ('"', "\\", "$")
            ):
                word.text.append(self.line[self.pos + 1])
                self.pos += 2
                continue
            word.text.append(c)
            self.pos += 1
        if self.partial:
            word.quote = q
            return
        kind = "single" if q == "'" else "double"
        raise LexError(f"unterminated {kind} quote", opened + 1)

    # ---- operators ---------------------------------------------------------------------------

    def _end_command(self, what: str, col: int) -> None:
        """Close the command being built because of ``what`` (``|``, ``;`` or end of line)."""
        self._end_word()
        s = self.scan
        if not s.argv:
            if what == "|":
                raise LexError("missing command before '|'", col)
            if s.pipe_col is not None:
                raise LexError("missing command after '|'", s.pipe_col)
            if what == ";" and not s.stages:
                raise LexError("empty command before ';'", col)
            return
        start = (s.argv_start or 0) + 1
        s.stages.append(Command(tuple(s.argv), s.forced, start))
        s.argv, s.argv_start, s.forced, s.pipe_col = [], None, False, None

    def end_pipeline(self, what: str, col: int) -> None:
        self._end_command(what, col)
        if self.scan.stages:
            self.scan.pipelines.append(Pipeline(tuple(self.scan.stages)))
            self.scan.stages = []

    def _operator(self, c: str) -> None:
        col = self.pos + 1
        two = self.line[self.pos : self.pos + 2]
        if two in _UNSUPPORTED or c in "&<>":
            raise LexError(_UNSUPPORTED[two if two in _UNSUPPORTED else c], col)
        if c in ";\n":
            # A newline separates like ';' but an empty line between two is fine.
            self.end_pipeline(";" if c == ";" else "end", col)
            self.pos += 1
            return
        self._end_command("|", col)
        forced = two == "|!"
        self.pos += 2 if forced else 1
        self.scan.forced, self.scan.pipe_col = forced, col

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> _Scan:
        line = self.line
        while self.pos < len(line):
            c = line[self.pos]
            if c in BLANKS or c == "\r":
                self._end_word()
                self.pos += 1
            elif c == "#" and self.scan.word is None:
                self.scan.comment = True
                self.pos = len(line)  # a comment: the rest of the line
            elif c in OPERATORS:
                self._operator(c)
            elif c in "'\"":
                self._quoted(c)
            elif c == "\\":
                if self.pos + 1 >= len(line):
                    if self.partial:
                        self._word()
                        self.pos += 1
                        continue
                    raise LexError(
                        "a backslash at the end of the line escapes nothing", self.pos + 1
                    )
                self._word().text.append(line[self.pos + 1])
                self.pos += 2
            else:
                self._word().text.append(c)
                self.pos += 1
        return self.scan


def parse(line: str) -> list[Pipeline]:
    """Split ``line`` into pipelines (see the module docstring); raise :class:`LexError`.

    A blank or comment-only line gives ``[]``.
    """
    lexer = _Lexer(line)
    scan = lexer.run()
    lexer.end_pipeline("end", len(line) + 1)
    return scan.pipelines


@dataclass(frozen=True)
class Partial:
    """The command under the cursor of an unfinished line (for completion).

    ``words`` are the finished words of the current command, ``current`` the unquoted text of
    the word being typed (``""`` after a blank), ``start`` its offset in the line, ``quote``
    the quote left open in it, and ``system`` whether ``|!`` forced the command.
    """

    words: tuple[str, ...]
    current: str
    start: int
    quote: str | None
    system: bool
    in_pipeline: bool


def partial(line: str) -> Partial | None:
    """What is being typed at the end of ``line``; None inside a comment or after an error."""
    lexer = _Lexer(line, partial=True)
    try:
        scan = lexer.run()
    except LexError:
        return None
    if scan.comment:
        return None
    word = scan.word
    in_pipe = bool(scan.stages) or scan.pipe_col is not None
    if word is None:
        return Partial(tuple(scan.argv), "", len(line), None, scan.forced, in_pipe)
    return Partial(
        tuple(scan.argv), "".join(word.text), word.start, word.quote, scan.forced, in_pipe
    )


def quote(word: str) -> str:
    """``word`` quoted so that :func:`parse` reads it back as one word."""
    if word and not any(c in _UNSAFE for c in word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def join(argv: list[str] | tuple[str, ...]) -> str:
    """The inverse of splitting one command: words quoted where needed, joined by spaces."""
    return " ".join(quote(w) for w in argv)
