"""``/v1/volumes``: list persistent volumes; create, show, umount and remove one.

(:mod:`.routes` registers these and is imported here only when a request comes.)
"""

from __future__ import annotations

from aiohttp import web
from dshell.errors import NotFoundError

from .volumes import VolumeCreate, VolumeName


async def list_volumes(request: web.Request) -> web.Response:
    """``GET /v1/volumes``."""
    from .routes import ctx_of
    from .server import json_response

    return json_response(ctx_of(request).engine.volumes.views())


async def volume_verb(request: web.Request) -> web.Response:
    """``POST /v1/volumes/{create|show|umount|rm}``."""
    from .routes import ctx_of
    from .server import decode_body, json_response

    engine = ctx_of(request).engine
    verb = request.match_info["verb"]
    if verb == "create":
        result = engine.volumes.create(await decode_body(request, VolumeCreate))
    elif verb in ("show", "umount", "rm"):
        req = await decode_body(request, VolumeName)
        if verb == "show":
            result = engine.volumes.view(engine.volumes.get(req.name))
        elif verb == "umount":
            result = engine.volumes.umount(req)
        else:
            result = engine.volumes.remove(req)
    else:
        raise NotFoundError(f"no such verb {verb!r}")
    await engine.store.commit()
    return json_response(result)


def add_routes(app: web.Application, prefix: str) -> None:
    """Register the volume routes under ``prefix`` (``/v1``)."""
    app.router.add_get(f"{prefix}/volumes", list_volumes)
    app.router.add_post(f"{prefix}/volumes/{{verb}}", volume_verb)
