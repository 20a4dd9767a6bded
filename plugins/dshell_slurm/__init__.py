"""dshell's Slurm backend: ``mount -t slurm localhost /hpc`` or ``ssh://user@login[:port]``.

Registered as the entry point ``slurm = "dshell_slurm.backend:SlurmBackend"`` in the group
``dshell.backends``. Importing this package imports nothing heavy (paramiko only when an
``ssh://`` mount is used).
"""
