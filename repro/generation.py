"""Generation-mode emotion vectors: the protocol-matched fork of paper Sections 2.3 and 4.3.

The model is asked to write stories about each of the 20 non-neutral emotions (and, for the
``neutral_unit`` formula, ten neutral stories); the residual stream is read at one position of
the prompt + generated story, averaged per emotion and turned into one vector per emotion.

What the eight sub-parameters of Section 4.3.2 are here (``GenerationConfig`` fields):

====  =======================  ==========================  ===================================
 #    sub-parameter            protocol_matched             loose
====  =======================  ==========================  ===================================
 1    n_templates              5                            1 (the first template)
 2    generations_per_template 10                           1
 3    decoding                 greedy                       sampled: temperature 0.7, top_p 0.9,
                                                            no top_k (``--protocol paper``; top_k 50
                                                            under ``corrected``), fixed seed
 4    max_new_tokens           256                          100
 5    position                 mid                          last
 6    layer                    middle (n_layers // 2)       best (comprehension best layer)
 7    chat_template            on                           off
 8    vector_formula           neutral_unit                 global_mean
====  =======================  ==========================  ===================================

Conventions taken from the authors' fork (``paper5_extract_protocol_matched.py``), re-implemented:

* layer N is the output of decoder block N (``hidden_states[N + 1]``), so "middle" = block n_layers // 2;
* the chat-rendered text is tokenised with the tokenizer's default special tokens (as the fork did;
  for Llama-3 tokenizers this gives a doubled BOS, exactly as in the fork);
* gen_len counts every generated token including a final EOS; "mid" reads position
  ``prompt_len + gen_len // 2`` when gen_len > 10 and falls back to the last prompt token otherwise
  (the fork's rule); "last" reads the last token of prompt + generation;
* the model's own generation_config is kept (repetition penalty etc.), only max_new_tokens and
  do_sample are overridden, as ``model.generate(..., do_sample=False)`` did in the fork.

Known ambiguity: the paper says "five story templates x ten generations per emotion (50 samples)"
while the fork's CONFIG has ``n_stories_per_emotion = 10`` cycling the 5 templates (2 each). Under
greedy decoding both give each template equal weight, so the vectors are identical; we follow the
paper text (5 x 10) and record it.

Speed without changing results: greedy decoding of one prompt is deterministic, so each distinct
prompt is generated once and weighted by its number of repeats (``Item.weight``); prompts are
generated in left-padded batches with the KV cache; the extraction activations are read in one
batched forward pass over prompt + generation, at all layers and both positions at once (the
forward costs the same; it lets the ablation flip layer/position/formula for free).
Sampled decoding draws every sample from its own ``torch.Generator`` seeded from
(seed, emotion, template, sample index), so a sample does not depend on which other samples share
its batch; the only remaining batch dependence is floating-point noise from padding.
"""
from __future__ import annotations

import json
import math
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import torch

from . import artifacts, options
from .models import ModelSpec, resolve
from .protocol import PROTOCOL_NAMES, Protocol, resolve_protocol, run_applied
from .protocol import suffix as protocol_suffix
from .runlock import run_lock
from .stimuli import GENERATION_EMOTIONS
from .stimuli.sets import StimulusSet, resolve_set, run_stimuli_set, shipped

# The plan (config, presets, prompts) and the decoding live in their own modules; their names are re-exported
# here, the module callers import generation from.
from .decoding import (Caches, PerRowSampler, _gen_key, _pad_left, collect, eos_ids, generate_batch, positions_for,
                       read_positions)
from .generation_plan import (EMBEDDED_BUDGET, LOOSE, LOOSE_CORRECTED_TOP_K, LOOSE_STAGE, MID_MIN_GEN_LEN, NEUTRAL,
                              POSITIONS, PRESETS, PROTOCOL_MATCHED, SCHEMA, SUBPARAMETERS, GenerationConfig, Item,
                              chat_available, differing_subparameters, naive_count, plan, preset, preset_applied,
                              recorded_applied, render, sample_seed)

