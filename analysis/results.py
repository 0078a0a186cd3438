"""Compute every analysis number from a set of runs (or from the paper's reference numbers).

``compute(from_reference, root, config)`` returns one JSON-serialisable dict of results, written by
``write_results`` to ``<artifacts>/analysis/results.json``; ``analysis.tables`` turns it into tables, and the
figures and the report read the same dict. A number whose inputs are missing says "not run" and why.

Modes
- runs (default): every finished run under ``<root>/runs``; paper numbers appear alongside for comparison.
- reference (``from_reference=True``): the paper's Table A1, the released 12x12 RDM-of-RDMs and the released
  decomposition / MTI numbers only (``analysis.reference``); nothing is read from runs.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from repro import artifacts
from repro.stimuli.sets import DEFAULT_SET

from . import decomposition as decomp
from .protocol_effects import decomposition_effects, protocol_effects
from .isotropy import invariance_gap, is_flagged, isotropised_anisotropy, isotropised_rdm
from .rsa import RDM, ModelInfo, compare, mature_block, mti_dissociation, rdm_of_rdms, within_family_pairs
from .runs import PRIMARY_RULES, AnalysisConfig, Runs, artifacts_root, collect, short_name
from .tabular import NOT_RUN  # one spelling of "not run" for tables and results
from .stats import (PAPER_SIZE_TESTS, SUPPLEMENTARY_SIZE_TESTS, bootstrap_ci, mantel, size_correlations,
                    split_half)

RESULTS_SCHEMA = "emogeo.analysis/1"


# ---- reference data (written by another module; every use degrades to "not available") ------------------

def _reference():
    try:
        from . import reference
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        raise RuntimeError(f"analysis.reference unavailable: {exc}") from exc
    return reference


def _try(fn, default=None):
    try:
        return fn()
    except Exception:  # reference files missing or malformed: the caller shows "not available"
        return default


def paper_numbers() -> dict[str, object]:
    """{id: value} of the paper's printed numbers (empty if the reference data is unavailable)."""
    return _try(lambda: {k: v["value"] for k, v in _reference().paper_numbers_by_id().items()}, {})


def _released_label_to_hub(label: str) -> str:
    ref = _try(_reference)
    mapping = getattr(ref, "N12_LABEL_HUB_IDS", {}) if ref else {}
    return mapping.get(label, label)


# ---- the results dict ---------------------------------------------------------------------------------

def _model_row_from_a1(r: dict) -> dict:
    return {"model": r["hub_id"], "label": short_name(r["hub_id"]), "run": "paper Table A1", "source": "paper",
            "stimuli": "authors'",
            "family": r.get("family"), "variant": r.get("variant"), "size_b": r.get("size_b"),
            "backend": r.get("backend"), "dtype": "fp16", "n_layers": r.get("n_layers"), "d_model": r.get("d_model"),
            "best_layer": r.get("best_layer"), "best_layer_pct": r.get("best_layer_pct"),
            "anisotropy": r.get("anisotropy"), "rdm_std": r.get("rdm_std"),
            "flag": is_flagged(r.get("anisotropy")), "fragile": None}


def _pairs_from_matrix(info: list[ModelInfo], mat: np.ndarray) -> list[dict]:
    out = []
    for i in range(len(info)):
        for j in range(i + 1, len(info)):
            a, b = info[i], info[j]
            an = [x for x in (a.anisotropy, b.anisotropy) if x is not None]
            out.append({"a": a.label, "b": b.label, "rho": float(mat[i, j]), "pearson": None, "n_emotions": None,
                        "mantel_p": None, "ci_lo": None, "ci_hi": None, "noise_ceiling": None,
                        "flagged": a.flagged or b.flagged,
                        "max_anisotropy": max(an) if an else None})
    return out


