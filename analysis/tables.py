"""Compute every analysis number from a set of runs (or from the paper's reference numbers) and write the
tables as CSV + Markdown into ``<artifacts>/tables/``.

``compute(from_reference, root, config)`` returns one JSON-serialisable dict of results; ``build_tables``
turns it into ``Table`` objects; ``write_tables`` writes them. Figures and the report use the same results.
A table whose inputs are missing is still written, saying "not run" and why, instead of failing.

Modes
- runs (default): every finished run under ``<root>/runs``; paper numbers appear alongside for comparison.
- reference (``from_reference=True``): the paper's Table A1, the released 12x12 RDM-of-RDMs and the released
  decomposition / MTI numbers only (``analysis.reference``); nothing is read from runs.
"""
from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from repro import artifacts
from repro.stimuli.sets import DEFAULT_SET

from . import decomposition as decomp
from .protocol_effects import (decomposition_effects, protocol_effects, table_decomposition_effects,
                               table_protocol_effects)
from .isotropy import flag_text, invariance_gap, is_flagged, isotropised_anisotropy, isotropised_rdm
from .rsa import RDM, ModelInfo, compare, mature_block, mti_dissociation, rdm_of_rdms, within_family_pairs
from .runs import PRIMARY_RULES, AnalysisConfig, Runs, artifacts_root, collect, short_name
from .stats import (PAPER_SIZE_TESTS, SUPPLEMENTARY_SIZE_TESTS, bootstrap_ci, mantel, size_correlations,
                    split_half)

RESULTS_SCHEMA = "emogeo.analysis/1"
NOT_RUN = "not run"


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
    _compute_runs(res, runs, ref, cfg)
    res["claims"] = _claims(runs, res, cfg)
    return res


def _compute_reference(res: dict, ref, a1: list[dict] | None, cfg: AnalysisConfig) -> None:
    res["runs_present"] = []
    res["skipped"] = []
    res["table_a1"] = res["paper_table_a1"]
    res["table_a1_reason"] = None if a1 else "reference Table A1 unavailable"
    a1_by_hub = {r["hub_id"]: r for r in (a1 or [])}
    released = _try(lambda: ref.released_rdm_of_rdms(), None) if ref else None
    if released is not None:
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
        res["rdm_of_rdms"] = _rr_dict(info, mat, "released n12 task1 (Spearman, raw cosine RDMs)", notes)
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
    res["sweeps"] = []
    for r in a1 or []:
        meta = _try(lambda h=r["hub_id"]: ref.released_metadata(h), None)
        if meta:
            res["sweeps"].append(_released_sweep(r, meta))


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


def _compute_runs(res: dict, runs: Runs, ref, cfg: AnalysisConfig) -> None:
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


# ---- tables ---------------------------------------------------------------------------------------------

