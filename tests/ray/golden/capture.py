"""Capture the Ray dashboard's JSON answers used as golden inputs by tests/ray/test_parse.py.

Run against a Ray cluster you started (one head is enough; a worker adds a second node)::

    python tests/ray/golden/capture.py http://127.0.0.1:8265 [TOKEN]

It submits a few small jobs (one succeeds, one fails with exit code 3, one is stopped, one
holds an actor and some tasks while the state API is read) and writes one file per answer
next to this script. Standard library only, like the backend.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ACTORS = (
    'python -c "import ray, time\n'
    "ray.init()\n"
    "@ray.remote\n"
    "class Counter:\n"
    "    def ping(self):\n"
    "        return 1\n"
    "@ray.remote\n"
    "def square(x):\n"
    "    return x * x\n"
    "c = Counter.options(name='counter').remote()\n"
    "print(ray.get([square.remote(i) for i in range(3)]), ray.get(c.ping.remote()), flush=True)\n"
    'time.sleep(120)\n"'
)


def main(base: str, token: str | None) -> None:
    def call(method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def save(name: str, obj: object) -> None:
        (HERE / name).write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")

    def wait(sid: str, states: set[str]) -> dict:
        for _ in range(300):
            job = call("GET", f"/api/jobs/{sid}")
            assert isinstance(job, dict)
            if job["status"] in states:
                return job
            time.sleep(0.5)
        raise SystemExit(f"{sid} never reached {states}")

    save("version.json", call("GET", "/api/version"))
    ok = call("POST", "/api/jobs/", {"entrypoint": "echo hello", "submission_id": "cap-ok"})
    save("submit.json", ok)
    save("job_succeeded.json", wait("cap-ok", {"SUCCEEDED"}))
    save("job_logs.json", call("GET", "/api/jobs/cap-ok/logs"))
    call(
        "POST",
        "/api/jobs/",
        {
            "entrypoint": "sh -c 'echo oops >&2; exit 3'",
            "submission_id": "cap-fail",
            "entrypoint_num_cpus": 0.5,
        },
    )
    save("job_failed.json", wait("cap-fail", {"FAILED"}))
    call(
        "POST",
        "/api/jobs/",
        {
            "entrypoint": "sleep 300",
            "submission_id": "cap-stop",
            "metadata": {"dshell.name": "sleeper"},
        },
    )
    save("job_running.json", wait("cap-stop", {"RUNNING"}))
    save("stop.json", call("POST", "/api/jobs/cap-stop/stop"))
    save("job_stopped.json", wait("cap-stop", {"STOPPED"}))
    call("POST", "/api/jobs/", {"entrypoint": ACTORS, "submission_id": "cap-actors"})
    wait("cap-actors", {"RUNNING"})
    for _ in range(120):  # until the driver printed (its tasks ran, the actor is alive)
        logs = call("GET", "/api/jobs/cap-actors/logs")
        if isinstance(logs, dict) and "[0, 1, 4]" in logs.get("logs", ""):
            break
        time.sleep(0.5)
    save("tasks.json", call("GET", "/api/v0/tasks?limit=100&detail=1"))
    save("actors.json", call("GET", "/api/v0/actors?limit=100&detail=1"))
    save("nodes.json", call("GET", "/api/v0/nodes?limit=100&detail=1"))
    save("nodes_summary.json", call("GET", "/nodes?view=summary"))
    save("jobs.json", call("GET", "/api/jobs/"))
    call("POST", "/api/jobs/cap-actors/stop")
    wait("cap-actors", {"STOPPED", "FAILED", "SUCCEEDED"})


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/"), sys.argv[2] if len(sys.argv) > 2 else None)
