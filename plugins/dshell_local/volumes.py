"""Persistent volumes on the embedded engine (Mesos ``RESERVE`` + ``CREATE``; Marathon's
resident apps).

A volume is a share of one agent's disk, reserved for a role, with a directory under the
engine's state dir (``volumes/<name>/``) that outlives every task using it. One persisted
record per volume (the ``volumes`` table). While it exists its size counts as allocated disk on
its agent (and as reserved for its role in ``nodes``); destroying it gives the disk back.

Tasks name volumes with ``NAME:PATH[:ro]`` (:mod:`dshell.volumes`): such a task is placed only
on the volume's agent (:attr:`TaskRuntime.agent_pin`, honoured by the framework) and must run
under the volume's role. At spawn its argv is wrapped (:mod:`.volmounts`):

- **bind mounts** (root, util-linux ``unshare`` present, and a probe at engine start worked):
  ``unshare --mount --propagation private /bin/sh -c PROLOGUE …`` — in the task's own mount
  namespace the prologue bind-mounts each volume at PATH (read-only with ``:ro``) and
  execs the command: same pid, session and cgroup, nothing visible outside the task.
  Absolute PATHs are allowed (an existing directory, shadowed for this task only).
- **symlinks** (otherwise): the prologue links ``<sandbox>/PATH`` to the volume's directory;
  absolute PATHs and ``:ro`` are refused at submission, with the reason.

The files API (``ls``/``cat /local/tasks/ID/PATH/…``) resolves a volume's PATH into its
directory through the task's volume table, with the sandbox's checks (:mod:`.sandbox`).
The executor protocol is unchanged: the wrapping is done by the engine, so an executor that
outlived an upgrade launches volume tasks as well.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from dshell.errors import ConflictError, NotFoundError, UsageError
from dshell.model import Resources, RunSpec, Volume
from dshell.volumes import (
    RESERVED_PATHS,
    VolumeRef,
    check_name,
    check_size,
    instance_volume_name,
    parse_ref,
)

from .allocator import DEFAULT_ROLE, ROLE_NAME
from .execport import SpawnSpec
from .tasks import TaskRecord, utcnow
from .volmounts import READY_FILE, READY_WAIT, MountMode, probe_mode, wrap_argv

if TYPE_CHECKING:
    from dshell.specs.model import ServiceSpec

    from .engine import Engine

log = logging.getLogger(__name__)


class VolumeRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The persisted record of one volume."""

    name: str
    agent_id: str
    role: str
    size: float  # MiB
    directory: str
    created_at: str
    attached: bool = True
    service: str | None = None  # owned by an instance of this service (destroyed with it)


class VolumeCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/volumes/create``: a new volume, or re-attaching a detached one."""

    name: str
    size: float | None = None  # MiB; required for a new volume
    role: str | None = None
    agent: str | None = None


class VolumeName(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/volumes/{show|umount|rm}``."""

    name: str


