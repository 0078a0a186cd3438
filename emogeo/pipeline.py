"""`invoke reproduce`: every stage of the study on the chosen models, in order, with progress.

Each stage is skipped when its finished artifact already exists (same config), so an interrupted
reproduce resumes where it stopped. Stages that cannot run for a model (e.g. equivalence where
TransformerLens does not support the architecture) are recorded as skipped with the reason.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field

from repro import artifacts
from repro.loading import LOADS
from repro.models import ModelSpec, resolve_many
from repro.protocol import Protocol


@dataclass
class StageResult:
    model: str
    stage: str
    status: str  # done | reused (finished earlier, not recomputed) | skipped | failed | not-run
    seconds: float
    output: str | None = None
    note: str = ""
    exit_code: int | None = None  # the closing verify stage's exit code when it failed
    loads: list = field(default_factory=list)  # weights read in this stage (repro.loading.LOADS entries)
    peak_rss_mb: float | None = None  # the process's peak resident memory so far (it never goes down)
    peak_gpu_mb: float | None = None  # peak CUDA memory allocated during this stage
    cpu_seconds: float | None = None  # CPU time (user + system, all threads) this process spent in the stage
    worker: dict | None = None  # --executor ray: where the stage ran (host, node, pid, CUDA_VISIBLE_DEVICES)


@dataclass
class ReproduceOptions:
    dtype: str = "fp32"  # comprehension dtype; "fp16" on GPU machines (the paper's precision)
    # Conditions C and D of Section 4.3. "auto": fp16 on a GPU (the paper) or on a CPU with fast fp16
    # matmuls, else fp32 with the substitution recorded in the run's notes.
    gen_precisions: tuple[str, ...] = ("auto", "int8")
    max_new_tokens: int | None = None  # None: the preset's budget (256 for protocol_matched)
    # None: the preset's 10 per template. Greedy repeats are deduplicated, so this only costs time in the
    # sampled ablation flip; the CPU budget uses 2 (repro.generation.EMBEDDED_BUDGET).
    generations_per_template: int | None = None
    generation: bool = True
    ablation: bool = True
    steering: bool = True
    report: bool = True
    force: bool = False
    stimuli_set: str | None = None  # None: our shipped set; "authors" after `invoke stimuli --import-authors`
    protocol: Protocol | None = None  # None: `paper` (repro.protocol; docs/PROTOCOLS.md)
    # Listed run files that changed since checksums/runs.sha256 was written are refused before any stage
    # (analysis.checksums.check_unchanged) unless the user says the changes are theirs.
    accept_changes: bool = False
    # Which models run generation, ablation and steering: "auto" (the paper's choice: generation on its two 7B+
    # instruct models when they are in the run, else on the default embedded model, else on the first model;
    # see stage_models), "all", "none", or comma-separated aliases/hub ids. The other models get comprehension
    # extraction and equivalence only.
    generation_models: str = "auto"
    # Where the models' stages run (emogeo.executors): "local" (here, one after another) or "ray" (one task per
    # model on the Ray cluster at `address`, or a local one; `gpus_per_model` GPUs each, fractional allowed).
    executor: str = "local"
    address: str | None = None
    gpus_per_model: float | None = None
    extra: dict = field(default_factory=dict)


def default_options(dtype: str | None = None, max_new_tokens: int | None = None, **kw) -> ReproduceOptions:
    """The main job's options on this machine: on a GPU the paper's precision (fp16) and protocol budget; on a CPU
    fp32 and the reduced, recorded generation budget (repro.generation.EMBEDDED_BUDGET: 32 new tokens, 2
    generations per template) that keeps the embedded study within minutes."""
    from repro.generation import EMBEDDED_BUDGET
    from repro.loading import default_device

    from repro import options

    gpu = default_device().startswith("cuda")
    budget = {} if gpu else EMBEDDED_BUDGET
    n = options.count(max_new_tokens, "max-new-tokens")  # 0, -5 or "abc": one line, never the default instead
    return ReproduceOptions(dtype=dtype or ("fp16" if gpu else "fp32"),
                            max_new_tokens=n if n is not None else budget.get("max_new_tokens"),
                            generations_per_template=budget.get("generations_per_template"), **kw)


def stage_models(specs: list[ModelSpec], choice: str = "auto") -> set[str]:
    """Aliases of the models in ``specs`` that run the generation stages (generation, ablation, steering).

    The paper ran generation on two models only (Section 4.3: Mistral 7B and Llama 3.1 8B Instruct); the embedded
    study runs it on its default model, SmolLM2-135M-Instruct, which has the chat template the protocol needs."""
    from repro.models import DEFAULT_MODEL, MODEL_SETS, UnknownModelError

    present = [s.alias for s in specs]
    if choice == "all":
        return set(present)
    if choice == "none":
        return set()
    if choice != "auto":
        wanted = {s.alias for s in resolve_many(choice)}
        missing = wanted - set(present)
        if missing:
            raise UnknownModelError(f"--generation-models names {', '.join(sorted(missing))}, which --models does not run")
        return wanted
    pair = [a for a in MODEL_SETS["decomposition"] if a in present]
    if pair:
        return set(pair)
    return {DEFAULT_MODEL} if DEFAULT_MODEL in present else set(present[:1])


def _stages(spec: ModelSpec, opt: ReproduceOptions, generates: bool = True):
    from repro.extraction import extract

    ss = opt.stimuli_set
    yield "extract", lambda: extract(spec, dtype=opt.dtype, force=opt.force, stimuli_set=ss, protocol=opt.protocol)

    def equivalence():
        from repro.backends import BackendUnavailableError, tl_supports
        from repro.equivalence import run_equivalence
        from repro.loading import load_model

        if spec.paper_backend == "HF":
            # Table A1 extracts it with HF hooks because TL does not support it: nothing to compare.
            return None, "Table A1 backend is HF (TransformerLens does not support this architecture)"
        ok, why = tl_supports(load_model(spec, opt.dtype))
        if not ok:
            if spec.is_paper_model:
                # A TL row of Table A1 whose equivalence cannot run is a broken environment, not a skip.
                raise BackendUnavailableError(f"TransformerLens cannot run {spec.alias} ({why}): Section 4.2's "
                                              "equivalence check is impossible here")
            return None, f"TransformerLens cannot run this model ({why}): HF backend only"
        return run_equivalence(spec, dtype=opt.dtype, force=opt.force), ""

    yield "equivalence", equivalence
    if not generates:
        return
    if opt.generation or opt.ablation:
        from repro.ablation import loose_tokens, run_ablation
        from repro.generation import PRESETS, run_generation

        budget = opt.max_new_tokens or PRESETS["protocol_matched"].max_new_tokens
        gpt = opt.generations_per_template
    if opt.generation:
        # Section 4.3: B = loose, C = protocol-matched at full precision, D = protocol-matched INT8.
        # A reduced protocol budget scales the loose budget by the same ratio (100/256).
        yield "generation-loose", lambda: run_generation(spec, "loose", opt.gen_precisions[0],
                                                         max_new_tokens=loose_tokens(budget), force=opt.force,
                                                         stimuli_set=ss, protocol=opt.protocol)
        for precision in opt.gen_precisions:
            yield f"generation-protocol_matched-{precision}", (
                lambda precision=precision: run_generation(spec, "protocol_matched", precision, max_new_tokens=budget,
                                                           generations_per_template=gpt, force=opt.force,
                                                           stimuli_set=ss))
    if opt.ablation:
        # Same precision and budget as C, so the unflipped arm reuses C's generations.
        yield "ablation", lambda: run_ablation(spec, max_new_tokens=budget, precision=opt.gen_precisions[0],
                                               generations_per_template=gpt, force=opt.force, stimuli_set=ss,
                                               protocol=opt.protocol)
    if opt.steering:
        from repro.steering import run_steering

        yield "steering", lambda: run_steering(spec, force=opt.force, stimuli_set=ss, protocol=opt.protocol)


def _closing_stages(stimuli_set: str | None = None, protocol: Protocol | None = None):
    """Checksums of the runs, the claims check, then the report (which embeds the verify section); both
    pick each model's runs on ``stimuli_set`` first (default: the shipped set)."""
    from analysis.runs import config_for_protocol

    cfg = config_for_protocol(protocol, stimuli_set=stimuli_set)

    def checksums():
        from analysis.checksums import write_all

        # The runs were checked against their manifest before the first stage; what changed since is this
        # run's own work. The reference manifest is never re-stamped here.
        return write_all(accept_changes=True), ""

    def verify():
        from analysis.verify import run_verify

        res = run_verify(write=True, stimuli_set=stimuli_set)
        if res.exit_code:
            raise VerifyFailed(res.exit_code, f"verify exit code {res.exit_code}: {res.summary} "
                                              "(artifacts/verify/verify.md says which claims)")
        return "artifacts/verify/verify.json", "verify exit code 0 (invoke verify re-checks)"

    def report():
        from analysis.report import build_report

        return build_report(from_reference=False, config=cfg), ""

    from analysis.checksums import artifacts_elsewhere

    elsewhere = artifacts_elsewhere()
    if elsewhere is not None:
        # The manifests and verify cover the repository's artifacts/ only: skipped, and said, not run on the
        # wrong directory.
        why = (f"skipped: EMOGEO_ARTIFACTS={elsewhere} is outside the repository's artifacts/, which the manifests "
               "and verify cover")
        return [("analysis", report), ("checksums", lambda: (None, why)), ("verify", lambda: (None, why))]
    # The first report pass writes runs/<slug>/decomposition.json; the checksums then cover it, and the
    # second pass embeds the verify section (it leaves decomposition.json alone when the numbers agree).
    return [("analysis", report), ("checksums", checksums), ("verify", verify), ("report", report)]


