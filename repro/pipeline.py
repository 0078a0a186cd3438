"""`invoke reproduce`: every stage of the study on the chosen models, in order, with progress.

Each stage is skipped when its finished artifact already exists (same config), so an interrupted
reproduce resumes where it stopped. Stages that cannot run for a model (e.g. equivalence where
TransformerLens does not support the architecture) are recorded as skipped with the reason.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts
from .models import ModelSpec, resolve_many


@dataclass
class StageResult:
    model: str
    stage: str
    status: str  # done | skipped | failed | not-run
    seconds: float
    output: str | None = None
    note: str = ""


@dataclass
class ReproduceOptions:
    dtype: str = "fp32"  # comprehension dtype; "fp16" on GPU machines (the paper's precision)
    gen_precisions: tuple[str, ...] = ("fp32", "int8")  # condition C and D of Section 4.3
    max_new_tokens: int | None = None  # None: the preset's budget (256 for protocol_matched)
    generation: bool = True
    ablation: bool = True
    steering: bool = True
    report: bool = True
    force: bool = False
    extra: dict = field(default_factory=dict)


def _stages(spec: ModelSpec, opt: ReproduceOptions):
    from .extraction import extract

    yield "extract", lambda: extract(spec, dtype=opt.dtype, force=opt.force)

    def equivalence():
        from .backends import tl_supports
        from .equivalence import run_equivalence
        from .loading import load_model

        ok, why = tl_supports(load_model(spec, opt.dtype))
        if not ok:
            return None, f"TransformerLens cannot run this model ({why}): HF backend only"
        return run_equivalence(spec, dtype=opt.dtype, force=opt.force), ""

    yield "equivalence", equivalence
    # @@PIPELINE-STAGES@@


def reproduce(models: str = "embedded", options: ReproduceOptions | None = None) -> list[StageResult]:
    opt = options or ReproduceOptions()
    specs = resolve_many(models)
    results: list[StageResult] = []
    t_all = time.perf_counter()
    for spec in specs:
        for name, fn in _stages(spec, opt):
            print(f"\n=== {spec.alias}: {name} ===", flush=True)
            t0 = time.perf_counter()
            try:
                out = fn()
                out, note = out if isinstance(out, tuple) else (out, "")
                status = "done" if out is not None else "skipped"
            except Exception as exc:  # one failing stage must not lose the others' work
                traceback.print_exc()
                out, status, note = None, "failed", f"{type(exc).__name__}: {exc}"
            results.append(StageResult(spec.alias, name, status, round(time.perf_counter() - t0, 1),
                                       str(out) if out else None, note))
    if opt.report:
        t0 = time.perf_counter()
        try:
            from analysis.report import build_report

            out = build_report(from_reference=False)
            results.append(StageResult("*", "report", "done", round(time.perf_counter() - t0, 1), str(out)))
        except Exception as exc:
            traceback.print_exc()
            results.append(StageResult("*", "report", "failed", round(time.perf_counter() - t0, 1),
                                       note=f"{type(exc).__name__}: {exc}"))
    summary = {"models": models, "options": opt.__dict__, "stages": [r.__dict__ for r in results],
               "total_seconds": round(time.perf_counter() - t_all, 1), "env": artifacts.environment()}
    artifacts.write_json_atomic(artifacts.runs_dir().parent / "reproduce.json", summary)
    return results


def print_summary(results: list[StageResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="invoke reproduce")
    for col in ("model", "stage", "status", "seconds", "output / note"):
        table.add_column(col)
    for r in results:
        table.add_row(r.model, r.stage, r.status, f"{r.seconds:.1f}", r.note or (r.output or ""))
    Console(width=160).print(table)
