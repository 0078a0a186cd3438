"""Every number a run reports, recomputed from the tensors it saved (numpy, float64, no torch).

``comprehension_values``: a comprehension run's layer sweep, best layer, non-finite layers, per-layer
anisotropy, best-layer RDM and descriptors, from its emotion means, centred vectors and neutral activations.
``generation_values``: a generation run's vectors from its saved means (by its vector formula) and its RDM.
``equivalence_values``: equivalence.json's comparison, from the two runs it names. ``decomposition_values``:
decomposition.json's L1-L4, from the runs it names, with its centring. Each returns (recomputed summary,
problems); a problem is one line naming the stored number and what the tensors give.

``VALUE_ATOL``: the runs compute these numbers in float64 from the same float32 tensors (``repro.geometry``);
recomputing them differs only by summation order (~1e-12), or by float32 rounding where a run stored an RDM
in float32 (generation: ~1e-7). 1e-5 leaves room for both and is 50x below half a unit of the third
decimal, the precision the paper prints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats as _st

from .descriptors import cosine_matrix, upper

VALUE_ATOL = 1e-5
DECOMP_LAYERS = ("L1_A_vs_C", "L2_B_vs_C", "L3_C_vs_D", "L4_A_vs_D")


def r4(x, nd=4):
    return None if x is None else round(float(x), nd)


def load_tensors(run_dir: Path) -> dict[str, np.ndarray]:
    """vectors.safetensors as float64 numpy arrays (no torch)."""
    from safetensors.numpy import load_file

    return {k: np.asarray(v, dtype=np.float64) for k, v in load_file(Path(run_dir) / "vectors.safetensors").items()}


def _mean_offdiag(m: np.ndarray) -> float:
    return float(np.mean(upper(m)))


def _differs(name: str, got, stored, problems: list[str], atol: float = VALUE_ATOL) -> None:
    """Record a problem when a stored number (or array) is not what the tensors give."""
    if stored is None and got is None:
        return
    if stored is None or got is None:
        problems.append(f"{name}: stored {stored}, tensors give {got}")
        return
    g = np.asarray(got, dtype=float)
    s = np.asarray([np.nan if v is None else v for v in np.ravel(stored)], dtype=float).reshape(np.shape(stored))
    if g.shape != s.shape:
        problems.append(f"{name}: shape {s.shape} stored, {g.shape} from tensors")
    elif not np.allclose(g, s, atol=atol, rtol=0, equal_nan=True):
        i = int(np.nanargmax(np.abs(np.nan_to_num(g - s, nan=np.inf)))) if g.size > 1 else 0
        problems.append(f"{name}: stored {np.ravel(s)[i]:.6g}, tensors give {np.ravel(g)[i]:.6g}")


def comprehension_values(run_dir: Path, meta: dict, tensors: dict | None = None) -> tuple[dict, list[str]]:
    """Recompute a comprehension run's numbers from its tensors (``tensors``: already loaded by the caller);
    (recomputed summary, problems)."""
    t = tensors if tensors is not None else load_tensors(run_dir)
    means, vectors, neutral = t["emotion_means"], t["vectors"], t["neutral_acts"]
    problems: list[str] = []
    scale = float(np.nanmax(np.abs(means))) or 1.0
    centred = means - means.mean(axis=1, keepdims=True)
    if not np.allclose(vectors, centred, atol=VALUE_ATOL * scale, rtol=0, equal_nan=True):
        problems.append("vectors are not the centred emotion means")
    L = vectors.shape[0]
    sweep = [_mean_offdiag(cosine_matrix(vectors[i])) for i in range(L)]
    sweep = [v if np.isfinite(v) else None for v in sweep]
    finite = {i: v for i, v in enumerate(sweep) if v is not None}
    best = min(finite, key=finite.get) if finite else None
    n_aniso = int(meta.get("anisotropy_sentences") or neutral.shape[1])
    aniso = [_mean_offdiag(cosine_matrix(neutral[i, :n_aniso])) for i in range(L)]
    aniso = [v if np.isfinite(v) else None for v in aniso]
    _differs("layer_sweep", sweep, meta.get("layer_sweep"), problems)
    if best != meta.get("best_layer"):
        problems.append(f"best_layer: stored {meta.get('best_layer')}, sweep minimum {best}")
    nonfinite = [i for i, v in enumerate(sweep) if v is None]
    if list(meta.get("nonfinite_layers") or []) != nonfinite:
        problems.append(f"nonfinite_layers: stored {meta.get('nonfinite_layers')}, tensors give {nonfinite}")
    if best is not None and abs(float(meta.get("best_layer_pct", -1)) - round(100 * best / L, 1)) > 0.05 + 1e-9:
        problems.append(f"best_layer_pct: stored {meta.get('best_layer_pct')}, 100 x {best}/{L}")
    _differs("anisotropy", aniso, meta.get("anisotropy"), problems)
    if best is not None:
        _differs("rdm", cosine_matrix(vectors[best]), meta.get("rdm"), problems)
    for name, d in (meta.get("descriptors") or {}).items():
        layer = d.get("layer")
        if not isinstance(layer, int) or not 0 <= layer < L:
            problems.append(f"descriptors.{name}.layer {layer} outside 0..{L - 1}")
            continue
        ok = sweep[layer] is not None
        _differs(f"descriptors.{name}.anisotropy", aniso[layer] if ok else None, d.get("anisotropy"), problems)
        _differs(f"descriptors.{name}.rdm_std", float(np.std(upper(cosine_matrix(vectors[layer])))) if ok else None,
                 d.get("rdm_std"), problems)
        _differs(f"descriptors.{name}.mean_cosine", sweep[layer], d.get("mean_cosine"), problems)
    if (meta.get("descriptors") or {}).get("best", {}).get("layer") != best:
        problems.append("descriptors.best.layer is not the best layer")
    summary = {"best_layer": best, "anisotropy": r4(aniso[best]) if best is not None else None,
               "rdm_std": r4(np.std(upper(cosine_matrix(vectors[best])))) if best is not None else None}
    return summary, problems


def generation_values(run_dir: Path, meta: dict) -> tuple[dict, list[str]]:
    """A generation run's vectors from its saved means (by its formula), its RDM from its vectors."""
    t = load_tensors(run_dir)
    vec, problems = t["vectors"], []
    layer = meta.get("layer")
    em, nm = t.get("emotion_means"), t.get("neutral_mean")
    if em is not None and isinstance(layer, int):
        v = em[layer] - (nm[layer][None, :] if meta.get("vector_formula") == "neutral_unit" else
                         em[layer].mean(axis=0, keepdims=True))
        if meta.get("vector_formula") == "neutral_unit":
            n = np.linalg.norm(v, axis=1, keepdims=True)
            v = np.where(n > 0, v / np.where(n > 0, n, 1.0), v)
        scale = float(np.nanmax(np.abs(vec))) or 1.0
        if v.shape != vec.shape or not np.allclose(v, vec, atol=VALUE_ATOL * scale, rtol=0, equal_nan=True):
            problems.append(f"vectors are not the {meta.get('vector_formula')} vectors of the saved means at layer {layer}")
    rdm = cosine_matrix(vec)
    _differs("rdm", rdm, meta.get("rdm"), problems)
    _differs("mean_pairwise_cosine", _mean_offdiag(rdm), meta.get("mean_pairwise_cosine"), problems)
    return {"layer": layer, "mean_pairwise_cosine": r4(_mean_offdiag(rdm))}, problems