# The paper's headline claims and the verify claims that judge them from runs (prefixes of claim ids).
HEADLINE_CLAIMS = (
    ("3.1", "mature architectures share the 21-emotion geometry (rho 0.742-0.919)",
     ("S3.1.mature_instruct.range.run", "S3.1.mature_instruct.mean.run")),
    ("3.2", "Qwen-I vs Llama-3.2-I RDMs correlate at 0.813 despite opposed MTI profiles",
     ("S3.2.qwen_i_vs_llama32_i.spearman.run",)),
    ("3.3", "Gemma-3 1B base is immature (anisotropy 0.997, RDM std 0.333); RLHF reshapes it",
     ("A1.row05.run", "A1.row06.run")),
    ("3.4", "Llama 3.2 3B-I vs Llama 3.1 8B-I is the closest cross-family pair (0.919)",
     ("S3.4.llama32_i_vs_llama31_i.run",)),
    ("3.5", "anisotropy and RDM std fall with size (rho -0.82 to -0.89); best layer % only weakly (-0.48)",
     tuple(f"S3.5.size_table.{k}.run" for k in ("dmodel_anisotropy", "size_anisotropy", "size_rdm_std",
                                                  "size_best_layer_pct"))),
    ("4.2", "TransformerLens and HF hooks extract the same vectors (cos 0.999998)", ("S4.2.equivalence.run",)),
    ("4.3", "four-layer decomposition; conflated A-vs-D misreads precision in opposite directions",
     ("S4.3.decomposition.Mistral-7B-Instruct-v0.3.run", "S4.3.decomposition.Llama-3.1-8B-Instruct.run")),
)


def _claims(runs: Runs | None, results: dict, config: AnalysisConfig | None = None) -> list[dict]:
    """The paper's headline claims as verify judges them on the runs present: reproduced (every claim behind it
    PASS), ran but disagrees (a FAIL), or waiting for a GPU run (a NOT RUN, with the models it needs)."""
    from .verify import claims_registry, evaluate
    from .verify_model import FAIL, NOT_RUN, PASS, Ctx
    from .verify_runs import pick

    ctx = Ctx(Path(__file__).resolve().parent.parent, (config or AnalysisConfig()).stimuli_set,
              runs_root=None if runs is None else Path(runs.root) / "runs")
    if runs is None:
        ctx.runs_root = ctx.root / "artifacts" / ".no-runs"  # the reference alone: every run claim waits
    wanted = tuple(p for *_, prefixes in HEADLINE_CLAIMS for p in prefixes)
    judged = {c.id: (c, evaluate(c, ctx)) for c in claims_registry(ctx=ctx) if c.id.startswith(wanted)}
    out = []
    for sec, claim, prefixes in HEADLINE_CLAIMS:
        mine = [(c, r) for cid, (c, r) in judged.items() if cid.startswith(prefixes)]
        statuses = {r["status"] for _, r in mine}
        missing = [short_name(h) for h in dict.fromkeys(h for c, r in mine if r["status"] == NOT_RUN for h in c.models)
                   if pick(ctx, h) is None] or (["Llama-3.2-3B-I equivalence run"] if sec == "4.2" and NOT_RUN in statuses
                                                else ["decomposition runs (A-D)"] if NOT_RUN in statuses else [])
        status = ("waiting for a GPU run" if NOT_RUN in statuses or not mine else
                  "ran, disagrees (verify FAIL)" if FAIL in statuses else
                  "reproduced (verify PASS)" if statuses == {PASS} else ", ".join(sorted(statuses)))
        out.append({"section": sec, "claim": claim, "status": status, "missing": missing,
                    "claims": sorted(r["id"] for _, r in mine)})
    return out


def compute(from_reference: bool = False, root=None, config: AnalysisConfig | None = None) -> dict:
    """All numbers behind the tables, figures and report."""
    cfg = config or AnalysisConfig()
    res: dict = {"schema": RESULTS_SCHEMA, "mode": "reference" if from_reference else "runs",
                 "config": asdict(cfg), "paper": paper_numbers()}
    ref = _try(_reference)
    a1 = _try(lambda: ref.table_a1(), None) if ref else None
    res["paper_table_a1"] = [_model_row_from_a1(r) for r in a1] if a1 else None
    res["size"] = {"paper": _try(lambda: ref.size_table(), []) if ref else [],
                   "table_a1": size_correlations(a1, PAPER_SIZE_TESTS) if a1 else None,
                   "table_a1_supplementary": size_correlations(a1, SUPPLEMENTARY_SIZE_TESTS) if a1 else None,
                   "runs": None, "runs_reason": None}
    if from_reference:
        _compute_reference(res, ref, a1, cfg)
        res["claims"] = _claims(None, res, cfg)
        return res
    runs = collect(root)
    _compute_runs(res, runs, ref, a1, cfg)
    res["claims"] = _claims(runs, res, cfg)
    return res


