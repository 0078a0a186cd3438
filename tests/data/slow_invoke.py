"""`invoke ARGS` with every forward pass slowed by $EMOGEO_TEST_SLOW seconds (fault-injection tests only):
slow enough that two processes really overlap, or that a kill lands in the middle of a run."""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from repro import backends  # noqa: E402

DELAY = float(os.environ.get("EMOGEO_TEST_SLOW", "0.1"))


def _slowed(method):
    def wrapped(self, *a, **k):
        time.sleep(DELAY)
        return method(self, *a, **k)
    return wrapped


backends.HFBackend.residuals = _slowed(backends.HFBackend.residuals)
backends.TLBackend.residuals = _slowed(backends.TLBackend.residuals)

from invoke.main import program  # noqa: E402

sys.exit(program.run(["invoke", *sys.argv[1:]]))