@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    status: str = "ok"  # "ok" or NOT_RUN
    reason: str | None = None
    pcols: tuple[str, ...] = ()  # columns formatted as p-values
    intcols: tuple[str, ...] = ()
    onedec: tuple[str, ...] = ("best %", "paper best %", "percentile")  # one decimal
    digits: dict[str, int] = field(default_factory=dict)  # other columns' decimals (default 3)

    def cell(self, col: str, v, csv_mode: bool = False) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "" if csv_mode else "—"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if csv_mode:
                return f"{v:.6g}"
            if col in self.intcols and v.is_integer():
                return str(int(v))
            if col in self.pcols:
                return f"{v:.1e}" if v < 1e-3 else f"{v:.3g}"
            if col in self.onedec:
                return f"{v:.1f}"
            return f"{v:.{self.digits.get(col, 3)}f}"
        return str(v)

    def to_markdown(self) -> str:
        out = [f"### {self.title}", ""]
        if self.status != "ok":
            out.append(f"_{self.status}_: {self.reason or ''}".rstrip())
            out.append("")
        if self.rows:
            out.append("| " + " | ".join(self.columns) + " |")
            out.append("|" + "|".join("---" for _ in self.columns) + "|")
            for row in self.rows:
                out.append("| " + " | ".join(self.cell(c, v).replace("|", "\\|") for c, v in zip(self.columns, row))
                           + " |")
            out.append("")
        for n in self.notes:
            out.append(f"- {n}")
        if self.notes:
            out.append("")
        return "\n".join(out)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self.status != "ok" and not self.rows:
            w.writerow(["status", "reason"])
            w.writerow([self.status, self.reason or ""])
            return buf.getvalue()
        w.writerow(self.columns)
        for row in self.rows:
            w.writerow([self.cell(c, v, csv_mode=True) for c, v in zip(self.columns, row)])
        return buf.getvalue()

    def to_html(self) -> str:
        e = html.escape
        out = [f"<h3 id=\"table-{e(self.name)}\">{e(self.title)}</h3>"]
        if self.status != "ok":
            out.append(f"<p class=\"notrun\"><em>{e(self.status)}</em>: {e(self.reason or '')}</p>")
        if self.rows:
            head = "".join(f"<th>{e(c)}</th>" for c in self.columns)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
            for row in self.rows:
                out.append("<tr>" + "".join(f"<td>{e(self.cell(c, v))}</td>" for c, v in zip(self.columns, row))
                           + "</tr>")
            out.append("</tbody></table>")
        if self.notes:
            out.append("<ul class=\"notes\">" + "".join(f"<li>{e(n)}</li>" for n in self.notes) + "</ul>")
        return "\n".join(out)


def _not_run(name, title, columns, reason, notes=()) -> Table:
    return Table(name, title, columns, [], list(notes), NOT_RUN, reason)


def _g(d, *keys):
    for k in keys:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def _used_text(row: dict) -> str:
    """'yes' for the run that represents its model; '-' for the reference table, which has no runs."""
    return "-" if "used" not in row else "yes" if row["used"] else "no"


def table_a1(res: dict) -> Table:
    cols = ["model", "run", "used", "stimuli", "protocol", "backend", "dtype", "layers", "d_model", "best layer", "best %", "anisotropy",
            "RDM std", "flag", "fragile", "split-half (SB)", "too noisy", "paper best %", "paper anisotropy",
            "paper RDM std"]
    title = "Table A1 - per-model descriptors at the best layer"
    paper = {r["model"]: r for r in res.get("paper_table_a1") or []}
    rows = []
    for r in res.get("table_a1") or []:
        p = paper.get(r["model"], {})
        backend = r["backend"] + (" (NOT the paper's method)" if r.get("method_departures") else "")
        rows.append([r["model"], r["run"], _used_text(r), r.get("stimuli", DEFAULT_SET), r.get("protocol", "paper"),
                     backend, r["dtype"], r["n_layers"], r["d_model"], r["best_layer"],
                     r["best_layer_pct"], r["anisotropy"], r["rdm_std"], flag_text(r["anisotropy"]),
                     r.get("fragile"), r.get("split_half"), r.get("too_noisy"), p.get("best_layer_pct"),
                     p.get("anisotropy"), p.get("rdm_std")])
    notes = ["flag: anisotropy at the best layer > 0.95 makes cosine-RDM comparisons with this model unreliable "
             "(Section 4.1.3).",
             "best % = 100 x best layer / number of layers; RDM std = SD of the 210 off-diagonal cosine-RDM entries."]
    for r in res.get("table_a1") or []:
        if r.get("method_departures"):
            notes.append(f"{r['model']} ({r['run']}) is NOT the paper's method: {'; '.join(r['method_departures'])}.")
    if res["mode"] == "runs" and res.get("runs_used_rules"):
        notes.append("used: 'yes' marks the run each model contributes to every comparison (RDM-of-RDMs, pairs, "
                     "summaries, figures): " + res["runs_used_rules"])
    if res["mode"] == "runs":
        notes.append("split-half (SB): Spearman-Brown corrected split-half reliability of the best-layer RDM over "
                     f"passages ({res['config']['n_splits']} random splits), the model's noise ceiling; 'too noisy' "
                     f"when below {res['config']['noise_ceiling_threshold']}: its RDM then changes substantially with "
                     "the passages drawn, and its comparisons deserve less weight.")
        if res.get("embedded_present"):
            notes.append("Embedded models (" + ", ".join(short_name(h) for h in res["embedded_present"]) +
                         ") are dequantised GGUF stand-ins for the paper's 1B-8B models, not the paper's models.")
    else:
        notes.append("reference mode: the paper's Table A1 as printed (fp16); fragile and split-half need runs.")
    if not rows:
        return Table("table_a1", title, cols, [], notes, NOT_RUN, res.get("table_a1_reason") or "no runs",
                     intcols=("layers", "d_model", "best layer"))
    return Table("table_a1", title, cols, rows, notes, intcols=("layers", "d_model", "best layer"))


