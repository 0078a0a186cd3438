"""Run folders with real tensors and the metadata emogeo's own code computes from them (no model needed).

A comprehension run is built from chosen emotion means and neutral activations and summarised by
``repro.extraction.summarize``, so its metadata is what an extraction would write; the helper steers the
result towards asked Table A1-like values (best layer, anisotropy, RDM std) by construction:
- best layer: there the 21 centred vectors have near-equal norms (mean pairwise cosine near its floor
  -1/20); elsewhere their norms are spread, which raises the mean cosine;
- anisotropy: the neutral activations at the best layer are unit vectors with pairwise cosine exactly ``aniso``;
- RDM std: the best-layer means are Gaussian plus a rank-2 structure whose weight is bisected to ``std``.
Generation runs: vectors by the neutral_unit formula from saved means, RDM of their cosines.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from analysis.descriptors import cosine_matrix, upper
from repro import artifacts
from repro.extraction import ExtractionConfig, summarize
from repro.models import resolve
from repro.protocol import resolve_protocol
from repro.stimuli import EMOTIONS

D = 256
N_NEUTRAL = 20


def _equal_cosine(c: float, n: int, rng) -> np.ndarray:
    """n unit vectors in D dims with every pairwise cosine exactly c."""
    q, _ = np.linalg.qr(rng.normal(size=(D, n + 1)))
    return np.sqrt(c) * q[:, 0][None, :] + np.sqrt(1 - c) * q[:, 1:].T


def _best_layer_means(std: float, rng) -> np.ndarray:
    g = rng.normal(size=(21, D))
    s = rng.normal(size=(21, 2)) @ rng.normal(size=(2, D))

    def rdm_std(t):
        x = g + t * s
        return float(np.std(upper(cosine_matrix(x - x.mean(0)))))

    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rdm_std(mid) < std else (lo, mid)
    return g + lo * s


def comprehension(root: Path, hub: str, dtype="fp16", backend="tl", best=11, n_layers=28, aniso=0.627, std=0.103,
                  seed=0, nan_from=None, kind: str | None = None, extra: dict | None = None,
                  protocol: str = "paper") -> Path:
    spec = resolve(hub)
    rng = np.random.default_rng(seed)
    means = np.empty((n_layers, 21, D))
    neutral = np.empty((n_layers, N_NEUTRAL, D))
    for i in range(n_layers):
        if i == best:
            means[i] = _best_layer_means(std, rng)
            neutral[i] = _equal_cosine(aniso, N_NEUTRAL, rng)
        else:
            means[i] = rng.normal(size=(21, D)) * rng.uniform(0.2, 3.0, size=(21, 1))
            neutral[i] = _equal_cosine(0.5, N_NEUTRAL, rng)
        if nan_from is not None and i >= nan_from:
            means[i] = np.nan
    acts = torch.tensor(means, dtype=torch.float32)  # one passage per emotion: its mean is itself
    tensors, part = summarize(acts, list(EMOTIONS), tuple(EMOTIONS), torch.tensor(neutral, dtype=torch.float32),
                              ExtractionConfig(model=hub, dtype=dtype, backend=backend))
    assert part["best_layer"] == best, part["best_layer"]
    meta = {"schema": "emogeo.comprehension/1", "kind": "comprehension", "model": spec.to_dict(), "backend": backend,
            "dtype": dtype, "emotions": list(EMOTIONS), "n_layers": n_layers, "d_model": spec.d_model or D, **part,
            "protocol": resolve_protocol(protocol).record(f"extraction-{backend}"), **(extra or {})}
    suffix = "" if protocol == "paper" else f"-{protocol}"
    d = root / "artifacts/runs" / spec.slug / (kind or f"comprehension-{dtype}-{backend}{suffix}")
    d.mkdir(parents=True)
    artifacts.save_tensors_atomic(d / "vectors.safetensors", tensors)
    (d / "metadata.json").write_text(json.dumps(meta))
    return d


def generation(root: Path, hub: str, preset: str, precision: str, seed=0, n_layers=28, layer=14,
               extra: dict | None = None) -> Path:
    """A generation run (20 emotions, neutral_unit vectors at ``layer``) whose metadata the preset would write."""
    from repro.generation import GENERATION_EMOTIONS, LOOSE_STAGE, protocol_record
    from repro.generation import preset as preset_config
    from repro.layout import expected_name

    spec = resolve(hub)
    rng = np.random.default_rng(seed)
    em = rng.normal(size=(n_layers, 20, D))
    nm = rng.normal(size=(n_layers, D))
    v = em[layer] - nm[layer][None, :]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    rdm = cosine_matrix(v).astype(np.float32)
    proto = resolve_protocol("paper")
    applied = proto.identity(LOOSE_STAGE) if preset == "loose" else {}
    cfg = preset_config(preset, applied=applied).to_dict()
    meta = {"schema": "emogeo.generation/1", "kind": "generation", "preset": preset, "precision": precision,
            "protocol": protocol_record(preset, proto, applied),
            "generation_config": cfg, "config": {"preset": preset}, "model": spec.to_dict(), "backend": "hf",
            "emotions": list(GENERATION_EMOTIONS), "n_layers": n_layers, "layer": layer, "vector_formula": "neutral_unit",
            "rdm": rdm.tolist(), "mean_pairwise_cosine": float(np.mean(upper(rdm))), **(extra or {})}
    d = root / "artifacts/runs" / spec.slug / expected_name(meta)
    d.mkdir(parents=True)
    artifacts.save_tensors_atomic(d / "vectors.safetensors", {
        "vectors": torch.tensor(v, dtype=torch.float32), "emotion_means": torch.tensor(em, dtype=torch.float32),
        "neutral_mean": torch.tensor(nm, dtype=torch.float32)})
    (d / "metadata.json").write_text(json.dumps(meta))
    return d


def edit_json(path: Path, fn) -> None:
    doc = json.loads(Path(path).read_text())
    fn(doc)
    Path(path).write_text(json.dumps(doc))


def equivalence(root: Path, tl_dir: Path, dtype="fp16", noise=1e-7, seed=0) -> Path:
    """An HF twin of a TL comprehension run (vectors + tiny noise) and the equivalence.json that
    ``repro.equivalence.compare_layer`` gives for the pair."""
    from repro.equivalence import compare_layer

    hf_dir = tl_dir.with_name(tl_dir.name.replace("-tl", "-hf"))
    t = artifacts.load_vectors(tl_dir)
    g = torch.Generator().manual_seed(seed)
    t_hf = {k: v + noise * v.abs().max() * torch.randn(v.shape, generator=g) if k == "vectors" else v
            for k, v in t.items()}
    hf_dir.mkdir()
    artifacts.save_tensors_atomic(hf_dir / "vectors.safetensors", t_hf)
    meta = json.loads((tl_dir / "metadata.json").read_text())
    (hf_dir / "metadata.json").write_text(json.dumps(dict(meta, backend="hf")))
    best = meta["best_layer"]
    per_layer = [{"layer": i, **compare_layer(t["vectors"][i], t_hf["vectors"][i])}
                 for i in range(t["vectors"].shape[0]) if i not in meta["nonfinite_layers"]]
    out = {"model": meta["model"]["hub_id"], "dtype": dtype, "layer": best,
           "best": {"layer": best, **compare_layer(t["vectors"][best], t_hf["vectors"][best])},
           "per_layer": per_layer, "passed": all(r["passed"] for r in per_layer),
           "runs": {"tl": str(tl_dir), "hf": str(hf_dir)}}
    p = tl_dir.parent / "equivalence.json"
    p.write_text(json.dumps(out))
    return p