def _compute_reference(res: dict, ref, a1: list[dict] | None, cfg: AnalysisConfig) -> None:
    res["runs_present"] = []
    res["skipped"] = []
    res["table_a1"] = res["paper_table_a1"]
    res["table_a1_reason"] = None if a1 else "reference Table A1 unavailable"
    released = _released_matrix(ref, a1)
    if released is not None:
        info, mat, notes = released
        res["rdm_of_rdms"] = _rr_dict(info, mat, RELEASED_SOURCE, notes)
        res["pairs"] = _pairs_from_matrix(info, mat)
        res["summary"] = mature_block(info, mat)
        res["within_family"] = within_family_pairs(info, mat)
        mti = _try(lambda: ref.mti_scores(), None)
        try:
            res["mti"] = mti_dissociation(info, mat, mti_scores=mti)
            res["mti"]["source"] = "released 12x12 RDM-of-RDMs"
        except (KeyError, ValueError) as exc:
            res["mti"] = {"status": NOT_RUN, "reason": f"pair not in the released matrix: {exc}"}
    else:
        res["rdm_of_rdms"] = None
        res["pairs"], res["summary"], res["within_family"] = [], None, []
        res["mti"] = {"status": NOT_RUN, "reason": "released RDM-of-RDMs unavailable"}
    res["size"]["runs_reason"] = "reference mode: computed from Table A1 only"
    res["decomposition"] = _try(decomp.from_reference, [])
    res["isotropy"] = {"status": NOT_RUN, "reason": "needs per-model emotion vectors and neutral activations, "
                       "which were not released; run `invoke reproduce` to compute it", "d": cfg.isotropy_d}
    res["split_half"] = {}
    res["ablation"], res["steering"], res["equivalence"] = {}, {}, {}
    res["paper_equivalence"] = _paper_equivalence(res["paper"])
    res["rdms"] = []
    res["sweeps"] = _released_sweeps(ref, a1)


RELEASED_SOURCE = "released n12 task1 (Spearman, raw cosine RDMs)"


def _released_matrix(ref, a1: list[dict] | None):
    """(model infos, matrix, notes) of the authors' released 12x12 RDM-of-RDMs, or None when unavailable."""
    released = _try(lambda: ref.released_rdm_of_rdms(), None) if ref else None
    if released is None:
        return None
    a1_by_hub = {r["hub_id"]: r for r in (a1 or [])}
    labels, mat = released
    info, notes = [], []
    for lab in labels:
        hub = _released_label_to_hub(lab)
        row = a1_by_hub.get(hub)
        meta = _try(lambda h=hub: ref.released_metadata(h), None)
        aniso = row["anisotropy"] if row else _best_anisotropy(meta)
        if row is None:
            notes.append(f"released label {lab!r} holds {hub}, which is not a Table A1 model "
                         f"(Appendix A.4); its anisotropy {aniso} is taken from its released metadata")
        info.append(ModelInfo(short_name(hub), (row or {}).get("family") or _family_guess(hub),
                              (row or {}).get("variant") or ("I" if "Instruct" in hub or hub.endswith("-it")
                                                             else "B"),
                              (row or {}).get("size_b"), aniso, hub))
    return info, mat, notes


def _released_sweeps(ref, a1: list[dict] | None) -> list[dict]:
    """Figure 4's layer sweeps from the authors' released metadata (the models that have one)."""
    out = []
    for r in a1 or []:
        meta = _try(lambda h=r["hub_id"]: ref.released_metadata(h), None) if ref else None
        if meta:
            out.append(_released_sweep(r, meta))
    # Released sweeps of models in the released matrix but not in Table A1 (Mistral-7B-v0.1, Appendix A.4).
    in_a1 = {r["hub_id"] for r in a1 or []}
    released = _try(lambda: ref.released_rdm_of_rdms(), None) if ref else None
    for hub in [_released_label_to_hub(lab) for lab in (released[0] if released else [])]:
        meta = None if hub in in_a1 else _try(lambda h=hub: ref.released_metadata(h), None)
        if meta:
            row = {"hub_id": hub, "n_layers": meta.get("n_layers"), "best_layer": meta.get("best_layer"),
                   "anisotropy": _best_anisotropy(meta)}
            out.append({**_released_sweep(row, meta), "label": f"{short_name(hub)} (not in Table A1)"})
    return out


def _best_anisotropy(meta: dict | None) -> float | None:
    if not meta:
        return None
    for k, v in (meta.get("anisotropy") or {}).items():
        if k.endswith("_best"):
            return float(v)
    return None


