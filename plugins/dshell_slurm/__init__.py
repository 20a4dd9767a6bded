"""dshell's Slurm backend: ``mount -t slurm localhost /hpc`` or ``ssh://user@login[:port]``.

Registered as the entry point ``slurm = "dshell_slurm.backend:SlurmBackend"`` in the group
``dshell.backends``. Importing this package imports nothing heavy (paramiko only when an
``ssh://`` mount is used): it carries the backend's early-listing hook, which ``dshell ps``
calls before the backend is imported (see "Early listings" in :mod:`dshell.backend`).
"""

from .early import prefetch_listing

__all__ = ["prefetch_listing"]
