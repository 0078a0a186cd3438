"""`invoke bench`: extraction throughput and peak memory, three ways, each in its own process; `invoke bench
--reproduce`: the main job timed stage by stage.

(a) ours: batched forward, residuals read at the last token inside hooks (no cache), every layer at once;
(b) the original study's way: TransformerLens ``run_with_cache`` with the full cache, one passage
    per forward pass;
(c) the limit: a hook-free batched forward over the same passages.
Peak memory is the child's max RSS; ``weights`` is its RSS right after loading the model.

The original counted as it runs: the authors' paper5_extract.py reads one layer per pass over all passages
(``extract_vectors_at_layer``), once per layer of its sweep (``find_best_layer``) and once more for each of its
four target layers (25/50/75% and best), so it makes ``n_layers + 4`` passes where (a) makes one. Every pass
is the same computation (``run_with_cache`` computes and caches all layers whichever one is read), so its
as-run time is exactly ``n_layers + 4`` times one pass; (b) times one pass, and the bench reports both ratios.
Its anisotropy passes (20 short sentences at four layers) are left out on both sides.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from repro import artifacts, stimuli

METHODS = {"a": "ours, HF backend (batched, hooked last-token reads)",
           "a_tl": "ours, TransformerLens backend (batched, hooked reads)",
           "b": "original (TL run_with_cache, full cache, 1 passage/forward)",
           "c": "limit (hook-free batched forward)"}


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _child(method: str, model: str, repeats: int) -> dict:
    import torch

    from repro.backends import HFBackend, TLBackend
    from repro.extraction import ExtractionConfig, read_last_token
    from repro.loading import load_model
    from repro.models import resolve

    lm = load_model(resolve(model), "fp32", "cpu")
    texts = [p.text for p in stimuli.load_comprehension()]
    cfg = ExtractionConfig(model=model)
    if method == "a":
        be = HFBackend(lm)
    elif method == "a_tl":
        be = TLBackend(lm)
    elif method == "b":
        be = TLBackend(lm)
    else:
        be = HFBackend(lm)
    weights = _rss_mib()
    tok = lm.tokenizer
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if method in ("a", "a_tl"):
            read_last_token(be, tok, texts, cfg)
        elif method == "b":
            with torch.inference_mode():
                for t in texts:
                    ids = tok(t, return_tensors="pt").input_ids
                    _, cache = be.model.run_with_cache(ids)
                    _ = [cache[f"blocks.{i}.hook_resid_post"][0, -1] for i in range(be.n_layers)]
                    del cache
        else:
            from repro.extraction import _batches

            tok.padding_side = "right"
            lengths = [len(tok(t).input_ids) for t in texts]
            with torch.inference_mode():
                for idx in _batches(lengths, cfg.batch_size):
                    enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True)
                    be.base(input_ids=enc.input_ids, attention_mask=enc.attention_mask, use_cache=False)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = min(times)
    return {"method": method, "what": METHODS[method], "backend": be.name, "passages": len(texts), "n_layers": lm.n_layers,
            "seconds": round(best, 3), "passages_per_s": round(len(texts) / best, 2),
            "rss_after_load_mib": round(weights, 1), "peak_rss_mib": round(peak, 1),
            "peak_over_load_mib": round(peak - weights, 1)}


def original_passes(n_layers: int) -> int:
    """Passes over all passages the authors' paper5_extract.py makes for one model: its layer sweep (one pass per
    layer) and its four target layers (25/50/75% and best), each read by a pass of its own."""
    return n_layers + 4


def machine_record() -> dict:
    """What every figure depends on: the CPU (model, cores, matmul flags) and torch's thread count."""
    import torch

    from repro.machine import cpu_info

    return {"cpu": cpu_info(), "torch_threads": torch.get_num_threads()}


def _machine_line() -> str:
    m = machine_record()
    return (f"{m['cpu']['model']}, {m['cpu']['cores_available']} of {m['cpu']['cores_total']} cores, "
            f"{m['torch_threads']} torch threads, flags {' '.join(m['cpu']['flags']) or 'none'}")


def run_bench(model: str = "smollm2-135m-instruct", repeats: int = 1, out: Path | None = None) -> Path:
    results = {}
    for m in METHODS:
        print(f"[bench] {METHODS[m]} ...", flush=True)
        proc = subprocess.run([sys.executable, "-m", "tools.bench", m, model, str(repeats)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"bench method {m} failed:\n{proc.stderr[-2000:]}")
        results[m] = json.loads(proc.stdout.strip().splitlines()[-1])
    a, b, c = results["a"], results["b"], results["c"]
    passes = original_passes(results["b"]["n_layers"])
    summary = {
        "model": model,
        "methods": results,
        "original_passes_as_run": passes,
        "ratio_a_over_c": round(a["passages_per_s"] / c["passages_per_s"], 3),
        "ratio_a_over_b": round(a["passages_per_s"] / b["passages_per_s"], 2),
        "ratio_a_over_b_as_run": round(passes * a["passages_per_s"] / b["passages_per_s"], 1),
        "ratio_a_tl_over_b_as_run": round(passes * results["a_tl"]["passages_per_s"] / b["passages_per_s"], 1),
        "ratio_a_tl_over_c": round(results["a_tl"]["passages_per_s"] / c["passages_per_s"], 3),
        "ratio_a_tl_over_b": round(results["a_tl"]["passages_per_s"] / b["passages_per_s"], 2),
        "goals": {"a_over_c_min": 0.9, "a_over_b_min": 5, "a_peak_over_load_max_mib": 1536},
        "machine": machine_record(),
        "env": artifacts.environment("cpu"),
    }
    summary["goals_met"] = {
        "a_over_c": summary["ratio_a_over_c"] >= 0.9,
        "a_over_b": summary["ratio_a_over_b"] >= 5,
        "a_memory": a["peak_over_load_mib"] <= 1536,
    }
    out = out or artifacts.runs_dir().parent / "bench" / "extraction.json"
    artifacts.write_json_atomic(out, summary)
    print(f"{'method':<62} {'passages/s':>10} {'peak MiB':>9} {'over load':>9}")
    for r in results.values():
        print(f"{r['what']:<62} {r['passages_per_s']:>10.2f} {r['peak_rss_mib']:>9.0f} {r['peak_over_load_mib']:>9.0f}")
    print(f"a/c = {summary['ratio_a_over_c']} (goal >= 0.9), a_tl/c = {summary['ratio_a_tl_over_c']}; a/b = "
          f"{summary['ratio_a_over_b']} for one pass of the original, {summary['ratio_a_over_b_as_run']} as it runs "
          f"({passes} passes); goals met: {summary['goals_met']}; {_machine_line()} -> {out}")
    return out


if __name__ == "__main__":
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from repro.machine import configure_threads

    configure_threads()
    print(json.dumps(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