def options_record(opt: ReproduceOptions) -> dict:
    """The options as reproduce.json records them (the protocol by name and switches)."""
    from repro.protocol import resolve_protocol

    return {**opt.__dict__, "protocol": (opt.protocol or resolve_protocol()).to_dict()}


class VerifyFailed(RuntimeError):
    """The closing verify stage did not exit 0 (``exit_code``: 1 a claim failed, 2 integrity)."""

    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code


def check_options(opt: ReproduceOptions) -> None:
    """Raise ``repro.options.OptionError`` (or the stimuli/protocol error) for any option no stage would accept,
    and ``ArtifactError`` when the artifacts folder is not writable."""
    from repro import options
    from repro.stimuli.sets import resolve_set

    options.choice(opt.dtype, options.DTYPES, "dtype")
    for p in opt.gen_precisions:
        options.choice(p, options.PRECISIONS, "precision")
    options.count(opt.max_new_tokens, "max-new-tokens")
    options.count(opt.generations_per_template, "generations-per-template")
    options.choice(opt.executor, ("local", "ray"), "executor")
    if opt.gpus_per_model is not None:
        try:
            if float(opt.gpus_per_model) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise options.OptionError(f"--gpus-per-model {opt.gpus_per_model!r}: give a positive number (0.5 shares "
                                      "a GPU between two models)") from None
    if opt.executor == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise options.OptionError("--executor ray needs Ray, an optional part: bash scripts/setup.sh --with ray "
                                      "(requirements/ray.lock)")
    resolve_set(opt.stimuli_set)
    artifacts.check_writable()


