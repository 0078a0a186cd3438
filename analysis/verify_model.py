"""What every part of `invoke verify` shares: the claim and result types, the statuses, the lazily loaded
reference data and runs (``Ctx``), and the number comparisons.

Kept free of any claim so that the claim modules (``verify_release``, ``verify_runs``, ``verify_steering``)
and the engine (``verify``) can all import it without importing each other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from repro.stimuli.sets import DEFAULT_SET

from . import reference as ref
from .descriptors import finite_float as as_float

SCHEMA = "emogeo.verify/1"

PASS, FAIL, NOT_RUN, MISMATCH = "PASS", "FAIL", "NOT RUN", "MISMATCH-IN-RELEASE"
STATUSES = (PASS, FAIL, NOT_RUN, MISMATCH)
DERIVED, NEEDS_RUN, RUN = "derived", "needs-run", "run"


@dataclass
class Claim:
    id: str
    statement: str
    source: str
    kind: str
    expected: Any
    tolerance: str
    check: Callable[["Ctx"], tuple] | None = None  # -> (got, ok, note)
    command: str | None = None
    models: tuple = ()
    known_mismatch: str | None = None
    runs: tuple = ()  # the run folders (or run files) the check reads, "<slug>/<folder>"
    why: str = ""  # why the tolerance is what it is


@dataclass
class VerifyResult:
    root: Path
    claims: list[dict]
    integrity: list[dict]
    exit_code: int
    summary: dict = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)
    not_written: str | None = None  # why verify.json/.md could not be written (a read-only tree), else None

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "root": str(self.root), "exit_code": self.exit_code, "summary": self.summary,
                "integrity": self.integrity, "claims": self.claims, "findings": self.findings}


class Ctx:
    """The tree verify reads: reference data and runs, each loaded once."""

    def __init__(self, root: Path, stimuli_set: str | None = None, runs_root: Path | None = None):
        self.root = Path(root)
        self.stimuli_set = stimuli_set or DEFAULT_SET  # whose runs represent a paper model (verify_runs.pick)
        self.ref_dir = self.root / "artifacts" / "reference"
        self.runs_root = Path(runs_root) if runs_root else self.root / "artifacts" / "runs"
        self._cache: dict[str, Any] = {}

    def _get(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    @property
    def numbers(self) -> dict[str, dict]:
        return self._get("numbers", lambda: ref.paper_numbers_by_id(self.ref_dir))

    def num(self, number_id: str):
        """A paper number by id; ``id.key`` reads one key of a dict-valued number."""
        if number_id in self.numbers:
            return self.numbers[number_id]["value"]
        base, key = number_id.rsplit(".", 1)
        return self.numbers[base]["value"][key]

    @property
    def a1(self) -> list[dict]:
        return self._get("a1", lambda: ref.table_a1(self.ref_dir))

    def a1_row(self, hub_id: str) -> dict:
        return next(r for r in self.a1 if r["hub_id"] == hub_id)

    def released(self, relpath: str):
        return self._get("rel:" + relpath, lambda: ref.load_released(relpath, self.ref_dir))

    @property
    def n12(self) -> tuple[list[str], np.ndarray]:
        return self._get("n12", lambda: ref.released_rdm_of_rdms(self.ref_dir))

    def n12_rho(self, hub_a: str, hub_b: str) -> float:
        """Released RSA of two Table A1 models (Mistral-7B-v0.3 base is stood in for by v0.1, see the findings)."""
        labels, mat = self.n12
        return float(mat[labels.index(ref.N12_ROLE[hub_a]), labels.index(ref.N12_ROLE[hub_b])])

    def metadata(self, hub_id: str):
        return self._get("meta:" + hub_id, lambda: ref.released_metadata(hub_id, self.ref_dir))

    @property
    def runs(self) -> list[dict]:
        return self._get("runs", lambda: load_runs(self.runs_root))


def load_runs(runs_root: Path) -> list[dict]:
    """Every finished run's metadata plus where it lives."""
    from repro.artifacts import list_runs

    out = []
    for d in list_runs(runs_root):
        try:
            meta = json.loads((d / "metadata.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            meta = {"_error": str(exc)}
        out.append({"dir": d, "slug": d.parent.name, "kind": d.name, "meta": meta})
    return out


def rid(run: dict) -> str:
    return f"{run['slug']}/{run['kind']}"


# ---- number comparisons -----------------------------------------------------------------------------

def near(got, exp, tol) -> bool:
    g = as_float(got)
    return g is not None and abs(g - exp) <= tol


def half_unit(printed: str) -> float:
    """Half a unit of the last printed digit: '0.0001' -> 5e-5, '0.11' -> 5e-3, '1.1e-4' -> 5e-6."""
    s = printed.strip().lstrip("~<>=+-").lower()
    mant, _, exp = s.partition("e")
    decimals = len(mant.split(".", 1)[1]) if "." in mant else 0
    return 0.5 * 10.0 ** (-decimals + (int(exp) if exp else 0)) + 1e-12


def at_printed(got, printed: str) -> bool:
    """Is ``got`` the printed number at its printed precision (within half a unit of its last digit)?"""
    return near(got, float(printed.strip().lstrip("~")), half_unit(printed))



# ---- the paper's models, by role --------------------------------------------------------------------
QI, QB = "Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-1.5B"
SI, SB = "HuggingFaceTB/SmolLM2-1.7B-Instruct", "HuggingFaceTB/SmolLM2-1.7B"
GI, GB = "google/gemma-3-1b-it", "google/gemma-3-1b-pt"
L32I, L32B = "meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B"
MI, MB, M01 = "mistralai/Mistral-7B-Instruct-v0.3", "mistralai/Mistral-7B-v0.3", "mistralai/Mistral-7B-v0.1"
L31I, L31B = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B"
MATURE_I = (QI, SI, L32I, MI, L31I)
WITHIN_FAMILY = {"mistral": (MI, MB), "qwen": (QI, QB), "llama3.1": (L31I, L31B), "smollm2": (SI, SB),
                 "llama3.2": (L32I, L32B)}
GEMMA_PT_VS = {"llama3.2_base": L32B, "llama3.1_base": L31B, "qwen_base": QB, "smollm2_base": SB,
               "mistral_base": MB, "gemma_it": GI}
SIZE_TESTS = (("dmodel_anisotropy", "d_model", "anisotropy"), ("size_anisotropy", "size_b", "anisotropy"),
              ("size_rdm_std", "size_b", "rdm_std"), ("size_best_layer_pct", "size_b", "best_layer_pct"))


def registry() -> tuple[dict, Callable]:
    """A name -> function table and the decorator that fills it (the claims file names checks and builders)."""
    table: dict = {}

    def named(name: str):
        def register(fn):
            table[name] = fn
            return fn
        return register
    return table, named


# ---- the claims file ------------------------------------------------------------------------------------

CLAIMS_FILE = Path(__file__).resolve().parent / "claims.csv"


@dataclass
class ClaimRow:
    """One row of ``analysis/claims.csv``: a claim, or (an id with ``{...}``) the template of one claim per
    run, model or released file."""

    id: str
    kind: str
    check: str
    args: dict
    expected: str
    tolerance: str
    why: str
    source: str
    statement: str
    finding: str

    @property
    def tol(self) -> float | None:
        """The tolerance as a number (None: exact, strict, printed or a compound rule the check applies), with
        1e-9 of slack so that a value exactly half a unit away (0.1055 vs 0.106) is not lost to binary floats."""
        try:
            return float(self.tolerance) + 1e-9
        except ValueError:
            return None

    def resolve(self, ctx: "Ctx", **fill):
        """The expected value: ``paper:<number id>`` (``[k1,k2]`` keeps those keys of a dict), JSON, or text."""
        spec = self.expected.format(**fill) if fill else self.expected
        if spec.startswith("paper:"):
            nid, _, keys = spec[len("paper:"):].partition("[")
            v = ctx.num(nid)
            return {k: v[k] for k in keys.rstrip("]").split(",")} if keys else v
        try:
            return json.loads(spec)
        except ValueError:
            return spec

    def models(self) -> tuple:
        return tuple(dict.fromkeys(h for v in self.args.values() for h in str(v).split(",") if "/" in h))

    def claim(self, ctx: "Ctx", fill: dict | None = None, **overrides) -> Claim:
        """The claim this row states (ids and texts filled from ``fill``), with ``overrides``."""
        fill = fill or {}
        fields = dict(id=self.id.format(**fill), statement=self.statement.format(**fill), source=self.source,
                      kind=self.kind, expected=self.resolve(ctx, **fill), tolerance=self.tolerance,
                      models=self.models(), known_mismatch=self.finding or None, why=self.why)
        fields.update(overrides)
        return Claim(**fields)


def parse_args(text: str) -> dict:
    """'a=x b=y' -> {'a': 'x', 'b': 'y'} (values hold no spaces: hub ids, keys, comma lists)."""
    out = {}
    for part in text.split():
        k, sep, v = part.partition("=")
        if not sep:
            raise ValueError(f"claims.csv: argument {part!r} is not key=value")
        out[k] = v
    return out


def load_rows(path: Path = CLAIMS_FILE) -> list[ClaimRow]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return [ClaimRow(**{**r, "args": parse_args(r["args"])}) for r in csv.DictReader(f)]