def table_rdm_of_rdms(res: dict) -> Table:
    rr = res.get("rdm_of_rdms")
    title = "RDM-of-RDMs - Spearman between best-layer cosine RDMs"
    if not rr:
        return _not_run("rdm_of_rdms", title, ["model"], res.get("rdm_of_rdms_reason") or "needs at least two models")
    labels = [lab + (" *" if f else "") for lab, f in zip(rr["labels"], rr["flags"])]
    cols = ["model", "anisotropy"] + labels
    rows = [[lab, a] + list(row) for lab, a, row in zip(labels, rr["anisotropy"], rr["matrix"])]
    notes = [f"source: {rr['source']}", "* = anisotropy > 0.95: comparisons involving this model are unreliable."]
    notes += rr.get("notes", [])
    return Table("rdm_of_rdms", title, cols, rows, notes)


def table_pairs(res: dict) -> Table:
    cols = ["model A", "model B", "emotions", "Spearman", "Pearson", "Mantel p", "CI low", "CI high",
            "noise ceiling", "max anisotropy", "flagged"]
    title = "RSA pairs - with permutation p and bootstrap CI over emotions"
    pairs = res.get("pairs") or []
    if not pairs:
        return _not_run("rsa_pairs", title, cols, res.get("rdm_of_rdms_reason") or "needs at least two models")
    rows = [[p["a"], p["b"], p["n_emotions"], p["rho"], p["pearson"], p["mantel_p"], p["ci_lo"], p["ci_hi"],
             p.get("noise_ceiling"), p["max_anisotropy"], p["flagged"]] for p in pairs]
    cfg = res["config"]
    notes = [f"Mantel: {cfg['n_perm']} label permutations, one-sided, p = (1 + #null >= obs) / (1 + n); "
             f"CI: {cfg['n_boot']} bootstrap resamples of emotions, {int(100 * cfg['ci_level'])}% percentile; "
             f"seed {cfg['seed']}.",
             "noise ceiling = sqrt(reliability A x reliability B) from the split-half (Spearman-Brown) reliabilities: "
             "the RSA expected if each RDM were re-estimated on new passages. All models read the same passages, so "
             "shared passage-specific content can lift the observed RSA above it; it is a yardstick for passage-"
             "sampling noise, not a hard bound."]
    if res["mode"] == "reference":
        notes.append("reference mode: only the released Spearman values exist (no per-model RDMs were released), "
                     "so Pearson, Mantel p and the bootstrap CI are not available.")
    return Table("rsa_pairs", title, cols, rows, notes, pcols=("Mantel p",), intcols=("emotions",))


