"""The tables, as CSV + Markdown in ``<artifacts>/tables/``, built from the results dict of
``analysis.results.compute``: ``build_tables`` turns it into ``Table`` objects, ``write_tables`` writes them.
A table whose inputs are missing is still written, saying "not run" and why, instead of failing.
"""
from __future__ import annotations

import math
from pathlib import Path

from repro.artifacts import write_text_atomic as _write_text
from repro.stimuli.sets import DEFAULT_SET

from . import decomposition as decomp
from .isotropy import flag_text
from .protocol_effects import table_decomposition_effects, table_protocol_effects
from .results import NOT_RUN, _claims, compute, paper_numbers, write_results
from .runs import AnalysisConfig, artifacts_root, short_name
from .tabular import Table, _not_run

# compute, write_results and _claims live in analysis.results; re-exported for the callers of this module.
__all__ = ["Table", "build_tables", "compute", "write_results", "write_tables", "_claims", "paper_numbers"]


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
    listed = list(res.get("table_a1") or [])
    if res["mode"] == "runs" and listed:
        # The paper's twelve rows as printed, then the runs as extra rows: each run read beside the models it
        # stands in for (or reproduces).
        listed = list(res.get("paper_table_a1") or []) + listed
    rows = []
    for r in listed:
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
    if res["mode"] == "runs" and len(listed) > len(res.get("table_a1") or []):
        notes.append("The first rows (run 'paper Table A1') are the paper's printed values; the runs of this "
                     "repository follow as extra rows.")
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
