"""`invoke verify`: the paper's numbers as machine-checked claims, after a checksum check of the inputs.

Order of work: (1) integrity: ``checksums/reference.sha256`` over ``artifacts/reference/**`` and, when it
exists, ``checksums/runs.sha256`` over ``artifacts/runs/**`` (``analysis.checksums``); (2) every claim of
``analysis/claims.csv`` (one row per claim: id, kind, check, arguments, expected value, tolerance and why,
source, statement, and, for a registered release/paper disagreement, the finding); (3) a terminal table, ``artifacts/verify/verify.json`` and ``artifacts/verify/verify.md``.

Claim kinds
-----------
- ``derived``: recomputed here from the frozen reference data alone (the paper's numbers in
  ``paper_numbers.json`` and the authors' released JSON files). Runs everywhere, in well under a second.
- ``needs-run``: needs real model runs; the claim names the exact ``invoke`` command and the models.
  Status NOT RUN until the runs exist; then the same claim is checked as a ``run`` claim.
- ``run``: checked against the run artifacts under ``artifacts/runs/``, values recomputed from the saved
  tensors (``analysis.verify_runs``).

Statuses: PASS, FAIL, NOT RUN, MISMATCH-IN-RELEASE. A MISMATCH-IN-RELEASE is a *registered* finding: the
authors' released files disagree with the paper (each such claim carries the explanation). It is not a
failure. An unregistered disagreement is a FAIL, and so is a registered one that no longer shows (the
registry would then be wrong), so every claim can fail.

Tolerance policy
----------------
Inputs and frozen references are checked bit-exactly, by sha256 (integrity step; the released files also
against the sha256 in the authors' PROVENANCE.md). Numbers are checked with tolerances, because fp16 on
other hardware, other kernels and other library versions is not bit-exact. Each claim's tolerance and the
reason for it are columns of ``analysis/claims.csv``; in short: a printed number is compared at its printed
precision (half a unit of its last digit: 0.0001 is +-5e-5); a run's numbers must first be what its saved
tensors give (+-1e-5, ``analysis.run_values``); runs of the paper's models are then compared with the paper
(Table A1 best layer exact with +-1 flagged, anisotropy +-0.01, RDM std +-0.005, on the Table A1 backend,
under the paper's protocol, with Section 4.2's equivalence run; RSA +-0.02; size correlations +-0.05;
decomposition +-0.10 per layer with the L4-vs-L3 direction exact; equivalence by emogeo's bar, cosine >=
0.9999, as the paper states no threshold).

Modules: this engine; ``verify_model`` (types, ``Ctx``, comparisons, the claims file reader);
``verify_release`` (checks of derived claims); ``verify_runs`` and ``verify_steering`` (builders of run
claims); ``verify_report`` (terminal and markdown).

Runs are read from ``<root>/artifacts/runs`` (the default of ``repro.artifacts.runs_dir()``; a run tree moved
elsewhere with EMOGEO_ARTIFACTS is not seen). Embedded models (SmolLM2-135M, Gemma-3-270M, ...) are not paper
models: their runs are checked for their values and equivalence only, never against the paper's numbers. MTI behavioural scores come from the authors'
released MTI files (Ollama runs of another instrument); they are checked against the release only.
"""
from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path

import numpy as np

from . import checksums
from .verify_model import (CLAIMS_FILE, DERIVED, FAIL, MISMATCH, NEEDS_RUN, NOT_RUN, PASS, RUN, SCHEMA, STATUSES, Claim,
                           ClaimRow, Ctx, VerifyResult, load_rows)
from .verify_release import CHECKS, size_correlations_from_table_a1
from .verify_report import fmt, markdown_section, print_table
from .verify_runs import BUILDERS, PICK_RULES
from . import verify_steering

REPO = Path(__file__).resolve().parent.parent
# Re-exported for callers that import them from here.
__all__ = ["CLAIMS_FILE", "DERIVED", "FAIL", "MISMATCH", "NEEDS_RUN", "NOT_RUN", "PASS", "RUN", "SCHEMA", "Claim", "Ctx",
           "KNOWN", "VerifyResult", "claims_registry", "evaluate", "fmt", "main", "markdown_section", "print_table",
           "run_verify", "size_correlations_from_table_a1"]

_REGISTERED = (verify_steering,)  # importing it registers the steering builders
KNOWN = {r.id: r.finding for r in load_rows() if r.finding}  # registered findings: the release vs the paper


def _derived(ctx: Ctx, row: ClaimRow) -> Claim:
    if row.check not in CHECKS:
        raise ValueError(f"claims.csv row {row.id}: unknown check {row.check!r}")
    fn, exp = CHECKS[row.check], row.resolve(ctx)
    # Arguments the check does not take only name the claim's models (e.g. a=, b= of a pair).
    takes = inspect.signature(fn).parameters
    args = {k: v for k, v in row.args.items() if k in takes}
    return row.claim(ctx, expected=exp, check=lambda c: fn(c, exp, row.tol, **args))