def _family_guess(hub: str) -> str | None:
    for key, fam in (("Qwen2.5", "Qwen 2.5"), ("SmolLM2", "SmolLM2"), ("gemma-3", "Gemma-3"),
                     ("Llama-3.2", "Llama 3.2"), ("Llama-3.1", "Llama 3.1"), ("Mistral-7B", "Mistral 7B")):
        if key in hub:
            return fam
    return None


def _released_sweep(row: dict, meta: dict) -> dict:
    n = int(meta.get("n_layers") or row["n_layers"])
    sweep = [None] * n
    for e in meta.get("layer_sweep") or []:
        v = e.get("mean_cosine")
        if v is not None and isinstance(v, (int, float)) and math.isfinite(v) and 0 <= e["layer"] < n:
            sweep[e["layer"]] = float(v)
    aniso = [None] * n
    for key, v in (meta.get("anisotropy") or {}).items():
        try:
            layer = int(key.split("_")[1])
        except (IndexError, ValueError):
            continue
        if isinstance(v, (int, float)) and math.isfinite(v) and 0 <= layer < n:
            aniso[layer] = float(v)
    return {"label": short_name(row["hub_id"]), "model": row["hub_id"], "n_layers": n,
            "best_layer": meta.get("best_layer", row.get("best_layer")), "layer_sweep": sweep, "anisotropy": aniso,
            "flag": is_flagged(row.get("anisotropy")), "source": "released metadata.json",
            "anisotropy_note": "released anisotropy exists only at the 25/50/75% and best layers"}


def _rr_dict(info: list[ModelInfo], mat, source: str, notes=()) -> dict:
    return {"labels": [m.label for m in info], "models": [m.hub_id for m in info],
            "anisotropy": [m.anisotropy for m in info], "flags": [m.flagged for m in info],
            "variants": [m.variant for m in info], "matrix": np.asarray(mat).tolist(), "source": source,
            "notes": list(notes)}


def _paper_equivalence(paper: dict) -> dict | None:
    keys = ("S4.2.cos_mean", "S4.2.cos_min", "S4.2.rdm_spearman", "S4.2.rel_frobenius")
    if not all(k in paper for k in keys):
        return None
    return {"layer": paper.get("S2.4.cross_backend_layer"), "cos_mean": paper[keys[0]], "cos_min": paper[keys[1]],
            "rdm_spearman": paper[keys[2]], "rel_frobenius": paper[keys[3]], "passed": True}


def _unique_labels(runs) -> list[str]:
    labels, seen = [], {}
    for r in runs:
        lab = r.label
        if lab in seen:
            lab = f"{lab} [{r.dtype}/{r.backend}]"
        seen[lab] = True
        labels.append(lab)
    return labels


