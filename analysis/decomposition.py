"""Four-layer decomposition of the method x precision conflation (Section 4.3).

Conditions for one model:
  A  comprehension extraction (fp16 in the paper; the run's dtype otherwise)   21 emotions incl. neutral
  B  generation, ``loose`` preset (the sub-parameter contrast)                   20 emotions
  C  generation, ``protocol_matched`` preset, unquantised (fp16)                 20 emotions
  D  generation, ``protocol_matched`` preset, int8                               20 emotions

Layers (RDM Spearman of the two conditions, aligned on shared emotion names, so A is cut to 20):
  L1 A-C method, L2 B-C sub-parameters, L3 C-D precision, L4 A-D the conflated cross-experiment statistic.

Centring (``CENTRING``). The paper's numbers were computed by the authors' analysis
(``paper5/analysis/finding8_3layer.py``), which post-centres every condition's vectors over its own emotions
(A over its 21, B-D over their 20: subtract the set's mean vector), then restricts both to the shared
emotions and compares cosine RDMs. The paper's text does not say so (docs/PROTOCOLS.md, departure
``decomposition_post_centring``). The default here is that analysis, recomputed from each run's saved
vectors; ``stored`` compares the runs' stored RDMs instead (generation vectors un-centred), an explicitly
named variant that is not the paper's.

Reading of L4 against L3 (Section 4.3.4): if the conflated rho is larger than the precision-only rho, taking
A-vs-D as a precision measure *over-estimates* it (Mistral 7B: 0.409 vs 0.215, ratio 1.90); if smaller, it
*under-estimates* it (Llama 3.1 8B: 0.325 vs 0.527, ratio 0.62).
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from repro import artifacts
from repro.stimuli.sets import DEFAULT_SET

from .descriptors import cosine_matrix
from .rsa import RDM, AlignmentError, compare
from .runs import AnalysisConfig, GenerationRun, Runs, collect, short_name

SCHEMA = "emogeo.decomposition/1"

LAYERS: tuple[tuple[str, str, str, str], ...] = (
    ("L1_A_vs_C", "A", "C", "method: comprehension vs protocol-matched generation, precision fixed"),
    ("L2_B_vs_C", "B", "C", "sub-parameters: loose vs protocol-matched generation, method and precision fixed"),
    ("L3_C_vs_D", "C", "D", "precision: fp16 vs int8, protocol-matched generation"),
    ("L4_A_vs_D", "A", "D", "conflated cross-experiment statistic (method + sub-parameters + precision)"),
)
LAYER_KEYS = tuple(k for k, *_ in LAYERS)
CENTRING = {
    "post": "each condition's vectors minus their mean over all of its own emotions, then restricted to the "
            "shared emotions (the authors' analysis: the published numbers)",
    "stored": "the runs' stored RDMs as they are, without post-centring (NOT the paper's analysis)",
}
QUANTISED = ("int8", "nf4", "int4", "q8", "8bit", "4bit")
UNQUANTISED_PREFERENCE = ("fp16", "bf16", "fp32")


def reading(l3: float | None, l4: float | None) -> dict:
    """How the conflated A-vs-D rho misreads the precision-only C-vs-D rho."""
    if l3 is None or l4 is None or not (math.isfinite(l3) and math.isfinite(l4)):
        return {"direction": "not available", "ratio": None, "text": "L3 and L4 both needed"}
    ratio = l4 / l3 if l3 != 0 else None
    if abs(l4 - l3) < 1e-9:
        direction = "matches"
    else:
        direction = "over-estimates" if l4 > l3 else "under-estimates"
    rtxt = f"{ratio:.2f}x" if ratio is not None else "n/a"
    if direction == "matches":
        text = f"conflated A-vs-D rho ({l4:.3f}) equals the precision-only C-vs-D rho ({l3:.3f})"
    else:
        text = (f"conflated A-vs-D rho {l4:.3f} vs precision-only C-vs-D rho {l3:.3f} ({rtxt}): read as a "
                f"precision measure, the conflated statistic {direction} it")
    return {"direction": direction, "ratio": ratio, "text": text}


def post_centre(vectors: np.ndarray) -> np.ndarray:
    """Subtract the set's mean vector from each of its rows ([k, d] -> [k, d])."""
    v = np.asarray(vectors, dtype=np.float64)
    return v - v.mean(axis=0, keepdims=True)


def condition_rdm(run, centring: str = "post") -> RDM:
    """The RDM a condition contributes: from the run's saved vectors, post-centred over all of its own
    emotions (``post``), or the RDM stored in its metadata (``stored``)."""
    if centring not in CENTRING:
        raise ValueError(f"unknown decomposition centring {centring!r}; use one of {', '.join(CENTRING)}")
    stored = run.rdm()
    if centring == "stored":
        return stored
    return replace(stored, matrix=cosine_matrix(post_centre(run.condition_vectors())))


def decompose(conditions: dict[str, RDM | None], model: str, n_perm: int = 0, seed: int = 0) -> dict:
    """L1-L4 from labelled RDMs (any of A-D may be None: its layers then read "not run")."""
    layers = {}
    for key, x, y, meaning in LAYERS:
        a, b = conditions.get(x), conditions.get(y)
        entry = {"contrast": f"{x} vs {y}", "isolates": meaning, "rho": None, "pearson": None,
                 "n_emotions": None, "status": "ok"}
        if a is None or b is None:
            entry["status"] = "not run"
            entry["missing"] = [c for c, r in ((x, a), (y, b)) if r is None]
        else:
            try:
                r = compare(a, b)
                entry.update(rho=r.spearman, pearson=r.pearson, n_emotions=r.n_emotions)
                if n_perm:
                    from .stats import mantel

                    entry["mantel_p"] = mantel(a, b, n_perm=n_perm, seed=seed).p
                    entry["n_perm"] = n_perm
            except (AlignmentError, ValueError) as exc:
                entry["status"] = f"refused: {exc}"
        layers[key] = entry
    l3, l4 = layers["L3_C_vs_D"]["rho"], layers["L4_A_vs_D"]["rho"]
    return {"schema": SCHEMA, "model": model, "layers": layers, "reading": reading(l3, l4)}


