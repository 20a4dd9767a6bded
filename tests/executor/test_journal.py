"""The journal on its own: snapshot generations, log replay, a torn last line."""

from __future__ import annotations

import os
from pathlib import Path

from dshell_local.executor.journal import Exited, Forget, Intent, Journal, Started, TaskRecord


def test_snapshot_log_replay_and_torn_line(tmp_path: Path) -> None:
    d = str(tmp_path)
    j = Journal(d)
    assert j.load() == (None, {})
    j.compact("boot-1", {})
    a, b = TaskRecord(task_id="a", sandbox="/s/a"), TaskRecord(task_id="b", sandbox="/s/b")
    j.append([Intent(a), Intent(b), Started("a", 11, 1001), Started("b", 12, 1002)])
    j.append([Exited("a", 3, None, False, False, "2026-01-01T00:00:00.000000Z"), Forget("x")])
    j.close()
    (log,) = [n for n in os.listdir(d) if n.endswith(".log")]
    with open(os.path.join(d, log), "ab") as f:
        f.write(b'{"type":"forget","task_')  # a write cut short
    boot, tasks = Journal(d).load()
    assert boot == "boot-1" and sorted(tasks) == ["a", "b"]
    assert (tasks["a"].running, tasks["a"].exit_code, tasks["a"].pid) == (False, 3, 11)
    assert (tasks["b"].running, tasks["b"].pid, tasks["b"].start_time) == (True, 12, 1002)

    j2 = Journal(d)
    _, tasks = j2.load()
    j2.compact("boot-1", tasks)  # next generation: the old log goes
    j2.append([Forget("a")])
    j2.close()
    assert len([n for n in os.listdir(d) if n.endswith(".log")]) == 1
    _, tasks = Journal(d).load()
    assert sorted(tasks) == ["b"]
