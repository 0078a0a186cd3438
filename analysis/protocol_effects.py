"""How far the protocol departures move a run (docs/PROTOCOLS.md): runs of one model that differ only in
protocol, side by side.

``protocol_effects``: comprehension runs are grouped by model, backend, dtype and stimulus set. Within a
group, the run of protocol ``paper`` is set against every other run: ``corrected``, or a single switch
flipped with ``--quirk``. The embedded reproduce produces such a pair without being asked, because its
equivalence stage extracts under ``corrected``.

``decomposition_effects``: the four-layer decomposition of one model under ``paper``, ``corrected`` and
``paper`` with each switch flipped alone, each from the runs of that protocol. A variant whose runs do not
exist says which are missing instead of borrowing another protocol's run.
"""
from __future__ import annotations

from dataclasses import replace

from repro.protocol import DEPARTURES, named, resolve_protocol, run_applied

from .rsa import compare
from .runs import Runs


def _at_best(run) -> dict:
    m = run.meta
    best = run.best_layer
    sweep = m.get("layer_sweep") or []
    return {"run": f"{run.slug}/{run.kind}", "best_layer": best, "margin": m.get("best_margin"),
            "anisotropy": run.anisotropy, "mean_cosine": sweep[best] if best is not None and best < len(sweep)
            else None, "rdm_std": run.rdm_std}


def protocol_effects(runs: Runs) -> list[dict]:
    """One row per (paper run, other run) pair: the switches that differ, the descriptors of each, and the
    Spearman between their best-layer RDMs (1: the switches left the geometry's ranks as they were)."""
    groups: dict[tuple, list] = {}
    for r in runs.comprehension:
        groups.setdefault((r.hub_id, r.backend, r.dtype, r.stimuli_set), []).append(r)
    rows = []
    for (hub, backend, dtype, stim), members in groups.items():
        paper = sorted((r for r in members if "paper" in r.protocols), key=lambda r: r.kind)
        others = sorted((r for r in members if "paper" not in r.protocols), key=lambda r: r.kind)
        if not paper or not others:
            continue
        p = paper[0]
        pa = run_applied(p.meta)
        for o in others:
            oa = run_applied(o.meta)
            try:
                rho = compare(p.rdm(), o.rdm()).spearman
            except ValueError:
                rho = None
            rows.append({"model": hub, "backend": backend, "dtype": dtype, "stimuli": stim,
                         "other_protocol": o.protocol_label,
                         "switches_off": [k for k, on in pa.items() if on and not oa.get(k, False)],
                         "paper": _at_best(p), "other": _at_best(o), "rdm_rho": rho})
    return rows


def _variants():
    """(label, protocol): paper, corrected, then paper with one implemented switch flipped."""
    out = [("paper", named("paper")), ("corrected", named("corrected"))]
    for d in DEPARTURES:
        if d.implemented:
            out.append((f"{d.id}=off", resolve_protocol("paper", f"{d.id}=off")))
    return out


def decomposition_effects(runs: Runs, config=None) -> list[dict]:
    """Per model with generation runs, one row per protocol variant: the decomposition layers (rho), the
    runs that fed A and B, and which of A-D have no run of that protocol (then the layers read None)."""
    from .decomposition import LAYERS, decomposition_from_runs
    from .runs import AnalysisConfig, config_for_protocol

    base = config or AnalysisConfig()
    rows = []
    for slug in sorted({g.slug for g in runs.generation}):
        for label, proto in _variants():
            asked = config_for_protocol(proto)
            cfg = replace(base, protocol=asked.protocol, protocol_switches=asked.protocol_switches,
                          decomposition_centring=asked.decomposition_centring, n_perm=0)
            d = decomposition_from_runs(slug, runs, config=cfg, write=False)
            conds = d.get("conditions") or {}
            missing = [k for k, c in conds.items() if c is None or not c.get("run_of_protocol", True)]
            layers = {key: (None if any(c in missing for c in (x, y)) else d["layers"][key]["rho"])
                      for key, x, y, _ in LAYERS}
            rows.append({"model": d.get("model"), "label": d.get("label"), "variant": label,
                         "centring": cfg.decomposition_centring,
                         "A": (conds.get("A") or {}).get("run"), "B": (conds.get("B") or {}).get("run"),
                         "missing": missing, "layers": layers})
    return rows