def _pick_generation(gens: list[GenerationRun], preset: str, quantised: bool, prefer: str | None = None,
                     config: AnalysisConfig | None = None) -> GenerationRun | None:
    cfg = config or AnalysisConfig()
    want = cfg.stimuli_set or DEFAULT_SET
    cands = [g for g in gens if g.preset == preset and (g.precision.lower() in QUANTISED) == quantised]
    if not cands:
        return None
    # Explicit rules, in order: the asked stimulus set (as for the comprehension run A; default ours); a run
    # of the asked protocol (only loose runs differ by protocol); the preferred precision; the preset's own
    # config before a reduced budget; then the folder name. The chosen run is named in "conditions".
    order = ([prefer] if prefer else []) + list(UNQUANTISED_PREFERENCE) + list(QUANTISED)
    wanted = cfg.wanted_protocol()
    return sorted(cands, key=lambda g: (g.stimuli_set != want, not g.is_run_of(wanted),
                                        order.index(g.precision) if g.precision in order else 99,
                                        not g.at_preset, g.kind))[0]


def select_conditions(runs: Runs, slug: str, config: AnalysisConfig | None = None) -> dict:
    """The run chosen for each of A-D (None where absent)."""
    comp = [r for r in runs.primary(config) if r.slug == slug]
    gens = runs.generation_for(slug)
    c = _pick_generation(gens, "protocol_matched", quantised=False, config=config)
    return {"A": comp[0] if comp else None,
            "B": _pick_generation(gens, "loose", quantised=False, prefer=c.precision if c else None, config=config),
            "C": c,
            "D": _pick_generation(gens, "protocol_matched", quantised=True, config=config)}


def _same_result(path: Path, out: dict) -> bool:
    import json

    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    new = json.loads(artifacts.dumps(out))
    return {k: v for k, v in old.items() if k != "env"} == {k: v for k, v in new.items() if k != "env"}


def decomposition_from_runs(slug: str, runs: Runs | None = None, root=None, config: AnalysisConfig | None = None,
                            write: bool = True) -> dict:
    """Decomposition of one model from its run directories; writes runs/<slug>/decomposition.json."""
    cfg = config or AnalysisConfig()
    runs = runs or collect(root)
    chosen = select_conditions(runs, slug, cfg)
    rdms, unreadable = {}, {}
    for k, r in chosen.items():
        try:
            rdms[k] = condition_rdm(r, cfg.decomposition_centring) if r is not None else None
        except (artifacts.ArtifactError, ValueError, KeyError, IndexError) as exc:  # one bad run: its layers say why
            rdms[k], unreadable[k] = None, f"{r.slug}/{r.kind}: {exc}"
    model = next((r.hub_id for r in chosen.values() if r is not None), slug)
    out = decompose(rdms, model, n_perm=cfg.n_perm, seed=cfg.seed)
    for key, x, y, _ in LAYERS:
        bad = [unreadable[c] for c in (x, y) if c in unreadable]
        if bad:
            out["layers"][key].update(status="refused: " + "; ".join(bad))
            out["layers"][key].pop("missing", None)
    out["source"] = "runs"
    out["centring"] = {"mode": cfg.decomposition_centring, "meaning": CENTRING[cfg.decomposition_centring]}
    out["label"] = short_name(model)
    wanted = cfg.wanted_protocol()
    out["protocol"] = wanted.to_dict()
    out["conditions"] = {
        k: (None if r is None else {"run": f"{r.slug}/{r.kind}", "n_emotions": len(r.emotions),
                                    "precision": getattr(r, "precision", None) or getattr(r, "dtype", None),
                                    "preset": getattr(r, "preset", "comprehension"),
                                    "run_of_protocol": r.is_run_of(wanted)})
        for k, r in chosen.items()}
    out["env"] = artifacts.environment()
    if write and any(chosen[k] is not None for k in "BCD"):
        path = Path(runs.root) / "runs" / slug / "decomposition.json"
        # Rewrite only when the numbers change: the file is covered by checksums/runs.sha256, and a
        # report re-rendered later (new git revision in env) must not break the runs' integrity check.
        if not _same_result(path, out):
            artifacts.write_json_atomic(path, out)
    return out


def all_from_runs(runs: Runs | None = None, root=None, config: AnalysisConfig | None = None,
                  write: bool = True) -> list[dict]:
    """Decompositions of every model that has at least one generation run."""
    runs = runs or collect(root)
    slugs = sorted({g.slug for g in runs.generation})
    return [decomposition_from_runs(s, runs, config=config, write=write) for s in slugs]


def from_reference() -> list[dict]:
    """The released decomposition numbers (analysis.reference.decomposition()) with the same reading."""
    from . import reference

    out = []
    for hub_id, vals in reference.decomposition().items():
        layers = {}
        for key, x, y, meaning in LAYERS:
            v = vals.get(key)
            layers[key] = {"contrast": f"{x} vs {y}", "isolates": meaning,
                           "rho": None if v is None else float(v), "pearson": None, "n_emotions": 20,
                           "status": "ok" if v is not None else "not released"}
        res = {"schema": SCHEMA, "model": hub_id, "label": short_name(hub_id), "source": "reference",
               "layers": layers, "reading": reading(layers["L3_C_vs_D"]["rho"], layers["L4_A_vs_D"]["rho"])}
        out.append(res)
    return out
