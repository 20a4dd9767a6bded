"""The engine config's ``[zookeeper]`` section: parsing and the errors a user sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dshell.errors import ConfigError, ExitCode

from dshell_local import config
from dshell_local.announce import ServerSetAnnouncer, ZkTarget

Writer = Callable[[str], Path]


@pytest.fixture
def write(dshell_dirs: object, tmp_path: Path) -> Writer:
    """Write engine.toml (with private dshell dirs: agents read the state dir's disk)."""

    def put(text: str) -> Path:
        path = tmp_path / "engine.toml"
        path.write_text(text)
        return path

    return put


def test_no_section_means_no_announcer(write: Writer) -> None:
    assert config.load(write("[engine]\nkill_grace = 1.0\n")).zookeeper is None


def test_section_with_inline_credentials(write: Writer) -> None:
    cfg = config.load(
        write(
            '[zookeeper]\nurl = "zk://127.0.0.1:2281,127.0.0.1:2282/aurora"\n'
            'credentials = "svc:pw"\nsession_timeout = 4.5\n'
        )
    ).zookeeper
    assert cfg is not None
    assert cfg.target == ZkTarget("127.0.0.1:2281,127.0.0.1:2282", "/aurora")
    assert cfg.session_timeout == 4.5 and cfg.credentials == "svc:pw"
    assert "pw" not in repr(cfg)  # the secret is never shown
    ann = ServerSetAnnouncer.from_config(cfg)
    assert ann.target == cfg.target and ann.session_timeout == 4.5


def test_credentials_file(write: Writer, tmp_path: Path) -> None:
    secret = tmp_path / "zk-digest"
    secret.write_text("svc:from-file\n")
    cfg = config.load(
        write(f'[zookeeper]\nurl = "zk://h/aurora"\ncredentials_file = "{secret}"\n')
    ).zookeeper
    assert cfg is not None and cfg.credentials == "svc:from-file"
    assert cfg.session_timeout == 10.0 and cfg.target.hosts == "h:2181"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('url = "http://h/aurora"', r"engine\.toml: zookeeper\.url: 'http://h/aurora' is not a"),
        ('url = "zk://h:99999/aurora"', r"zookeeper\.url: .*bad port '99999'"),
        ('url = "zk://h/a"\nsession_timeout = 0', r"zookeeper\.session_timeout must be"),
        ('url = "zk://h/a"\nsession_timeout = nan', r"zookeeper\.session_timeout must be"),
        ('url = "zk://h/a"\ncredentials = "nocolon"', r"zookeeper\.credentials: expected user"),
        (
            'url = "zk://h/a"\ncredentials = "a:b"\ncredentials_file = "/x"',
            "set credentials or credentials_file, not both",
        ),
        (
            'url = "zk://h/a"\ncredentials_file = "/no/such/file"',
            r"zookeeper\.credentials_file '/no/such/file': No such file",
        ),
        ('url = "zk://h/a"\ntimeout = 3', "timeout"),  # unknown field
        ("session_timeout = 3.0", "url"),  # required field
    ],
)
def test_errors_name_the_field(write: Writer, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        config.load(write(f"[zookeeper]\n{body}\n"))
    assert info.value.code == ExitCode.CONFIG


def test_a_bad_credentials_file_never_shows_the_secret(write: Writer, tmp_path: Path) -> None:
    secret = tmp_path / "zk-digest"
    secret.write_text("only-a-password-no-user\n")
    with pytest.raises(ConfigError, match=r"zookeeper\.credentials_file: expected") as info:
        config.load(write(f'[zookeeper]\nurl = "zk://h/a"\ncredentials_file = "{secret}"\n'))
    assert "only-a-password" not in str(info.value)
