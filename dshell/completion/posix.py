"""bash and zsh completion scripts, generated from the command-tree spec.

Both shells share the generated data functions and the scanner below (written in the common
subset of bash and zsh); each adds a small driver that talks to its completion system.
"""

from __future__ import annotations

from .tree import LIVE_KINDS, Node

HEADER = """\
# {name} completion for dshell. Generated from the command tree by
#   python -m dshell.completion --write completions/
# Do not edit: regenerate. {install}
# Verbs, sub-verbs and options are below; live values (task ids, services, agents, namespace
# paths) come from `dshell __complete KIND PREFIX`, which answers within about a second.
"""

INSTALL = {
    "bash": "Install: `source <(dshell completion bash)` in ~/.bashrc, or copy\n"
    "# this file to ~/.local/share/bash-completion/completions/dshell.",
    "zsh": "Install: copy this file as _dshell into a directory on $fpath\n"
    "# (before compinit), or `source <(dshell completion zsh)` after compinit.",
}

SCANNER = """
# Reads the words between `dshell` and the cursor: sets _dshell_path (the verb path),
# _dshell_npos (positional arguments seen), _dshell_expect (an option waiting for its value)
# and _dshell_dashdash (options have ended). Fails on an unknown verb.
_dshell_scan() {
    _dshell_path= _dshell_npos=0 _dshell_expect= _dshell_dashdash=0
    _dshell_node ""
    local w
    for w in "$@"; do
        if [ -n "$_dshell_expect" ]; then
            [ "$w" = "=" ] && continue  # bash splits --option=value at the '='
            _dshell_expect=
            continue
        fi
        if [ "$_dshell_dashdash" = 0 ]; then
            case "$w" in
                --) _dshell_dashdash=1; continue ;;
                -?*)
                    case " $_dshell_vopts " in *" $w "*) _dshell_expect=$w ;; esac
                    continue ;;
            esac
        fi
        if [ -n "$_dshell_subs" ] && [ "$_dshell_npos" = 0 ]; then
            case " $_dshell_subs " in
                *" $w "*)
                    _dshell_path=${_dshell_path:+$_dshell_path }$w
                    _dshell_node "$_dshell_path"
                    continue ;;
                *) return 1 ;;
            esac
        fi
        _dshell_npos=$((_dshell_npos + 1))
        [ "$_dshell_inter" = 0 ] && _dshell_dashdash=1
    done
    return 0
}

# What the word at the cursor ($1) is: sets _dshell_kind to sub, option, "choice A B…", file,
# command, verb, a live kind, or nothing.
_dshell_want() {
    _dshell_kind=
    if [ -n "$_dshell_expect" ]; then
        _dshell_value "$_dshell_path" "$_dshell_expect"
        return 0
    fi
    if [ "$_dshell_dashdash" = 0 ]; then
        case "$1" in -*) _dshell_kind=option; return 0 ;; esac
    fi
    if [ -n "$_dshell_subs" ] && [ "$_dshell_npos" = 0 ]; then
        _dshell_kind=sub
        return 0
    fi
    _dshell_value "$_dshell_path" "@$_dshell_npos"
}
"""

BASH_DRIVER = """
_dshell() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    COMPREPLY=()
    [ "$cur" = "=" ] && cur=
    _dshell_scan "${COMP_WORDS[@]:1:COMP_CWORD-1}" || return 0
    _dshell_want "$cur"
    case "$_dshell_kind" in
        sub) COMPREPLY=($(compgen -W "$_dshell_subs" -- "$cur")) ;;
        option) COMPREPLY=($(compgen -W "$_dshell_opts" -- "$cur")) ;;
        "choice "*) COMPREPLY=($(compgen -W "${_dshell_kind#choice }" -- "$cur")) ;;
        verb) _dshell_node ""; COMPREPLY=($(compgen -W "$_dshell_subs" -- "$cur")) ;;
        file|command)
            compopt -o filenames 2>/dev/null
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        LIVE)
            local IFS=$'\\n'
            COMPREPLY=($(command dshell __complete "$_dshell_kind" "$cur" 2>/dev/null))
            case "${COMPREPLY[*]}" in */|*/$'\\n'*) compopt -o nospace 2>/dev/null ;; esac ;;
    esac
    return 0
}

complete -F _dshell dshell
"""

