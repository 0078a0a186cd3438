"""Run claims of `invoke verify`: the numbers a run reports, recomputed from the tensors it saved, and the
paper's numbers from the runs of the paper's models.

Values, not structure: every number a run, an equivalence.json or a decomposition.json reports is
recomputed from the saved tensors (``analysis.run_values``) and must agree; a value edited and re-stamped
with ``invoke checksums --accept-changes`` is caught here.

A paper model's row of Table A1 is "reproduced" (PASS) only when its fp16 run ran on its Table A1 backend,
its values agree with its tensors, the Section 4.2 equivalence ran and passed for it (TL rows: the pipeline
runs it; HF rows: TransformerLens cannot load the architecture, so there is nothing to compare), and its
numbers are within the claim's tolerance of the paper's. Otherwise the claim fails and says which.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats as _st

from repro.protocol import run_protocols
from repro.stimuli.sets import run_stimuli_set

from .descriptors import cosine_matrix, upper
from .run_values import (DECOMP_LAYERS, comprehension_values, decomposition_values, equivalence_values,
                         generation_values, load_tensors, r4)
from .verify_model import NEEDS_RUN, RUN, Claim, ClaimRow, Ctx, as_float, near, registry, rid

# Compound tolerances (their claims in analysis/claims.csv say why; single numbers come from the file).
BEST_LAYER_FLAG = 1  # Table A1 rows: best layer exact, one layer off passes flagged
ANISOTROPY_TOL = 0.01
RDM_STD_TOL = 0.005
DECOMP_RHO_TOL = 0.10  # Section 4.3 from runs: each rho; the L4-vs-L3 direction exact
# Section 4.2: emogeo's bar for "numerically equivalent" (the paper reports its values but states no threshold).
EQUIV = {"cos_min": 0.9999, "cos_mean": 0.9999, "rdm_spearman": 0.999, "rel_frobenius": 1e-3}

CMD_EXTRACT = "invoke extract --model {hub_id} --dtype fp16"
CMD_PAPER = "invoke reproduce --models paper --dtype fp16"
CMD_SUBSET = "invoke reproduce --models {models} --dtype fp16"
CMD_EQUIV = "invoke equivalence --model meta-llama/Llama-3.2-3B-Instruct --dtype fp16"
CMD_DECOMP = "invoke reproduce --models decomposition --dtype fp16"

PICK_RULES = ("a paper model's run is its fp16 comprehension run, picked by these rules in order: stimulus set "
              "'{stimuli}' first (`invoke verify --stimuli-set` to ask for another), a run of protocol 'paper' "
              "first (the procedure behind the published numbers; docs/PROTOCOLS.md), its Table A1 backend "
              "first, then by folder name")


# ---- picking a paper model's run ----------------------------------------------------------------------

def comprehension_runs(ctx: Ctx) -> list[dict]:
    return [r for r in ctx.runs if r["meta"].get("kind") == "comprehension" or "_error" in r["meta"]
            and r["kind"].startswith("comprehension")]


def is_paper_run(ctx: Ctx, run: dict) -> bool:
    m = run["meta"].get("model") or {}
    return m.get("source", "hub") != "embedded" and m.get("hub_id") in {r["hub_id"] for r in ctx.a1}


def pick(ctx: Ctx, hub: str) -> dict | None:
    """The fp16 comprehension run of a paper model, by the rules of ``PICK_RULES``."""
    cands = [r for r in comprehension_runs(ctx) if "_error" not in r["meta"] and is_paper_run(ctx, r)
             and r["meta"]["model"]["hub_id"] == hub and r["meta"].get("dtype") == "fp16"]
    if not cands:
        return None
    be = ctx.a1_row(hub)["backend"].lower()
    return sorted(cands, key=lambda r: (run_stimuli_set(r["meta"]) != ctx.stimuli_set,
                                        "paper" not in run_protocols(r["meta"]),
                                        r["meta"].get("backend") != be, r["kind"]))[0]


def _read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def equivalence_gate(ctx: Ctx, hub: str) -> str | None:
    """Why a paper model's run cannot count as reproduced for want of Section 4.2's equivalence (None: fine)."""
    if ctx.a1_row(hub)["backend"] == "HF":
        return None  # TransformerLens cannot load it (Table A1): nothing to compare
    p = ctx.runs_root / hub.replace("/", "_") / "equivalence.json"
    if not p.is_file():
        return f"equivalence did not run (`invoke equivalence --model {hub} --dtype fp16`)"
    d = _read_json(p)
    if not d.get("passed") or not (d.get("best") or {}).get("passed"):
        return "equivalence ran and failed"
    return None


def checked(ctx: Ctx, run: dict) -> tuple[dict, list[str]]:
    """``comprehension_values`` of a comprehension run, computed once per verify (its values claim, its Table A1
    row and the size claims all read it); its tensors are read once, and its best-layer RDM is kept for RSA."""
    def compute():
        t = load_tensors(run["dir"])
        ctx._cache["rdm:" + rid(run)] = cosine_matrix(t["vectors"][run["meta"]["best_layer"]])
        return comprehension_values(run["dir"], run["meta"], tensors=t)

    return ctx._get("values:" + rid(run), compute)


def rsa(ctx: Ctx, run_a: dict, run_b: dict) -> float:
    """Spearman of the upper triangles of two runs' best-layer RDMs recomputed from their saved vectors,
    aligned on emotion names."""
    def rdm(run):
        checked(ctx, run)
        return ctx._cache["rdm:" + rid(run)]

    ea, eb = list(run_a["meta"]["emotions"]), list(run_b["meta"]["emotions"])
    shared = [e for e in ea if e in eb]
    if len(shared) < 3:
        raise ValueError("fewer than 3 shared emotions")
    ma, mb = rdm(run_a), rdm(run_b)
    ia, ib = [ea.index(e) for e in shared], [eb.index(e) for e in shared]
    return float(_st.spearmanr(upper(ma[np.ix_(ia, ia)]), upper(mb[np.ix_(ib, ib)])).statistic)


# ---- run claims, one builder per check name of analysis/claims.csv --------------------------------------
# A builder turns a row into claims: one per run, slug or model for template rows ({run}, {slug}, {row}),
# else one claim that is RUN when its runs exist and NEEDS_RUN (naming the command) until then.

BUILDERS, builder = registry()  # check name in analysis/claims.csv -> builder


def _problems_check(fn):
    def check(c: Ctx):
        got, problems = fn()
        more = f" (+{len(problems) - 4} more)" if len(problems) > 4 else ""
        return got, not problems, "; ".join(problems[:4]) + more
    return check


def _slugs(ctx: Ctx, filename: str) -> list[Path]:
    if not ctx.runs_root.is_dir():
        return []
    return [p / filename for p in sorted(ctx.runs_root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / filename).is_file()]


@builder("run_values")
def run_values(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    out = []
    for run in ctx.runs:
        r, meta = rid(run), run["meta"]
        if "_error" in meta:
            def fn(e=meta["_error"]):
                return "unreadable", [f"metadata.json: {e}"]
        elif meta.get("kind") == "comprehension":
            def fn(run=run):
                return checked(ctx, run)
        elif meta.get("kind") == "generation":
            def fn(run=run):
                return generation_values(run["dir"], run["meta"])
        else:
            continue
        out.append(row.claim(ctx, {"run": r}, check=_problems_check(fn), runs=(r,)))
    return out


@builder("run_equivalence")
def run_equivalence(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    out = []
    for eq in _slugs(ctx, "equivalence.json"):
        def check(c: Ctx, eq=eq):
            d = _read_json(eq)
            got, problems = equivalence_values(eq.parent, d, row.tol)
            n = [x for x in d.get("per_layer", []) if x.get("passed") is not None]
            ok = bool(d.get("passed")) and bool((d.get("best") or {}).get("passed")) and not problems
            return got, ok, "; ".join(problems) or (f"{sum(bool(x['passed']) for x in n)}/{len(n)} finite layers "
                                                    f"pass the cosine bar; dtype {d.get('dtype')}")

        out.append(row.claim(ctx, {"slug": eq.parent.name}, check=check, runs=(f"{eq.parent.name}/{eq.name}",)))
    return out


@builder("run_decomposition")
def run_decomposition(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    return [row.claim(ctx, {"slug": dec.parent.name}, runs=(f"{dec.parent.name}/{dec.name}",),
                      check=_problems_check(lambda dec=dec: decomposition_values(ctx.runs_root, _read_json(dec))))
            for dec in _slugs(ctx, "decomposition.json")]


def _vs_a1(ctx: Ctx, run: dict, row: dict):
    m = run["meta"]
    best = (m.get("descriptors") or {}).get("best") or {}
    got = {"best_layer": m.get("best_layer"), "best_layer_pct": m.get("best_layer_pct"),
           "anisotropy": r4(best.get("anisotropy")), "rdm_std": r4(best.get("rdm_std")), "backend": m.get("backend")}
    bad, notes = [], []
    if checked(ctx, run)[1]:
        bad.append("its numbers disagree with its saved tensors (run.<run>.values)")
    if m.get("backend") != row["backend"].lower():
        bad.append(f"ran on {m.get('backend')}, Table A1 row {row['row']} ran on {row['backend']}")
    if "paper" not in run_protocols(m):
        bad.append(f"ran under protocol {'/'.join(run_protocols(m)) or 'custom'}, the published numbers come from 'paper'")
    if gate := equivalence_gate(ctx, row["hub_id"]):
        bad.append(gate)
    off = abs(m["best_layer"] - row["best_layer"])
    if off > BEST_LAYER_FLAG:
        bad.append(f"best layer off by {off}")
    elif off == 1:
        notes.append("FLAGGED: best layer off by 1")
    if abs(m["best_layer_pct"] - row["best_layer_pct"]) > 100 * off / row["n_layers"] + 0.05 + 1e-9:
        bad.append("best-layer %")
    if not near(best.get("anisotropy"), row["anisotropy"], ANISOTROPY_TOL):
        bad.append("anisotropy")
    if not near(best.get("rdm_std"), row["rdm_std"], RDM_STD_TOL):
        bad.append("RDM std")
    return got, not bad, ("ran, disagrees: " + "; ".join(bad) if bad else "reproduced") + \
        ("; " + "; ".join(notes) if notes else "")


@builder("a1_run")
def a1_run(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    """Each Table A1 row is judged on the one run PICK_RULES choose (other runs: their values only)."""
    out = []
    for a1 in ctx.a1:
        hub, fill = a1["hub_id"], {"row": f"{a1['row']:02d}", "hub": a1["hub_id"]}
        run = pick(ctx, hub)
        if run is None:
            out.append(row.claim(ctx, fill, kind=NEEDS_RUN, models=(hub,), command=CMD_EXTRACT.format(hub_id=hub)))
        else:
            c = row.claim(ctx, fill, kind=RUN, models=(hub,), runs=(rid(run),),
                          check=lambda c, run=run, a1=a1: _vs_a1(c, run, a1))
            c.id += f".{run['kind']}"
            out.append(c)
    return out


def _aliases(hubs) -> str:
    from repro.models import PAPER_MODELS

    return ",".join(m.alias for m in PAPER_MODELS if m.hub_id in hubs)


def _gates(ctx: Ctx, runs: dict) -> list[str]:
    """Why runs that exist still cannot stand for the paper's models (backend, equivalence)."""
    out = [f"{h}: {why}" for h in runs if (why := equivalence_gate(ctx, h))]
    return out + [f"{h}: ran on {r['meta'].get('backend')}, Table A1 {ctx.a1_row(h)['backend']}" for h, r in runs.items()
                  if r["meta"].get("backend") != ctx.a1_row(h)["backend"].lower()]


