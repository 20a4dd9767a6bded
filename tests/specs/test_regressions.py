"""Regression tests for the loader bugs test_properties.py (and probing around them) found.

Each input used to end in a traceback (ValueError, OverflowError, RecursionError) or in an error
that named no line; now it is a SpecError naming the file, the line or field, and what was
expected.
"""

from __future__ import annotations

import re

import pytest
from dshell.specs import LoadedSpec, SpecError, load_text

from .helpers import need_pystachio

LONG = "1" + "0" * 5000  # longer than Python reads by default (4300 digits)
BIG = "1" + "0" * 400  # an integer no float holds


def _error(text: str, name: str, **opts: object) -> str:
    with pytest.raises(SpecError) as info:
        load_text(text, name, **opts)  # type: ignore[arg-type]
    for issue in info.value.errors:
        assert issue.source == name
        assert issue.line is not None or issue.path, issue
    return str(info.value)


# ---- syntax: numbers too long, characters YAML refuses, ends of documents ----------------------


def test_json_integer_too_long() -> None:  # was: ValueError from json.loads
    text = '{\n  "id": "/a",\n  "cmd": "x",\n  "instances": ' + LONG + "\n}\n"
    assert _error(text, "a.json") == "a.json:4: invalid JSON: a number with more than 4300 digits"


def test_toml_integer_too_long() -> None:  # was: ValueError from tomllib
    text = f'[service]\nname = "a"\nshell = "x"\ninstances = {LONG}\n'
    assert _error(text, "a.toml") == "a.toml:4: invalid TOML: a number with more than 4300 digits"


def test_yaml_integer_too_long() -> None:  # was: no line, and Python's advice on int limits
    text = f"service:\n  name: a\n  shell: x\n  instances: {LONG}\n"
    assert _error(text, "a.yaml") == (
        "a.yaml:4: invalid YAML: '1000000000000000000000000000000000000...':"
        " a number with more than 4300 digits"
    )


def test_yaml_bad_date() -> None:  # was: "a.yaml: invalid YAML: month must be in 1..12"
    text = "id: /a\ncmd: x\nlabels:\n  since: 2026-13-01\n"
    assert _error(text, "a.yaml") == "a.yaml:4: invalid YAML: '2026-13-01': month must be in 1..12"


def test_yaml_unacceptable_character() -> None:  # was: no line, 'position 22' in the message
    text = "service:\n  name: a\n  shell: \x1fx\n"
    assert _error(text, "a.yaml") == (
        "a.yaml:3: invalid YAML: unacceptable character #x001f: special characters are not allowed"
    )


def test_toml_error_at_end_of_document() -> None:  # was: no line
    text = '[service]\nname = "a"\nshell'
    assert _error(text, "a.toml") == (
        "a.toml:3: invalid TOML: Expected '=' after a key in a key/value pair (at end of document)"
    )


# ---- YAML keys that are not strings ------------------------------------------------------------


def test_yaml_label_keys_that_are_not_strings() -> None:
    # was: AttributeError in render_path (a null key), or a spec with an integer label key that
    # fails msgspec's own validation
    text = "id: a\nrun: {cmd: x, cpus: 1, mem: 1, disk: 0}\nlabels:\n  0: x\n  null: y\n"
    assert _error(text, "a.yaml") == (
        "a.yaml:3: $.labels.None: expected a string key, got null\n"  # the line of labels
        "a.yaml:4: $.labels['0']: expected a string key, got an integer (0)"
    )


def test_yaml_marathon_env_key_that_is_not_a_string() -> None:  # was: accepted, as an int key
    text = "id: /a\ncmd: x\nenv:\n  1: x\n"
    assert _error(text, "a.yaml") == (
        "a.yaml:4: $.env['1']: expected a string key, got an integer (1)"
    )


# ---- numbers beyond a float ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # Marathon
            '{"id": "/a", "cmd": "x", "cpus": ' + BIG + "}",
            "a.json:1: $.cpus: expected a number of at most 1.8e+308,"
            " got an integer (1000000000000000000000000000000000000...)",
        ),
        (  # Chronos
            '{"name": "a", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT1H",'
            ' "retries": ' + BIG + "}",
            "a.json:1: $.retries: expected an integer of at most 1.8e+308,"
            " got an integer (1000000000000000000000000000000000000...)",
        ),
        (  # Metronome
            '{"id": "a", "run": {"cmd": "x", "cpus": 1, "mem": 1, "disk": ' + BIG + "}}",
            "a.json:1: $.run.disk: expected a number of at most 1.8e+308,"
            " got an integer (1000000000000000000000000000000000000...)",
        ),
    ],
    ids=["marathon", "chronos", "metronome"],
)
def test_integer_beyond_a_float(text: str, expected: str) -> None:  # was: OverflowError
    assert _error(text, "a.json") == expected


def test_not_finite_number_message() -> None:  # was: "expected a number, got a number (inf)"
    text = '{"id": "/a", "cmd": "x", "mem": 1e999}'
    assert _error(text, "a.json") == (
        "a.json:1: $.mem: expected a finite number, got a number (inf)"
    )


def test_native_health_check_failures_beyond_a_float() -> None:  # was: OverflowError
    text = (
        '[service]\nname = "a"\nshell = "x"\nports = ["http"]\n'
        f"[[service.health_checks]]\nmax_consecutive_failures = {BIG}\n"
    )
    loaded = load_text(text, "a.toml")
    assert isinstance(loaded, LoadedSpec)
    assert loaded.services[0].health_checks[0].max_consecutive_failures == int(BIG)
    text = text.replace(BIG, "-" + BIG)
    assert "max_consecutive_failures: must be 0 or more" in _error(text, "a.toml")


