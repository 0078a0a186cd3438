"""`invoke bench --reproduce`: the main job (`invoke reproduce`, default models) timed stage by stage on this
machine, into ``<artifacts>/bench/reproduce.json`` with the machine beside every figure.

It runs in a scratch artifacts directory (``<artifacts>/bench/reproduce-run/``, emptied first), so it never
touches the user's runs, and with every stage recomputed. The checksums and verify stages cover the repository's
``artifacts/`` only and are recorded as skipped there (emogeo.pipeline); the model conversions cached under
``$EMOGEO_CACHE`` are kept (a first run on a new machine adds their one-time cost, listed in the JSON).

What bounds a stage is read from its CPU time against its wall time: a stage whose threads kept every core it
may use busy (utilisation >= 0.75) is bound by arithmetic or memory bandwidth, which only fewer FLOPs or
smaller dtypes move; one that left the cores mostly idle (< 0.4) waits on Python overhead, I/O or a single
thread, which batching or vectorising moves.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from repro import artifacts

# The issue-26 goal, checked here and nowhere else (never in a timed test).
GOAL_SECONDS = 360.0
BUSY, IDLE = 0.75, 0.4


def bound(seconds: float, cpu_seconds: float | None, threads: int) -> dict:
    """Utilisation of the cores a stage may use, and what that says bounds it."""
    if not seconds or cpu_seconds is None:
        return {"utilisation": None, "bound": "not measured"}
    u = cpu_seconds / (seconds * max(threads, 1))
    what = ("compute or memory bandwidth (cores busy)" if u >= BUSY else
            "Python overhead, I/O or one thread (cores mostly idle)" if u < IDLE else "mixed")
    return {"utilisation": round(u, 2), "bound": what}


def run_reproduce_bench(models: str = "embedded", out: Path | None = None, generation_models: str = "auto") -> Path:
    from emogeo.pipeline import default_options, reproduce

    from tools.bench import _machine_line, machine_record

    base = artifacts.runs_dir().parent
    scratch = base / "bench" / "reproduce-run"
    shutil.rmtree(scratch, ignore_errors=True)
    previous = os.environ.get("EMOGEO_ARTIFACTS")
    os.environ["EMOGEO_ARTIFACTS"] = str(scratch)
    t0 = time.perf_counter()
    try:
        results = reproduce(models, default_options(accept_changes=True, generation_models=generation_models))
    finally:
        if previous is None:
            os.environ.pop("EMOGEO_ARTIFACTS", None)
        else:
            os.environ["EMOGEO_ARTIFACTS"] = previous
    total = time.perf_counter() - t0
    mach = machine_record()
    threads = mach["torch_threads"]
    stages = [{"model": r.model, "stage": r.stage, "status": r.status, "seconds": r.seconds,
               "cpu_seconds": r.cpu_seconds, **bound(r.seconds, r.cpu_seconds, threads),
               "loads": r.loads, "peak_rss_mb": r.peak_rss_mb, "note": r.note} for r in results]
    doc = {"models": models, "total_seconds": round(total, 1), "machine": mach,
           "goal": {"total_seconds_max": GOAL_SECONDS, "met": total <= GOAL_SECONDS},
           "stages": stages, "scratch_artifacts": str(scratch), "env": artifacts.environment("cpu")}
    out = out or base / "bench" / "reproduce.json"
    artifacts.write_json_atomic(out, doc)
    print(f"{'model':<30} {'stage':<38} {'s':>7} {'cpu util':>8}  bound")
    for s in stages:
        u = "" if s["utilisation"] is None else f"{s['utilisation']:.2f}"
        print(f"{s['model']:<30} {s['stage']:<38} {s['seconds']:>7.1f} {u:>8}  {s['bound']}")
    print(f"total {total:.0f} s (goal <= {GOAL_SECONDS:.0f} s: {'met' if doc['goal']['met'] else 'NOT met'}); "
          f"{_machine_line()} -> {out}")
    return out
