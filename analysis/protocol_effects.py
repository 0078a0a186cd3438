"""How far the protocol departures move a run (docs/PROTOCOLS.md): runs of one model that differ only in
protocol, side by side.

Runs are grouped by model, backend, dtype and stimulus set. Within a group, the run of protocol ``paper`` is
set against every other run: ``corrected``, or a single switch flipped with ``--quirk``. The embedded
reproduce produces such a pair without being asked, because its equivalence stage extracts under
``corrected``.
"""
from __future__ import annotations

from repro.protocol import run_applied

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
