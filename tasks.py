"""invoke tasks: a thin layer over library calls (`invoke --list`)."""
from __future__ import annotations

import errno
import functools
import os
import sys
from contextlib import contextmanager

from invoke import task as _invoke_task

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the hub unless the user allows it
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _fail(msg: str, code: int = 2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


@contextmanager
def _user_errors():
    """Known input errors end in one clear line (exit 2), not a stack trace."""
    from repro.artifacts import ArtifactError
    from repro.backends import BackendUnavailableError
    from repro.loading import ModelUnavailableError
    from repro.models import UnknownModelError
    from repro.options import OptionError
    from repro.protocol import ProtocolError
    from repro.stimuli import StimulusError

    try:
        yield
    except (UnknownModelError, ModelUnavailableError, StimulusError, BackendUnavailableError, ArtifactError,
            ProtocolError, OptionError) as exc:
        _fail(str(exc))


_OS_ERRORS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
              errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


def task(*args, **kwargs):
    """invoke's @task, with every task's body guarded: Ctrl-C ends in one line and exit 130 (finished work is
    kept: runs are written atomically and resume), a full disk or a permission problem in one line and exit 2,
    the known input errors in one line and exit 2 (``_user_errors``)."""
    def wrap(fn):
        @functools.wraps(fn)
        def body(c, *a, **k):
            try:
                with _user_errors():
                    return fn(c, *a, **k)
            except KeyboardInterrupt:
                print("\ninterrupted: finished work is kept (runs are written whole or not at all); rerun the same "
                      "command to resume", file=sys.stderr)
                sys.exit(130)
            except OSError as exc:
                if exc.errno not in _OS_ERRORS:
                    raise
                where = f" ({exc.filename})" if exc.filename else ""
                _fail(f"{_OS_ERRORS[exc.errno]}{where}: nothing half-written is kept; free space or fix the "
                      "permissions (or point EMOGEO_ARTIFACTS / EMOGEO_CACHE elsewhere) and rerun to resume")
        return _invoke_task(**kwargs)(body)

    if args and callable(args[0]) and not kwargs:
        return wrap(args[0])
    return wrap


_PROTOCOL_HELP = {"protocol": "paper (default: the procedure behind the published numbers) or corrected (the "
                              "paper's text); docs/PROTOCOLS.md",
                  "quirk": "flip single departures on top: ID=on|off[,ID=on|off] (ids in docs/PROTOCOLS.md)"}


_THREADS_HELP = ("torch CPU threads (default: the cores this process may use, os.sched_getaffinity; also "
                 "$EMOGEO_THREADS); recorded in every artifact")


_MODEL_HELP = {"revision": "hub revision (branch, tag or commit) instead of the registry's pin or main; recorded, and "
                             "the runs go to <slug>@<revision>/",
               "nondeterministic": "on CUDA, leave torch's defaults instead of deterministic algorithms (recorded)"}


def _model(model, revision=None):
    """The --model value, at --revision when given (repro.revisions.with_revision checks it)."""
    if revision in (None, ""):
        return model
    from repro.models import resolve
    from repro.revisions import with_revision

    return with_revision(resolve(model), revision)


def _threads(threads=None, nondeterministic=False):
    """Validate --threads and hand it to repro.loading (which sets torch's threads before the first load); say
    whether CUDA runs may leave torch's nondeterministic defaults (repro.machine.configure_determinism)."""
    import os

    from repro.machine import NONDETERMINISTIC_ENV, THREADS_ENV, thread_count

    if nondeterministic:
        os.environ[NONDETERMINISTIC_ENV] = "1"
    if threads in (None, ""):
        return
    try:
        os.environ[THREADS_ENV] = str(thread_count(threads))
    except ValueError as exc:
        _fail(str(exc), 2)


def _protocol(protocol=None, quirk=None):
    from repro.protocol import resolve_protocol

    return resolve_protocol(protocol, quirk)


# ---- extraction (repro.extraction) ---------------------------------------------------------------
# @@EXTRACTION-TASKS@@
@task(help={"threads": _THREADS_HELP, **_MODEL_HELP, "model": "registry alias, hub id or local directory (default: the embedded SmolLM2)",
            "backend": "auto|tl|hf (auto: a paper model's Table A1 backend, or an error; other models TL where supported, else HF; tl/hf on a paper model record a departure from its method)",
            "dtype": "fp16|bf16|fp32",
            "stimuli": "a comprehension CSV (ours with a header, or the authors' file as downloaded)",
            "stimuli_set": "stimulus set: emogeo (ours, shipped, the default) or authors "
                           "(after `invoke stimuli --import-authors DIR`)",
            "force": "recompute even if a finished run exists", **_PROTOCOL_HELP})
def extract(c, model="smollm2-135m-instruct", backend="auto", dtype="fp32", stimuli=None, stimuli_set=None,
            force=False, protocol=None, quirk=None, threads=None, revision=None, nondeterministic=False):
    """Comprehension extraction: every layer, centred vectors, layer sweep, descriptors."""
    _threads(threads, nondeterministic)
    from repro.extraction import extract as run

    with _user_errors():
        run(_model(model, revision), dtype=dtype, backend=backend, stimuli_path=stimuli, stimuli_set=stimuli_set, force=force,
            protocol=_protocol(protocol, quirk))


@task(help={"import_authors": "a local clone of JihoonJeong/Neural-MRI: read its stimuli (parsing, never running "
                              "its code), check them against the recorded digests, write the set `authors`",
            "name": "name of the imported set (default authors)"})
def stimuli(c, import_authors=None, name="authors"):
    """Stimulus sets: list them, or import the authors' (`--import-authors DIR`)."""
    from repro.stimuli.sets import shipped, sets_dir

    with _user_errors():
        if import_authors:
            from repro.stimuli.authors import import_authors as run

            sset = run(import_authors, name=name)
            lists = sset.manifest()["lists"]
            print(f"imported set {sset.name!r} -> {sset.root}")
            for key, rec in lists.items():
                print(f"  {key:22s} {rec['count']:3d} from {rec['file']} ({rec['locator']}), digest ok")
            print(f"use it with --stimuli-set {sset.name}")
            return
    print(f"{shipped().name:10s} {shipped().root}  (shipped, ours; the default)")
    for d in sorted(p for p in sets_dir().glob("*") if (p / "manifest.json").is_file()):
        print(f"{d.name:10s} {d}")


@task(help={"threads": _THREADS_HELP, **_MODEL_HELP, "model": "alias, hub id or directory of a model TransformerLens supports", "dtype": "fp16|bf16|fp32",
            "force": "recompute both extractions"})
def equivalence(c, model="smollm2-135m-instruct", dtype="fp32", force=False, threads=None, revision=None, nondeterministic=False):
    """Extract through TransformerLens and HF, compare at every layer -> equivalence.json."""
    _threads(threads, nondeterministic)
    import json

    from repro.equivalence import run_equivalence

    with _user_errors():
        out = run_equivalence(_model(model, revision), dtype=dtype, force=force)
    if not json.loads(open(out).read())["passed"]:
        _fail(f"backends disagree (per-vector cosine < 0.9999 somewhere): see {out}", 1)


@task(help={"threads": _THREADS_HELP, "model": "model to benchmark (default: embedded SmolLM2)",
            "repeats": "timed repeats per method",
            "reproduce": "time the main job stage by stage instead (in a scratch artifacts dir; your runs untouched)",
            "models": "with --reproduce: the models to run (default: embedded, the three-family study)"})
def bench(c, model="smollm2-135m-instruct", repeats=1, threads=None, reproduce=False, models="embedded"):
    """Extraction speed/memory (ours vs the original, one pass and as it runs, vs a hook-free forward); or, with
    --reproduce, the main job stage by stage. Each figure is written with the machine it came from."""
    _threads(threads)
    with _user_errors():
        if reproduce:
            from tools.bench_reproduce import run_reproduce_bench

            run_reproduce_bench(models)
        else:
            from tools.bench import run_bench

            run_bench(model, repeats=int(repeats))


# ---- generation, ablation, steering (repro.generation, repro.steering) ----------------------------
# @@GENERATION-TASKS@@
_STIMULI_SET_HELP = "stimulus set: emogeo (ours, shipped, the default) or authors (`invoke stimuli --import-authors`)"


def _gen_guard(fn):
    """Run a generation/ablation/steering call; turn expected failures into one clear line."""
    from repro.backends import BackendUnavailableError
    from repro.loading import ModelUnavailableError
    from repro.models import UnknownModelError
    from repro.steering import SteeringError

    try:
        return fn()
    except (UnknownModelError, ModelUnavailableError, BackendUnavailableError, SteeringError, ValueError) as exc:
        _fail(str(exc))


@task(help={"threads": _THREADS_HELP, **_MODEL_HELP, "model": "alias, hub id or local dir (default: the embedded SmolLM2-135M-Instruct)",
            "preset": "protocol_matched (Section 2.3's eight matched parameters) or loose",
            "precision": "fp16|bf16|fp32|int8|nf4, or auto (fp16 on GPU and fp16-capable CPUs, else fp32)",
            "max_new_tokens": "reduced token budget (default: the preset's 256 / 100); recorded",
            "generations_per_template": "repeats per template (default 10; greedy repeats are identical)",
            "device": "cpu|cuda (default: cuda when available)",
            "stimuli_set": _STIMULI_SET_HELP,
            "force": "recompute even if a finished run with the same config exists",
            **_PROTOCOL_HELP})
def generate(c, model="smollm2-135m-instruct", preset="protocol_matched", precision="auto", max_new_tokens=None,
             generations_per_template=None, device=None, stimuli_set=None, force=False, protocol=None, quirk=None, threads=None, revision=None, nondeterministic=False):
    """Generation-mode emotion vectors -> artifacts/runs/<slug>/generation-<preset>-<precision>[-...]/."""
    _threads(threads, nondeterministic)
    from repro.generation import run_generation

    out = _gen_guard(lambda: run_generation(_model(model, revision), preset, precision, max_new_tokens,
                                            force=force, device=device, stimuli_set=stimuli_set,
                                            generations_per_template=generations_per_template,
                                            protocol=_protocol(protocol, quirk)))
    print(out)


@task(help={"threads": _THREADS_HELP, **_MODEL_HELP, "model": "alias, hub id or local dir",
            "max_new_tokens": "reduced protocol budget (loose budget scaled by 100/256); recorded",
            "generations_per_template": "repeats per template (only the sampled-decoding flip draws them)",
            "precision": "auto (fp16 on GPU and fp16-capable CPUs, else fp32), fp16, fp32, bf16, int8, nf4",
            "device": "cpu|cuda", "stimuli_set": _STIMULI_SET_HELP,
            "force": "recompute even if ablation.json matches the config", **_PROTOCOL_HELP})
def ablate(c, model="smollm2-135m-instruct", max_new_tokens=None, generations_per_template=None, precision="auto",
           device=None, stimuli_set=None, force=False, protocol=None, quirk=None, threads=None, revision=None, nondeterministic=False):
    """Flip each of the eight protocol_matched sub-parameters toward loose -> artifacts/runs/<slug>/ablation.json."""
    _threads(threads, nondeterministic)
    from repro.ablation import run_ablation

    out = _gen_guard(lambda: run_ablation(_model(model, revision), max_new_tokens, precision=precision,
                                          generations_per_template=generations_per_template,
                                          force=force, device=device, stimuli_set=stimuli_set,
                                          protocol=_protocol(protocol, quirk)))
    print(out)


@task(help={"threads": _THREADS_HELP, **_MODEL_HELP, "model": "alias, hub id or local dir (needs its comprehension run: invoke extract)",
            "layers": "all (add at every layer, as the original script) or best (comprehension best layer)",
            "backend": "auto|tl|hf",
            "precision": "auto (fp16 on GPU and fp16-capable CPUs, else fp32), fp16, fp32, ...",
            "max_new_tokens": "greedy continuation length (default: 20 under paper, 40 under corrected)",
            "device": "cpu|cuda",
            "stimuli_set": _STIMULI_SET_HELP + "; its scenarios and its comprehension run",
            "force": "recompute even if the steering run matches the config", **_PROTOCOL_HELP})
def steer(c, model="smollm2-135m-instruct", layers="all", backend="auto", precision="auto", max_new_tokens=None,
          device=None, stimuli_set=None, force=False, protocol=None, quirk=None, threads=None, revision=None, nondeterministic=False):
    """Additive emotion steering at five strengths + regime -> artifacts/runs/<slug>/steering[-...]/steering.json."""
    _threads(threads, nondeterministic)
    from repro.steering import run_steering

    out = _gen_guard(lambda: run_steering(_model(model, revision), layers=layers, backend=backend, precision=precision,
                                          max_new_tokens=max_new_tokens, force=force, device=device, stimuli_set=stimuli_set,
                                          protocol=_protocol(protocol, quirk)))
    print(out)


# ---- analysis, tables, figures, report (analysis.*) ----------------------------------------------
# @@ANALYSIS-TASKS@@
_ANALYSIS_HELP = {"from_reference": "use the paper's reference numbers only (Table A1, released matrices), no runs",
                  "isotropy_d": "All-but-the-Top: principal directions removed (default 2)",
                  "n_perm": "Mantel permutations (default 10000)", "seed": "random seed (default 0)",
                  "stimuli_set": "the stimulus set whose runs represent each model (default: emogeo, ours)",
                  **_PROTOCOL_HELP}


def _analysis_config(isotropy_d=None, n_perm=None, seed=None, stimuli_set=None, protocol=None, quirk=None):
    from analysis.runs import config_for_protocol

    with _user_errors():
        cfg = config_for_protocol(_protocol(protocol, quirk), stimuli_set=stimuli_set or None)
    if isotropy_d is not None:
        cfg.isotropy_d = int(isotropy_d)
    if n_perm is not None:
        cfg.n_perm = int(n_perm)
    if seed is not None:
        cfg.seed = int(seed)
    return cfg


@task(help=_ANALYSIS_HELP)
def analyze(c, from_reference=False, isotropy_d=None, n_perm=None, seed=None, stimuli_set=None, protocol=None,
            quirk=None):
    """RSA, inference, isotropy, decomposition -> artifacts/analysis/results*.json (+ runs/<model>/decomposition.json)."""
    from analysis.tables import compute, write_results

    with _user_errors():
        res = compute(from_reference, config=_analysis_config(isotropy_d, n_perm, seed, stimuli_set, protocol, quirk))
        path = write_results(res)
    s = res.get("summary") or {}
    block = s.get("cross_family_instruct") or {}
    if block.get("n"):
        print(f"mature cross-family instruct block: n={block['n']} range {block['min']:.3f}-{block['max']:.3f} "
              f"mean {block['mean']:.3f}")
    if "rho" in (res.get("mti") or {}):
        m = res["mti"]
        print(f"Qwen-I vs Llama-3.2-I: rho {m['rho']:.3f}, percentile {m['percentile']:.0f} of the mature block")
    for r in (res.get("size") or {}).get("table_a1") or []:
        print(f"Table A1 {r['predictor']} vs {r['outcome']}: rho {r['rho']:.3f} p {r['p']:.2g}")
    for d in res.get("decomposition") or []:
        print(f"decomposition {d.get('label')} ({d.get('source')}): {d['reading']['text']}")
    for cl in res.get("claims") or []:
        print(f"[{cl['section']}] {cl['status']}" + (f" (missing: {', '.join(cl['missing'])})" if cl["missing"] else ""))
    print(f"results: {path}")


@task(help=_ANALYSIS_HELP)
def tables(c, from_reference=False, isotropy_d=None, n_perm=None, seed=None, stimuli_set=None, protocol=None,
           quirk=None):
    """Write every table as CSV + Markdown into artifacts/tables/."""
    from analysis.tables import write_tables

    with _user_errors():
        paths = write_tables(from_reference, config=_analysis_config(isotropy_d, n_perm, seed, stimuli_set, protocol, quirk))
    print(f"{len(paths)} files in {paths[0].parent}")


@task(help=_ANALYSIS_HELP)
def figures(c, from_reference=False, isotropy_d=None, n_perm=None, seed=None, stimuli_set=None, protocol=None,
            quirk=None):
    """Render Figures 1-6 (PNG + PDF, byte-stable) into artifacts/figures/."""
    from analysis.figures import write_figures

    with _user_errors():
        paths = write_figures(from_reference, config=_analysis_config(isotropy_d, n_perm, seed, stimuli_set, protocol, quirk))
    print(f"{len(paths)} files in {paths[0].parent}")


@task(help=_ANALYSIS_HELP)
def report(c, from_reference=False, isotropy_d=None, n_perm=None, seed=None, stimuli_set=None, protocol=None,
           quirk=None):
    """Tables + figures + artifacts/report/index.md and a self-contained index.html."""
    from analysis.report import build_report

    with _user_errors():
        path = build_report(from_reference, config=_analysis_config(isotropy_d, n_perm, seed, stimuli_set, protocol, quirk))
    print(f"report: {path}\n        {path.with_name('index.html')}")


# ---- verify and checksums (analysis.verify) -------------------------------------------------------
# @@VERIFY-TASKS@@
@task(help={"json_only": "print verify.json to stdout instead of the table",
            "stimuli_set": "the stimulus set whose runs the claims read first (default: emogeo, ours)"})
def verify(c, json_only=False, stimuli_set=None):
    """Checksums, then the paper's numbers as claims -> artifacts/verify/; exit 0 ok, 1 claim FAIL, 2 checksum FAIL."""
    from analysis.verify import main

    sys.exit(main(json_only=json_only, stimuli_set=stimuli_set or None))


@task(help={"accept_changes": "re-stamp listed files that changed (yours: a --force rerun, a deleted run); "
                              "without it such a change is refused, exit 2",
            "reference": "also write checksums/reference.sha256 (artifacts/reference: frozen data, on purpose only)"})
def checksums(c, accept_changes=False, reference=False):
    """Write checksums/runs.sha256 when runs exist (and checksums/reference.sha256 with --reference), after
    checking the existing manifests."""
    from analysis.checksums import REPO, ManifestMismatch, write_all

    try:
        written = write_all(REPO, accept_changes=accept_changes, reference=reference)
    except ManifestMismatch as exc:
        _fail(str(exc), 2)
    for name, path in written.items():
        print(f"{name}: {path.relative_to(REPO) if path else 'no runs under artifacts/runs (no manifest)'}")


@task(positional=["action", "src"], help={"action": "list: every run with its model, kind, stimuli, dtype, backend, "
                                                   "date and status; migrate: move folders of the old layout to "
                                                   "the names their runs call for; merge: copy finished runs from "
                                                   "other artifact roots (SRC)", "json": "print JSON instead of a table",
                                         "src": "with merge: other machines' artifact roots, comma-separated"})
def runs(c, action, src=None, json=False):
    """What is under artifacts/runs (`invoke runs list`, `invoke runs migrate`, `invoke runs merge SRC[,SRC]`)."""
    import json as _json

    from analysis.runindex import format_rows, list_runs

    if action == "merge":
        from repro.merge import merge

        if not src:
            _fail("invoke runs merge SRC[,SRC...]: name the artifact roots to merge from (e.g. /mnt/podA/artifacts)")
        done = merge([p for p in src.split(",") if p.strip()])
        for m in done:
            print(f"{m.action:13s} {m.run}  <- {m.source}")
        print(f"{sum(m.action == 'copied' for m in done)} run(s) copied, "
              f"{sum(m.action == 'already here' for m in done)} already here; next: invoke checksums, verify, report")
        return
    if action == "migrate":
        from repro.layout import migrate

        moved = migrate()
        for old, new, what in moved:
            print(f"{old.parent.name}/{old.name} -> {new.name}: {what}")
        print(f"{sum(w == 'moved' for _, _, w in moved)} run(s) moved" if moved else "nothing to migrate")
        return
    if action != "list":
        _fail(f"invoke runs {action!r}: choose list, migrate or merge")
    rows = list_runs()
    print(_json.dumps(rows, indent=2) if json else format_rows(rows))


@task(help={"out": "where to write the JSON (default: artifacts/gpu-check/gpu_check.json)",
            "threads": _THREADS_HELP, "nondeterministic": _MODEL_HELP["nondeterministic"]})
def gpu_check(c, out=None, threads=None, nondeterministic=False):
    """On a CUDA machine: fp16 extraction (TL and HF), equivalence, fp16/int8/nf4 generation at 256 tokens and
    steering on the embedded models, in minutes -> one JSON (docs/ENVIRONMENTS.md). Without CUDA: exit 2."""
    _threads(threads, nondeterministic)
    from tools.gpucheck import NoCudaError, require_cuda, run_gpu_check

    try:
        require_cuda()
    except NoCudaError as exc:
        _fail(str(exc), 2)
    rec = run_gpu_check(out=out)
    if not rec["passed"]:
        _fail(f"gpu-check: {len(rec['failed_checks'])} stage(s) failed ({'; '.join(rec['failed_checks'])[:400]}); "
              f"see {rec['path']}", 1)


# ---- environments (env-check) ---------------------------------------------------------------------
# @@ENV-TASKS@@
@task(help={"skip_docker": "do not build and run Dockerfile.mps-free (needs root, docker.io, debootstrap)",
            "skip_cuda_lock": "do not download cuda.lock's ~3 GB of wheels to check their sha256",
            "skip_relock": "do not regenerate the locks with the pinned uv (scripts/lock.sh --check)",
            "container": "in the built CPU image: reproduce (smoke + reproduce + verify), smoke, or none",
            "rebuild_base": "debootstrap the Debian base image again even if one is cached"})
def env_check(c, skip_docker=False, skip_cuda_lock=False, skip_relock=False, container="reproduce",
              rebuild_base=False):
    """Prove what this machine can about the locks, Dockerfiles and flake; say what it cannot."""
    from tools.envcheck import main

    argv = ["--container", container]
    argv += ["--skip-docker"] * bool(skip_docker) + ["--skip-cuda-lock"] * bool(skip_cuda_lock)
    argv += ["--skip-relock"] * bool(skip_relock) + ["--rebuild-base"] * bool(rebuild_base)
    code = main(argv)
    if code:
        sys.exit(code)


@task(help={"k": "pytest -k expression (default: the fast suite less `cpu_lock` tests, then the embedded "
                 "Gemma-3 TL-vs-HF equivalence)",
            "venv": "where to build the paper-stack venv (default ~/.cache/emogeo/venv-cuda, outside the repo)"})
def paper_stack_check(c, k=None, venv=None):
    """Build requirements/cuda.lock (the GPU image's stack) in its own venv and run the method there on CPU."""
    from tools.paperstack import main

    code = main((["-k", k] if k else []) + (["--venv", venv] if venv else []))
    if code:
        sys.exit(code)


# ---- the main job --------------------------------------------------------------------------------
# @@REPRODUCE-TASK@@
@task(help={"threads": _THREADS_HELP, "models": "embedded (default: the three-family study, offline: SmolLM2-135M-Instruct, Gemma-3-270M, "
                      "Qwen2.5-Coder-0.5B-Instruct), embedded-one (SmolLM2 only), paper (the twelve, GPU + hub), "
                      "or a comma-separated list of aliases/hub ids/dirs",
            "generation_models": "which models also run generation, ablation and steering: auto (default: the "
                                 "paper's Mistral/Llama-3.1 pair if present, else the default SmolLM2), all, none, "
                                 "or aliases",
            "dtype": "comprehension dtype: fp32 (CPU default) or fp16 (the paper's, on GPU)",
            "max_new_tokens": "generation token budget (default: the preset's 256)",
            "stimuli_set": _STIMULI_SET_HELP, "force": "recompute finished stages",
            "accept_changes": "run even though listed run files changed since checksums/runs.sha256 (your own "
                              "edits or deletions); without it such a change stops the run, exit 2",
            "nondeterministic": _MODEL_HELP["nondeterministic"],
            "executor": "local (default: the models one after another here) or ray (one Ray task per model; "
                        "bash scripts/setup.sh --with ray; docs/SCALING.md)",
            "address": "with --executor ray: the cluster to join (auto: the local `ray start` one; default: start "
                       "a small local cluster)",
            "gpus_per_model": "with --executor ray: GPUs per model's task (default 1 on CUDA; 0.5 shares a GPU)",
            "artifacts": "the artifact root to write (default ./artifacts; e.g. a shared volume every worker sees)",
            **_PROTOCOL_HELP})
def reproduce(c, models="embedded", dtype=None, max_new_tokens=None, stimuli_set=None, force=False, protocol=None,
              quirk=None, accept_changes=False, generation_models="auto", threads=None, nondeterministic=False,
              executor="local", address=None, gpus_per_model=None, artifacts=None):
    """Run every stage of the study on the chosen models, then write the report."""
    _threads(threads, nondeterministic)
    if artifacts:
        os.environ["EMOGEO_ARTIFACTS"] = os.path.abspath(artifacts)
    from emogeo.pipeline import default_options, print_summary, reproduce as run

    opt = default_options(dtype, max_new_tokens, force=force, stimuli_set=stimuli_set, accept_changes=accept_changes,
                          generation_models=generation_models, executor=executor, address=address or None,
                          gpus_per_model=gpus_per_model)
    from analysis.checksums import ManifestMismatch

    with _user_errors():
        opt.protocol = _protocol(protocol, quirk)
        try:
            results = run(models, opt)
        except ManifestMismatch as exc:
            _fail(str(exc), 2)
    print_summary(results)
    from repro.artifacts import runs_dir

    print(f"\nruns: {runs_dir()}\nreport: {runs_dir().parent / 'report' / 'index.html'}")
    verify_codes = [r.exit_code for r in results if r.stage == "verify" and r.exit_code]
    if verify_codes:
        _fail(f"verify failed (exit {verify_codes[0]}): see artifacts/verify/verify.md; the runs are kept",
              verify_codes[0])
    if any(r.status == "failed" for r in results):
        _fail("some stages failed (see above); finished stages are kept and a rerun resumes", 1)


@task(help={"k": "pytest -k expression", "fast": "skip tests marked slow"})
def test(c, k=None, fast=False):
    """Run the whole test suite (pytest)."""
    import shlex

    args = ["-q"]
    if k:
        args += ["-k", k]
    if fast:
        args += ["-m", "not slow"]
    c.run(f"{shlex.quote(sys.executable)} -m pytest " + " ".join(map(shlex.quote, args)), pty=False)
