"""``fw launch ray -o workers=2`` end to end through the CLI: a head and two worker nodes as
tasks of a private embedded engine, mounted at /local/fw/NAME, used, then removed with no
process left. The second (and last) Ray cluster of a test run.

Marked slow: three Ray nodes take 30-90 s to start on a loaded 2-core machine.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from dshell.testing.fixtures import CliRunner, Dirs

from .conftest import _kill, cluster_pids, engine_pids, private_ports, ray_installed

pytestmark = [pytest.mark.slow, pytest.mark.engine, pytest.mark.timeout(600)]


def ok(cli: CliRunner, line: str) -> str:
    res = cli(line)
    assert res.status == 0, f"{line}: {res.status} {res.stderr}"
    return res.stdout


def test_fw_launch_ray_with_two_workers(cli: CliRunner, dshell_dirs: Dirs) -> None:
    ray_installed()
    base = dshell_dirs.runtime / "fw" / "e2e"
    private_ports(dshell_dirs.config)
    try:
        res = cli("fw launch ray --name e2e --on /local --cpus 2 --mem 3G -o workers=2")
        assert res.status == 0, res.stderr
        assert "/local/fw/e2e" in res.stdout + res.stderr
        tasks = json.loads(ok(cli, "ps /local -o json"))
        assert sorted(t["service"] for t in tasks) == ["fw-e2e", "fw-e2e-workers", "fw-e2e-workers"]
        nodes = json.loads(ok(cli, "nodes /local/fw/e2e -o json"))
        assert len(nodes) == 3 and sum(n["attributes"]["head"] == "true" for n in nodes) == 1
        program = "import ray; ray.init(); print(int(ray.cluster_resources()['CPU']))"
        res = cli(["run", "--on", "/local/fw/e2e", "--", "python3", "-c", program])
        assert res.status == 0, res.stderr
        assert res.stdout.splitlines()[-1] == "3"  # one logical CPU per node
        fws = json.loads(ok(cli, "fw ls / -o json"))
        assert [(f["name"], f["kind"], f["state"]) for f in fws] == [("e2e", "ray", "RUNNING")]
        assert cluster_pids(dshell_dirs.state, base)
        ok(cli, "fw rm e2e")
        deadline = time.monotonic() + 30
        while cluster_pids(dshell_dirs.state, base):
            assert time.monotonic() < deadline, "Ray processes outlived fw rm"
            time.sleep(0.2)
        assert not base.exists()
        assert "/local/fw/e2e" not in ok(cli, "mount")
    finally:
        from dshell_local import control

        with contextlib.suppress(Exception):
            control.stop(kill_tasks=True, timeout=60)
        _kill(cluster_pids(dshell_dirs.state, base) + engine_pids(dshell_dirs.runtime))