def _compare_layer(a: np.ndarray, b: np.ndarray) -> dict:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    ra, rb = cosine_matrix(a), cosine_matrix(b)
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
            "rdm_spearman": float(_st.spearmanr(upper(ra), upper(rb)).statistic),
            "rel_frobenius": float(np.linalg.norm(ra - rb) / np.linalg.norm(ra))}


def equivalence_values(slug_dir: Path, d: dict, cos_bar: float = 0.9999) -> tuple[dict, list[str]]:
    """The best-layer comparison of equivalence.json, recomputed from the two runs it names."""
    runs = {k: Path(slug_dir) / Path(p).name for k, p in (d.get("runs") or {}).items()}
    if set(runs) != {"tl", "hf"}:
        return {}, [f"equivalence.json names runs {sorted(runs)}, not tl and hf"]
    vec = {k: load_tensors(p)["vectors"] for k, p in runs.items()}
    layer, best, problems = d.get("layer"), d.get("best") or {}, []
    got = _compare_layer(vec["tl"][layer], vec["hf"][layer])
    for k, v in got.items():
        _differs(f"best.{k}", v, best.get(k), problems, atol=1e-6)
    bad = [r["layer"] for r in d.get("per_layer", []) if r.get("passed") is not None
           and bool(r["passed"]) != bool(_compare_layer(vec["tl"][r["layer"]], vec["hf"][r["layer"]])["cos_min"]
                                         >= cos_bar)]
    if bad:
        problems.append(f"per-layer pass/fail disagrees with the vectors at layers {bad}")
    return {k: (r4(v, 7) if k.startswith("cos") else v) for k, v in got.items()}, problems


def decomposition_values(runs_root: Path, d: dict) -> tuple[dict, list[str]]:
    """L1-L4 recomputed from the runs decomposition.json names, with its centring."""
    from repro.artifacts import load_metadata

    from .decomposition import condition_rdm, decompose
    from .runs import ComprehensionRun, GenerationRun

    rdms, problems = {}, []
    for cond, c in (d.get("conditions") or {}).items():
        if c is None:
            rdms[cond] = None
            continue
        path = Path(runs_root) / c["run"]
        cls = ComprehensionRun if cond == "A" else GenerationRun
        rdms[cond] = condition_rdm(cls(path, load_metadata(path)), (d.get("centring") or {}).get("mode", "post"))
    if not rdms:
        return {}, ["decomposition.json names no conditions"]
    again = decompose(rdms, d.get("model", "?"))["layers"]
    layers = d.get("layers") or {}
    got = {}
    for k in DECOMP_LAYERS:
        stored, new = layers.get(k) or {}, again[k]
        got[k] = r4(new["rho"]) if new["status"] == "ok" else new["status"]
        if (stored.get("status") == "ok") != (new["status"] == "ok"):
            problems.append(f"{k}: stored status {stored.get('status')}, runs give {new['status']}")
        elif new["status"] == "ok":
            _differs(f"{k}.rho", new["rho"], stored.get("rho"), problems)
    return got, problems