def _compute_runs(res: dict, runs: Runs, ref, a1: list[dict] | None, cfg: AnalysisConfig) -> None:
    res["runs_present"] = [f"{r.slug}/{r.kind}" for r in runs.comprehension] + \
                          [f"{g.slug}/{g.kind}" for g in runs.generation]
    res["skipped"] = list(runs.skipped)
    res["embedded_present"] = sorted({r.hub_id for r in runs.comprehension if r.is_embedded})
    prim = runs.primary(cfg)
    labels = _unique_labels(prim)
    # The run each model contributes to every comparison, and the rules that chose it (named in the report).
    res["runs_used"] = [{"model": r.hub_id, "label": lab, "run": f"{r.slug}/{r.kind}", "stimuli": r.stimuli_set,
                         "protocol": r.protocol_label, "dtype": r.dtype, "backend": r.backend}
                        for r, lab in zip(prim, labels)]
    res["runs_used_rules"] = PRIMARY_RULES.format(stimuli=cfg.stimuli_set or DEFAULT_SET, protocol=cfg.protocol)
    used = {u["run"] for u in res["runs_used"]}
    res["protocol_effects"] = protocol_effects(runs)
    res["decomposition_effects"] = decomposition_effects(runs, cfg)

    # Table A1 for every comprehension run, with split-half reliability of its best-layer RDM.
    rows, split = [], {}
    for r in runs.comprehension:
        row = r.table_row()
        row["label"] = r.label
        row["used"] = row["run"] in used
        sh = _split_half(r, cfg)
        row["split_half"] = sh.get("reliability")
        row["too_noisy"] = sh.get("too_noisy")
        split[f"{r.slug}/{r.kind}"] = sh
        rows.append(row)
    res["table_a1"] = rows
    res["table_a1_reason"] = None if rows else "no comprehension runs under artifacts/runs"
    res["split_half"] = split

    # RDM-of-RDMs, pairs with inference, summaries.
    rdms = [r.rdm(lab) for r, lab in zip(prim, labels)]
    info = [r.info(lab) for r, lab in zip(prim, labels)]
    res["rdms"] = [{"label": x.label, "model": x.model, "emotions": list(x.emotions), "matrix": x.matrix.tolist(),
                    "anisotropy": x.anisotropy, "layer": x.layer, "embedded": r.is_embedded}
                   for x, r in zip(rdms, prim)]
    rel = {}
    for r, lab in zip(prim, labels):
        v = split.get(f"{r.slug}/{r.kind}", {}).get("reliability")
        rel[lab] = v if v is not None and np.isfinite(v) and v > 0 else None
    if len(rdms) >= 2:
        lab, mat = rdm_of_rdms(rdms)
        res["rdm_of_rdms"] = _rr_dict(info, mat, "runs (one comprehension run per model; Spearman)")
        pairs = []
        for i in range(len(rdms)):
            for j in range(i + 1, len(rdms)):
                r = compare(rdms[i], rdms[j])
                m = mantel(rdms[i], rdms[j], n_perm=cfg.n_perm, seed=cfg.seed)
                b = bootstrap_ci(rdms[i], rdms[j], n_boot=cfg.n_boot, seed=cfg.seed, level=cfg.ci_level)
                an = [x for x in (info[i].anisotropy, info[j].anisotropy) if x is not None]
                pairs.append({"a": labels[i], "b": labels[j], "rho": r.spearman, "pearson": r.pearson,
                              "n_emotions": r.n_emotions, "mantel_p": m.p, "ci_lo": b.lo, "ci_hi": b.hi,
                              "flagged": info[i].flagged or info[j].flagged,
                              "max_anisotropy": max(an) if an else None,
                              "noise_ceiling": (float(np.sqrt(min(1.0, rel[labels[i]]) * min(1.0, rel[labels[j]])))
                                                if rel[labels[i]] and rel[labels[j]] else None)})
        res["pairs"] = pairs
        res["summary"] = mature_block(info, mat)
        res["within_family"] = within_family_pairs(info, mat)
        try:
            res["mti"] = mti_dissociation(info, mat, mti_scores=_try(lambda: ref.mti_scores(), None))
            res["mti"]["source"] = "runs"
        except (KeyError, ValueError):
            res["mti"] = {"status": NOT_RUN, "reason": "needs comprehension runs of Qwen2.5-1.5B-Instruct and "
                          "Llama-3.2-3B-Instruct (`invoke reproduce --models paper`); use --from-reference for "
                          "the released matrix"}
    else:
        res["rdm_of_rdms"] = None
        res["pairs"], res["summary"], res["within_family"] = [], None, []
        res["rdm_of_rdms_reason"] = f"{len(rdms)} model(s) with a comprehension run; need at least 2"
        res["mti"] = {"status": NOT_RUN, "reason": "needs comprehension runs of Qwen2.5-1.5B-Instruct and "
                      "Llama-3.2-3B-Instruct"}

    # Size correlations over the models present.
    models = [r.table_row() for r in prim if r.size_b is not None and r.d_model is not None]
    if len(models) >= 4:
        res["size"]["runs"] = size_correlations(models, PAPER_SIZE_TESTS)
    else:
        res["size"]["runs_reason"] = (f"{len(models)} model(s) with known size; need at least 4 "
                                      "(the paper uses all twelve)")

    # Decomposition (writes runs/<slug>/decomposition.json) + the released numbers for comparison.
    res["decomposition"] = decomp.all_from_runs(runs, config=cfg, write=True) + _try(decomp.from_reference, [])

    # Isotropy: raw vs linearly normalised vs All-but-the-Top.
    res["isotropy"] = _isotropy(prim, labels, rdms, cfg)

    # The authors' released values, drawn beside the runs (Figures 1, 4 and 5) and never mixed into their numbers.
    released = _released_matrix(ref, a1)
    res["released"] = {
        "rdm_of_rdms": _rr_dict(*released[:2], RELEASED_SOURCE, released[2]) if released else None,
        "pairs": _pairs_from_matrix(*released[:2]) if released else [],
        "sweeps": _released_sweeps(ref, a1),
    }

    # Sweeps for Figure 4.
    res["sweeps"] = [{"label": lab, "model": r.hub_id, "n_layers": r.n_layers, "best_layer": r.best_layer,
                      "layer_sweep": r.layer_sweep, "anisotropy": r.anisotropy_by_layer, "flag": r.flagged,
                      "source": f"{r.slug}/{r.kind}", "embedded": r.is_embedded}
                     for r, lab in zip(prim, labels) if r.n_layers]

    # Other stages' outputs.
    res["ablation"] = {s: x["ablation"] for s, x in runs.extras.items() if "ablation" in x}
    res["steering"] = {s: x["steering"] for s, x in runs.extras.items() if "steering" in x}
    res["equivalence"] = {s: x["equivalence"] for s, x in runs.extras.items() if "equivalence" in x}
    res["paper_equivalence"] = _paper_equivalence(res["paper"])