class VolumeController:
    """The engine's volumes: records, disk accounting, task claims, spawn wrapping."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = engine.sandboxes.root.parent / "volumes"
        self.records: dict[str, VolumeRecord] = {}
        self.mode = MountMode(bind=False, why="not probed yet")
        self.on_freed: list[Callable[[], object]] = []  # called when a volume's disk is back
        engine.sandboxes.volume_dirs = self.dirs_of

    def load(self) -> None:
        """Read the records, take their disk on their agents, probe the mount mode."""
        self.mode = probe_mode(self.root)
        log.info("volumes: %s", self.mode.describe())
        for data in self.engine.store.volumes():
            rec = msgspec.json.decode(data, type=VolumeRecord)
            if rec.agent_id not in self.engine.allocator.agents:
                log.warning("volume %s: agent %s is no longer configured", rec.name, rec.agent_id)
                self.records[rec.name] = rec  # kept (and listed), unusable until it returns
                continue
            self.records[rec.name] = rec
            self._take(rec)

    # ---- disk accounting ------------------------------------------------------------------

    def _take(self, rec: VolumeRecord) -> None:
        alloc = self.engine.allocator
        agent = alloc.agents[rec.agent_id]
        agent.allocated = agent.allocated + Resources(disk=rec.size)
        per_role = alloc.volume_disk.setdefault(rec.agent_id, {})
        per_role[rec.role] = per_role.get(rec.role, 0.0) + rec.size

    def _give_back(self, rec: VolumeRecord) -> None:
        alloc = self.engine.allocator
        agent = alloc.agents.get(rec.agent_id)
        if agent is None:
            return
        agent.allocated = agent.allocated - Resources(disk=rec.size)
        per_role = alloc.volume_disk.get(rec.agent_id, {})
        left = per_role.get(rec.role, 0.0) - rec.size
        if left > 1e-9:
            per_role[rec.role] = left
        else:
            per_role.pop(rec.role, None)
        if not per_role:
            alloc.volume_disk.pop(rec.agent_id, None)

    def _room(self, agent_id: str, role: str) -> float:
        """Disk a new volume of ``role`` may take on the agent: unreserved and unallocated,
        plus what is left of the role's own reservation there."""
        alloc = self.engine.allocator
        free = alloc.unreserved_free(agent_id).disk
        mine = alloc.reserved_by(agent_id, role).disk - alloc.reserved_used(agent_id, role).disk
        return free + max(0.0, mine)

    # ---- views ----------------------------------------------------------------------------

    def users(self, name: str) -> list[str]:
        """The non-terminal tasks using the volume."""
        return [
            rec.task.id
            for rec in self.engine.records.values()
            if any(parse_ref(ref).name == name for ref in rec.task.volumes)
        ]

    def view(self, rec: VolumeRecord) -> Volume:
        return Volume(
            name=rec.name,
            size=rec.size,
            agent_id=rec.agent_id,
            role=rec.role,
            path=rec.directory,
            tasks=self.users(rec.name),
            attached=rec.attached,
            service=rec.service,
            created_at=rec.created_at,
        )

    def views(self) -> list[Volume]:
        return [self.view(self.records[n]) for n in sorted(self.records)]

    def get(self, name: str) -> VolumeRecord:
        check_name(name, "vol")
        rec = self.records.get(name)
        if rec is None:
            raise NotFoundError(f"no volume {name!r}")
        return rec

    def dirs_of(self, task_id: str) -> dict[str, str]:
        """The task's volumes as the files API sees them: path in the sandbox -> directory
        (an absolute PATH is found under the sandbox without its leading '/')."""
        if not self.records:
            return {}
        try:
            refs = self.engine.get(task_id).volumes
        except NotFoundError:
            return {}
        out = {}
        for text in refs:
            ref = parse_ref(text)
            rec = self.records.get(ref.name)
            if rec is not None:
                out[ref.path.lstrip("/")] = rec.directory
        return out

    # ---- verbs ----------------------------------------------------------------------------

    def _save(self, rec: VolumeRecord | None, name: str) -> None:
        self.engine.store.put_volume(name, None if rec is None else msgspec.json.encode(rec))

    def create(self, req: VolumeCreate, service: str | None = None) -> Volume:
        """Create a volume (reserve its disk, make its directory), or re-attach a detached
        one (its size, if given, must match; its agent and role cannot change)."""
        check_name(req.name, "mount")
        if req.size is not None:
            check_size(req.size, "mount: size")
        if req.role is not None and (req.role == "*" or not ROLE_NAME.match(req.role)):
            raise UsageError(f"mount: bad role {req.role!r} (letters, digits, '_', '.', '-')")
        agents = self.engine.allocator.agents
        if req.agent is not None and req.agent not in agents:
            raise NotFoundError(f"mount: no agent {req.agent!r} (agents: {', '.join(agents)})")
        old = self.records.get(req.name)
        if old is not None:
            return self._reattach(old, req)
        if req.size is None:
            raise UsageError(f"mount: a new volume needs -o size=SIZE (e.g. size=128M): {req.name}")
        role = req.role or DEFAULT_ROLE
        over = self.engine.allocator.quota_block(role, Resources(disk=req.size))
        if over is not None:
            raise ConflictError(f"mount: volume {req.name}: {over.split(' (')[0]}")
        agent_id = req.agent or self._roomiest(role)
        room = self._room(agent_id, role)
        if req.size > room + 1e-9:
            total = agents[agent_id].total.disk
            raise UsageError(
                f"mount: volume {req.name} ({req.size:.10g} MiB) does not fit on {agent_id}: "
                f"{room:.10g} MiB of its {total:.10g} MiB disk are free for role {role}"
            )
        directory = self.root / req.name
        try:
            directory.mkdir(parents=True, exist_ok=False, mode=0o755)
        except FileExistsError:
            raise ConflictError(
                f"mount: {directory} already exists (left from an older volume?): "
                "remove it or choose another name"
            ) from None
        except OSError as exc:
            raise UsageError(f"mount: cannot create {directory}: {exc.strerror}") from None
        rec = VolumeRecord(
            name=req.name,
            agent_id=agent_id,
            role=role,
            size=req.size,
            directory=str(directory),
            created_at=utcnow(),
            service=service,
        )
        self.records[rec.name] = rec
        self._take(rec)
        self._save(rec, rec.name)
        self.engine.request_cycle()
        log.info("volume %s: %g MiB on %s for role %s", rec.name, rec.size, agent_id, role)
        return self.view(rec)

    def _reattach(self, rec: VolumeRecord, req: VolumeCreate) -> Volume:
        if rec.attached:
            raise ConflictError(f"mount: volume {rec.name} exists and is mounted")
        for what, asked, have in (
            ("size", req.size, rec.size),
            ("role", req.role, rec.role),
            ("agent", req.agent, rec.agent_id),
        ):
            if asked is not None and asked != have:
                raise ConflictError(
                    f"mount: volume {rec.name} exists with {what} {have!r}, not {asked!r} "
                    "(re-mounting keeps a volume as it is)"
                )
        rec.attached = True
        self._save(rec, rec.name)
        return self.view(rec)

    def _roomiest(self, role: str) -> str:
        """The agent with the most disk free for ``role`` (in service first)."""
        alloc = self.engine.allocator
        return max(alloc.agents, key=lambda a: (a not in alloc.unavailable, self._room(a, role)))

    def umount(self, req: VolumeName) -> Volume:
        """Detach from the namespace; the data stays (``vol rm`` destroys it)."""
        rec = self.get(req.name)
        if not rec.attached:
            raise ConflictError(f"umount: volume {rec.name} is not mounted")
        users = self.users(rec.name)
        if users:
            raise ConflictError(f"umount: volume {rec.name} is busy: used by {', '.join(users)}")
        rec.attached = False
        self._save(rec, rec.name)
        return self.view(rec)

    def remove(self, req: VolumeName) -> Volume:
        """Destroy the volume and its data, giving its disk back (refused while in use)."""
        rec = self.get(req.name)
        users = self.users(rec.name)
        if users:
            raise ConflictError(
                f"vol rm: volume {rec.name} is used by {', '.join(users)} (kill them first)"
            )
        return self._destroy(rec)

    def _destroy(self, rec: VolumeRecord) -> Volume:
        view = self.view(rec)
        del self.records[rec.name]
        self._give_back(rec)
        self._save(None, rec.name)
        shutil.rmtree(rec.directory, ignore_errors=True)
        self.engine.request_cycle()
        for hook in self.on_freed:
            hook()
        log.info("volume %s destroyed (%g MiB back on %s)", rec.name, rec.size, rec.agent_id)
        return view

    # ---- tasks ----------------------------------------------------------------------------

    def claim(self, spec: RunSpec, recs: list[TaskRecord]) -> None:
        """Check a submission's volumes and give its tasks their volume table and agent;
        UsageError/NotFoundError/ConflictError naming the first problem (nothing is saved)."""
        if not spec.volumes:
            return
        refs = [parse_ref(text) for text in spec.volumes]
        service = recs[0].task.service
        role = recs[0].task.role or DEFAULT_ROLE
        agent = self._check_refs(refs, role, service)
        for rec in recs:
            rec.task.volumes = [str(r) for r in refs]
            rec.rt.agent_pin = agent

    def _check_refs(self, refs: list[VolumeRef], role: str, service: str | None) -> str:
        paths: list[str] = []
        agents: dict[str, str] = {}
        for ref in refs:
            rec = self.records.get(ref.name)
            if rec is None:
                raise NotFoundError(
                    f"run: no volume {ref.name!r} (create it: mount -t volume -o size=SIZE "
                    f"{ref.name} /local/vol/{ref.name})"
                )
            if not rec.attached and service is None:
                raise ConflictError(
                    f"run: volume {ref.name} is not mounted (mount -t volume {ref.name} "
                    f"/local/vol/{ref.name} attaches it again)"
                )
            if rec.agent_id not in self.engine.allocator.agents:
                raise ConflictError(f"run: volume {ref.name} is on {rec.agent_id}, now unknown")
            if rec.role != role:
                raise UsageError(
                    f"run: volume {ref.name} belongs to role {rec.role}; the task runs as "
                    f"{role} (use --role {rec.role})"
                )
            if ref.path.startswith("/") and not self.mode.bind:
                raise UsageError(
                    f"run: --volume {ref}: an absolute path needs a mount namespace; volumes "
                    f"here are {self.mode.describe()} (use a path inside the sandbox)"
                )
            if ref.path.startswith("/") and not os.path.isdir(ref.path):
                raise UsageError(f"run: --volume {ref}: {ref.path} is not a directory here")
            if ref.read_only and not self.mode.bind:
                raise UsageError(
                    f"run: --volume {ref}: read-only volumes need a mount namespace; volumes "
                    f"here are {self.mode.describe()}"
                )
            for other in paths:
                if _overlap(other, ref.path):
                    raise UsageError(f"run: --volume paths {other!r} and {ref.path!r} overlap")
            paths.append(ref.path)
            agents[ref.name] = rec.agent_id
        if len(set(agents.values())) > 1:
            where = ", ".join(f"{n} on {a}" for n, a in agents.items())
            raise UsageError(f"run: a task's volumes must be on one agent ({where})")
        return next(iter(agents.values()))

    def spawn_spec(self, rec: TaskRecord, spec: SpawnSpec) -> SpawnSpec:
        """``spec`` with its argv wrapped to set up the task's volumes (unchanged without)."""
        if not rec.task.volumes:
            return spec
        sandbox = rec.task.sandbox or ""
        mounts = []
        for text in rec.task.volumes:
            ref = parse_ref(text)
            vol = self.records.get(ref.name)
            src = vol.directory if vol is not None else str(self.root / ref.name)
            absolute = ref.path.startswith("/")
            dst = ref.path if absolute else f"{sandbox}/{ref.path}"
            mounts.append((src, dst, "ro" if ref.read_only else "rw", "no" if absolute else "yes"))
        argv = ["/bin/sh", "-c", *spec.argv] if spec.shell else list(spec.argv)
        ready = f"{sandbox}/{READY_FILE}"
        return msgspec.structs.replace(
            spec, argv=wrap_argv(self.mode, ready, mounts, argv), shell=False
        )

    async def exec_command(self, rec: TaskRecord, command: list[str]) -> list[str]:
        """``exec`` into a task with bind-mounted volumes: enter its mount namespace first
        (so the command sees what the task sees), in its sandbox; a task started a moment
        ago is given a few seconds to have its volumes in place."""
        if not rec.task.volumes or not self.mode.bind or rec.task.pid is None:
            return command
        nsenter = shutil.which("nsenter")
        if nsenter is None:
            return command
        ready = Path(rec.task.sandbox or "", READY_FILE)
        for _ in range(int(READY_WAIT / 0.05)):
            if ready.exists():
                break
            await asyncio.sleep(0.05)
        # cd once inside: nsenter's --wd opens the directory before it enters, leaving the
        # cwd on the host's mount tree (where a volume's mount point is an empty directory)
        enter = 'cd -- "$0" && exec "$@"'
        target = f"--target={rec.task.pid}"
        return [
            nsenter,
            target,
            "--mount",
            "--",
            "/bin/sh",
            "-c",
            enter,
            rec.task.sandbox or "/",
            *command,
        ]

    # ---- services -------------------------------------------------------------------------

    def for_instance(self, service: str, spec: ServiceSpec, index: int) -> list[str]:
        """The ``NAME:PATH`` of one service instance's volumes, created at its first launch
        (all on one agent: the one with most free disk that could hold the instance)."""
        if not spec.volumes:
            return []
        role = spec.role or DEFAULT_ROLE
        wanted = [
            (instance_volume_name(service, index, v.name or v.container_path), v)
            for v in spec.volumes
        ]
        have = [self.records[n] for n, _ in wanted if n in self.records]
        agent = have[0].agent_id if have else None
        if agent is not None and agent not in self.engine.allocator.agents:
            raise ConflictError(f"its volume {have[0].name} is on {agent}, no longer configured")
        if agent is None:
            need = sum(v.size for _, v in wanted)
            agent = self._instance_agent(role, need, spec)
        for name, vol in wanted:
            if name not in self.records:
                self.create(VolumeCreate(name=name, size=vol.size, role=role, agent=agent), service)
        return [f"{name}:{vol.container_path}" for name, vol in wanted]

    def _instance_agent(self, role: str, need: float, spec: ServiceSpec) -> str:
        alloc = self.engine.allocator
        res = Resources(spec.resources.cpus, spec.resources.mem, spec.resources.disk)
        mine = {r.agent_id for r in self.records.values() if r.service == spec.name}
        fits = [
            a
            for a, state in alloc.agents.items()
            if self._room(a, role) + 1e-9 >= need
            and Resources(res.cpus, res.mem, res.disk + need).fits_in(state.total)
        ]
        if not fits:
            raise UsageError(
                f"service {spec.name}: no agent has {need:.10g} MiB of disk free for the "
                "instance's persistent volumes"
            )
        # spread the service's instances: agents without a volume of ours first
        return max(
            fits, key=lambda a: (a not in alloc.unavailable, a not in mine, self._room(a, role))
        )

    def problem(self, spec: ServiceSpec) -> str | None:
        """Why the engine refuses a service with volumes: Marathon's rules (:func:`volume_problem`),
        or instances whose volumes could never fit on any agent."""
        bad = volume_problem(spec)
        if bad:
            return bad
        need = sum(v.size for v in spec.volumes)
        res = Resources(spec.resources.cpus, spec.resources.mem, spec.resources.disk + need)
        if not any(res.fits_in(a.total) for a in self.engine.allocator.agents.values()):
            return (
                f"volumes: no agent can ever hold an instance with {need:.10g} MiB of persistent "
                f"volumes (and disk {spec.resources.disk:.10g} MiB)"
            )
        return None

    def destroy_service(self, service: str) -> list[str]:
        """The service was removed: destroy its instances' volumes (Marathon destroys a
        resident app's volumes with the app)."""
        gone = []
        for rec in [r for r in self.records.values() if r.service == service]:
            if self.users(rec.name):
                log.warning("volume %s still in use: kept", rec.name)
                continue
            self._destroy(rec)
            gone.append(rec.name)
        return gone


