"""Ray worker setup hook for tests/test_ray.py: a worker dies (os._exit, like a lost node or an OOM kill) during
the forward passes of the model named in ``$EMOGEO_ARTIFACTS/.die`` ("<alias> <after N passes>")."""
import os
from pathlib import Path

CALLS = {}


def setup():
    from repro import backends

    for cls in (backends.HFBackend, backends.TLBackend):
        cls.residuals = _dying(cls.residuals)


def _dying(method):
    def wrapped(self, *a, **k):
        marker = Path(os.environ.get("EMOGEO_ARTIFACTS", "/nonexistent")) / ".die"
        if marker.exists():
            alias, after = marker.read_text().split()
            if self.lm.spec.alias == alias:
                CALLS[alias] = CALLS.get(alias, 0) + 1
                if CALLS[alias] > int(after):
                    os._exit(137)
        return method(self, *a, **k)
    return wrapped
