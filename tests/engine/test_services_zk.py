"""Service discovery end to end: the engine, configured with the test ZooKeeper ensemble,
announces each ready instance as an Aurora serverset member and withdraws it when the
instance turns unhealthy or stops; `mount -t zk` browses what was announced.

Needs the ensemble that tests/run-all.sh starts (DSHELL_TEST_ZK); elsewhere it skips, in CI
a missing ensemble fails.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dshell.testing.fixtures import CliRunner

from conftest import require_service
from dshell_local import control

from .conftest import wait_until
from .test_services import ok, spec, status

pytestmark = pytest.mark.engine

HOSTS = os.environ.get("DSHELL_TEST_ZK", "")


@pytest.fixture
def zk_admin() -> Iterator[Any]:
    require_service(bool(HOSTS), "ZooKeeper ensemble (DSHELL_TEST_ZK, started by run-all.sh)")
    from kazoo.client import KazooClient

    client = KazooClient(hosts=HOSTS)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


def members(admin: Any, path: str) -> list[dict[str, Any]]:
    admin.sync(path)
    if not admin.exists(path):
        return []
    out = []
    from kazoo.exceptions import NoNodeError

    for child in sorted(admin.get_children(path)):
        try:
            data, _stat = admin.get(f"{path}/{child}")
        except NoNodeError:
            continue  # withdrawn between the listing and the read
        out.append(json.loads(data))
    return out


def test_ready_instances_are_announced_and_withdrawn(
    engine_dirs: Path,
    engine_config: Any,
    zk_admin: Any,
    cli: CliRunner,
    tmp_path: Path,
) -> None:
    base = f"/dshell-engine-{uuid.uuid4().hex[:10]}"
    engine_config(f'[zookeeper]\nurl = "zk://{HOSTS}{base}"\nsession_timeout = 10.0\n')
    control.start()
    flag = tmp_path / "sick"
    extra = '[service.announce]\nprimary_port = "http"\n'
    path = spec(tmp_path, instances=2, env={"FAIL_HEALTH": str(flag)}, extra=extra)
    path.write_text(
        path.read_text().replace('name = "web"', 'name = "web"\nrole = "www"\nenvironment = "prod"')
    )
    ok(cli, f"svc deploy -f {path} --timeout 60")
    serverset = f"{base}/www/prod/web"
    got = wait_until(
        lambda: len(members(zk_admin, serverset)) == 2 and members(zk_admin, serverset),
        what="2 members",
    )
    ports = {m["ports"][0]["port"] for m in status(cli, "web")["members"]}  # type: ignore[union-attr]
    assert {m["serviceEndpoint"]["port"] for m in got} == ports  # type: ignore[union-attr]
    assert sorted(m["shard"] for m in got) == [0, 1]  # type: ignore[union-attr]
    assert all(m["status"] == "ALIVE" for m in got)  # type: ignore[union-attr]
    for child in zk_admin.get_children(serverset):
        assert child.startswith("member_")
        assert zk_admin.exists(f"{serverset}/{child}").ephemeralOwner != 0
    # the namespace view of the same tree
    ok(cli, f"mount -t zk zk://{HOSTS}{base} /disco")
    listing = ok(cli, "ls /disco/www/prod/web")
    assert listing.count("member_") == 2
    # unhealthy: withdrawn (max_consecutive_failures 2, then killed and replaced)
    flag.touch()
    # two failed checks, a kill with its grace: allow for a loaded machine
    wait_until(lambda: len(members(zk_admin, serverset)) < 2, timeout=90, what="a withdrawal")
    flag.unlink()
    ok(cli, "svc wait web --healthy --timeout 60")
    wait_until(lambda: len(members(zk_admin, serverset)) == 2, what="the replacement announced")
    ok(cli, "svc stop web --timeout 60")
    wait_until(lambda: members(zk_admin, serverset) == [], what="every member withdrawn")