ZSH_DRIVER = """
_dshell() {
    local cur=${words[CURRENT]} inline= opt
    _dshell_scan "${(@)words[2,CURRENT-1]}" || return 1
    if [[ $_dshell_dashdash == 0 && $cur == --*=* ]]; then
        opt=${cur%%=*}
        inline="$opt="
        cur=${cur#*=}
        _dshell_kind=
        _dshell_value "$_dshell_path" "$opt"
    else
        _dshell_want "$cur"
    fi
    local -a found
    case "$_dshell_kind" in
        sub) _describe -t commands 'dshell command' _dshell_descs ;;
        option) compadd -- ${=_dshell_opts} ;;
        "choice "*) compadd -P "$inline" -- ${=${_dshell_kind#choice }} ;;
        verb) _dshell_node ""; _describe -t commands 'dshell verb' _dshell_descs ;;
        file|command) _files ;;
        LIVE)
            found=(${(f)"$(command dshell __complete $_dshell_kind "$cur" 2>/dev/null)"})
            compadd -P "$inline" -S '' -- ${(M)found:#*/}
            compadd -P "$inline" -- ${found:#*/} ;;
    esac
}

if [ "$funcstack[1]" = "_dshell" ]; then
    _dshell "$@"
else
    compdef _dshell dshell
fi
"""


def sq(text: str) -> str:
    """A POSIX single-quoted string."""
    return "'" + text.replace("'", "'\\''") + "'"


def _colon(name: str) -> str:
    return name.replace(":", "\\:")  # _describe splits "name:description" at the first colon


def node_key(node: Node) -> str:
    return " ".join(node.path)


def node_function(tree: Node) -> str:
    """``_dshell_node PATH``: the sub-verbs, options and value options of one command."""
    lines = [
        "",
        "# The command at PATH ($1): its sub-verbs (and their descriptions), options, options",
        "# that take a value, and whether options may follow arguments.",
        "_dshell_node() {",
        "    _dshell_subs= _dshell_opts= _dshell_vopts= _dshell_inter=1",
        "    _dshell_descs=()",
        '    case "$1" in',
    ]
    for node in tree.walk():
        body = []
        if node.subs:
            body.append(f"_dshell_subs={sq(' '.join(s.name for s in node.subs))}")
            descs = " ".join(sq(_colon(s.name) + ":" + s.help) for s in node.subs)
            body.append(f"_dshell_descs=({descs})")
        body.append(f"_dshell_opts={sq(' '.join(n for o in node.opts for n in o.names))}")
        vopts = " ".join(n for o in node.opts if o.kind is not None for n in o.names)
        if vopts:
            body.append(f"_dshell_vopts={sq(vopts)}")
        if not node.interspersed:
            body.append("_dshell_inter=0")
        lines.append(f"        {sq(node_key(node))})")
        lines += [f"            {b}" for b in body]
        lines.append("            ;;")
    lines += ["        *) return 1 ;;", "    esac", "}"]
    return "\n".join(lines) + "\n"


def value_entries(tree: Node) -> list[tuple[list[str], str]]:
    """(keys, kind spec) for every value in the tree. A key is "PATH|OPTION" or "PATH|@N";
    "PATH|@*" stands for every position from a repeating argument on (listed after the
    fixed ones, so the first matching pattern wins)."""
    out: list[tuple[list[str], str]] = []
    for node in tree.walk():
        key = node_key(node)
        for opt in node.opts:
            if opt.kind not in (None, "value"):
                out.append(([f"{key}|{n}" for n in opt.names], _spec(opt.kind, opt.choices)))
        for i, arg in enumerate(node.args):
            if arg.kind is not None:
                pos = "@*" if arg.repeat else f"@{i}"
                out.append(([f"{key}|{pos}"], _spec(arg.kind, arg.choices)))
    return out


def _spec(kind: str | None, choices: tuple[str, ...]) -> str:
    return "choice " + " ".join(choices) if kind == "choice" else kind or ""


def _case_pattern(key: str) -> str:
    return sq(key[:-1]) + "*" if key.endswith("@*") else sq(key)


def value_function(tree: Node) -> str:
    """``_dshell_value PATH OPTION|@N``: sets ``_dshell_kind`` for that value."""
    lines = [
        "",
        "# The kind of the value of an option ($2) or of positional argument @N of PATH ($1).",
        "_dshell_value() {",
        '    case "$1|$2" in',
    ]
    for keys, spec in value_entries(tree):
        pattern = " | ".join(_case_pattern(k) for k in keys)
        lines.append(f"        {pattern}) _dshell_kind={sq(spec)} ;;")
    lines += ["    esac", "}"]
    return "\n".join(lines) + "\n"


def _live_pattern() -> str:
    return "|".join(LIVE_KINDS)


def bash(tree: Node) -> str:
    """The bash script (``complete -F _dshell dshell``)."""
    head = HEADER.format(name="bash", install=INSTALL["bash"])
    driver = BASH_DRIVER.replace("LIVE)", _live_pattern() + ")")
    return head + node_function(tree) + value_function(tree) + SCANNER + driver


def zsh(tree: Node) -> str:
    """The zsh script (an autoloadable ``_dshell``, also fine to source)."""
    head = "#compdef dshell\n" + HEADER.format(name="zsh", install=INSTALL["zsh"])
    driver = ZSH_DRIVER.replace("LIVE)", _live_pattern() + ")")
    return head + node_function(tree) + value_function(tree) + SCANNER + driver