# ---- Marathon's dshell.extra label -------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"instances": ' + LONG + "}", "a number is too long"),
    ],
    ids=["deep", "long-number"],
)
def test_extra_label_that_json_cannot_read(extra: str, why: str) -> None:
    # was: RecursionError / ValueError from json.loads
    text = (
        '{"id": "/a", "cmd": "x", "labels": {"dshell.extra": "' + extra.replace('"', '\\"') + '"}}'
    )
    assert _error(text, "a.json") == (
        f"a.json:1: $.labels['dshell.extra']: expected a JSON object of dshell fields: {why}"
    )


# ---- schedules -----------------------------------------------------------------------------


def test_time_zone_of_a_thousand_parts() -> None:  # was: RecursionError inside zoneinfo
    zone = "a/" * 1000 + "b"
    text = (
        '{"name": "a", "command": "x", "schedule": "R/2026-01-01T00:00:00Z/PT1H",'
        f' "scheduleTimeZone": "{zone}"}}'
    )
    shown = "a/" * 18 + "a..."
    assert _error(text, "a.json") == (
        f"a.json:1: $.scheduleTimeZone: unknown time zone '{shown}':"
        " expected an IANA name like Europe/Paris or UTC"
    )


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("²3 * * * *", "bad minute '²3' (expected 0-59)"),  # was: ValueError from int()
        ("1-²3 * * * *", "bad minute '1-²3' (expected 0-59)"),  # was: ValueError
        ("*/²3 * * * *", "bad step '²3' in the minute field"),  # was: ValueError
        ("*/ * * * *", "bad step '' in the minute field"),  # was: accepted
    ],
    ids=["superscript", "range", "step", "empty-step"],
)
def test_cron_fields_of_odd_digits(cron: str, why: str) -> None:
    text = f'[job]\nname = "a"\nshell = "x"\n\n[[job.schedules]]\ncron = "{cron}"\n'
    assert _error(text, "a.toml") == (
        f"a.toml:6: job.schedules[0].cron: invalid cron expression {cron!r}: {why}"
    )


# ---- Aurora --------------------------------------------------------------------------------

_AURORA = """\
web = Process(name = 'web', cmdline = 'serve {{thermos.ports[http]}}')
jobs = [
  Service(
    cluster = 'local', role = 'www-data', environment = 'prod', name = 'web',
    task = Task(processes = [web], resources = Resources(cpu = 0.5, ram = 64*MB, disk = 64*MB)),
    announce = Announcer(primary_port = 'http', portmap = {'health': 'http'}),
  ),
]
"""


def test_aurora_static_port_of_odd_digits() -> None:  # was: ValueError from int('²')
    need_pystachio()
    text = _AURORA.replace("{'health': 'http'}", "{'health': '²'}")
    assert "invalid port name '²'" in _error(text, "a.aurora")


def test_aurora_integer_beyond_a_float() -> None:  # was: OverflowError
    need_pystachio()
    text = _AURORA.replace("ram = 64*MB", "ram = 10**400")
    assert _error(text, "a.aurora").startswith(
        "a.aurora:5: jobs[0].task.resources.ram: expected a number of at most 1.8e+308,"
    )


def test_aurora_nul_byte_has_a_line() -> None:  # was: no line
    need_pystachio()
    text = _AURORA.replace("jobs = [", "jobs = [\x00")
    assert _error(text, "a.aurora") == (
        "a.aurora:2: syntax error: source code string cannot contain null bytes"
    )


def test_aurora_two_jobs_of_one_name_have_a_line() -> None:  # was: no line
    need_pystachio()
    text = _AURORA + "jobs = jobs + jobs\n"
    # The line of the job's name (the first `name = 'web'` of the file).
    assert re.match(r"a\.aurora:\d+: several jobs are named 'web'", _error(text, "a.aurora"))


def test_aurora_unbound_default_template_has_a_line() -> None:  # was: no line
    # A Process without a name leaves pystachio's own {{processes[0].name}} (the Task's default
    # name) unbound: a template the file does not contain, so the job's line is given.
    need_pystachio()
    text = _AURORA.replace("Process(name = 'web', ", "Process(")
    assert _error(text, "a.aurora") == (
        "a.aurora:3: unbound template {{processes[0].name}}:"
        " give it a value with --bind processes[0].name=VALUE"
    )


# ---- sizes no engine should plan ---------------------------------------------------------------


def test_absurd_instance_counts_are_refused_with_a_readable_number() -> None:
    # was: accepted, and the engine then tried to plan 1e300 instances (it stopped answering)
    text = '{\n  "id": "/a",\n  "cmd": "x",\n  "instances": 1e300\n}\n'
    assert _error(text, "a.json") == "a.json:4: $.instances: must be 0 to 10,000, got 1e+300"
    text = '[job]\nname = "a"\nshell = "x"\ninstances = 10001\n'
    assert _error(text, "a.toml") == "a.toml:4: job.instances: must be 0 to 10,000, got 10,001"


def test_aurora_absurd_instance_count() -> None:
    need_pystachio()
    text = _AURORA.replace("prod', name = 'web',", "prod', name = 'web', instances = 10**300,")
    assert re.search(
        r"a\.aurora:\d+: jobs\[0\]\.instances: must be 0 to 10,000, got 1e\+300",
        _error(text, "a.aurora"),
    )


def test_schedule_shorthand_errors_name_its_own_line() -> None:
    # was: line 1 and job[0].schedules[0].cron, a table the file does not have
    text = '[[job]]\nname = "a"\nshell = "x"\nschedule = "*/5 * * *"\n'
    assert _error(text, "a.toml").startswith(
        "a.toml:4: job[0].schedule: invalid cron expression '*/5 * * *': expected 5 fields"
    )
