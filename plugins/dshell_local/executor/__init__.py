"""The per-host executor of the embedded engine: one small process that spawns, supervises and
reaps every task, and outlives the engine (``python -m dshell_local.executor``).

Modules: ``protocol`` (the wire format, documented there), ``client`` (the engine's asyncio
client), ``sync_client`` (a blocking client for tests and tools), and the daemon itself:
``daemon`` (setup), ``server`` (socket, dispatch), ``tasks`` (the task table), ``spawner``,
``cgroups``/``cgdiscover``, ``killer``, ``checkrun`` (COMMAND health checks), ``adopt``
(recovery), ``journal``, ``status``, ``ptyio``.
"""

VERSION = "0.1.0"