def table_rsa_summary(res: dict) -> Table:
    cols = ["statistic", "n", "min", "max", "mean", "paper"]
    title = "RSA summary - mature block (models not flagged by anisotropy), within-family, flagged models"
    s = res.get("summary")
    if not s:
        return _not_run("rsa_summary", title, cols, res.get("rdm_of_rdms_reason") or "needs at least two models")
    pn = res.get("paper", {})

    def rng(key):
        v = pn.get(key)
        return f"{v[0]:.3f}-{v[1]:.3f}" if isinstance(v, list) else None

    mean_i = pn.get("S3.1.mature_instruct.mean")
    rows = [
        ["mature cross-family instruct pairs", s["cross_family_instruct"]["n"], s["cross_family_instruct"]["min"],
         s["cross_family_instruct"]["max"], s["cross_family_instruct"]["mean"],
         (rng("S3.1.mature_instruct.range") or "") + (f", mean {mean_i:.3f}" if mean_i is not None else "")],
        ["all mature pairs", s["all"]["n"], s["all"]["min"], s["all"]["max"], s["all"]["mean"], None],
        ["within-family base/instruct", s["within_family"]["n"], s["within_family"]["min"],
         s["within_family"]["max"], s["within_family"]["mean"],
         f"mean {pn['S3.1.within_family.mean']:.3f}" if "S3.1.within_family.mean" in pn else None],
        ["pairs with a flagged model", s["flagged_vs_rest"]["n"], s["flagged_vs_rest"]["min"],
         s["flagged_vs_rest"]["max"], s["flagged_vs_rest"]["mean"], None],
    ]
    for p in res.get("within_family") or []:
        rows.append([f"{p['family']}: {p['base']} vs {p['instruct']}" + (" (flagged)" if p["flagged"] else ""),
                     1, None, None, p["rho"], _paper_within(pn, p["family"])])
    notes = [f"mature models: {', '.join(s['mature_models']) or 'none'}; flagged: "
             f"{', '.join(s['flagged_models']) or 'none'}"]
    if res["mode"] == "reference":
        notes.append("The released matrix's Mistral base row is Mistral-7B-v0.1 (PROVENANCE.md); the paper's 0.985 "
                     "for Mistral base/instruct uses v0.3, whose RSA value was not released.")
    return Table("rsa_summary", title, cols, rows, notes, intcols=("n",))


def _paper_within(pn: dict, family: str | None):
    key = {"Mistral 7B": "mistral", "Qwen 2.5": "qwen", "Llama 3.1": "llama3.1", "SmolLM2": "smollm2",
           "Llama 3.2": "llama3.2"}.get(family or "")
    v = pn.get(f"S3.1.within_family.{key}") if key else None
    return f"{v:.3f}" if isinstance(v, (int, float)) else None


def table_mti(res: dict) -> Table:
    cols = ["pair", "Spearman", "reference pairs", "ref min", "ref max", "ref mean", "percentile", "z",
            "within range", "MTI B (Qwen / Llama)", "MTI D (Qwen / Llama)", "paper", "source"]
    title = "Behavioural-representational dissociation (Section 3.2): Qwen2.5-1.5B-I vs Llama-3.2-3B-I"
    m = res.get("mti") or {}
    if m.get("status") == NOT_RUN or "rho" not in m:
        return _not_run("mti_dissociation", title, cols, m.get("reason", "not computed"))
    mti = m.get("mti") or {}
    q, l = mti.get(m["hub_ids"][0]) or {}, mti.get(m["hub_ids"][1]) or {}
    pn = res.get("paper", {})
    paper = pn.get("S3.2.qwen_i_vs_llama32_i.spearman")
    ref = m["reference"]
    rows = [[" vs ".join(m["pair"]), m["rho"], ref["n"], ref["min"], ref["max"], ref["mean"], m["percentile"], m["z"],
             m["within_mature_range"], f"{q.get('B', '—')} / {l.get('B', '—')}",
             f"{q.get('D', '—')} / {l.get('D', '—')}", paper, m.get("source")]]
    notes = ["Reference distribution: the other mature cross-family instruct pairs (the pair itself excluded); "
             "percentile = share of them with rho <= the pair's; z uses their SD (ddof=1).",
             "MTI B = flip rate under user pushback, D = constraint compliance (Section 2.7); opposite poles, yet the "
             "RDMs sit inside the mature distribution."]
    return Table("mti_dissociation", title, cols, rows, notes, intcols=("reference pairs",))