def reproduce(models: str = "embedded", options: ReproduceOptions | None = None) -> list[StageResult]:
    """Every stage for every model, then the closing stages. Raises ``analysis.checksums.ManifestMismatch``
    before any stage when listed runs or references changed (unless ``accept_changes``)."""
    from analysis.checksums import check_unchanged

    opt = options or ReproduceOptions()
    specs = resolve_many(models)
    generating = stage_models(specs, opt.generation_models)
    check_options(opt)  # every option before the first stage: a bad one fails now, not after minutes of work
    check_unchanged(names=("reference",) if opt.accept_changes else ("reference", "runs"))
    from .executors import run_local, run_ray

    t_all = time.perf_counter()
    if opt.executor == "ray":
        results = run_ray(specs, opt, generating, _stages, _run_stage, StageResult, address=opt.address,
                          gpus_per_model=opt.gpus_per_model)
    else:
        results = run_local(specs, opt, generating, _stages, _run_stage)
    if opt.report:  # once, here, after every model's stages have ended (on every executor)
        for name, fn in _closing_stages(opt.stimuli_set, opt.protocol):
            print(f"\n=== {name} ===", flush=True)
            t0 = time.perf_counter()
            try:
                out, note = fn()
                results.append(StageResult("*", name, "done" if out is not None else "skipped",
                                           round(time.perf_counter() - t0, 1), str(out) if out else None, note))
            except VerifyFailed as exc:  # not a crash: the claims say why
                results.append(StageResult("*", name, "failed", round(time.perf_counter() - t0, 1),
                                           note=str(exc), exit_code=exc.exit_code))
            except Exception as exc:
                traceback.print_exc()
                results.append(StageResult("*", name, "failed", round(time.perf_counter() - t0, 1),
                                           note=f"{type(exc).__name__}: {exc}"))
    summary = {"models": models, "options": options_record(opt), "generation_models": sorted(generating),
               "stages": [r.__dict__ for r in results], "loads": load_summary(results),
               "total_seconds": round(time.perf_counter() - t_all, 1), "env": artifacts.environment()}
    artifacts.write_json_atomic(artifacts.runs_dir().parent / "reproduce.json", summary)
    return results


