"""`invoke gpu-check`: does this CUDA machine run the paper's GPU path? One JSON, in minutes.

On the embedded models (no hub needed) it runs what the paper ran on its GPU, at the paper's precision and budget:
fp16 comprehension extraction through both backends (TransformerLens, raw HF hooks) and their equivalence, fp16,
INT8 and NF4 protocol-matched generation with the 256-token budget, and a steering run; then it writes
``<artifacts>/gpu-check/gpu_check.json`` (docs/ENVIRONMENTS.md gives its schema): versions, the GPU, the
determinism settings, and per stage its seconds, peak GPU memory and the pass/fail of each check. The runs go to a
scratch artifacts folder (``<artifacts>/gpu-check/runs-scratch``, emptied first), so the user's runs are untouched.

A failed check is a finding, not a crash: every stage runs, the JSON says which failed, and the exit code is 1. A
model this stack cannot load (the embedded Qwen GGUF on the paper stack's transformers 4.x) is "not-run", said, and
does not fail the check.
Without CUDA the task refuses in one line (exit 2): a CPU result would prove nothing about the GPU path.
"""
from __future__ import annotations

import math
import os
import shutil
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

from repro import artifacts

SCHEMA = "emogeo.gpu_check/1"
GOAL_SECONDS = 300.0  # issue 28: under 5 minutes on one H100/H200-class GPU
# Top-level keys of the JSON and of each stage (docs/ENVIRONMENTS.md documents each; a test keeps them in step).
TOP_KEYS = ("schema", "passed", "total_seconds", "goal_seconds", "device", "versions", "determinism", "env",
            "models", "generation_model", "budget", "stages", "failed_checks")
STAGE_KEYS = ("name", "model", "status", "seconds", "peak_gpu_mb", "checks", "passed", "output", "note")


class NoCudaError(RuntimeError):
    pass


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise NoCudaError(f"gpu-check needs a CUDA GPU and none is visible here (torch {torch.__version__}, built "
                          f"for CUDA {torch.version.cuda or 'none'}); run it in the Dockerfile.cuda image on a GPU "
                          "machine (docs/ENVIRONMENTS.md)")


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _comprehension_checks(run: Path) -> dict:
    meta = artifacts.load_metadata(run)
    vec = artifacts.load_vectors(run)["vectors"]
    best = meta["best_layer"]
    return {"best_layer_finite": bool(vec[best].isfinite().all()),
            "finite_layers": vec.shape[0] - len(meta["nonfinite_layers"]) > 0,
            "anisotropy_measured": _finite(meta.get("anisotropy_best"))}


def _generation_checks(run: Path) -> dict:
    meta = artifacts.load_metadata(run)
    vec = artifacts.load_vectors(run)["vectors"]
    stats = meta["generation_stats"]
    return {"vectors_finite": bool(vec.isfinite().all()),
            "rdm_finite": all(_finite(v) for row in meta["rdm"] for v in row),
            "generated_tokens": stats["mean_gen_len"] > 0}


def _stage(name: str, model: str, fn) -> dict:
    import torch

    from repro.loading import ModelUnavailableError

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    row = {"name": name, "model": model, "status": "done", "output": None, "note": "", "checks": {}}
    try:
        out, checks, note = fn()
        row.update(output=str(out), checks=checks, note=note)
    except ModelUnavailableError as exc:  # this stack cannot load the model (e.g. Qwen's GGUF on transformers 4.x)
        row.update(status="not-run", note=str(exc)[:500])
    except Exception as exc:  # a failing stage is a finding: the others still run
        traceback.print_exc()
        row.update(status="failed", note=f"{type(exc).__name__}: {str(exc)[:500]}")
    if cuda:
        torch.cuda.synchronize()
    row["seconds"] = round(time.perf_counter() - t0, 2)
    row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None
    row["passed"] = None if row["status"] == "not-run" else row["status"] == "done" and all(row["checks"].values())
    verdict = {None: "NOT RUN", True: "PASS", False: "FAIL"}[row["passed"]]
    print(f"[gpu-check] {name} {model}: {verdict} in {row['seconds']} s, peak GPU "
          f"{row['peak_gpu_mb']} MB {row['note']}".rstrip(), flush=True)
    return {k: row[k] for k in STAGE_KEYS}