def table_size(res: dict) -> Table:
    cols = ["data", "predictor", "outcome", "n", "Spearman rho", "p", "p Bonferroni", "significant (Bonf.)",
            "paper rho", "paper p"]
    title = "Size-maturity correlations (Section 3.5)"
    s = res.get("size") or {}
    paper = {(p["predictor"], p["outcome"]): p for p in s.get("paper") or []}
    rows = []
    for key, label in (("runs", "runs"), ("table_a1", "Table A1 (paper)"),
                       ("table_a1_supplementary", "Table A1, d_model variants")):
        for r in s.get(key) or []:
            p = paper.get((r["predictor"], r["outcome"]), {})
            rows.append([label, r["predictor"], r["outcome"], r["n"], r["rho"], r["p"], r["p_bonferroni"],
                         r["significant_bonferroni"], p.get("rho"), p.get("p")])
    notes = ["Spearman across models; p uncorrected as in the paper; Bonferroni via statsmodels multipletests over "
             "the four tests of each block (alpha 0.05, i.e. 0.0125 per test), the d_model variants over their own "
             "two.",
             "The paper prints the rhos without minus signs (text extraction); anisotropy and RDM std fall with size."]
    if s.get("runs") is None:
        notes.insert(0, f"runs: {NOT_RUN} - {s.get('runs_reason')}")
    if not rows:
        return _not_run("size_correlations", title, cols, "Table A1 unavailable and too few runs", notes)
    return Table("size_correlations", title, cols, rows, notes, pcols=("p", "p Bonferroni", "paper p"),
                 intcols=("n",))


def table_decomposition(res: dict) -> Table:
    cols = ["model", "source", "L1 A-C method", "L2 B-C sub-param", "L3 C-D precision", "L4 A-D conflated",
            "L4/L3", "reading", "conditions"]
    title = "Four-layer decomposition of method x precision (Section 4.3), RDM Spearman"
    rows = []
    for d in res.get("decomposition") or []:
        L = d["layers"]
        cond = d.get("conditions")
        ctext = "; ".join(f"{k}={'missing' if v is None else v['run'].split('/', 1)[-1]}"
                          for k, v in cond.items()) if cond else "released numbers"
        rows.append([d.get("label") or short_name(d["model"]), d.get("source"),
                     *[L[k]["rho"] if L[k]["rho"] is not None else L[k]["status"] for k in decomp.LAYER_KEYS],
                     d["reading"].get("ratio"), d["reading"].get("direction"), ctext])
    notes = ["A = comprehension, B = generation 'loose', C = generation 'protocol_matched' fp16, "
             "D = 'protocol_matched' int8; each pair is aligned on shared emotion names (A has 21 incl. neutral, "
             "generation 20).",
             "Reading (Section 4.3.4): L4 > L3 -> the conflated A-vs-D statistic over-estimates the precision-only "
             "similarity; L4 < L3 -> it under-estimates it. Paper: Mistral 0.409 vs 0.215 (over, x1.9); "
             "Llama 3.1 0.325 vs 0.527 (under, x0.62)."]
    modes = {(d.get("centring") or {}).get("mode") for d in res.get("decomposition") or [] if d.get("source") == "runs"}
    for mode in sorted(m for m in modes if m):
        notes.append(f"RDMs from runs ({mode}): {decomp.CENTRING[mode]}; see docs/PROTOCOLS.md "
                     "(decomposition_post_centring).")
    if not rows:
        return _not_run("decomposition", title, cols, "no generation runs and no reference numbers", notes)
    if res["mode"] == "reference":
        notes.insert(0, "reference mode: the released numbers (finding8_3layer_results.json, as printed in 4.3).")
    elif not any(d.get("source") == "runs" for d in res.get("decomposition") or []):
        notes.insert(0, f"runs: {NOT_RUN} - no generation runs under artifacts/runs; rows are the released numbers.")
    return Table("decomposition", title, cols, rows, notes)