__all__ = ["Caches", "PerRowSampler", "_pad_left", "generate_batch", "positions_for", "read_positions", "EMBEDDED_BUDGET", "GENERATION_EMOTIONS", "GenerationConfig", "Item", "LOOSE",
           "LOOSE_CORRECTED_TOP_K", "LOOSE_STAGE", "MID_MIN_GEN_LEN", "NEUTRAL", "POSITIONS", "PRESETS",
           "PROTOCOL_MATCHED", "SCHEMA", "SUBPARAMETERS", "chat_available", "collect", "cosine_matrix",
           "cpu_has_native_fp16", "default_batch_size", "differing_subparameters", "emotion_vectors", "eos_ids",
           "finalize", "find_comprehension_run", "generation_kind", "mean_offdiag", "naive_count", "plan",
           "preset", "preset_applied", "protocol_record", "quiet_bnb", "rdm_spearman", "recorded_applied",
           "render", "resolve_layer", "resolve_precision", "run_config", "run_generation", "sample_seed",
           "seed_caches_from_run"]


# ------------------------------------------------------------------------------------------ vectors
def emotion_vectors(emotion_means: torch.Tensor, neutral_mean: torch.Tensor | None, formula: str
                    ) -> torch.Tensor:
    """emotion_means [..., 20, d] (+ neutral_mean [..., d]) -> vectors [..., 20, d]."""
    if formula == "neutral_unit":
        if neutral_mean is None:
            raise ValueError("neutral_unit needs the neutral mean")
        v = emotion_means - neutral_mean.unsqueeze(-2)
        n = v.norm(dim=-1, keepdim=True)
        return torch.where(n > 0, v / n.clamp_min(1e-30), v)
    if formula == "global_mean":
        return emotion_means - emotion_means.mean(dim=-2, keepdim=True)
    raise ValueError(f"vector_formula {formula!r}")


def cosine_matrix(v: torch.Tensor) -> torch.Tensor:
    u = v.double() / v.double().norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return (u @ u.transpose(-1, -2)).float()


def mean_offdiag(m: torch.Tensor) -> float:
    k = m.shape[-1]
    mask = ~torch.eye(k, dtype=torch.bool)
    return float(m[mask].mean())


def rdm_spearman(a, b) -> float:
    """Spearman rho between the upper triangles (k=1) of two RDMs."""
    import numpy as np
    from scipy.stats import spearmanr

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    iu = np.triu_indices(a.shape[0], k=1)
    rho = spearmanr(a[iu], b[iu]).statistic
    return float(rho)


def find_comprehension_run(slug: str, stimuli_set: str | None = None, protocol: Protocol | None = None
                           ) -> Path | None:
    """The model's comprehension run, by explicit rules in this order: on the given stimulus set (default:
    ours); a run of the given protocol (default ``paper``; repro.protocol.is_run_of); on the model's
    Table A1 backend (the run the authors' best layer came from; TL for other models, as the analysis
    picks condition A); dtype fp16, fp32, bf16, then any (stable across precisions); then by name."""
    from .protocol import is_run_of

    root = artifacts.runs_dir() / slug
    runs = sorted(p.parent for p in root.glob("comprehension-*/metadata.json"))
    if not runs:
        return None
    want = stimuli_set or shipped().name
    wanted_protocol = protocol or resolve_protocol()
    rank = {"fp16": 0, "fp32": 1, "bf16": 2}

    def key(p: Path):
        try:
            meta = json.loads((p / "metadata.json").read_text())
        except (OSError, json.JSONDecodeError):
            return (True, True, True, 9, p.name)
        # Table A1's backend for a paper model; otherwise TL before HF, as the analysis picks condition A
        table_backend = ((meta.get("model") or {}).get("paper_backend") or "tl").lower()
        return (run_stimuli_set(meta) != want, not is_run_of(meta, wanted_protocol),
                meta.get("backend") != table_backend, rank.get(str(meta.get("dtype")), 9), p.name)

    return sorted(runs, key=key)[0]


def resolve_layer(rule: str, n_layers: int, slug: str, sweep: list[float] | None = None,
                  stimuli_set: str | None = None, protocol: Protocol | None = None) -> tuple[int, str]:
    """(layer index, how it was chosen). ``best``: the comprehension best layer when a comprehension run
    exists; otherwise the generation vectors' own layer sweep (min mean pairwise cosine, the rule of
    Section 2.3) -- recorded in the note, never silent."""
    if rule == "middle":
        return n_layers // 2, "middle layer (n_layers // 2)"
    run = find_comprehension_run(slug, stimuli_set, protocol)
    if run is not None:
        meta = json.loads((run / "metadata.json").read_text())
        if meta.get("best_layer") is not None and int(meta.get("n_layers", n_layers)) == n_layers:
            return int(meta["best_layer"]), f"comprehension best layer from {run}"
    if sweep is not None:
        finite = [(v, i) for i, v in enumerate(sweep) if v is not None and math.isfinite(v)]
        if finite:
            return min(finite)[1], ("no comprehension run found: best layer of the generation vectors' own "
                                    "layer sweep (min mean pairwise cosine); run `invoke extract` first to "
                                    "use the comprehension best layer")
    return n_layers // 2, "no comprehension run and no usable sweep: fell back to the middle layer"