def _stages(models, generation_model, device, dtype, precisions, budget):
    from repro.equivalence import run_equivalence
    from repro.extraction import extract
    from repro.generation import run_generation
    from repro.models import resolve
    from repro.steering import run_steering

    for alias in models:
        spec = resolve(alias)
        for backend in ("tl", "hf"):
            yield (f"extract-{dtype}-{backend}", alias,
                   lambda spec=spec, backend=backend: (
                       run := extract(spec, dtype=dtype, backend=backend, device=device, progress=False),
                       _comprehension_checks(run), ""))

        def equivalence(spec=spec):
            out = run_equivalence(spec, dtype=dtype, progress=False)
            import json

            res = json.loads(Path(out).read_text())
            return out, {"every_layer_cos_min_ge_0.9999": bool(res["passed"])}, (
                f"cos min {res['cos_min']:.6f} at layer {res['layer']}")

        yield f"equivalence-{dtype}", alias, equivalence
        if alias != generation_model:
            continue
        runs = {}
        for precision in precisions:
            def gen(spec=spec, precision=precision):
                run = run_generation(spec, "protocol_matched", precision, max_new_tokens=budget["max_new_tokens"],
                                     generations_per_template=budget["generations_per_template"], device=device,
                                     progress=False)
                runs[precision] = run
                note = ""
                if precision != precisions[0] and precisions[0] in runs:
                    from repro.generation import rdm_spearman

                    rho = rdm_spearman(artifacts.load_metadata(runs[precisions[0]])["rdm"],
                                       artifacts.load_metadata(run)["rdm"])
                    note = f"RDM Spearman vs {precisions[0]}: {rho:.3f}"
                return run, _generation_checks(run), note

            yield f"generation-protocol_matched-{precision}", alias, gen

        def steer(spec=spec):
            out = run_steering(spec, precision=dtype, device=device, progress=False)
            import json

            regime = json.loads((Path(out) / "steering.json").read_text())["regime"]
            return out, {"regime_classified": isinstance(regime, str) and bool(regime)}, f"regime {regime}"

        yield f"steering-{dtype}", alias, steer


def run_gpu_check(models=None, generation_model: str | None = None, device: str = "cuda", dtype: str = "fp16",
                  precisions=("fp16", "int8", "nf4"), max_new_tokens: int | None = None,
                  generations_per_template: int | None = None, out: Path | None = None) -> dict:
    """Run the stages, write the JSON, return it. ``device``/``dtype``/``precisions`` and the budget exist so that
    the tests can run the same code on a CPU with tiny models; ``invoke gpu-check`` always uses CUDA and the
    paper's values (fp16; fp16, int8, nf4; 256 tokens, 10 generations per template)."""
    from repro.loading import keep_loaded
    from repro.machine import determinism_record
    from repro.models import DEFAULT_MODEL, EMBEDDED_STUDY

    models = tuple(models or EMBEDDED_STUDY)
    generation_model = generation_model or (DEFAULT_MODEL if DEFAULT_MODEL in models else models[0])
    from repro.generation import PRESETS

    budget = {"max_new_tokens": max_new_tokens or PRESETS["protocol_matched"].max_new_tokens,
              "generations_per_template": generations_per_template or PRESETS["protocol_matched"].generations_per_template}
    home = artifacts.runs_dir().parent
    target = Path(out) if out else home / "gpu-check" / "gpu_check.json"
    scratch = home / "gpu-check" / "runs-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    previous = os.environ.get("EMOGEO_ARTIFACTS")
    os.environ["EMOGEO_ARTIFACTS"] = str(scratch)
    t0 = time.perf_counter()
    stages = []
    try:
        current, kept = None, ExitStack()
        with kept:
            for name, model, fn in _stages(models, generation_model, device, dtype, tuple(precisions), budget):
                if model != current:  # each model loaded once per precision, freed before the next
                    kept.close()
                    kept.enter_context(keep_loaded())
                    current = model
                stages.append(_stage(name, model, fn))
    finally:
        if previous is None:
            os.environ.pop("EMOGEO_ARTIFACTS", None)
        else:
            os.environ["EMOGEO_ARTIFACTS"] = previous
    env = artifacts.environment(device)
    failed = [f"{s['name']} {s['model']}: " + (", ".join(k for k, v in s["checks"].items() if not v) or s["note"])
              for s in stages if s["passed"] is False]
    ran = [s for s in stages if s["passed"] is not None]
    record = {"schema": SCHEMA, "passed": bool(ran) and not failed, "total_seconds": round(time.perf_counter() - t0, 1),
              "goal_seconds": GOAL_SECONDS, "device": _device(device), "versions": env["versions"],
              "determinism": determinism_record(), "env": env, "models": list(models),
              "generation_model": generation_model, "budget": {**budget, "dtype": dtype, "precisions": list(precisions)},
              "stages": stages, "failed_checks": failed}
    artifacts.write_json_atomic(target, record)
    print(f"[gpu-check] {'PASSED' if not failed else 'FAILED: ' + '; '.join(failed)} in {record['total_seconds']} s "
          f"(goal {GOAL_SECONDS:.0f} s) -> {target}", flush=True)
    return {**record, "path": str(target)}


def _device(device: str) -> dict:
    import torch

    rec = {"requested": device, "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        rec.update(name=props.name, total_memory_mb=round(props.total_memory / 2**20),
                   capability=f"{props.major}.{props.minor}", count=torch.cuda.device_count(),
                   cudnn=torch.backends.cudnn.version())
    return rec