def table_isotropy(res: dict) -> Table:
    cols = ["model A", "model B", "max anisotropy", "flagged", "raw rho", "linearly normalised rho", "|diff|",
            "isotropised rho", "change", "raw r", "isotropised r"]
    iso = res.get("isotropy") or {}
    d = iso.get("d", 2)
    title = f"Anisotropy: raw vs linearly normalised vs All-but-the-Top (D={d}) isotropised RSA"
    if iso.get("status") == NOT_RUN:
        return _not_run("isotropy", title, cols, iso.get("reason"))
    rows = []
    for p in iso.get("pairs") or []:
        diff = abs(p["raw"] - p["normalised"]) if p.get("normalised") is not None else None
        chg = p["isotropised"] - p["raw"] if p.get("isotropised") is not None else None
        rows.append([p["a"], p["b"], p["max_anisotropy"], p["flagged"], p["raw"], p["normalised"], diff,
                     p["isotropised"], chg, p["raw_pearson"], p["isotropised_pearson"]])
    notes = ["Linear normalisation RDM' = (RDM - (1 - anisotropy)) / std(RDM) per RDM leaves Spearman and Pearson "
             "unchanged (Section 4.1.2): |diff| is floating-point noise.",
             f"Isotropised: All-but-the-Top (Mu et al. 2018) on the vectors - neutral-sentence mean and top {d} "
             "principal directions at the best layer removed from the emotion vectors before the cosines."]
    for m in iso.get("models") or []:
        if "anisotropy_isotropised" in m:
            notes.append(f"{m['label']}: neutral anisotropy {m['anisotropy']:.3f} -> {m['anisotropy_isotropised']:.3f} "
                         f"after isotropisation; RDM std {m['rdm_std']:.3f} -> {m['rdm_std_isotropised']:.3f}")
        else:
            notes.append(f"{m['label']}: {m.get('status')}")
    if not rows:
        return Table("isotropy", title, cols, [], notes, NOT_RUN, iso.get("reason") or "needs two models")
    return Table("isotropy", title, cols, rows, notes)


def table_ablation(res: dict) -> Table:
    cols = ["model", "parameter", "RDM Spearman vs protocol-matched", "other"]
    title = "Sub-parameter ablation (Section 4.3.2)"
    rows = []
    for slug, data in sorted((res.get("ablation") or {}).items()):
        for r in (data or {}).get("rows") or []:
            other = ", ".join(f"{k}={_short(v)}" for k, v in r.items() if k not in ("parameter", "rdm_spearman"))
            rows.append([slug, r.get("parameter"), r.get("rdm_spearman"), other or None])
    notes = ["Paper: varying the eight generation sub-parameters together drives rho to 0.019 (Mistral) and 0.033 "
             "(Llama 3.1)."]
    if not rows:
        return _not_run("ablation", title, cols, "no artifacts/runs/<model>/ablation.json "
                        "(run `invoke ablate`)" if res["mode"] == "runs" else "reference mode", notes)
    return Table("ablation", title, cols, rows, notes)


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    s = str(v)
    return s if len(s) <= 40 else s[:37] + "..."


def table_steering(res: dict) -> Table:
    cols = ["model", "regime", "procedure", "metrics"]
    title = "Steering regimes (Section 2.5, item 4)"
    rows = []
    for slug, data in sorted((res.get("steering") or {}).items()):
        data = data or {}
        metrics = data.get("metrics") or {}
        mtxt = ", ".join(f"{k}={_short(v)}" for k, v in metrics.items() if not isinstance(v, (dict, list)))
        # runs before protocols carried emogeo's procedure; the authors' judges the first 200 characters
        procedure = "paper (the authors')" if "(the authors')" in str(data.get("rule")) else "emogeo's"
        rows.append([slug, data.get("regime"), procedure, mtxt or None])
    notes = ["Paper: Gemma-3 1B base explosive -> instruct surgical; the mature TL models surgical; the HF-backend "
             "models not available. `invoke verify` checks a paper model's paper-protocol run against its regime.",
             "The run shown is artifacts/runs/<model>/steering/ (`--protocol paper`, the default; docs/PROTOCOLS.md "
             "lists the steer_* switches)."]
    if not rows:
        return _not_run("steering", title, cols, "no artifacts/runs/<model>/steering/steering.json "
                        "(run `invoke steer`)" if res["mode"] == "runs" else "reference mode", notes)
    return Table("steering", title, cols, rows, notes)


