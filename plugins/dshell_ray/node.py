"""``python -m dshell_ray.node IP [ray start options…]``: one node of a launched Ray cluster.

Runs where the cluster runs (inside a task of the host cluster), so it imports ``ray``; the
CLI never imports this module.

Ray binds its gRPC servers (GCS, raylet, object manager, dashboard agent) to loopback only
when the node's address is loopback, and its Python servers follow the same rule; but on
Linux ``ray start`` rewrites a loopback address into the machine's outbound address, and
refuses a worker node when told not to (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). This
wrapper makes that one decision for this process: the node's address is ``IP`` (also what
``ray start`` uses to reach the head), and worker nodes may join. The processes it starts
inherit ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` from the task, so the drivers and workers of
jobs resolve the cluster's loopback address as loopback too.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m dshell_ray.node IP [ray start options…]")
    ip, rest = argv[0], argv[1:]
    from ray._private import ray_constants, services
    from ray.scripts.scripts import main as ray_main

    ray_constants.ENABLE_RAY_CLUSTER = True  # this process only: a worker node may join
    services.node_ip_address_from_perspective = lambda address=None: ip
    sys.argv = ["ray", "start", f"--node-ip-address={ip}", *rest]
    ray_main()


if __name__ == "__main__":
    main(sys.argv[1:])
