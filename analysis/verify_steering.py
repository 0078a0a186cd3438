"""Steering-regime claims for ``invoke verify`` (paper Section 2.5 item 4 and Section 3.3).

Three kinds of claim:

* **release**: every released per-model metadata.json that has a regime (TL-backend models; the HF ones say
  ``not_available_hf_backend``) must give that regime when the paper's rule is applied to its own released
  ``steering_samples`` (the authors' rule: first 200 characters, whitespace words; ``repro.steering``);
* **paper vs release**: the regimes the paper prints (Gemma-3 1B: base explosive, instruct surgical) against
  the release, where released;
* **run**: a steering run of a paper model made under ``--protocol paper`` must reach the paper's regime for
  that model (printed in the paper, else released); without such a run the claim waits for one.
"""
from __future__ import annotations

from repro.protocol import run_protocols

from . import reference as ref
from .verify_model import NEEDS_RUN, Claim, ClaimRow, Ctx
from .verify_model import rid as _rid
from .verify_runs import builder

NOT_AVAILABLE = "not_available_hf_backend"
CMD_STEER = "invoke steer --model {hub_id} --precision fp16"


def paper_regimes(ctx: Ctx) -> dict[str, tuple[str, str]]:
    """hub id -> (regime, number id) for the regimes the paper prints (paper_numbers.json, S3.3.steering_regime.*)."""
    out = {}
    for nid, n in ctx.numbers.items():
        if nid.startswith("S3.3.steering_regime."):
            for hub in n.get("models") or []:
                out[hub] = (n["value"], nid)
    return out


def released_regimes(ctx: Ctx) -> dict[str, dict]:
    """hub id -> released metadata.json, for every released model with a regime (not the HF ones)."""
    out = {}
    for p in sorted((ref.released_dir(ctx.ref_dir) / "scripts" / "paper5_output").glob("*/metadata.json")):
        m = ctx.released(str(p.relative_to(ref.released_dir(ctx.ref_dir))))
        if m.get("steering_regime") and m["steering_regime"] != NOT_AVAILABLE:
            out[m["model_id"]] = m
    return out


def expected_regime(ctx: Ctx, hub: str) -> tuple[str, str] | None:
    """(regime, where it comes from) the paper stands for: printed in the paper, else released."""
    printed = paper_regimes(ctx)
    if hub in printed:
        return printed[hub][0], f"paper ({printed[hub][1]})"
    rel = released_regimes(ctx).get(hub)
    if rel is not None:
        return rel["steering_regime"], "released metadata.json"
    return None


def _rule_on_released(m: dict) -> dict:
    from repro.steering import classify, measures

    samples = [{"strength": s["strength"], **measures(s["text"], authors_rule=True)}
               for s in m.get("steering_samples") or []]
    return classify(samples)


def _steering_runs(ctx: Ctx) -> list[dict]:
    return [r for r in ctx.runs if r["meta"].get("kind") == "steering" and "_error" not in r["meta"]]


def _slug(hub: str) -> str:
    return hub.replace("/", "_")


@builder("steering_release")
def steering_release(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    out = []
    for hub, m in released_regimes(ctx).items():
        def check(c: Ctx, m=m):
            v = _rule_on_released(m)
            got = {"regime": v["regime"], "fraction_repetitive": round(v["fraction_repetitive"], 3),
                   "fraction_short": round(v["fraction_short"], 3), "n_samples": v["n_steered"]}
            return got, v["regime"] == m["steering_regime"], ""

        out.append(row.claim(ctx, {"slug": _slug(hub), "hub": hub}, expected=m["steering_regime"], check=check,
                             models=(hub,)))
    return out


@builder("steering_paper_vs_release")
def steering_paper_vs_release(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    out = []
    for hub, (regime, nid) in paper_regimes(ctx).items():
        if ref.released_metadata(hub, ctx.ref_dir) is None:
            continue

        def check(c: Ctx, hub=hub, regime=regime):
            got = ref.released_metadata(hub, c.ref_dir).get("steering_regime")
            return got, got == regime, ""

        out.append(row.claim(ctx, {"number": nid, "hub": hub}, expected=regime, check=check, models=(hub,)))
    return out


@builder("steering_run")
def steering_run(ctx: Ctx, row: ClaimRow) -> list[Claim]:
    """A paper-protocol steering run of a model whose regime the paper stands for; without one, NOT RUN."""
    out = []
    hubs = set(paper_regimes(ctx)) | set(released_regimes(ctx))
    covered = set()
    for run in _steering_runs(ctx):
        meta = run["meta"]
        hub = (meta.get("model") or {}).get("hub_id")
        if hub not in hubs or "paper" not in run_protocols(meta):
            continue  # embedded / other models, or another protocol's procedure: not the paper's regime
        covered.add(hub)
        regime, where = expected_regime(ctx, hub)

        def check(c: Ctx, run=run, regime=regime, where=where):
            m = run["meta"]
            return m.get("regime"), m.get("regime") == regime, f"expected from the {where}; backend {m.get('backend')}"

        out.append(row.claim(ctx, {"run": _rid(run), "hub": hub}, expected=regime, check=check, models=(hub,),
                             runs=(_rid(run),)))
    for hub in sorted(hubs - covered):
        regime, where = expected_regime(ctx, hub)
        out.append(row.claim(ctx, {"run": _slug(hub), "hub": hub}, kind=NEEDS_RUN, expected=regime, models=(hub,),
                             command=CMD_STEER.format(hub_id=hub)))
    return out
