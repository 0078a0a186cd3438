"""Figures 1-6 as PNG and PDF in ``<artifacts>/figures/`` (matplotlib, Agg backend).

The files are byte-stable: no software/date metadata in PNG or PDF, a fixed SVG hash salt, fixed sizes and
fonts, no randomness. The same results give the same bytes.

Fig 1 RDM-of-RDMs heatmap, anisotropy-flagged models marked; Fig 2 two models' RDMs and their scatter
(Qwen-I / Llama-3.2-I when both were run, else two models that were, else an honest placeholder);
Fig 3 the four size scatters of Section 3.5 (Table A1, runs overlaid); Fig 4 layer sweeps and anisotropy by
depth; Fig 5 RSA vs anisotropy: raw, linearly normalised, isotropised; Fig 6 the four-layer decomposition.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from .runs import AnalysisConfig, artifacts_root  # noqa: E402

RC = {
    "svg.hashsalt": "emogeo",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,
}
PNG_META = {"Software": None}
PDF_META = {"Creator": None, "Producer": None, "CreationDate": None, "ModDate": None}
FLAG_COLOR = "#c0392b"
FAMILY_COLORS = {"Qwen 2.5": "#1f77b4", "SmolLM2": "#ff7f0e", "Gemma-3": "#d62728", "Llama 3.2": "#2ca02c",
                 "Mistral 7B": "#9467bd", "Llama 3.1": "#8c564b"}
LAYER_NAMES = {"L1_A_vs_C": "L1  A vs C\nmethod", "L2_B_vs_C": "L2  B vs C\nsub-parameters",
               "L3_C_vs_D": "L3  C vs D\nprecision", "L4_A_vs_D": "L4  A vs D\nconflated"}
PLACEHOLDER = ("per-model RDMs not released;\nrun `invoke reproduce --models paper`\n"
               "(or `invoke reproduce` for the embedded stand-ins)")


def save(fig, out: Path, name: str) -> list[Path]:
    """Write ``name``.png and ``name``.pdf without metadata that changes between runs."""
    out.mkdir(parents=True, exist_ok=True)
    png, pdf = out / f"{name}.png", out / f"{name}.pdf"
    with plt.rc_context(RC):
        fig.savefig(png, format="png", metadata=PNG_META)
        fig.savefig(pdf, format="pdf", metadata=PDF_META)
    plt.close(fig)
    return [png, pdf]


def _placeholder(ax, text: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_linestyle((0, (4, 3)))
        s.set_color("0.5")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, color="0.3", transform=ax.transAxes, wrap=True)


def _source_note(fig, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=7, color="0.35", ha="left", va="bottom")


# ---- Fig 1 ------------------------------------------------------------------------------------------

def fig1_rdm_of_rdms(res: dict):
    rr = res.get("rdm_of_rdms")
    heading = None
    if not rr:
        # Fewer than two runs: the paper's central figure from the authors' released matrix, labelled as theirs.
        rr = (res.get("released") or {}).get("rdm_of_rdms")
        heading = ("the authors' released matrix, NOT this run's models ("
                   + (res.get("rdm_of_rdms_reason") or "fewer than two runs") + ")")
    if not rr:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.set_title("Fig. 1  RDM-of-RDMs")
        _placeholder(ax, (res.get("rdm_of_rdms_reason") or "needs at least two models") +
                     "\nrun `invoke reproduce`, or `invoke figures --from-reference`")
        return fig
    mat = np.asarray(rr["matrix"], dtype=float)
    n = mat.shape[0]
    size = max(5.5, 0.55 * n + 3.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    im = ax.imshow(mat, vmin=0.0, vmax=1.0, cmap="viridis")
    flags = rr["flags"]
    labels = [f"{lab}  (a={a:.3f})" if a is not None else lab for lab, a in zip(rr["labels"], rr["anisotropy"])]
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(rr["labels"], rotation=55, ha="right", rotation_mode="anchor")
    ax.set_yticklabels(labels)
    for ticks in (ax.get_xticklabels(), ax.get_yticklabels()):
        for t, f in zip(ticks, flags):
            if f:
                t.set_color(FLAG_COLOR)
                t.set_fontweight("bold")
    for k, f in enumerate(flags):  # hatch the rows and columns of flagged models
        if f:
            ax.add_patch(Rectangle((-0.5, k - 0.5), n, 1, fill=False, hatch="///", edgecolor=FLAG_COLOR, lw=0,
                                   alpha=0.45))
            ax.add_patch(Rectangle((k - 0.5, -0.5), 1, n, fill=False, hatch="///", edgecolor=FLAG_COLOR, lw=0,
                                   alpha=0.45))
    if n <= 16:
        for i in range(n):
            for j in range(n):
                v = mat[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7 if n > 8 else 8,
                        color="black" if v > 0.6 else "white")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label("Spearman rho between RDM upper triangles")
    sub = ("red, hatched: anisotropy > 0.95, comparison unreliable" if any(flags)
           else "no model above the 0.95 anisotropy flag")
    ax.set_title(f"Fig. 1  RDM-of-RDMs ({n} models)\n" + (f"{heading}\n" if heading else "") + sub,
                 color="#8c2d04" if heading else "black")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    if any(flags):
        handles = [Patch(facecolor="white", edgecolor=FLAG_COLOR, hatch="///", label="anisotropy > 0.95 (flagged)")]
        fig.legend(handles=handles, loc="lower right", frameon=False)
    _source_note(fig, f"source: {rr['source']}; a = anisotropy at the best layer")
    return fig


# ---- Fig 2 ------------------------------------------------------------------------------------------

def _pick_pair(res: dict):
    rdms = res.get("rdms") or []
    by_model = {r["model"]: r for r in rdms}
    qwen, llama = "Qwen/Qwen2.5-1.5B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"
    if qwen in by_model and llama in by_model:
        return by_model[qwen], by_model[llama], "the Section 3.2 pair"
    if len(rdms) >= 2:
        a, b = rdms[0], rdms[1]
        why = "embedded stand-ins for the Section 3.2 pair" if a.get("embedded") and b.get("embedded") else \
            "two models that were run (the Section 3.2 pair was not)"
        return a, b, why
    return (rdms[0] if rdms else None), None, "only one model was run" if rdms else None


def _rdm_panel(ax, r: dict, vmax: float):
    m = np.asarray(r["matrix"], dtype=float).copy()
    np.fill_diagonal(m, np.nan)
    im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    n = len(r["emotions"])
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(r["emotions"], rotation=90, fontsize=6)
    ax.set_yticklabels(r["emotions"], fontsize=6)
    layer = f", layer {r['layer']}" if r.get("layer") is not None else ""
    an = f"\nanisotropy {r['anisotropy']:.3f}" if r.get("anisotropy") is not None else ""
    ax.set_title(f"{r['label']}{layer}{an}", fontsize=9)
    return im


def fig2_pair(res: dict):
    from .rsa import RDM, align

    fig = plt.figure(figsize=(16, 5.6))
    gs = fig.add_gridspec(1, 5, width_ratios=[1, 1, 0.05, 0.12, 0.95], wspace=0.38)
    axes = np.array([fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[0, 4])])
    cax = fig.add_subplot(gs[0, 2])
    a, b, why = _pick_pair(res) if res.get("mode") == "runs" else (None, None, None)
    title = "Fig. 2  Qwen2.5-1.5B-I vs Llama-3.2-3B-I cosine RDMs (Section 3.2)"
    if a is None:
        cax.set_axis_off()
        for ax in axes:
            _placeholder(ax, PLACEHOLDER)
        mti = res.get("mti") or {}
        if "rho" in mti:
            axes[2].text(0.5, 0.12, f"released RSA for the pair: rho = {mti['rho']:.3f}", ha="center",
                         transform=axes[2].transAxes, fontsize=9)
        fig.suptitle(title)
        return fig
    ra = RDM(np.asarray(a["matrix"]), a["emotions"], a["model"], label=a["label"])
    if b is None:
        vmax = float(np.nanmax(np.abs(ra.matrix - np.eye(len(ra.emotions))))) or 1.0
        im = _rdm_panel(axes[0], a, vmax)
        fig.colorbar(im, cax=cax, label="cosine similarity (diagonal omitted)")
        _placeholder(axes[1], "second model not run\n" + PLACEHOLDER)
        _placeholder(axes[2], "scatter needs two models")
        fig.suptitle(title + f"\n{why}")
        return fig
    rb = RDM(np.asarray(b["matrix"]), b["emotions"], b["model"], label=b["label"])
    ma, mb, shared = align(ra, rb)
    iu = np.triu_indices(len(shared), 1)
    vmax = float(max(np.nanmax(np.abs(ma[iu])), np.nanmax(np.abs(mb[iu])))) or 1.0
    sa = dict(a, matrix=ma.tolist(), emotions=list(shared))
    sb = dict(b, matrix=mb.tolist(), emotions=list(shared))
    _rdm_panel(axes[0], sa, vmax)
    im = _rdm_panel(axes[1], sb, vmax)
    fig.colorbar(im, cax=cax, label="cosine similarity (diagonal omitted)")
    from .rsa import compare

    r = compare(ra, rb)
    x, y = ma[iu], mb[iu]
    axes[2].scatter(x, y, s=12, alpha=0.7, color="#1f77b4", edgecolor="none")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    axes[2].plot([lo, hi], [lo, hi], ls="--", color="0.6", lw=1, label="y = x")
    axes[2].set_xlabel(f"{a['label']}: cosine similarity")
    axes[2].set_ylabel(f"{b['label']}: cosine similarity")
    axes[2].set_title(f"{len(x)} emotion pairs\nSpearman rho = {r.spearman:.3f}, Pearson r = {r.pearson:.3f}")
    axes[2].legend(loc="upper left")
    axes[2].set_box_aspect(1)
    if why != "the Section 3.2 pair":
        title = f"Fig. 2  Cosine RDMs of {a['label']} and {b['label']} ({why})"
    fig.suptitle(title)
    return fig


# ---- Fig 3 ------------------------------------------------------------------------------------------

SIZE_PANELS = (("d_model", "anisotropy", "d_model (residual width)", "anisotropy at best layer",
                "anisotropy vs d_model"),
               ("size_b", "anisotropy", "size (billion parameters)", "anisotropy at best layer", "anisotropy vs size"),
               ("size_b", "rdm_std", "size (billion parameters)", "RDM std (off-diagonal)", "RDM std vs size"),
               ("size_b", "best_layer_pct", "size (billion parameters)", "best layer (% of depth)",
                "best layer % vs size"))


def fig3_size(res: dict):
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    a1 = res.get("paper_table_a1") or []
    size = res.get("size") or {}
    stats_a1 = {(r["predictor"], r["outcome"]): r for r in size.get("table_a1") or []}
    stats_runs = {(r["predictor"], r["outcome"]): r for r in size.get("runs") or []}
    run_rows = [r for r in (res.get("table_a1") or []) if r.get("source") != "paper"] if res["mode"] == "runs" else []
    for ax, (px, oy, xl, yl, name) in zip(axes.ravel(), SIZE_PANELS):
        for r in a1:
            if r.get(px) is None or r.get(oy) is None:
                continue
            ax.scatter(r[px], r[oy], s=55, marker="o" if r["variant"] == "B" else "^",
                       color=FAMILY_COLORS.get(r["family"], "0.4"), edgecolor="black", lw=0.5, zorder=3)
        for k, r in enumerate(run_rows):
            if r.get(px) is None or r.get(oy) is None:
                continue
            ax.scatter(r[px], r[oy], s=60, marker="X", color="black", zorder=4)
            ax.annotate(r.get("label") or r["model"], (r[px], r[oy]), textcoords="offset points",
                        xytext=(6, 6 - 11 * (k % 3)), fontsize=7)  # staggered: runs often share x
        if oy == "anisotropy":
            ax.axhline(0.95, ls="--", color=FLAG_COLOR, lw=1)
            ax.text(0.99, 0.95, "unreliable above 0.95 ", color=FLAG_COLOR, fontsize=7,
                    ha="right", va="bottom", transform=ax.get_yaxis_transform())
        s = stats_a1.get((px, oy))
        line = f"Table A1: rho = {_r(s['rho'])}, p = {_p(s['p'])}" if s else "Table A1 unavailable"
        rs = stats_runs.get((px, oy))
        if rs:
            line += f"\nruns (n={rs['n']}): rho = {_r(rs['rho'])}, p = {_p(rs['p'])}"
        ax.set_title(f"{name}\n{line}", fontsize=9)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    handles = [Patch(color=c, label=f) for f, c in FAMILY_COLORS.items()]
    handles += [plt.Line2D([], [], marker="o", ls="", color="0.5", label="base"),
                plt.Line2D([], [], marker="^", ls="", color="0.5", label="instruct")]
    if run_rows:
        emb = " (embedded stand-ins)" if all(r.get("source") == "embedded" for r in run_rows) else ""
        handles.append(plt.Line2D([], [], marker="X", ls="", color="black", label=f"this repository's runs{emb}"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), frameon=False)
    fig.suptitle("Fig. 3  Size-maturity correlations across the twelve models (Section 3.5, Spearman, "
                 "p uncorrected)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return fig


def _r(r: float) -> str:
    return "n/a" if r is None or not np.isfinite(r) else f"{r:.3f}"


def _p(p: float) -> str:
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.2g}"


# ---- Fig 4 ------------------------------------------------------------------------------------------

def fig4_sweeps(res: dict):
    sweeps = res.get("sweeps") or []
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    if not sweeps:
        for ax in axes:
            _placeholder(ax, "no layer sweeps: no runs and no released metadata")
        fig.suptitle("Fig. 4  Layer sweeps and anisotropy by depth")
        return fig
    cmap = plt.get_cmap("tab20" if len(sweeps) > 10 else "tab10")
    released = (res.get("released") or {}).get("sweeps") or [] if res["mode"] == "runs" else []
    for k, s in enumerate(released):  # the authors' released sweeps, grey, under the runs
        n = s["n_layers"]
        x = [100.0 * i / n for i in range(n)]
        lab = f"released ({len(released)} models)" if k == 0 else None
        axes[0].plot(x, [np.nan if v is None else v for v in s["layer_sweep"]], color="0.72", lw=0.9, label=lab,
                     zorder=1)
        an = s["anisotropy"]
        pts = [i for i, v in enumerate(an) if v is not None]
        axes[1].scatter([x[i] for i in pts], [an[i] for i in pts], color="0.72", s=12, label=lab, zorder=1)
    for k, s in enumerate(sweeps):
        n = s["n_layers"]
        color = cmap(k % cmap.N)
        ls = "--" if s.get("flag") else "-"
        x = [100.0 * i / n for i in range(n)]
        sw = [np.nan if v is None else v for v in s["layer_sweep"]]
        axes[0].plot(x[:len(sw)], sw, ls=ls, color=color, lw=1.3, label=s["label"])
        if s.get("best_layer") is not None and s["best_layer"] < len(sw):
            axes[0].scatter([x[s["best_layer"]]], [sw[s["best_layer"]]], color=color, s=30, zorder=4,
                            edgecolor="black", lw=0.5)
        an = [np.nan if v is None else v for v in s["anisotropy"]]
        finite = [i for i, v in enumerate(an) if np.isfinite(v)]
        if s.get("anisotropy_note"):  # released metadata: only the reference depths
            axes[1].plot([x[i] for i in finite], [an[i] for i in finite], ls=":", marker="o", ms=4, color=color,
                         lw=1.0, label=s["label"])
        else:
            axes[1].plot(x[:len(an)], an, ls=ls, color=color, lw=1.3, label=s["label"])
    # the first layers often sit far above the rest (the paper's sweeps too): scale the axis to layers >= 10% depth
    allv = np.array([v for s in sweeps + released for v in s["layer_sweep"] if v is not None], dtype=float)
    late = np.array([v for s in sweeps + released for i, v in enumerate(s["layer_sweep"])
                     if v is not None and 100.0 * i / s["n_layers"] >= 10.0], dtype=float)
    allv, late = allv[np.isfinite(allv)], late[np.isfinite(late)]
    floor = -1.0 / 20.0  # 21 centred vectors of equal norm have mean pairwise cosine exactly -1/20
    if allv.size:
        ref = late if late.size else allv
        lo, hi = min(float(allv.min()), floor), float(ref.max())
        pad = 0.1 * max(hi - lo, 1e-3)
        axes[0].set_ylim(lo - pad, hi + pad)
        if allv.max() > hi + pad:
            axes[0].text(0.01, 0.98, "values of the first layers above the axis are clipped",
                         transform=axes[0].transAxes, fontsize=7, va="top", color="0.35")
    fl = axes[0].axhline(floor, color="0.4", ls=":", lw=1, label="-1/20: 21 centred vectors of equal norm")
    extra = [h for h, lab in zip(*axes[0].get_legend_handles_labels()) if lab.startswith("released")]
    axes[0].legend(handles=[fl] + extra, loc="lower left", fontsize=7)
    axes[0].set_xlabel("layer (% of depth)")
    axes[0].set_ylabel("mean pairwise cosine of the 21 centred emotion vectors")
    axes[0].set_title("Layer sweep (dot = best layer = the minimum)")
    axes[1].axhline(0.95, ls="--", color=FLAG_COLOR, lw=1)
    axes[1].text(0.99, 0.95, "unreliable above 0.95 ", color=FLAG_COLOR, fontsize=7, ha="right", va="bottom",
                 transform=axes[1].get_yaxis_transform())
    axes[1].set_xlabel("layer (% of depth)")
    axes[1].set_ylabel("anisotropy (mean pairwise cosine, neutral sentences)")
    axes[1].set_title("Anisotropy by depth")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    src = sorted({s["source"] if res["mode"] == "reference" else "runs" for s in sweeps})
    note = "; ".join(src) + ("; grey: the authors' released sweeps (metadata.json; their anisotropy exists only at 25/50/75% and the best layer)"
                             if released else "")
    if any("anisotropy_note" in s for s in sweeps):
        note += " - released anisotropy exists only at the 25/50/75% and best layers (dotted)"
    note += "; dashed lines: flagged models (anisotropy > 0.95); NaN layers (e.g. gemma-3-1b-pt fp16) left out"
    fig.suptitle("Fig. 4  Layer sweeps and anisotropy by depth")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _source_note(fig, note)
    return fig


# ---- Fig 5 ------------------------------------------------------------------------------------------

def fig5_anisotropy(res: dict):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    iso = res.get("isotropy") or {}
    pairs = iso.get("pairs") or []
    title = "Fig. 5  RDM correlation vs anisotropy: raw, linearly normalised, isotropised"
    background = (res.get("released") or {}).get("pairs") or [] if res["mode"] == "runs" else []
    if pairs and background:  # the authors' 66 released pairs (raw) behind this run's pairs
        ax.scatter([np.nan if p["max_anisotropy"] is None else p["max_anisotropy"] for p in background],
                   [p["rho"] for p in background], s=14, color="0.75", zorder=1,
                   label=f"released 12x12, raw ({len(background)} pairs)")
    if pairs:
        x = np.array([p["max_anisotropy"] if p["max_anisotropy"] is not None else np.nan for p in pairs])
        raw = np.array([p["raw"] for p in pairs], dtype=float)
        nrm = np.array([np.nan if p["normalised"] is None else p["normalised"] for p in pairs], dtype=float)
        iso_v = np.array([np.nan if p["isotropised"] is None else p["isotropised"] for p in pairs], dtype=float)
        ax.scatter(x, raw, s=70, facecolor="none", edgecolor="#1f77b4", lw=1.5, zorder=3,
                   label="this run's pairs: raw cosine RDMs" if background else "raw cosine RDMs")
        ax.scatter(x, nrm, s=28, marker="x", color="#ff7f0e", label="linearly normalised (identical)", zorder=4)
        if np.isfinite(iso_v).any():
            ax.scatter(x, iso_v, s=40, marker="^", color="#2ca02c",
                       label=f"All-but-the-Top isotropised (D={iso.get('d')})", zorder=3)
            for xi, a, b in zip(x, raw, iso_v):
                if np.isfinite(b):
                    ax.plot([xi, xi], [a, b], color="0.7", lw=0.8, zorder=1)
        diff = np.nanmax(np.abs(raw - nrm)) if np.isfinite(nrm).any() else np.nan
        ax.text(0.02, 0.03, f"max |normalised - raw| = {diff:.1e} (invariance, Section 4.1.2)",
                transform=ax.transAxes, fontsize=8)
    else:
        rr = res.get("pairs") or []
        if rr:
            x = np.array([p["max_anisotropy"] if p["max_anisotropy"] is not None else np.nan for p in rr])
            raw = np.array([p["rho"] for p in rr], dtype=float)
            ax.scatter(x, raw, s=40, facecolor="none", edgecolor="#1f77b4", lw=1.2,
                       label="raw cosine RDMs (released 12x12)")
            ax.text(0.02, 0.03, "linearly normalised: identical by construction (Section 4.1.2), not recomputed;\n"
                    "isotropised: needs per-model vectors, not released - run `invoke reproduce`",
                    transform=ax.transAxes, fontsize=8, va="bottom")
        else:
            _placeholder(ax, "needs at least two models")
    ax.axvline(0.95, ls="--", color=FLAG_COLOR, lw=1)
    ax.text(0.953, 0.98, "flag: > 0.95", color=FLAG_COLOR, fontsize=8, va="top",
            transform=ax.get_xaxis_transform())
    ax.set_xlabel("max anisotropy of the two models (mean pairwise cosine, neutral sentences)")
    ax.set_ylabel("RDM Spearman rho")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 0.09))
    fig.tight_layout()
    return fig


# ---- Fig 6 ------------------------------------------------------------------------------------------

def fig6_decomposition(res: dict):
    decs = res.get("decomposition") or []
    fig, ax = plt.subplots(figsize=(10, 5.5))
    title = "Fig. 6  Four-layer decomposition of the method x precision effect (Section 4.3)"
    if not decs:
        _placeholder(ax, "no decomposition: no generation runs and no reference numbers")
        ax.set_title(title)
        return fig
    keys = list(LAYER_NAMES)
    width = 0.8 / len(decs)
    cmap = plt.get_cmap("tab10")
    for k, d in enumerate(decs):
        vals = [d["layers"][key]["rho"] for key in keys]
        xs = np.arange(len(keys)) + (k - (len(decs) - 1) / 2) * width
        ref = d.get("source") == "reference"
        label = f"{d.get('label') or d['model']} ({'paper, released' if ref else 'runs'})"
        h = [np.nan if v is None else v for v in vals]
        bars = ax.bar(xs, h, width * 0.95, color=cmap(k % 10), hatch="//" if ref else None, edgecolor="black",
                      lw=0.5, label=label)
        l3 = d["layers"]["L3_C_vs_D"]["rho"]
        if l3 is not None and vals[3] is not None:  # L3 level drawn across the L4 bar: over- or under-reading
            ax.plot([xs[3] - width * 0.47, xs[3] + width * 0.47], [l3, l3], color="black", ls="--", lw=1.2)
        for bar, v in zip(bars, vals):
            txt = f"{v:.3f}" if v is not None else "not run"
            y = (v if v is not None else 0) + 0.01
            ax.text(bar.get_x() + bar.get_width() / 2, y, txt, ha="center", va="bottom", fontsize=7, rotation=0)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([LAYER_NAMES[k] for k in keys])
    ax.set_ylabel("RDM Spearman rho between conditions")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylim(min(0, ax.get_ylim()[0]), 1.05)
    ax.legend(loc="upper left", ncol=1)
    ax.set_title(title)
    readings = "; ".join(f"{d.get('label')}: L4 {d['reading']['direction']} L3"
                         + (f" (x{d['reading']['ratio']:.2f})" if d["reading"].get("ratio") else "")
                         for d in decs if d["reading"]["direction"] != "not available")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    lines = ["A comprehension (fp16 in the paper) | B generation 'loose' | C generation protocol-matched fp16 | "
             "D protocol-matched int8.", "Dashed line across an L4 bar: the same model's L3 (precision-only) value."]
    if readings:
        lines.append("Conflated statistic read as a precision measure:")
        parts = readings.split("; ")
        lines += ["    " + "; ".join(parts[k:k + 2]) for k in range(0, len(parts), 2)]
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7.5, ha="left", va="bottom", color="0.2")
    return fig


FIGURES = (("fig1_rdm_of_rdms", fig1_rdm_of_rdms), ("fig2_qwen_llama_rdms", fig2_pair), ("fig3_size", fig3_size),
           ("fig4_layer_sweeps", fig4_sweeps), ("fig5_anisotropy", fig5_anisotropy),
           ("fig6_decomposition", fig6_decomposition))


def write_figures(from_reference: bool = False, root=None, config: AnalysisConfig | None = None,
                  results: dict | None = None, out=None) -> list[Path]:
    """Render every figure to ``<artifacts>/figures/<name>.png|pdf``; returns the paths written."""
    from .results import compute

    res = results if results is not None else compute(from_reference, root, config)
    out = Path(out) if out is not None else artifacts_root(root) / "figures"
    written = []
    with plt.rc_context(RC):
        for name, fn in FIGURES:
            written += save(fn(res), out, name)
    return written
