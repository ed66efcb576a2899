"""A pytest plugin for the suite's own tests: puts a crash or a hang into timm.create_model for one model.

TIMM_COMPAT_FAULT=crash:MODEL kills the process with SIGSEGV; TIMM_COMPAT_FAULT=hang:MODEL sleeps.
Only real (non-meta) builds are hit, so collection-time probes stay unaffected. TIMM_COMPAT_FAULT=kill-on-load:
SIGKILLs the process inside torch.load, i.e. mid-cell, with the cell's files written.
TIMM_COMPAT_BUILD_LOG=FILE appends one line per real (non-meta) timm.create_model call, `MODEL PID`, so a test
can count which processes built a model.
"""

import os
import signal
import time


def _log_builds(file):
    import timm
    import torch

    real = timm.create_model

    def logged(name, *args, **kwargs):
        if torch.empty(0).device.type != "meta":
            with open(file, "a") as f:
                f.write(f"{name} {os.getpid()}\n")
        return real(name, *args, **kwargs)

    timm.create_model = logged


def pytest_configure(config):
    if os.environ.get("TIMM_COMPAT_BUILD_LOG"):
        _log_builds(os.environ["TIMM_COMPAT_BUILD_LOG"])
    fault = os.environ.get("TIMM_COMPAT_FAULT", "")
    if ":" not in fault:
        return
    kind, target = fault.split(":", 1)
    import timm
    import torch

    if kind == "kill-on-load":
        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        torch.load = killed
        return

    real = timm.create_model

    def faulty(name, *args, **kwargs):
        if name == target and torch.empty(0).device.type != "meta":
            if kind == "crash":
                os.kill(os.getpid(), signal.SIGSEGV)
            time.sleep(120)
        return real(name, *args, **kwargs)

    timm.create_model = faulty
