"""Where the models' stages run: one after another in this process (``local``, the default, no Ray needed), or one
Ray task per model across the GPUs and machines of a Ray cluster (``ray``).

Each model's work is self-contained: its stages in order, its weights loaded once per precision, every stage
resumable (a finished run is reused, an interrupted one resumes from its ``.partial/``). So a task is simply
"run this model's stages" and needs no scheduler of ours: Ray places the tasks (one GPU each on CUDA, fractional
allowed for small models; CPUs otherwise), every worker writes into one artifact root all of them see (a shared
volume), and the driver runs the closing stages (checksums, verify, report) once, after every task has ended.
One failing model never loses another's work: each task catches its own stages' failures, and a task that dies
(a killed worker, a lost node) is recorded as failed while the others go on; a rerun skips what finished.
"""
from __future__ import annotations

import os
import socket
import time

from repro.loading import keep_loaded

EXECUTORS = ("local", "ray")
# The pipeline hands its own stage functions in (``stages(spec, opt, generates)`` -> (name, fn) pairs,
# ``run_stage(model, name, fn)`` -> StageResult, and the StageResult type), so that this module never imports it.


def run_local(specs, opt, generating, stages, run_stage) -> list:
    results = []
    for spec in specs:
        # One load per model and precision: the stages of this model share its weights, freed before the next.
        with keep_loaded():
            for name, fn in stages(spec, opt, spec.alias in generating):
                results.append(run_stage(spec.alias, name, fn))
    return results


def _model_task(spec, opt, generates: bool, env: dict, stages, run_stage) -> dict:
    """One model's stages, in a Ray worker: returns its StageResults (as dicts) and where it ran."""
    os.environ.update(env)

    where = {"host": socket.gethostname(), "pid": os.getpid(), "cuda_visible_devices": os.environ.get(
        "CUDA_VISIBLE_DEVICES")}
    try:
        import ray

        where["node"] = ray.get_runtime_context().get_node_id()[:12]
    except Exception:  # outside Ray (a test calling the task body directly)
        where["node"] = None
    print(f"[ray] {spec.alias}: started on {where['host']} (node {where['node']}, pid {where['pid']})", flush=True)
    t0 = time.perf_counter()
    results = []
    with keep_loaded():
        for name, fn in stages(spec, opt, generates):
            results.append(run_stage(spec.alias, name, fn).__dict__)
    return {"model": spec.alias, "where": where, "seconds": round(time.perf_counter() - t0, 1), "results": results}


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: float | None = None):
    """Connect to ``address`` (a running cluster; ``auto`` finds the local one), or start a small local one whose
    memory stays bounded on a small machine: one worker per CPU, a 200 MB object store, no dashboard."""
    import ray

    if ray.is_initialized():
        return ray
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user cluster; see docs/SCALING.md
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        from repro.machine import available_cores

        ray.init(num_cpus=num_cpus or available_cores(), num_gpus=num_gpus, object_store_memory=200 * 2**20,
                 include_dashboard=False, log_to_driver=True)
    return ray


def task_resources(device: str, gpus_per_model: float | None, cpus_per_model: int) -> dict:
    """What one model's task asks Ray for: a GPU (or ``gpus_per_model``, fractional for small models) on CUDA, or
    when asked for explicitly; else ``cpus_per_model`` CPUs."""
    if gpus_per_model is not None or str(device).startswith("cuda"):
        return {"num_gpus": 1.0 if gpus_per_model is None else float(gpus_per_model), "num_cpus": cpus_per_model}
    return {"num_cpus": cpus_per_model}


def run_ray(specs, opt, generating, stages, run_stage, result_type, address: str | None = None,
            gpus_per_model: float | None = None, cpus_per_model: int = 1) -> list:
    """One Ray task per model; a line per model as it starts (from its worker) and as it ends (here)."""
    from repro import artifacts
    from repro.loading import default_device

    StageResult = result_type

    try:
        ray = init_ray(address)
    except ImportError:
        raise RuntimeError("--executor ray needs Ray: bash scripts/setup.sh --with ray (requirements/ray.lock)") from None
    res = task_resources(default_device(), gpus_per_model, cpus_per_model)
    # Every worker writes into the same artifact root, with as many torch threads as CPUs it was given.
    env = {"EMOGEO_ARTIFACTS": str(artifacts.runs_dir().parent), "EMOGEO_THREADS": str(max(1, cpus_per_model))}
    for key in ("HF_HUB_OFFLINE", "EMOGEO_CACHE", "EMOGEO_NONDETERMINISTIC", "HF_HOME"):
        if key in os.environ:
            env[key] = os.environ[key]
    remote = ray.remote(max_retries=0)(_model_task).options(**res)
    pending = {}
    for spec in specs:
        ref = remote.remote(spec, opt, spec.alias in generating, env, stages, run_stage)
        pending[ref] = (spec.alias, time.perf_counter())
        print(f"[ray] {spec.alias}: queued ({', '.join(f'{k}={v}' for k, v in res.items())})", flush=True)
    out = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        ref = done[0]
        alias, t0 = pending.pop(ref)
        try:
            got = ray.get(ref)
        except Exception as exc:  # the worker died or the task could not run: this model failed, the others go on
            print(f"[ray] {alias}: FAILED after {time.perf_counter() - t0:.1f} s ({type(exc).__name__}); "
                  "its finished stages are kept and a rerun resumes it", flush=True)
            out.append(StageResult(alias, "task", "failed", round(time.perf_counter() - t0, 1),
                                   note=f"ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
            continue
        w = got["where"]
        states = [r["status"] for r in got["results"]]
        print(f"[ray] {alias}: ended on {w['host']} (node {w['node']}, pid {w['pid']}) in {got['seconds']} s: "
              + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)), flush=True)
        for r in got["results"]:
            out.append(StageResult(**{**r, "note": r["note"], "worker": w}))
    order = {s.alias: i for i, s in enumerate(specs)}
    return sorted(out, key=lambda r: order.get(r.model, len(order)))  # stable: each model's stages stay in order
