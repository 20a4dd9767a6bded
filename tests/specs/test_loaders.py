"""Detection, the front door, exports and round trips, templates, and loader details."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from dshell.errors import UsageError
from dshell.specs import detect, load_file, load_text
from dshell.specs.export import dump_toml, full_dict, marathon_id, to_marathon, to_native
from dshell.specs.model import ServiceSpec
from dshell.specs.templates import port_names, render_templates

from .helpers import DATA, OPTIONS, need_pystachio


def _load(name: str):  # type: ignore[no-untyped-def]
    need_pystachio(name)
    return load_file(str(DATA / name), **OPTIONS.get(name, {}))  # type: ignore[arg-type]


# ---- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ('{"id": "/a", "cmd": "x"}', "a.json", ("marathon", "json")),
        ('{"id": "/g", "apps": []}', "g.json", ("marathon", "json")),
        ('{"groups": []}', "g.json", ("marathon", "json")),
        (
            '{"name": "j", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT1H"}',
            "j.json",
            ("chronos", "json"),
        ),
        ('{"name": "j", "command": "x", "parents": ["a"]}', "j.json", ("chronos", "json")),
        ('{"id": "j", "run": {"cmd": "x"}}', "j.json", ("metronome", "json")),
        ('{"service": {"name": "s"}}', "s.json", ("native", "json")),
        ("service:\n  name: s\n", "s.yml", ("native", "yaml")),
        ("id: /a\ncmd: x\n", "a.yaml", ("marathon", "yaml")),
        ('[service]\nname = "s"\n', "s.toml", ("native", "toml")),
        ("jobs = []\n", "x.aurora", ("aurora", "aurora")),
        ("jobs = []\n", "x.py", ("aurora", "aurora")),
        ('[[service]]\nname = "s"\n', "-", ("native", "toml")),
        ('{"id": "/a", "cmd": "x"}', "<stdin>", ("marathon", "json")),
        ("jobs = [Service(name='x')]\n", "<stdin>", ("aurora", "aurora")),
    ],
)
def test_detect(text: str, name: str, expected: tuple[str, str]) -> None:
    assert detect(text, name) == expected


def test_undetectable_content_asks_for_format() -> None:
    with pytest.raises(UsageError, match="give --format"):
        load_text('{"hello": 1}', "x.json")


def test_format_override() -> None:
    loaded = load_text('{"id": "/a", "cmd": "x"}', "spec.txt", fmt="marathon")
    assert loaded.format == "marathon"
    with pytest.raises(UsageError, match="unknown spec format 'kubernetes'"):
        load_text("{}", "x.json", fmt="kubernetes")


def test_stdin_dash() -> None:
    loaded = load_file("-", stdin=io.StringIO('[service]\nname = "s"\nshell = "sleep 1"\n'))
    assert loaded.source == "<stdin>" and loaded.services[0].command == ["sleep 1"]
    assert load_file("-", stdin='{"id": "/a", "cmd": "x"}').format == "marathon"


def test_missing_file_is_a_usage_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="cannot read spec"):
        load_file(str(tmp_path / "nope.toml"))
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"name = '\xe9'\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_file(str(bad))


# ---- export and round trips -----------------------------------------------------------------


def test_aurora_to_marathon_round_trip() -> None:
    for name in ("hello_world.aurora", "profiles.aurora"):
        original = _load(name).services[0]
        again = load_text(json.dumps(to_marathon(original)), "app.json").services[0]
        a, b = full_dict(original), full_dict(again)
        assert b.pop("name") == marathon_id(a.pop("name"))
        assert a == b, name


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir()))
def test_native_round_trip(name: str) -> None:
    loaded = _load(name)
    again = load_text(dump_toml(loaded), "again.toml")
    for field in ("services", "groups", "jobs"):
        assert full_dict(getattr(again, field)) == full_dict(getattr(loaded, field)), field


@pytest.mark.parametrize(
    "name",
    ["product-group.json", "constrained-app.json", "resident-db.json", "web.toml", "stack.toml"],
)
def test_marathon_round_trip(name: str) -> None:
    loaded = _load(name)
    for spec in [*loaded.services, *loaded.groups]:
        again = load_text(json.dumps(to_marathon(spec)), "again.json")
        got = again.services or again.groups
        assert full_dict(got[0]) == full_dict(spec)


def test_to_native_shapes() -> None:
    svc = ServiceSpec(name="s", command=["sleep 1"], shell=True)
    assert to_native(svc) == {"service": {"name": "s", "shell": "sleep 1"}}
    assert marathon_id("hello_World/x y") == "/hello-world/x-y"


# ---- loader details ---------------------------------------------------------------------------


def test_unknown_marathon_field_is_a_warning_with_its_json_path() -> None:
    loaded = load_text('{"id": "/a",\n "cmd": "x",\n "colour": 1}', "a.json")
    assert loaded.warnings == ["a.json:3: $.colour: unknown field 'colour' (ignored)"]


def test_marathon_defaults() -> None:
    svc = load_text('{"id": "/a", "cmd": "x", "healthChecks": [{}]}', "a.json").services[0]
    assert [p.number for p in svc.ports] == [0]  # one dynamic port, as Marathon does
    hc = svc.health_checks[0]
    assert (
        hc.protocol,
        hc.port_index,
        hc.grace_period,
        hc.interval,
        hc.timeout,
        hc.max_consecutive_failures,
    ) == ("HTTP", 0, 300.0, 60.0, 20.0, 3)
    assert (svc.backoff.seconds, svc.backoff.factor, svc.backoff.max_launch_delay) == (
        1.0,
        1.15,
        3600.0,
    )


def test_native_defaults_follow_mesos() -> None:
    svc = load_text(
        '[service]\nname = "a"\nshell = "x"\nports = ["http"]\n[[service.health_checks]]\n',
        "a.toml",
    ).services[0]
    hc = svc.health_checks[0]
    assert (
        hc.port_name,
        hc.delay,
        hc.interval,
        hc.timeout,
        hc.max_consecutive_failures,
        hc.grace_period,
    ) == ("http", 15.0, 10.0, 20.0, 3, 10.0)
    assert svc.backoff.max_launch_delay == 300.0


def test_resident_defaults() -> None:
    svc = _load("resident-db.json").services[0]
    assert (
        svc.upgrade_strategy.minimum_health_capacity,
        svc.upgrade_strategy.maximum_over_capacity,
    ) == (0.5, 0.0)
    assert svc.unreachable_strategy.disabled


def test_gpus_need_allow_gpus() -> None:
    text = '{"id": "/a", "cmd": "x", "gpus": 2}'
    with pytest.raises(UsageError, match=r"\$.gpus: asks for 2 GPU"):
        load_text(text, "a.json")
    assert load_text(text, "a.json", allow_gpus=True).services[0].resources.gpus == 2


def test_standalone_dependency_outside_the_file_is_a_warning() -> None:
    loaded = load_text('{"id": "/web", "cmd": "x", "dependencies": ["/db"]}', "a.json")
    assert loaded.warnings == [
        "a.json:1: $.dependencies[0]: dependency '/db' is not in this"
        " file; it must already be deployed"
    ]


def test_bind_on_a_non_aurora_file_warns() -> None:
    loaded = load_text('{"id": "/a", "cmd": "x"}', "a.json", bind={"a": "b"})
    assert loaded.warnings[-1].endswith("--bind is only used by Aurora files (ignored)")


def test_loaders_do_not_import_heavy_modules() -> None:
    probe = (
        "import sys, dshell.specs as s\n"
        "s.load_text('[service]\\nname = \"a\"\\nshell = \"x\"\\n', 'a.toml')\n"
        's.load_text(\'{"id": "/a", "cmd": "x"}\', \'a.json\')\n'
        "print(sorted(m for m in ('rich', 'prompt_toolkit', 'asyncio', 'pystachio')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- templates --------------------------------------------------------------------------------


def test_render_templates() -> None:
    text = (
        "serve {{thermos.ports[http]}} {{ thermos.ports[admin] }} #{{mesos.instance}}"
        " on {{mesos.hostname}} as {{thermos.task_id}} {{other}}"
    )
    assert (
        render_templates(text, {"http": 31000, "admin": 31001}, 2, "node1", "t-7")
        == "serve 31000 31001 #2 on node1 as t-7 {{other}}"
    )
    with pytest.raises(UsageError, match="unknown port"):
        render_templates("{{thermos.ports[nope]}}", {}, 0, "h", "t")


def test_port_names_follow_the_announcer_portmap() -> None:
    svc = _load("hello_world.aurora").services[0]
    assert port_names(svc, {"http": 31000, "health": 31001}) == {
        "http": 31000,
        "health": 31001,
        "aurora": 31000,
    }


def test_the_side_by_side_examples_describe_the_same_service() -> None:
    specs = [_load(f"side-by-side.{ext}").services[0] for ext in ("toml", "json", "aurora")]
    for svc in specs:
        hc = svc.health_checks[0]
        assert (
            svc.instances,
            svc.role,
            svc.resources.cpus,
            svc.resources.mem,
            svc.resources.disk,
        ) == (2, "www-data", 0.5, 256.0, 128.0)
        assert [p.name for p in svc.ports] == ["http"]
        assert [(c.field, c.operator, c.value) for c in svc.constraints] == [
            ("hostname", "MAX_PER", "1")
        ]
        assert (
            hc.protocol,
            hc.path,
            hc.port_name,
            hc.grace_period,
            hc.interval,
            hc.timeout,
            hc.max_consecutive_failures,
        ) == ("HTTP", "/health", "http", 15, 10, 5, 3)
        assert (
            svc.upgrade_strategy.minimum_health_capacity,
            svc.upgrade_strategy.maximum_over_capacity,
        ) == (0.5, 0.0)
        assert svc.kill_grace_period == 30
