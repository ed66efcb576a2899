"""A pytest plugin for the suite's own tests: puts a crash or a hang into timm.create_model for one model.

TIMM_COMPAT_FAULT=crash:MODEL kills the process with SIGSEGV; TIMM_COMPAT_FAULT=hang:MODEL sleeps.
Only real (non-meta) builds are hit, so collection-time probes stay unaffected. TIMM_COMPAT_FAULT=kill-on-load:
SIGKILLs the process inside torch.load, i.e. mid-cell, with the cell's files written.
"""

import os
import signal
import time


def pytest_configure(config):
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
