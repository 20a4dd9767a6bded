"""``python -m dshell.completion --write DIR``: regenerate the committed completion scripts.

Also ``python -m dshell.completion SHELL`` (print one script) and
``python -m dshell.completion __complete KIND PREFIX`` (the live entry, as ``dshell`` runs it).
"""

from __future__ import annotations

import sys

from . import FILES, complete_main, script, write


def main(argv: list[str]) -> int:
    if argv[:1] == ["__complete"]:
        return complete_main(argv[1:])
    if len(argv) == 2 and argv[0] == "--write":
        for path in write(argv[1]):
            sys.stdout.write(f"wrote {path}\n")
        return 0
    if len(argv) == 1 and argv[0] in FILES:
        sys.stdout.write(script(argv[0]))
        return 0
    sys.stderr.write(
        "usage: python -m dshell.completion --write DIR | SHELL | __complete KIND [PREFIX]\n"
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