def finalize(cfg: GenerationConfig, unit_means: dict[str, dict], n_layers: int, slug: str,
             emotions=GENERATION_EMOTIONS, stimuli_set: str | None = None, protocol: Protocol | None = None
             ) -> dict:
    """Per-unit means -> vectors at the configured position and layer, sweep, RDM."""
    em = torch.stack([unit_means[e][cfg.position] for e in emotions], dim=1)  # [L, 20, d]
    nm = unit_means[NEUTRAL][cfg.position] if cfg.uses_neutral else None      # [L, d]
    all_v = emotion_vectors(em, nm, cfg.vector_formula)                        # [L, 20, d]
    sweep = []
    for li in range(all_v.shape[0]):
        v = mean_offdiag(cosine_matrix(all_v[li]))
        sweep.append(v if math.isfinite(v) else None)
    layer, layer_note = resolve_layer(cfg.layer, n_layers, slug, sweep, stimuli_set, protocol)
    vec = all_v[layer]
    rdm = cosine_matrix(vec)
    return {"layer": layer, "layer_note": layer_note, "vectors": vec, "emotion_means": em, "neutral_mean": nm,
            "rdm": rdm, "layer_sweep": sweep, "mean_pairwise_cosine": mean_offdiag(rdm)}


# ------------------------------------------------------------------------------------------- runner
def default_batch_size(device: str) -> int:
    return 64 if str(device).startswith("cuda") else 32


