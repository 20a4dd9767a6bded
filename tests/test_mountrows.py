"""The mount table: any table dshell saves reads back the same, in the session's reader and in
the fast path's early read (which only hints which listings to start)."""

from __future__ import annotations

from dshell.backend import Mount
from dshell.mountrows import Row, read_rows
from dshell.namespace import parse_table, render_table
from hypothesis import given
from hypothesis import strategies as st

ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def _mounts(text: st.SearchStrategy[str]) -> st.SearchStrategy[list[Mount]]:
    mount = st.builds(
        Mount,
        target=text.map(lambda t: "/" + t),
        type=text.filter(bool),
        source=text,
        options=st.dictionaries(text, text, max_size=3),
    )
    return st.lists(mount, max_size=4)


@given(_mounts(ANY_TEXT))
def test_any_saved_table_reads_back_the_same(mounts: list[Mount]) -> None:
    text = render_table(mounts)  # DEL included: JSON leaves it raw, TOML forbids it raw
    read = parse_table(text, "t")
    assert [m.options for m in read] == [m.options for m in mounts]
    assert [(m.type, m.source) for m in read] == [(m.type, m.source) for m in mounts]
    assert read_rows(text) == [Row(m.target, m.type, m.source, m.options) for m in read]


def test_the_early_read_keeps_the_well_formed_rows() -> None:
    row = '[[mount]]\ntarget = "/hpc"\ntype = "slurm"\n'
    assert read_rows(row) == [Row("/hpc", "slurm", "", {})]
    assert read_rows(row + '[[mount]]\ntype = "x"\n') == [Row("/hpc", "slurm", "", {})]
    assert read_rows('mount = "not a list"\n') == []
    assert read_rows("[[mount]\n") is None  # not TOML: the session reports it


def test_a_del_character_does_not_break_the_table() -> None:
    mounts = [Mount(target="/a\x7f", type="t", source="s\x7f", options={"k\x7f": "v\x7f"})]
    assert parse_table(render_table(mounts), "t") == mounts
