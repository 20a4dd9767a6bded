"""The fish completion script, generated from the command-tree spec.

One function, ``__dshell_complete``, reads the command line (``commandline -opc``), works out
what the current token is with the same rules as the bash/zsh scanner, and prints candidates
(``value<TAB>description``); fish filters them by what is typed.
"""

from __future__ import annotations

from .posix import value_entries
from .tree import LIVE_KINDS, Node

HEADER = """\
# fish completion for dshell. Generated from the command tree by
#   python -m dshell.completion --write completions/
# Do not edit: regenerate. Install: copy to ~/.config/fish/completions/dshell.fish, or
# `dshell completion fish | source`. Live values (task ids, services, agents, namespace
# paths) come from `dshell __complete KIND PREFIX`, which answers within about a second.
"""

DRIVER = """
function __dshell_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -e words[1]
    __dshell_node ''
    set -l path ''
    set -l npos 0
    set -l expect ''
    set -l dashdash 0
    for w in $words
        if test -n "$expect"
            set expect ''
            continue
        end
        if test $dashdash = 0
            if test "$w" = '--'
                set dashdash 1
                continue
            end
            if string match -q -- '-?*' $w
                contains -- $w $__dshell_vopts; and set expect $w
                continue
            end
        end
        if test -n "$__dshell_subs"; and test $npos = 0
            contains -- $w $__dshell_subs; or return
            set path (string trim -- "$path $w")
            __dshell_node $path
            continue
        end
        set npos (math $npos + 1)
        test $__dshell_inter = 0; and set dashdash 1
    end
    set -l inline ''
    set -g __dshell_kind
    if test -n "$expect"
        __dshell_value $path $expect
    else if test $dashdash = 0; and string match -q -- '--*=*' $cur
        set -l opt (string split -m 1 -- '=' $cur)[1]
        set inline "$opt="
        set cur (string split -m 1 -- '=' $cur)[2]
        __dshell_value $path $opt
    else if test $dashdash = 0; and string match -q -- '-*' $cur
        printf '%s\\n' $__dshell_opts
        return
    else if test -n "$__dshell_subs"; and test $npos = 0
        printf '%s\\n' $__dshell_descs
        return
    else
        __dshell_value $path "@$npos"
    end
    switch "$__dshell_kind[1]"
        case choice
            printf "$inline%s\\n" $__dshell_kind[2..-1]
        case verb
            __dshell_node ''
            printf '%s\\n' $__dshell_descs
        case file command
            __fish_complete_path $cur
        case LIVE
            for c in (command dshell __complete $__dshell_kind[1] "$cur" 2>/dev/null)
                printf '%s%s\\n' $inline $c
            end
    end
end

complete -c dshell -f -a '(__dshell_complete)'
"""


def fq(text: str) -> str:
    """A fish single-quoted string."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _node_function(tree: Node) -> str:
    lines = [
        "",
        "# The command at PATH: its sub-verbs (with descriptions), options, value options.",
        "function __dshell_node",
        "    set -g __dshell_subs",
        "    set -g __dshell_descs",
        "    set -g __dshell_opts",
        "    set -g __dshell_vopts",
        "    set -g __dshell_inter 1",
        '    switch "$argv"',
    ]
    for node in tree.walk():
        lines.append(f"        case {fq(' '.join(node.path))}")
        if node.subs:
            lines.append(
                "            set -g __dshell_subs " + " ".join(fq(s.name) for s in node.subs)
            )
            descs = " ".join(fq(f"{s.name}\t{s.help}") for s in node.subs)
            lines.append(f"            set -g __dshell_descs {descs}")
        opts = [n for o in node.opts for n in o.names]
        lines.append("            set -g __dshell_opts " + " ".join(fq(n) for n in opts))
        vopts = [n for o in node.opts if o.kind is not None for n in o.names]
        if vopts:
            lines.append("            set -g __dshell_vopts " + " ".join(fq(n) for n in vopts))
        if not node.interspersed:
            lines.append("            set -g __dshell_inter 0")
    lines += ["        case '*'", "            return 1", "    end", "end"]
    return "\n".join(lines) + "\n"


def _value_function(tree: Node) -> str:
    lines = [
        "",
        "# The kind of the value of an option or of positional argument @N of PATH.",
        "function __dshell_value",
        '    switch "$argv[1]|$argv[2]"',
    ]
    for keys, spec in value_entries(tree):
        # In a fish `case`, `*` is a wildcard even inside quotes.
        lines.append("        case " + " ".join(fq(k) for k in keys))
        lines.append("            set -g __dshell_kind " + " ".join(fq(w) for w in spec.split()))
    lines += ["    end", "end"]
    return "\n".join(lines) + "\n"


def fish(tree: Node) -> str:
    """The fish script."""
    driver = DRIVER.replace("case LIVE", "case " + " ".join(LIVE_KINDS))
    return HEADER + _node_function(tree) + _value_function(tree) + driver