def cpu_has_native_fp16() -> bool:
    """x86 CPUs with AVX512-FP16 / AMX-FP16 run fp16 matmuls about as fast as fp32; others are several
    times slower (torch emulates fp16 there)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_fp16" in flags or "amx_fp16" in flags


def resolve_precision(precision: str, device: str) -> tuple[str, str | None]:
    """'auto' -> fp16 (the paper's precision) on CUDA and on CPUs with native fp16; fp32 on other CPUs,
    with the substitution returned as a note to record."""
    if precision != "auto":
        return precision, None
    if str(device).startswith("cuda") or cpu_has_native_fp16():
        return "fp16", None
    return "fp32", ("precision auto on a CPU without native fp16 (no AVX512-FP16/AMX-FP16): fp32 stands in for "
                    "the paper's fp16, which torch would emulate several times slower")


def run_config(spec: ModelSpec, preset_name: str, cfg: GenerationConfig, precision: str, device: str,
               sset: StimulusSet | None = None) -> dict:
    return {"schema": SCHEMA, "model": spec.hub_id, "preset": preset_name, "generation": cfg.to_dict(),
            "precision": precision, "device_type": str(device).split(":")[0],
            "stimuli_sha256": (sset or shipped()).generation_digest(),
            **({"revision": spec.revision} if spec.revision else {})}  # other weights (none: left out, as before)


# Short, readable tags for the departures from a preset that users make on purpose (a reduced budget);
# any other departure is tagged by a hash of the differing fields.
_KIND_TAGS = {"max_new_tokens": "tok", "generations_per_template": "rep"}


def generation_kind(preset_name: str, precision: str, cfg: GenerationConfig, stimuli_sha256: str | None = None,
                    applied: dict[str, bool] | None = None) -> str:
    """Run folder name: ``generation-<preset>-<precision>``, then whatever departs from the preset under
    the protocol switches the run ``applied`` (``-tok<N>``, ``-rep<N>``, ``-cfg<hash>``), ``-stim<digest8>``
    for stimuli other than the shipped set, and the protocol suffix of a loose run (none for ``paper``,
    ``-corrected``; repro.protocol.suffix). ``applied`` None: a loose run recorded before protocols,
    every switch off. Two runs whose numbers can differ never share a folder."""
    parts = [f"generation-{preset_name}-{precision}"]
    base = None
    if preset_name in PRESETS:
        applied = recorded_applied(preset_name, applied)
        base = preset(preset_name, applied=applied)
    if base is not None:
        mine, ref = cfg.to_dict(), base.to_dict()
        diff = {k: v for k, v in mine.items() if v != ref.get(k)}
        parts += [f"{tag}{diff.pop(k)}" for k, tag in _KIND_TAGS.items() if k in diff]
        if diff:
            parts.append("cfg" + artifacts.config_hash(diff)[:8])
    if stimuli_sha256 and stimuli_sha256 != shipped().generation_digest():
        parts.append(f"stim{stimuli_sha256[:8]}")
    return "-".join(parts) + (protocol_suffix(LOOSE_STAGE, applied) if preset_name == "loose" else "")


class _DropBnbCast:
    def filter(self, record) -> bool:
        return not str(record.msg).startswith("MatMul8bitLt: inputs will be cast")


@contextmanager
def quiet_bnb():
    """bitsandbytes logs a warning on every int8 matmul that fp32 inputs are cast to fp16 (~28k lines per
    embedded run); the fact is recorded once in the run's notes instead."""
    import logging

    log = logging.getLogger("bitsandbytes.autograd._functions")
    f = _DropBnbCast()
    log.addFilter(f)
    try:
        yield
    finally:
        log.removeFilter(f)


BNB_INT8_NOTE = ("bitsandbytes LLM.int8: activations entering the int8 matmuls are cast to fp16 and quantised "
                 "row-wise (outlier columns kept in fp16); non-linear parts run in the load dtype")


def _after_unit(unit: str) -> None:
    """Called after each unit's partial result is saved (tests monkeypatch it to simulate a crash)."""


def _printer(progress: bool):
    def log(msg):
        if progress:
            print(f"[generation] {msg}", file=sys.stderr, flush=True)
    return log


def run_generation(spec_or_name, preset_name: str = "protocol_matched", precision: str = "fp16",
                   max_new_tokens: int | None = None, force: bool = False, progress: bool = True,
                   device: str | None = None, batch_size: int | None = None,
                   generations_per_template: int | None = None, config: GenerationConfig | None = None,
                   stimuli_set: str | None = None, protocol: Protocol | None = None) -> Path:
    """Run (or reuse) ``artifacts/runs/<slug>/<generation_kind(...)>/``; returns its path. ``protocol``
    (default ``paper``) sets the loose preset's decoding (switch ``loose_no_top_k_unseeded``)."""
    with quiet_bnb(), ExitStack() as locks:  # the run's lock (repro.runlock) is released when this returns
        return _run_generation(spec_or_name, preset_name, precision, max_new_tokens, force, progress, device,
                               batch_size, generations_per_template, config, stimuli_set,
                               protocol or resolve_protocol(), locks)


def protocol_record(preset_name: str, protocol: Protocol, applied: dict[str, bool]) -> dict:
    """What a generation run writes down about its protocol (a protocol_matched run: no switch applies)."""
    if preset_name == "loose":
        return protocol.record(LOOSE_STAGE, applied)
    return {**protocol.to_dict(), "applied": {}, "matches": list(PROTOCOL_NAMES),
            "note": "no protocol switch changes a protocol_matched run"}


def _run_generation(spec_or_name, preset_name, precision, max_new_tokens, force, progress, device, batch_size,
                    generations_per_template, config, stimuli_set, protocol, locks: ExitStack) -> Path:
    from .backends import HFBackend
    from .loading import default_device, load_model

    preset_name = options.choice(preset_name, options.PRESETS, "preset")  # every option before any compute
    precision = options.choice(precision, options.PRECISIONS, "precision")
    max_new_tokens = options.count(max_new_tokens, "max-new-tokens")
    generations_per_template = options.count(generations_per_template, "generations-per-template")
    batch_size = options.count(batch_size, "batch-size")
    spec = spec_or_name if isinstance(spec_or_name, ModelSpec) else resolve(spec_or_name)
    device = options.device(device) or default_device()
    precision, prec_note = resolve_precision(precision, device)
    cfg = config or preset(preset_name, max_new_tokens, generations_per_template, protocol=protocol)
    applied = preset_applied(preset_name, protocol)
    sset = resolve_set(stimuli_set)
    rcfg = run_config(spec, preset_name, cfg, precision, device, sset)
    if cfg.layer == "best" and applied:
        # The best layer is the comprehension run's: its switches (tl_to_tokens_bos moves SmolLM2's best
        # layer 23 -> 17) and its layer are part of this run's identity and name.
        comp = find_comprehension_run(spec.slug, sset.name, protocol)
        if comp is not None:
            comp_meta = json.loads((comp / "metadata.json").read_text())
            applied = {**applied, **run_applied(comp_meta)}
            rcfg["best_layer_from"] = {"run": comp.name, "best_layer": comp_meta.get("best_layer")}
    if applied:  # only a loose run: protocol_matched configs (and their hashes) stay as they were
        rcfg["protocol_applied"] = applied
    out = artifacts.run_dir(spec.slug, generation_kind(preset_name, precision, cfg, rcfg["stimuli_sha256"],
                                                       applied))
    log = _printer(progress)
    if not force and artifacts.finished(out, rcfg):
        log(f"{out} is complete for this config; skipping (use --force to redo)")
        return out
    artifacts.check_writable(out.parent)  # read-only or full: one line before any compute
    locks.enter_context(run_lock(out, log))  # one writer per run: a second process is refused in one line
    timer = artifacts.Timer()
    notes = [n for n in [prec_note] if n]
    with timer("load"):
        lm = load_model(spec, precision, device)
    if precision == "int8":
        notes.append(BNB_INT8_NOTE)
    backend = HFBackend(lm)
    backend_reason = ("generation reads activations through raw HF hooks for every precision: "
                      "TransformerLens refuses bitsandbytes (int8/nf4) models, and one backend keeps "
                      "C (fp16) and D (int8) comparable")
    chat = cfg.chat_template
    if cfg.chat_template and not chat_available(lm.tokenizer):
        chat = False
        notes.append(f"{spec.alias} has no chat template (base model): prompts were given as plain text")
    if preset_name == "loose" and protocol.on("loose_no_top_k_unseeded"):
        notes.append(f"protocol {protocol.name}: sampled without top_k as the authors' loose script did; their "
                     f"run was unseeded, this one uses seed {cfg.seed} (docs/PROTOCOLS.md)")
    units = plan(cfg, sset=sset)
    store = artifacts.PartialStore(out, rcfg)
    if force:  # --force: start from nothing, also not from partial progress
        store.clear()
        store = artifacts.PartialStore(out, rcfg)
    bs = batch_size or default_batch_size(device)
    unit_means: dict[str, dict] = {}
    pending = []
    for u in units:
        t, records = store.get(f"unit-{u}"), store.get_json(f"unit-{u}")
        if t is not None and records is not None and {"mid", "last"} <= set(t):
            unit_means[u] = {"mid": t["mid"], "last": t["last"], "records": records}
        else:
            pending.append(u)
    if len(pending) < len(units):
        log(f"resuming: {len(units) - len(pending)}/{len(units)} units already done")
    caches = Caches()
    # Chunks of whole units filling a batch without overflowing it (a unit larger than a batch goes
    # alone), so batches stay full while progress is still saved per unit.
    chunk: list[str] = []
    chunks = []
    for u in pending:
        if chunk and sum(len(units[x]) for x in chunk) + len(units[u]) > bs:
            chunks.append(chunk)
            chunk = []
        chunk.append(u)
    if chunk:
        chunks.append(chunk)
    with timer("generate_and_extract"):
        for ch in chunks:
            res = collect(lm, backend, cfg, {u: units[u] for u in ch}, caches, bs, chat, log)
            for u in ch:
                store.save(f"unit-{u}", {"mid": res[u]["mid"], "last": res[u]["last"]})
                store.save_json(f"unit-{u}", res[u]["records"])
                unit_means[u] = res[u]
                log(f"unit {u} done")
                _after_unit(u)
    with timer("finalize"):
        fin = finalize(cfg, unit_means, lm.n_layers, spec.slug, stimuli_set=sset.name, protocol=protocol)
    gen_lens = [r["gen_len"] for u in units for r in unit_means[u]["records"]]
    hit = [r["hit_eos"] for u in units for r in unit_means[u]["records"]]
    emotions = list(GENERATION_EMOTIONS)
    pair_checks = {f"{a}<->{b}": float(fin["rdm"][emotions.index(a), emotions.index(b)])
                   for a, b in (("happy", "sad"), ("calm", "desperate"), ("loving", "hostile"), ("proud", "guilty"))}
    meta = {
        "schema": SCHEMA, "kind": "generation", "preset": preset_name, "config": rcfg,
        "protocol": protocol_record(preset_name, protocol, applied),
        "config_hash": artifacts.config_hash(rcfg), "generation_config": cfg.to_dict(),
        "subparameters": {k: list(v) for k, v in SUBPARAMETERS.items()},
        "model": spec.to_dict(), "precision": precision, "device": device, "quantized": lm.quantized,
        "quantization": lm.info.get("quantization"), "load_info": {k: v for k, v in lm.info.items()},
        "weights_revision": lm.info.get("weights_revision"),
        "backend": "hf", "backend_reason": backend_reason,
        "chat_template_applied": chat, "emotions": emotions, "n_layers": lm.n_layers, "d_model": lm.d_model,
        "layer": fin["layer"], "layer_pct": round(100.0 * fin["layer"] / lm.n_layers, 2),
        "layer_note": fin["layer_note"], "position": cfg.position,
        "vector_formula": cfg.vector_formula, "neutral_used": cfg.uses_neutral,
        "rdm": fin["rdm"].tolist(), "mean_pairwise_cosine": fin["mean_pairwise_cosine"],
        "pair_checks": pair_checks, "layer_sweep": fin["layer_sweep"],
        "counts": {"naive_generations": naive_count(cfg), "distinct_generations": len(gen_lens),
                   "generated_this_session": caches.generated, "resumed_units": len(units) - len(pending),
                   "discarded_partial": store.discarded},
        "generation_stats": {"mean_gen_len": float(sum(gen_lens) / len(gen_lens)), "max_gen_len": max(gen_lens),
                             "fraction_hit_eos": float(sum(hit) / len(hit)),
                             "fraction_mid_fallback": float(sum(1 for g in gen_lens if g <= MID_MIN_GEN_LEN)
                                                            / len(gen_lens))},
        "dedupe": ("greedy: each distinct prompt generated once and weighted by its repeats"
                   if not cfg.do_sample else "sampled: every sample generated with its own seeded generator"),
        "notes": notes + ([f"max_new_tokens reduced to {cfg.max_new_tokens} (paper: "
                           f"{PRESETS[preset_name].max_new_tokens})"]
                          if cfg.max_new_tokens != PRESETS[preset_name].max_new_tokens else []),
        "stimuli_sha256": rcfg["stimuli_sha256"],
        "stimuli": {"default": sset.default, "set": sset.name, "sha256": rcfg["stimuli_sha256"],
                    "loose_prompts": bool(cfg.n_templates == 1 and sset.loose_prompts)},
        "env": artifacts.environment(device),
        "timings": timer.timings, "batch_size": bs,
    }
    tensors = {"vectors": fin["vectors"].contiguous(), "emotion_means": fin["emotion_means"].contiguous()}
    if fin["neutral_mean"] is not None:
        tensors["neutral_mean"] = fin["neutral_mean"].contiguous()
    generations = {"emotions": {e: unit_means[e]["records"] for e in emotions},
                   "neutral": unit_means[NEUTRAL]["records"] if cfg.uses_neutral else []}
    with artifacts.atomic_dir(out, sums=True) as tmp:
        artifacts.save_tensors_atomic(tmp / "vectors.safetensors", tensors)
        artifacts.write_json_atomic(tmp / "generations.json", generations)
        artifacts.write_json_atomic(tmp / "metadata.json", meta)  # last: marks the run complete
    store.clear()
    log(f"wrote {out}")
    return out


def seed_caches_from_run(caches: Caches, run: Path, tokenizer, cfg: GenerationConfig, chat: bool) -> int:
    """Preload generated ids of a finished generation run (same model/precision/device checked by the
    caller) into ``caches``; returns how many were loaded. Keys are rebuilt from the prompts, so a
    generation is reused only for the exact same prompt ids and decoding settings."""
    meta = json.loads((run / "metadata.json").read_text())
    rc = GenerationConfig(**meta["generation_config"])
    if rc.decoding_key() != cfg.decoding_key() or meta.get("chat_template_applied") != chat:
        return 0
    gens = json.loads((run / "generations.json").read_text())
    n = 0
    recs = [(e, r) for e, rs in gens["emotions"].items() for r in rs] + [(NEUTRAL, r) for r in gens["neutral"]]
    for unit, r in recs:
        it = Item(unit, r["prompt"], r["template"], r["sample"], r["weight"])
        ids = render(tokenizer, r["prompt"], chat)
        seed = sample_seed(rc, it) if rc.do_sample else None
        g = list(r["generated_ids"])
        key = _gen_key(ids, rc, seed)
        ended = bool(r["hit_eos"])
        old = caches.gen.get(key)
        if old is None or rc.max_new_tokens > old[1]:
            caches.gen[key] = (g, rc.max_new_tokens, ended)
            n += 1
    return n
