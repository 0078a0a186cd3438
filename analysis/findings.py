"""The report's "What this run shows": which of the paper's qualitative findings the runs present reproduce,
with their numbers, and which they cannot speak to.

Plain functions over the results dict (analysis.results.compute). The statements are about the models that ran
(on a CPU, the embedded stand-ins); nothing here is a claim about the paper's 1B-8B models, which only a run of
those models (`invoke reproduce --models paper` on a GPU) can check - `invoke verify` does that.
"""
from __future__ import annotations

import math

from .runs import short_name

# A cross-family pair "shares geometry" when its RDM correlation is positive and its Mantel test rejects
# independence at this level (the paper reports Mantel p for every pair, Section 2.4).
SHARED_P = 0.05


def _f(x, nd: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _p(p) -> str:
    return "n/a" if p is None else (f"{p:.1e}" if p < 1e-3 else f"{p:.3g}")


def _used_runs(res: dict) -> list[dict]:
    """Table A1 rows of the runs that represent their models (not the paper's printed rows)."""
    return [r for r in res.get("table_a1") or [] if r.get("source") != "paper" and r.get("used", True)]


def shared_geometry(res: dict) -> str:
    rows = _used_runs(res)
    family = {r.get("label") or r["model"]: r.get("family") for r in rows}
    pairs = [p for p in res.get("pairs") or [] if family.get(p["a"]) != family.get(p["b"])]
    if not pairs:
        n = len(res.get("rdms") or [])
        return (f"- **Shared geometry across families (Section 3.1): not shown.** {n} model(s) ran; it takes "
                "comprehension runs of at least two families (`invoke reproduce` runs three).")
    shared = [p for p in pairs if p["rho"] > 0 and p["mantel_p"] is not None and p["mantel_p"] < SHARED_P]
    detail = "; ".join(f"{p['a']} vs {p['b']} rho {_f(p['rho'])} (Mantel p {_p(p['mantel_p'])}, noise ceiling "
                       f"{_f(p.get('noise_ceiling'), 2)})" for p in pairs)
    paper = (res.get("paper") or {}).get("S3.1.mature_instruct.range")
    ref = (f" The paper's mature instruct models correlate at {paper[0]}-{paper[1]}." if paper else "")
    verdict = ("reproduced in kind" if len(shared) == len(pairs) else
               f"not reproduced ({len(pairs) - len(shared)} of {len(pairs)} cross-family pairs not significant)")
    ceil = [p for p in pairs if p.get("noise_ceiling")]
    near = sum(1 for p in ceil if p["rho"] >= 0.9 * p["noise_ceiling"])
    ceiling = (f" {near} of {len(ceil)} pairs reach at least 90% of their split-half noise ceiling, so the "
               "stand-ins agree about as well as their own stimulus halves allow." if ceil else "")
    return (f"- **Shared geometry across families (Section 3.1): {verdict}.** {detail}.{ceiling}{ref} The "
            "stand-ins' lower values are not a test of that range: they are 0.1-0.5B quantised models.")


def anisotropy_flag(res: dict) -> str:
    rows = _used_runs(res)
    if not rows:
        return "- **Anisotropy flag (Section 4.1): not shown.** No comprehension run."
    vals = "; ".join(f"{r.get('label') or r['model']} {_f(r.get('anisotropy'))}" for r in rows)
    flagged = [r.get("label") or r["model"] for r in rows if r.get("flag")]
    if flagged:
        return (f"- **Anisotropy flag (Section 4.1): exercised.** Anisotropy at the best layer: {vals}. Flagged "
                f"above 0.95 (their comparisons marked unreliable in Figure 1 and the pairs table): "
                f"{', '.join(flagged)}.")
    return (f"- **Anisotropy flag (Section 4.1): not exercised by these models.** Anisotropy at the best layer: "
            f"{vals}; none above 0.95, so no comparison is marked unreliable. The paper's flagged case "
            "(Gemma-3-1B base, 0.997) needs that model's run.")


def equivalence(res: dict) -> str:
    eq = res.get("equivalence") or {}
    if not eq:
        return ("- **TransformerLens = HF hooks (Section 4.2): not shown.** No equivalence run "
                "(`invoke equivalence --model M`).")
    parts, ok = [], True
    for slug, e in sorted(eq.items()):
        passed = bool(e.get("passed"))
        ok &= passed
        parts.append(f"{short_name(e.get('model') or slug)}: best layer {e.get('layer')}, min cosine {_f(e.get('cos_min'), 7)}, RDM Spearman "
                     f"{_f(e.get('rdm_spearman'), 6)}, every layer {'passed' if passed else 'FAILED'}")
    bar = next(iter(eq.values())).get("bar", {}).get("cos_min")
    return (f"- **TransformerLens = HF hooks (Section 4.2): {'reproduced' if ok else 'NOT reproduced'}** "
            f"(emogeo's bar: per-vector cosine >= {bar} at every layer). {'; '.join(parts)}. Models TL cannot "
            "load are extracted with HF hooks only and have no equivalence run.")


def decomposition(res: dict) -> str:
    mine = [d for d in res.get("decomposition") or [] if d.get("source") != "reference"]
    paper = [d for d in res.get("decomposition") or [] if d.get("source") == "reference"]
    if not mine:
        return ("- **Four-layer decomposition (Section 4.3): not shown.** It needs generation runs "
                "(loose, protocol-matched at full precision and INT8) beside a comprehension run.")
    texts = []
    for d in mine:
        lay = d.get("layers") or {}
        rhos = ", ".join(f"{k.split('_')[0]} {_f((lay.get(k) or {}).get('rho'))}" for k in
                         ("L1_A_vs_C", "L2_B_vs_C", "L3_C_vs_D", "L4_A_vs_D"))
        texts.append(f"{d.get('label') or d.get('model')}: {rhos}; L4 {d.get('reading', {}).get('direction')} L3")
    ref = "; ".join(f"{d['label']} L4 {d['reading']['direction']} L3" for d in paper if d.get("reading"))
    return (f"- **Four-layer decomposition (Section 4.3): computed on the stand-in, not comparable in value.** "
            f"{'; '.join(texts)}. The paper's direction is model-dependent ({ref or 'released numbers unavailable'})"
            "; on a CPU the generation stages use a reduced, recorded budget, so these rho values are a "
            "working pipeline, not a measurement of the paper's models.")


def what_this_run_shows(res: dict) -> list[str]:
    """Markdown lines for the report (runs mode); empty in reference mode."""
    if res.get("mode") != "runs":
        return []
    return ["## What this run shows", "",
            "Which of the paper's qualitative findings the models that ran reproduce, with their numbers. These "
            "are statements about those models only - on a CPU, small quantised stand-ins - and claim nothing "
            "about the paper's 1B-8B models; `invoke verify` below checks the paper's numbers against runs of "
            "its own models and says NOT RUN where none exist.", "",
            shared_geometry(res), anisotropy_flag(res), equivalence(res), decomposition(res), ""]