def _split_half(run, cfg: AnalysisConfig) -> dict:
    if not run.has_tensors():
        return {"status": NOT_RUN, "reason": "vectors.safetensors missing"}
    try:
        t = run.tensors()
        acts = t.get("passage_acts")
        labels = (run.meta.get("passages") or {}).get("emotions")
        if acts is None or not labels:
            return {"status": NOT_RUN, "reason": "no passage_acts / passage labels in the run"}
        x = acts[0]  # reference layer order: best, 25, 50, 75
        r = split_half(x, labels, n_splits=cfg.n_splits, seed=cfg.seed, threshold=cfg.noise_ceiling_threshold,
                       emotions=run.emotions)
        return {"status": "ok", **r.as_dict()}
    except (ValueError, artifacts.ArtifactError) as exc:
        return {"status": NOT_RUN, "reason": str(exc)}


def _isotropy(prim, labels, rdms: list[RDM], cfg: AnalysisConfig) -> dict:
    out = {"d": cfg.isotropy_d, "models": [], "pairs": [], "status": "ok", "reason": None}
    iso: list[RDM | None] = []
    for r, x in zip(prim, rdms):
        try:
            t = r.tensors() if r.has_tensors() else {}
            v, n = t.get("vectors"), t.get("neutral_acts")
            if v is None or n is None or r.best_layer is None:
                raise ValueError("vectors/neutral_acts missing")
            m = isotropised_rdm(v[r.best_layer], n[r.best_layer], cfg.isotropy_d)
            iso_an = isotropised_anisotropy(n[r.best_layer], cfg.isotropy_d)
            iso.append(RDM(m, r.emotions, r.hub_id, r.best_layer, iso_an, x.label))
            out["models"].append({"label": x.label, "anisotropy": r.anisotropy, "anisotropy_isotropised": iso_an,
                                  "rdm_std": r.rdm_std, "rdm_std_isotropised": float(np.std(
                                      m[np.triu_indices(m.shape[0], 1)]))})
        except (ValueError, artifacts.ArtifactError, IndexError) as exc:
            iso.append(None)
            out["models"].append({"label": x.label, "anisotropy": r.anisotropy, "status": f"{NOT_RUN}: {exc}"})
    for i in range(len(rdms)):
        for j in range(i + 1, len(rdms)):
            a, b = rdms[i], rdms[j]
            raw = compare(a, b)
            ai, bi = a.anisotropy, b.anisotropy
            entry = {"a": a.label, "b": b.label, "max_anisotropy": max([x for x in (ai, bi) if x is not None],
                                                                         default=None),
                     "raw": raw.spearman, "raw_pearson": raw.pearson, "normalised": None,
                     "normalised_pearson": None, "isotropised": None, "isotropised_pearson": None,
                     "flagged": a.flagged or b.flagged}
            if ai is not None and bi is not None:
                from .rsa import align

                ma, mb, _ = align(a, b)
                g = invariance_gap(ma, mb, ai, bi)
                entry["normalised"] = g["spearman"]["normalised"]
                entry["normalised_pearson"] = g["pearson"]["normalised"]
            if iso[i] is not None and iso[j] is not None:
                r2 = compare(iso[i], iso[j])
                entry["isotropised"], entry["isotropised_pearson"] = r2.spearman, r2.pearson
            out["pairs"].append(entry)
    if not rdms:
        out["status"], out["reason"] = NOT_RUN, "no comprehension runs"
    elif len(rdms) < 2:
        out["reason"] = "one model only: no pairs to compare"
    return out


def write_results(res: dict, root=None) -> Path:
    path = artifacts_root(root) / "analysis" / ("results-reference.json" if res["mode"] == "reference"
                                                else "results.json")
    artifacts.write_json_atomic(path, res)
    path.chmod(0o644)
    return path