def _run_stage(model: str, name: str, fn) -> StageResult:
    print(f"\n=== {model}: {name} ===", flush=True)
    n_loads = len(LOADS)
    _reset_gpu_peak()
    cpu0 = _cpu_seconds()
    t0, started = time.perf_counter(), time.time()
    try:
        out = fn()
        out, note = out if isinstance(out, tuple) else (out, "")
        status = "skipped" if out is None else "reused" if _written_before(out, started) else "done"
        if status == "reused" and not note:
            note = "finished earlier with the same config; not recomputed (--force redoes it)"
    except Exception as exc:  # one failing stage must not lose the others' work
        traceback.print_exc()
        out, status, note = None, "failed", f"{type(exc).__name__}: {exc}"
    return StageResult(model, name, status, round(time.perf_counter() - t0, 1), str(out) if out else None, note,
                       loads=list(LOADS[n_loads:]), cpu_seconds=round(_cpu_seconds() - cpu0, 1), **_memory())


def _written_before(out, started: float) -> bool:
    """Was the stage's output already finished before the stage began (a finished run found and reused)?"""
    from pathlib import Path

    p = Path(out)
    marker = p / "metadata.json" if p.is_dir() else p
    try:
        return marker.stat().st_mtime < started - 0.5
    except OSError:
        return False


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _reset_gpu_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _memory() -> dict:
    import resource

    import torch

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"peak_rss_mb": round(rss_kb / 1024, 1), "peak_gpu_mb": round(gpu, 1) if gpu is not None else None}


def load_summary(results: list[StageResult]) -> list[dict]:
    """One row per (model, precision, device) with how many times its weights were read and in which stages."""
    rows: dict[tuple, dict] = {}
    for r in results:
        for ld in r.loads:
            row = rows.setdefault((ld["model"], ld["precision"], ld["device"]),
                                  {**{k: ld[k] for k in ("model", "precision", "device")}, "loads": 0,
                                   "seconds": 0.0, "stages": []})
            row["loads"] += 1
            row["seconds"] = round(row["seconds"] + ld["seconds"], 2)
            row["stages"].append(r.stage)
    return list(rows.values())


def print_summary(results: list[StageResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="invoke reproduce")
    for col in ("model", "stage", "status", "seconds", "output / note"):
        table.add_column(col)
    for r in results:
        table.add_row(r.model, r.stage, r.status, f"{r.seconds:.1f}", r.note or (r.output or ""))
    Console(width=160).print(table)