# ------------------------------------------------------------------------------------- report tables
def table_protocol_effects(res: dict):
    from .tabular import Table, _not_run

    cols = ["model", "backend", "dtype", "stimuli", "other run", "protocol", "switches off", "best layer paper",
            "best layer other", "margin paper", "margin other", "anisotropy paper", "anisotropy other",
            "mean cosine paper", "mean cosine other", "RDM std paper", "RDM std other", "RDM rho"]
    title = "Protocol effects - the same model under protocol paper and another protocol (docs/PROTOCOLS.md)"
    pending = [d.id for d in DEPARTURES if not d.implemented]
    notes = ["paper = the procedure behind the published numbers (the default); the other run has the listed "
             "switches off (`--protocol corrected` or `--quirk ID=off`). Descriptors at each run's own best layer; "
             "RDM rho = Spearman between the two runs' best-layer RDMs.",
             "Departures: " + "; ".join(f"{d.id} ({d.stage}: {d.authors})" for d in DEPARTURES) + "."]
    if pending:
        notes.append("Pending (run as corrected whatever is asked, recorded in each run): " + ", ".join(pending) + ".")
    if res["mode"] != "runs":
        return _not_run("protocol_effects", title, cols, "needs runs", notes)
    rows = []
    for e in res.get("protocol_effects") or []:
        p, o = e["paper"], e["other"]
        rows.append([e["model"], e["backend"], e["dtype"], e["stimuli"], o["run"].split("/", 1)[-1],
                     e["other_protocol"], ", ".join(e["switches_off"]) or "-", p["best_layer"], o["best_layer"],
                     p["margin"], o["margin"], p["anisotropy"], o["anisotropy"], p["mean_cosine"], o["mean_cosine"],
                     p["rdm_std"], o["rdm_std"], e["rdm_rho"]])
    if not rows:
        return _not_run("protocol_effects", title, cols, "no model has runs under two protocols (e.g. `invoke "
                        "extract --model M --protocol corrected` next to the default run)", notes)
    fine = {c: 5 for c in ("margin paper", "margin other", "mean cosine paper", "mean cosine other")}
    fine.update({c: 4 for c in ("anisotropy paper", "anisotropy other", "RDM std paper", "RDM std other", "RDM rho")})
    return Table("protocol_effects", title, cols, rows, notes, intcols=("best layer paper", "best layer other"),
                 digits=fine)


def table_decomposition_effects(res: dict):
    from .decomposition import LAYERS
    from .tabular import Table, _not_run

    keys = [k for k, *_ in LAYERS]
    cols = ["model", "protocol", "centring", "A run", "B run", "no run of this protocol"] + \
        [k.split("_", 1)[0] + " " + k.split("_", 1)[1].replace("_", " ") for k in keys] + \
        [k.split("_", 1)[0] + " - paper" for k in keys]
    title = "Protocol effects on the four-layer decomposition - paper, corrected, and each switch flipped alone"
    notes = ["Each row recomputes Section 4.3's decomposition from the runs of that protocol (A: comprehension, "
             "B: loose generation, C/D: protocol-matched fp16/int8, which no switch changes). A layer whose "
             "conditions have no run of the row's protocol reads not run: run them with `invoke extract` / "
             "`invoke generate --preset loose` and the row's `--protocol`/`--quirk`.",
             "Spearman rho of the RDMs; '- paper' = the row's value minus the paper row's. A switch of a stage "
             "none of the row's runs belongs to leaves the row equal to paper (the HF switches when A is a TL "
             "run); the loose run B reads its best layer from the comprehension run of its protocol."]
    if res["mode"] != "runs":
        return _not_run("decomposition_effects", title, cols, "needs runs", notes)
    rows, paper = [], {}
    for e in res.get("decomposition_effects") or []:
        if e["variant"] == "paper":
            paper[e["model"]] = e["layers"]
        ref = paper.get(e["model"]) or {}
        deltas = [None if e["layers"][k] is None or ref.get(k) is None else e["layers"][k] - ref[k] for k in keys]
        rows.append([e["label"] or e["model"], e["variant"], e["centring"], (e["A"] or "-").split("/", 1)[-1],
                     (e["B"] or "-").split("/", 1)[-1], ", ".join(e["missing"]) or "-"]
                    + [e["layers"][k] for k in keys] + deltas)
    if not rows:
        return _not_run("decomposition_effects", title, cols, "no model has generation runs", notes)
    return Table("decomposition_effects", title, cols, rows, notes, digits={c: 3 for c in cols[6:]})