def claims_registry(root: Path = REPO, stimuli_set: str | None = None, ctx: Ctx | None = None,
                    rows: list[ClaimRow] | None = None) -> list[Claim]:
    """Every claim of the claims file for the tree at ``root``: derived rows as they stand, run rows and
    template rows through their builders (they depend on the runs present, picked on ``stimuli_set`` first)."""
    ctx = ctx or Ctx(root, stimuli_set)
    claims: list[Claim] = []
    for row in rows if rows is not None else load_rows():
        if row.check in BUILDERS:
            claims += BUILDERS[row.check](ctx, row)
        elif "{" in row.id or row.kind != DERIVED:
            raise ValueError(f"claims.csv row {row.id}: no builder for check {row.check!r}")
        else:
            claims.append(_derived(ctx, row))
    seen: set[str] = set()
    dup = [c.id for c in claims if c.id in seen or seen.add(c.id)]
    if dup:
        raise ValueError(f"duplicate claim ids: {dup}")
    return claims


# ---- evaluation ------------------------------------------------------------------------------------

def evaluate(claim: Claim, ctx: Ctx) -> dict:
    out = {"id": claim.id, "statement": claim.statement, "source": claim.source, "kind": claim.kind,
           "expected": claim.expected, "got": None, "tolerance": claim.tolerance, "why": claim.why,
           "status": NOT_RUN, "note": "",
           "command": claim.command, "models": list(claim.models), "runs": list(claim.runs)}
    if claim.kind == NEEDS_RUN or claim.check is None:
        out["note"] = f"needs a run: {claim.command}" if claim.command else "needs a run"
        return out
    try:
        got, ok, note = claim.check(ctx)
    except Exception as exc:  # a broken input must give a FAIL row, never a crash
        out.update(status=FAIL, note=f"error: {type(exc).__name__}: {exc}")
        return out
    out["got"], out["note"] = got, note or ""
    if claim.known_mismatch:
        out["finding"] = claim.known_mismatch
        if ok:
            out.update(status=FAIL, note=("registered release/paper mismatch no longer observed; update the registry. "
                                          + out["note"]).strip())
        else:
            out["status"] = MISMATCH
    else:
        out["status"] = PASS if ok else FAIL
        if not ok and claim.kind == DERIVED and "released" in claim.source:
            out["note"] = ("unregistered disagreement between the release and the paper. " + out["note"]).strip()
    return out


def _findings(claims: list[dict]) -> list[dict]:
    out = [{"claim": c["id"], "source": c["source"], "expected": c["expected"], "got": c["got"], "finding": c["finding"]}
           for c in claims if c["status"] == MISMATCH]
    out += [{"claim": c["id"], "source": c["source"], "expected": c["expected"], "got": c["got"],
             "finding": "paper-internal: " + c["note"]}
            for c in claims if c["status"] == PASS and c["note"] and
            (c["id"] in ("S3.1.within_family.mean", "S3.3.rdm_std_base_instruct_delta"))]
    return out


def run_verify(root: Path = REPO, write: bool = True, stimuli_set: str | None = None) -> VerifyResult:
    """Integrity, then every claim; writes artifacts/verify/verify.{json,md} under ``root`` when ``write``.
    Paper models' runs are picked on ``stimuli_set`` first (default: the shipped set); see ``PICK_RULES``."""
    root = Path(root)
    integrity = checksums.integrity(root)
    ctx = Ctx(root, stimuli_set)
    try:
        claims = [evaluate(c, ctx) for c in claims_registry(root, stimuli_set, ctx)]
    except Exception as exc:  # reference data too broken to even list the claims
        claims = [{"id": "registry", "statement": "the claims registry can be built from the reference data",
                   "source": "artifacts/reference", "kind": DERIVED, "expected": "loads", "got": None, "tolerance": "",
                   "status": FAIL, "note": f"error: {type(exc).__name__}: {exc}", "command": None, "models": [],
                   "runs": []}]
    summary = {s: sum(c["status"] == s for c in claims) for s in STATUSES}
    summary["integrity"] = ", ".join(f"{Path(r['manifest']).stem} {r['status']}" for r in integrity if r["path"] is None)
    code = 2 if checksums.integrity_failed(integrity) else 1 if summary[FAIL] else 0
    summary["runs_rule"] = PICK_RULES.format(stimuli=ctx.stimuli_set)
    res = VerifyResult(root=root, claims=claims, integrity=integrity, exit_code=code, summary=summary,
                       findings=_findings(claims))
    if write:
        from repro.artifacts import environment, write_json_atomic, write_text_atomic

        out = root / "artifacts" / "verify"
        try:
            write_json_atomic(out / "verify.json", {**res.to_dict(), "env": environment()})
            write_text_atomic(out / "verify.md", markdown_section(res))
        except OSError as exc:  # a read-only tree is still verified: the report goes to the terminal only
            res.not_written = f"{out} not written ({exc.strerror}); the verdict above is complete"
    return res


def main(json_only: bool = False, root: Path = REPO, stimuli_set: str | None = None) -> int:
    elsewhere = checksums.artifacts_elsewhere(root)
    if elsewhere is not None:  # checking root/artifacts here would report on runs that are not the user's
        print(f"error: EMOGEO_ARTIFACTS={elsewhere} but verify checks {Path(root) / 'artifacts'} (its manifests and "
              "claims are written for it); unset EMOGEO_ARTIFACTS, or move the runs there", file=sys.stderr)
        return 2
    res = run_verify(root, stimuli_set=stimuli_set)
    if json_only:
        print(json.dumps(_json_safe(res.to_dict()), indent=2))
    else:
        print_table(res)
        if res.not_written:
            print(f"note: {res.not_written}", file=sys.stderr)
        else:
            print(f"wrote {root / 'artifacts' / 'verify' / 'verify.json'} and verify.md")
    return res.exit_code


def _json_safe(o):
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o
