"""dshell's Ray plugin: the ``ray`` backend and the ``ray`` framework kind.

- ``mount -t ray http://127.0.0.1:8265 /ray`` serves a Ray cluster through its dashboard's
  REST API: :class:`dshell_ray.backend.RayBackend` (entry point ``ray`` in ``dshell.backends``);
- ``fw launch ray -o workers=2`` starts a Ray head and workers as services of a host cluster:
  :class:`dshell_ray.fwkind.RayKind` (entry point ``ray`` in ``dshell.frameworks``).

Importing this package imports nothing heavy: the backend uses the standard library only, and
``ray`` itself (``pip install 'dshell[ray]'``) is needed only where the cluster runs.
"""
