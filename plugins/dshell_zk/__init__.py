"""ZooKeeper for dshell: a read-only ``zk`` backend and the serverset helpers the engine uses.

- ``mount -t zk zk://host:2181/aurora /disco`` browses a ZooKeeper tree (Aurora serversets):
  :class:`dshell_zk.backend.ZkBackend`, the entry point ``zk`` in ``dshell.backends``;
- :mod:`dshell_zk.url`: ``zk://`` URLs and digest credentials (no kazoo import);
- :mod:`dshell_zk.serverset`: the member znode naming and JSON of Aurora/Finagle serversets.

Importing this package imports nothing heavy: kazoo only when a ZooKeeper is contacted.
"""
