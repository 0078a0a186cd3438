"""Cross-backend equivalence (paper Section 2.4 / 4.2): TransformerLens vs raw HuggingFace.

Both backends extract the full 21-emotion set from the same loaded weights; the centred vectors
are compared at every layer (per-vector cosine, RDM Spearman, relative Frobenius distance of the
RDMs). The paper's bar: per-vector cosine >= 0.9999.
"""
from __future__ import annotations

from pathlib import Path

import torch
from scipy.stats import spearmanr

from . import artifacts, geometry, options
from .backends import BackendUnavailableError, tl_supports
from .extraction import extract
from .loading import load_model
from .models import ModelSpec, resolve
from .protocol import resolve_protocol

COSINE_BAR = 0.9999


def compare_layer(a: torch.Tensor, b: torch.Tensor) -> dict:
    """a, b: [k, d] centred vectors of one layer from two backends."""
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)
    ra, rb = geometry.cosine_matrix(a), geometry.cosine_matrix(b)
    rho = spearmanr(geometry.upper(ra).numpy(), geometry.upper(rb).numpy()).statistic
    rel = float(torch.linalg.norm(ra - rb) / torch.linalg.norm(ra))
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()), "cos_max": float(cos.max()),
            "rdm_spearman": float(rho), "rel_frobenius": rel, "passed": bool(cos.min() >= COSINE_BAR)}


def run_equivalence(model: str | ModelSpec, dtype: str = "fp32", force: bool = False, progress: bool = True) -> Path:
    dtype = options.choice(dtype, options.DTYPES, "dtype")
    spec = model if isinstance(model, ModelSpec) else resolve(model)
    lm = load_model(spec, dtype)
    ok, why = tl_supports(lm)
    if not ok:
        raise BackendUnavailableError(f"equivalence needs both backends; TransformerLens cannot run "
                                      f"{spec.alias}: {why}")
    # The question is whether two hook mechanisms read the same residual stream, so neither side takes a
    # backend-specific departure of the `paper` protocol (e.g. HF's post-norm last layer): both run as
    # `corrected` (docs/PROTOCOLS.md), and the result says so.
    proto = resolve_protocol("corrected")
    runs = {name: extract(spec, dtype, name, force=force, progress=progress, lm=lm, protocol=proto)
            for name in ("tl", "hf")}
    vec = {name: artifacts.load_vectors(p)["vectors"] for name, p in runs.items()}
    meta = {name: artifacts.load_metadata(p) for name, p in runs.items()}
    bad = set(meta["tl"]["nonfinite_layers"]) | set(meta["hf"]["nonfinite_layers"])
    per_layer = []
    for layer in range(vec["tl"].shape[0]):
        row = {"layer": layer}
        row.update(compare_layer(vec["tl"][layer], vec["hf"][layer]) if layer not in bad else
                   {"passed": None, "note": "non-finite activations"})
        per_layer.append(row)
    best = meta["tl"]["best_layer"]
    result = {
        "model": spec.hub_id,
        "dtype": dtype,
        "bar": {"cos_min": COSINE_BAR},
        "best": {"layer": best, **compare_layer(vec["tl"][best], vec["hf"][best])},
        "best_layer_tl": meta["tl"]["best_layer"],
        "best_layer_hf": meta["hf"]["best_layer"],
        "per_layer": per_layer,
        "passed": all(r["passed"] for r in per_layer if r["passed"] is not None),
        "runs": {k: str(v) for k, v in runs.items()},
        "protocol": {"name": proto.name, "why": "backend-specific departures off on both sides: the two hook "
                     "mechanisms are compared on the same stream (docs/PROTOCOLS.md)"},
        "weights_revision": lm.info.get("weights_revision"),
        "env": artifacts.environment(lm.device),
    }
    # The paper's keys at the best layer, flat, for quick reading.
    for key in ("cos_mean", "cos_min", "rdm_spearman", "rel_frobenius"):
        result[key] = result["best"][key]
    result["layer"] = best
    out = artifacts.runs_dir() / spec.slug / "equivalence.json"
    artifacts.write_json_atomic(out, result)
    if progress:
        b = result["best"]
        print(f"[equivalence] {spec.alias}: layer {best} cos mean {b['cos_mean']:.7f} min {b['cos_min']:.7f}, "
              f"RDM Spearman {b['rdm_spearman']:.6f}, rel Frobenius {b['rel_frobenius']:.2e}; "
              f"every layer passed: {result['passed']} -> {out}")
    return out
