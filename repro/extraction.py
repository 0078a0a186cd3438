"""Comprehension-mode extraction (paper Section 2.3) with a layer sweep and descriptors (2.5).

For each passage the residual stream after every block is read at the last non-padding token;
per-emotion means over passages are centred on the global mean of the 21 means, per layer. The
best layer minimises the mean pairwise cosine of the 21 centred vectors.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from . import artifacts, geometry, options, stimuli
from .stimuli.sets import resolve_set
from .backends import HFBackend, make_backend, method_departures, paper_backend
from .loading import LoadedModel, load_model
from .models import ModelSpec, resolve
from .protocol import Protocol, resolve_protocol
from .protocol import suffix as protocol_suffix
from .runlock import run_lock

REFERENCE_DEPTHS = (25, 50, 75)


@dataclass(frozen=True)
class ExtractionConfig:
    """Everything that determines a comprehension run (written into its metadata)."""

    model: str
    dtype: str = "fp32"  # the paper used fp16 (GPU); on CPU fp16 matmuls are slow, fp32 is the default here
    backend: str = "auto"  # auto: TransformerLens where it supports the model (the paper's rule), else HF
    stimuli: str | None = None  # comprehension CSV; None = the shipped set
    batch_size: int = 16
    # Right padding keeps real tokens at natural positions for every backend; left padding is
    # supported too (positions are recomputed from the mask) and tested to give the same vectors.
    padding_side: str = "right"
    max_length: int = 256
    fragile_margin: float = 1e-4  # sweeps differ in the 4th decimal near the -1/(k-1) floor
    anisotropy_threshold: float = 0.95  # Section 4.1: above this a cosine RDM comparison is unreliable
    # Reference depth d% -> layer floor(d/100 * n_layers) (e.g. 50% of 26 layers = 13).
    reference_depths: tuple[int, ...] = REFERENCE_DEPTHS

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SweepResult:
    sweep: list  # mean pairwise cosine per layer (None where non-finite)
    nonfinite: list[int]
    best: int
    second: int | None
    margin: float | None

    @property
    def fragile(self) -> bool:
        return self.margin is not None and self.margin < 1e-4


def layer_sweep(vectors: torch.Tensor, fragile_margin: float = 1e-4) -> dict:
    """vectors [L, k, d] centred -> sweep, best layer (argmin over finite layers), margin, fragile."""
    finite = geometry.finite_layers(vectors)
    mc = geometry.mean_offdiag(geometry.cosine_matrix(vectors))
    finite &= torch.isfinite(mc)
    if not finite.any():
        raise ValueError("every layer is non-finite (NaN/inf activations): try --dtype fp32 or bf16")
    idx = torch.nonzero(finite).flatten()
    vals = mc[idx]
    order = torch.argsort(vals)
    best = int(idx[order[0]])
    second = int(idx[order[1]]) if len(idx) > 1 else None
    margin = float(vals[order[1]] - vals[order[0]]) if second is not None else None
    return {
        "layer_sweep": [float(v) if f else None for v, f in zip(mc.tolist(), finite.tolist())],
        "nonfinite_layers": [i for i, f in enumerate(finite.tolist()) if not f],
        "best_layer": best,
        "second_best_layer": second,
        "best_margin": margin,
        "fragile": margin is not None and margin < fragile_margin,
    }


def reference_layers(n_layers: int, best: int, depths=REFERENCE_DEPTHS) -> dict:
    out = {"best": best}
    for d in depths:
        out[str(d)] = min(n_layers - 1, int(math.floor(d / 100 * n_layers)))
    return out


def _batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (less padding); order is restored by index afterwards."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _pad(rows: list[list[int]], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists -> (input_ids, attention_mask), padded on ``side``."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        at = slice(width - len(r), width) if side == "left" else slice(0, len(r))
        ids[i, at], mask[i, at] = torch.tensor(r, dtype=torch.long), 1
    return ids, mask


def read_last_token(backend, tokenizer, texts: list[str], cfg: ExtractionConfig, store=None, prefix="b",
                    progress=None, encode=None, truncated: list | None = None) -> torch.Tensor:
    """Residual stream at the last non-pad token of each text, every layer: [L, N, d] float32.
    ``encode``: text -> token ids, instead of the HF tokenizer's defaults (protocol departure
    ``tl_to_tokens_bos``: TransformerLens ``to_tokens``); the texts are then padded here, in batches.
    ``truncated``: if given, gets (index, full token count) of each text cut to ``cfg.max_length``."""
    tokenizer.padding_side = cfg.padding_side
    full = [list(encode(t)) for t in texts] if encode is not None else None
    full_lengths = [len(e) for e in full] if full is not None else [len(tokenizer(t).input_ids) for t in texts]
    encoded = [e[: cfg.max_length] for e in full] if full is not None else None
    lengths = [min(n, cfg.max_length) for n in full_lengths]
    if truncated is not None:
        truncated.extend((i, n) for i, n in enumerate(full_lengths) if n > cfg.max_length)
    out: list[torch.Tensor | None] = [None] * len(texts)
    for bi, idx in enumerate(_batches(lengths, cfg.batch_size)):
        key = f"{prefix}{bi:04d}"
        acts = (store.get(key) or {}).get("acts") if store is not None else None
        if acts is None:
            if encoded is None:
                enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True,
                                max_length=cfg.max_length)
                input_ids, mask = enc.input_ids, enc.attention_mask
            else:
                pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
                input_ids, mask = _pad([encoded[i] for i in idx], pad_id, cfg.padding_side)
            if cfg.padding_side == "left":
                last = torch.full((len(idx),), mask.shape[1] - 1)
            else:
                last = mask.sum(1) - 1
            acts = backend.residuals(input_ids, mask, last)  # [L, B, d]
            if store is not None:
                store.save(key, {"acts": acts})
        for j, i in enumerate(idx):
            out[i] = acts[:, j]
        if progress is not None:
            progress.update(len(idx))
    return torch.stack(out, dim=1)


def summarize(passage_acts: torch.Tensor, labels: list[str], emotions: tuple[str, ...], neutral_acts: torch.Tensor,
              cfg: ExtractionConfig, n_anisotropy: int | None = None) -> tuple[dict, dict]:
    """Per-emotion means, centring, sweep, anisotropy and descriptors -> (tensors, metadata part).
    ``n_anisotropy``: anisotropy from the first N neutral sentences only (protocol departure
    ``hf_neutral_first10``); every neutral activation is still saved."""
    L = passage_acts.shape[0]
    lab = torch.tensor([emotions.index(e) for e in labels])
    means = torch.stack([passage_acts[:, lab == k].mean(1) for k in range(len(emotions))], dim=1)  # [L, k, d]
    vectors = geometry.center(means)
    sweep = layer_sweep(vectors, cfg.fragile_margin)
    aniso = geometry.mean_offdiag(geometry.cosine_matrix(neutral_acts[:, :n_anisotropy]))
    aniso_list = [float(a) if math.isfinite(a) else None for a in aniso.tolist()]
    ref = reference_layers(L, sweep["best_layer"], cfg.reference_depths)
    rdms = geometry.cosine_matrix(vectors)
    descriptors = {}
    for name, layer in ref.items():
        ok = layer not in sweep["nonfinite_layers"]
        descriptors[name] = {
            "layer": layer,
            "layer_pct": round(100 * layer / L, 1),
            "anisotropy": aniso_list[layer] if ok else None,
            "rdm_std": float(geometry.rdm_std(rdms[layer])) if ok else None,
            "mean_cosine": sweep["layer_sweep"][layer],
        }
    best = sweep["best_layer"]
    meta = {
        **sweep,
        "best_layer_pct": round(100 * best / L, 1),
        "reference_layers": ref,
        "anisotropy": aniso_list,
        "descriptors": descriptors,
        "rdm": rdms[best].tolist(),
        "rdm_std": descriptors["best"]["rdm_std"],
        "anisotropy_best": descriptors["best"]["anisotropy"],
        "anisotropy_flag": (descriptors["best"]["anisotropy"] or 0.0) > cfg.anisotropy_threshold,
        "anisotropy_sentences": int(neutral_acts[:, :n_anisotropy].shape[1]),
    }
    tensors = {
        "vectors": vectors.float(),
        "emotion_means": means.float(),
        "neutral_acts": neutral_acts.float(),
        "passage_acts": passage_acts[[ref[k] for k in ("best", *map(str, cfg.reference_depths))]].float(),
    }
    return tensors, meta


def run_kind(dtype: str, backend_name: str, stimuli_suffix: str = "", protocol_suffix: str = "") -> str:
    """Run folder name: everything that changes the numbers is in it. The defaults add nothing; another
    protocol adds ``-corrected`` or ``-q<hash8>`` (``repro.protocol.suffix``), other stimuli add
    ``-stim<first 8 hex of their digest>``, so two different runs never share a folder (and never
    replace each other)."""
    return f"comprehension-{dtype}-{backend_name}{protocol_suffix}{stimuli_suffix}"


def default_stimuli_digest() -> str:
    return stimuli.stimuli_digest([stimuli.COMPREHENSION_CSV, stimuli.NEUTRAL_SENTENCES_CSV])


def stimuli_suffix(digest: str) -> str:
    return "" if digest == default_stimuli_digest() else f"-stim{digest[:8]}"


def extract(model: str | ModelSpec, dtype: str = "fp32", backend: str = "auto", stimuli_path: str | None = None,
            force: bool = False, progress: bool = True, lm: LoadedModel | None = None, device: str | None = None,
            batch_size: int = 16, padding_side: str = "right", stimuli_set: str | None = None,
            protocol: Protocol | None = None) -> Path:
    """Run (or find) the comprehension extraction of ``model``; returns the run directory.

    Stimuli: the named set's passages and neutral sentences (default: our shipped set), or, with
    ``stimuli_path``, that comprehension CSV with the shipped neutral sentences. ``protocol`` (default
    ``paper``) decides each departure of docs/PROTOCOLS.md that applies to the backend that runs."""
    dtype = options.choice(dtype, options.DTYPES, "dtype")  # checked before anything is read or loaded
    backend = options.choice(backend, options.BACKENDS, "backend")
    padding_side = options.choice(padding_side, ("right", "left"), "padding-side")
    batch_size = options.count(batch_size, "batch-size")
    device = options.device(device)
    spec = model if isinstance(model, ModelSpec) else resolve(model)
    proto = protocol or resolve_protocol()
    sset = resolve_set(stimuli_set)
    if stimuli_path and not sset.default:
        raise stimuli.StimulusError("pass either --stimuli FILE or --stimuli-set NAME, not both")
    cfg = ExtractionConfig(model=spec.hub_id, dtype=dtype, backend=backend, stimuli=stimuli_path,
                           batch_size=batch_size, padding_side=padding_side)
    comp_file = Path(stimuli_path) if stimuli_path else sset.comprehension
    passages = stimuli.load_comprehension(comp_file)
    neutral = stimuli.load_neutral_sentences(sset.neutral_sentences)
    stim_digest = stimuli.stimuli_digest([comp_file, sset.neutral_sentences])
    suffix = stimuli_suffix(stim_digest)
    stim_record = {"default": not suffix, "set": None if stimuli_path else sset.name,
                   "comprehension": str(comp_file) if stimuli_path else sset.describe(),
                   "neutral_sentences": sset.describe(), "sha256": stim_digest}

    def identity(backend_ran: str) -> dict:
        # A run is identified by the backend that RAN, so `--backend auto` and `--backend tl` share a run;
        # by the protocol switches that backend applies (none: the key is left out, as before protocols).
        out = {**cfg.to_dict(), "backend": backend_ran, "stimuli_sha256": stim_digest}
        if spec.revision:  # a pinned or --revision revision is other weights (left out when none: as before)
            out["revision"] = spec.revision
        applied = proto.identity(f"extraction-{backend_ran}")
        return {**out, "protocol": applied} if applied else out

    def kind(backend_ran: str) -> str:
        applied = proto.identity(f"extraction-{backend_ran}")
        return run_kind(dtype, backend_ran, suffix, protocol_suffix(f"extraction-{backend_ran}", applied))

    if not force:
        # `auto` on a paper model means its Table A1 backend only: a finished run on the other backend
        # is a different method and must never be picked up in its place.
        auto = (paper_backend(spec),) if spec.is_paper_model else ("tl", "hf")
        for name in (auto if backend == "auto" else (backend,)):
            cand = artifacts.run_dir(spec.slug, kind(name))
            if artifacts.finished(cand, identity(name)):
                if progress:
                    print(f"[extract] {spec.alias}: finished run found, skipping: {cand}")
                return cand

    artifacts.check_writable()  # a read-only or full artifacts folder: one line now, not after the forwards
    timer = artifacts.Timer()
    with timer("load"):
        lm = lm or load_model(spec, dtype, device)
    with timer("backend"):
        be, reason = make_backend(lm, backend)
        if be.name == "hf" and proto.on("hf_last_layer_post_norm"):
            be = HFBackend(lm, last_layer_post_norm=True)  # the same hooks, and the authors' final norm
    departures = method_departures(spec, be.name)
    final = artifacts.run_dir(spec.slug, kind(be.name))
    with run_lock(final):
        if not force and artifacts.finished(final, identity(be.name)):
            # finished by another process while this one loaded the model
            if progress:
                print(f"[extract] {spec.alias}: finished run found, skipping: {final}")
            return final
        return _extract_locked(spec, cfg, proto, lm, be, reason, departures, final, identity(be.name), passages,
                               neutral, stim_digest, stim_record, timer, progress)


def _extract_locked(spec, cfg, proto, lm, be, reason, departures, final, ident, passages, neutral, stim_digest,
                    stim_record, timer, progress) -> Path:
    """The forward passes, summary and atomic write of one run, under its lock (repro.runlock)."""
    dtype = cfg.dtype
    store = artifacts.PartialStore(final, ident)
    texts = [p.text for p in passages]
    bar = _bar(len(texts) + len(neutral), f"extract {spec.alias} [{be.name}]", progress)
    encode, tokenisation = None, "HF tokenizer defaults"
    if be.name == "tl" and proto.on("tl_to_tokens_bos"):
        # The authors' TL path: TransformerLens to_tokens, one text at a time (its prepend-BOS default).
        def encode(text):
            return be.model.to_tokens(text, move_to_device=False)[0].tolist()

        tokenisation = f"TransformerLens to_tokens (default_prepend_bos={be.model.cfg.default_prepend_bos})"
    cut_p: list = []
    cut_n: list = []
    with timer("forward"):
        pacts = read_last_token(be, lm.tokenizer, texts, cfg, store, "p", bar, encode, cut_p)
        nacts = read_last_token(be, lm.tokenizer, neutral, cfg, store, "n", bar, encode, cut_n)
    if (cut_p or cut_n) and progress:
        print(f"[extract] {spec.alias}: {len(cut_p)} passages and {len(cut_n)} neutral sentences longer than "
              f"{cfg.max_length} tokens were truncated (recorded in metadata.json 'truncation')")
    if bar is not None:
        bar.close()
    with timer("summarize"):
        first10 = be.name == "hf" and proto.on("hf_neutral_first10")  # the authors' HF anisotropy baseline
        tensors, meta = summarize(pacts, [p.emotion for p in passages], stimuli.EMOTIONS, nacts, cfg,
                                  n_anisotropy=10 if first10 else None)
    metadata = {
        "schema": "emogeo.comprehension/1",
        "kind": "comprehension",
        "config": cfg.to_dict(),
        "config_hash": artifacts.config_hash(ident),
        "model": spec.to_dict(),
        "weights": lm.info.get("provenance", {}).get("weights", "original release"),
        "model_provenance": lm.info.get("provenance"),
        "weights_revision": lm.info.get("weights_revision"),  # hub commit, or a local folder's digest
        "backend": be.name,
        "backend_reason": reason,
        # False when this run departs from the paper's method (e.g. HF hooks for a TL row of Table A1,
        # asked for explicitly): the report and verify show it.
        "paper_method": not departures,
        "method_departures": departures,
        "dtype": dtype,
        "precision": dtype,
        "device": lm.device,
        "emotions": list(stimuli.EMOTIONS),
        "n_layers": lm.n_layers,
        "d_model": lm.d_model,
        "passages": {"ids": [p.passage_id for p in passages], "emotions": [p.emotion for p in passages]},
        "n_neutral_sentences": len(neutral),
        **meta,
        "stimuli_sha256": stim_digest,
        "stimuli": stim_record,  # which passages: the report and verify prefer the shipped (default) set
        # docs/PROTOCOLS.md: the protocol asked for, the switches this backend applied, what is pending.
        "protocol": proto.record(f"extraction-{be.name}"),
        "tokenisation": tokenisation,
        "env": artifacts.environment(lm.device),
        "timings": {**timer.timings, "model_load_reported": lm.info.get("load_seconds")},
        # Saved progress that could not be used (torn, corrupt or another config's) and was recomputed.
        "resume": {"reused_batches": store.reused, "discarded_partial": store.discarded},
        # Texts cut to max_length tokens (the last token read is then not the text's own last token).
        "truncation": {"max_length": cfg.max_length,
                       "passages": [{"id": passages[i].passage_id, "tokens": n} for i, n in cut_p],
                       "neutral_sentences": [{"index": i, "tokens": n} for i, n in cut_n]},
        "created_unix": int(time.time()),
    }
    with artifacts.atomic_dir(final, sums=True) as tmp:
        artifacts.save_tensors_atomic(tmp / "vectors.safetensors", tensors)
        artifacts.write_json_atomic(tmp / "metadata.json", metadata)
    store.clear()
    if progress:
        print(f"[extract] {spec.alias}: best layer {meta['best_layer']}/{lm.n_layers} "
              f"({meta['best_layer_pct']}%), anisotropy {meta['anisotropy_best']:.3f}, "
              f"RDM std {meta['rdm_std']:.3f}, backend {be.name} -> {final}")
    return final


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text")