def _overlap(a: str, b: str) -> bool:
    pa, pb = Path(a).parts, Path(b).parts
    n = min(len(pa), len(pb))
    return pa[:n] == pb[:n]


def volume_problem(spec: ServiceSpec) -> str | None:
    """What the engine refuses in a service with persistent volumes (the spec loaders'
    rules, :func:`dshell.specs.validate.check_volumes`, enforced here for every client):
    Marathon's resident apps."""
    for i, vol in enumerate(spec.volumes):
        where = f"volumes[{i}]"
        path = vol.container_path
        if not path or "/" in path or path in (".", "..") or path in RESERVED_PATHS:
            return f"{where}.container_path: must be one relative name like 'data', not {path!r}"
        if not vol.size > 0:
            return f"{where}.size: must be greater than 0 (MiB), not {vol.size:g}"
        if vol.mode != "RW":
            return f"{where}.mode: persistent volumes are read-write ('RW'), not {vol.mode!r}"
    paths = [v.container_path for v in spec.volumes]
    if len(paths) != len(set(paths)):
        return "volumes: two volumes at the same container_path"
    names = [v.name or v.container_path for v in spec.volumes]
    if len(names) != len(set(names)):
        return "volumes: two volumes with the same name"
    up = spec.upgrade_strategy
    if up.maximum_over_capacity != 0:
        return (
            "upgrade_strategy.maximum_over_capacity: must be 0 for a service with persistent "
            "volumes (old instances must free their volumes first)"
        )
    if up.minimum_health_capacity > 0.5:
        return (
            "upgrade_strategy.minimum_health_capacity: must be at most 0.5 for a service with "
            "persistent volumes"
        )
    return None