def _needing(ctx: Ctx, row: ClaimRow, hubs, check, command=None) -> Claim:
    picked = {h: pick(ctx, h) for h in hubs}
    if any(p is None for p in picked.values()):
        cmd = command or (CMD_PAPER if len(hubs) > 4 else CMD_SUBSET.format(models=_aliases(hubs)))
        return row.claim(ctx, kind=NEEDS_RUN, command=cmd, models=tuple(hubs))
    return row.claim(ctx, kind=RUN, check=lambda c: check(c, picked), models=tuple(hubs),
                     runs=tuple(rid(p) for p in picked.values()))


@builder("rsa_run")
def rsa_run(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    hubs = row.args["models"].split(",")
    pairs = row.args["pairs"]
    if pairs == "all":
        todo = [(a, b) for i, a in enumerate(hubs) for b in hubs[i + 1:]]
    else:
        me = pairs.split(":", 1)[1]
        skip = {"google/gemma-3-1b-it": {"google/gemma-3-1b-pt"}}.get(me, set())  # IT vs the non-Gemma models
        todo = [(me, h) for h in hubs if h != me and h not in skip]
    agg = {"range": lambda v: [min(v), max(v)], "mean": lambda v: [float(np.mean(v))], "one": lambda v: v[:1]}
    exp = row.resolve(ctx)

    def check(c: Ctx, runs: dict):
        vals = agg[row.args["agg"]]([rsa(c, runs[a], runs[b]) for a, b in todo])
        ok = all(abs(x - e) <= row.tol for x, e in zip(vals, exp if isinstance(exp, list) else [exp]))
        gates = _gates(c, runs)
        note = "best-layer RDMs recomputed from the fp16 runs' saved vectors"
        got = [r4(x) for x in vals] if len(vals) > 1 else r4(vals[0])
        return got, ok and not gates, ("ran, disagrees: " if not ok else "") + "; ".join(gates + [note])

    return [_needing(ctx, row, hubs, check)]


@builder("size_run")
def size_run(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    pred, outcome, exp = row.args["predictor"], row.args["outcome"], row.resolve(ctx)

    def check(c: Ctx, runs: dict):
        xs, ys = [], []
        for r in c.a1:
            run = runs[r["hub_id"]]
            vals, _ = checked(c, run)
            xs.append(r[pred])
            ys.append(100 * vals["best_layer"] / run["meta"]["n_layers"] if outcome == "best_layer_pct" else vals[outcome])
        res = _st.spearmanr(xs, ys)
        return {"rho": r4(res.statistic), "p": float(f"{res.pvalue:.3g}")}, near(res.statistic, exp, row.tol), \
            "descriptors recomputed from the twelve fp16 runs"

    return [_needing(ctx, row, [r["hub_id"] for r in ctx.a1], check, CMD_PAPER)]


@builder("equivalence_paper")
def equivalence_paper(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    hub = row.args["hub"]
    eq = ctx.runs_root / hub.replace("/", "_") / "equivalence.json"
    exp = {"layer": ctx.num("S2.4.cross_backend_layer"), "cos_mean": ctx.num("S4.2.cos_mean"),
           "cos_min": ctx.num("S4.2.cos_min"), "rdm_spearman": ctx.num("S4.2.rdm_spearman"),
           "rel_frobenius": ctx.num("S4.2.rel_frobenius")}
    if not eq.is_file():
        return [row.claim(ctx, kind=NEEDS_RUN, expected=exp, command=CMD_EQUIV)]

    def check(c: Ctx):
        d = _read_json(eq)
        b = d.get("best") or {}
        bad, notes = list(equivalence_values(eq.parent, d)[1]), []
        off = abs((b.get("layer") if b.get("layer") is not None else -99) - exp["layer"])
        if off > BEST_LAYER_FLAG:
            bad.append(f"layer off by {off}")
        elif off == 1:
            notes.append("FLAGGED: layer off by 1")
        bad += [k for k in ("cos_mean", "cos_min", "rdm_spearman") if (as_float(b.get(k)) or 0.0) < EQUIV[k]]
        rel = as_float(b.get("rel_frobenius"))
        if rel is None or rel > EQUIV["rel_frobenius"]:
            bad.append("rel_frobenius")
        if d.get("dtype") != "fp16":
            bad.append(f"dtype {d.get('dtype')} (the paper ran fp16)")
        return {k: b.get(k) for k in exp}, not bad, "; ".join(bad + notes)

    return [row.claim(ctx, kind=RUN, expected=exp, check=check, runs=(f"{eq.parent.name}/{eq.name}",))]


# Section 4.3.1: A and C at fp16, D at INT8; L2 holds "method and precision" fixed, so B is at C's fp16.
DECOMP_PRECISION = {"A": "fp16", "B": "fp16", "C": "fp16", "D": "int8"}


@builder("decomposition_paper")
def decomposition_paper(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    hub, direction = row.args["hub"], row.args["direction"]
    vals = row.resolve(ctx)
    exp = {**vals, "direction": direction}
    path = ctx.runs_root / hub.replace("/", "_") / "decomposition.json"
    if not path.is_file():
        return [row.claim(ctx, kind=NEEDS_RUN, expected=exp, command=CMD_DECOMP)]

    def check(c: Ctx):
        d = _read_json(path)
        got, problems = decomposition_values(c.runs_root, d)
        layers = d.get("layers") or {}
        rho = {k: as_float((layers.get(k) or {}).get("rho")) for k in DECOMP_LAYERS}
        bad = ["its L1-L4 disagree with the runs it names"] if problems else []
        bad += [f"{k} {('not run' if rho[k] is None else f'{rho[k]:.3f}')} vs {vals[k]}" for k in DECOMP_LAYERS
                if rho[k] is None or abs(rho[k] - vals[k]) > DECOMP_RHO_TOL]
        seen = (d.get("reading") or {}).get("direction")
        if rho["L3_C_vs_D"] is not None and rho["L4_A_vs_D"] is not None:
            seen = "over-estimates" if rho["L4_A_vs_D"] > rho["L3_C_vs_D"] else "under-estimates"
        if seen != direction:
            bad.append(f"L4 vs L3 {seen}, the paper {direction}")
        conds = d.get("conditions") or {}
        bad += [f"condition {k} ran at {(conds.get(k) or {}).get('precision')}, the paper at {want}"
                for k, want in DECOMP_PRECISION.items() if (conds.get(k) or {}).get("precision") != want]
        if "paper" not in ((d.get("protocol") or {}).get("name") or ""):
            bad.append(f"protocol {(d.get('protocol') or {}).get('name')}, not the paper's")
        if w := equivalence_gate(c, hub):
            bad.append(w)
        return {**got, "direction": seen}, not bad, ("ran, disagrees: " + "; ".join(bad)) if bad else "reproduced"

    return [row.claim(ctx, kind=RUN, expected=exp, check=check, runs=(f"{path.parent.name}/{path.name}",))]