def table_equivalence(res: dict) -> Table:
    cols = ["model", "layer", "cos mean", "cos min", "RDM Spearman", "rel. Frobenius", "passed"]
    title = "Cross-backend equivalence, TransformerLens vs HF hooks (Section 4.2)"
    rows = []
    for slug, data in sorted((res.get("equivalence") or {}).items()):
        b = (data or {}).get("best") or {}
        rows.append([slug, b.get("layer"), b.get("cos_mean"), b.get("cos_min"), b.get("rdm_spearman"),
                     b.get("rel_frobenius"), b.get("passed")])
    pe = res.get("paper_equivalence")
    if pe:
        rows.append(["paper: Llama-3.2-3B-Instruct", pe["layer"], pe["cos_mean"], pe["cos_min"], pe["rdm_spearman"],
                     pe["rel_frobenius"], pe["passed"]])
    t = Table("equivalence", title, cols, rows, [], intcols=("layer",))
    t.cell = _equiv_cell(t)  # more digits: these numbers live near 1
    if not (res.get("equivalence") or {}):
        t.notes.insert(0, f"runs: {NOT_RUN} - no artifacts/runs/<model>/equivalence.json (run `invoke equivalence`)"
                       if res["mode"] == "runs" else "reference mode: the paper's numbers only")
    if not rows:
        t.status, t.reason = NOT_RUN, "no equivalence runs and no paper numbers"
    return t


def _equiv_cell(t: Table):
    base = Table.cell

    def cell(col, v, csv_mode=False):
        if isinstance(v, float) and math.isfinite(v) and not csv_mode and col in ("cos mean", "cos min",
                                                                                  "RDM Spearman"):
            return f"{v:.6f}"
        if isinstance(v, float) and math.isfinite(v) and not csv_mode and col == "rel. Frobenius":
            return f"{v:.2e}"
        return base(t, col, v, csv_mode)

    return cell


def table_claims(res: dict) -> Table:
    cols = ["section", "claim", "status", "missing runs"]
    rows = [[c["section"], c["claim"], c["status"], ", ".join(c["missing"]) or None] for c in res.get("claims") or []]
    return Table("claims", "Paper claims: reproduced, disagreeing, or waiting for a GPU run", cols, rows,
                 ["Judged by `invoke verify`'s claims on the runs present (values recomputed from the saved vectors, "
                  "compared with the paper within each claim's tolerance): reproduced only when every claim behind "
                  "it passes; artifacts/verify/verify.md lists them."])


TABLE_BUILDERS = (table_a1, table_protocol_effects, table_decomposition_effects, table_rdm_of_rdms, table_pairs,
                  table_rsa_summary, table_mti, table_size,
                  table_decomposition, table_isotropy, table_ablation, table_steering, table_equivalence,
                  table_claims)


def build_tables(res: dict) -> list[Table]:
    return [b(res) for b in TABLE_BUILDERS]


def write_results(res: dict, root=None) -> Path:
    path = artifacts_root(root) / "analysis" / ("results-reference.json" if res["mode"] == "reference"
                                                else "results.json")
    artifacts.write_json_atomic(path, res)
    path.chmod(0o644)
    return path


def write_tables(from_reference: bool = False, root=None, config: AnalysisConfig | None = None,
                 results: dict | None = None, out=None) -> list[Path]:
    """Write every table as ``<name>.csv`` and ``<name>.md`` (plus ``tables.md`` with all of them)."""
    res = results if results is not None else compute(from_reference, root, config)
    out = Path(out) if out is not None else artifacts_root(root) / "tables"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    tables = build_tables(res)
    for t in tables:
        for ext, text in (("csv", t.to_csv()), ("md", t.to_markdown())):
            p = out / f"{t.name}.{ext}"
            _write_text(p, text)
            written.append(p)
    allmd = out / "tables.md"
    head = f"# Tables ({'paper reference numbers only' if res['mode'] == 'reference' else 'from runs'})\n\n"
    _write_text(allmd, head + "\n".join(t.to_markdown() for t in tables))
    written.append(allmd)
    return written


def _write_text(path: Path, text: str) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
