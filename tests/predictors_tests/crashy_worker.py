"""A worker function for pool tests: it dies natively, hangs or answers, as told."""
from __future__ import annotations

import os
import signal
import time


def run(task):
    if task.get("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)  # a real native crash of the worker process
    if task.get("mark"):  # tell the test this task is running, then take a while
        with open(task["mark"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(task.get("sleep", 0))
    if task.get("hang"):
        time.sleep(3600)
    return {"status": "ok", "labels": {}, "echo": task["n"], "pid": os.getpid()}
