"""Two ways to read the residual stream after decoder block N at chosen token positions.

* ``HFBackend`` hooks each decoder layer's output (== ``hidden_states[N+1]`` for N < L-1; unlike
  ``hidden_states[-1]`` it carries no final norm, so it also matches TL at the last layer).
* ``TLBackend`` reads ``blocks.{N}.hook_resid_post`` from a HookedTransformer built from the
  already-loaded HF model, without LayerNorm folding or weight centring (those change the stream).

Both gather only the requested positions inside the hook: no full activation cache is kept.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from .loading import LoadedModel
from .options import BACKENDS  # auto, tl, hf


class BackendUnavailableError(RuntimeError):
    pass


def _gather(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, d], positions [B] (or [B, P]) -> [B, d] (or [B, P, d]) float32."""
    pos = positions.to(hidden.device)
    idx = pos.reshape(pos.shape[0], -1, 1).expand(-1, -1, hidden.shape[-1])
    out = hidden.gather(1, idx).float()
    return out.squeeze(1) if pos.dim() == 1 else out


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class HFBackend:
    name = "hf"

    def __init__(self, lm: LoadedModel, last_layer_post_norm: bool = False):
        self.lm = lm
        self.base = lm.model.get_decoder() if hasattr(lm.model, "get_decoder") else lm.model.base_model
        self.layers = list(self.base.layers)
        # Protocol departure `hf_last_layer_post_norm` (docs/PROTOCOLS.md): the authors' HF path read
        # layer N as hidden_states[N + 1], which for the last layer is the stream AFTER the final norm.
        self.final_norm = None
        if last_layer_post_norm:
            self.final_norm = getattr(self.base, "norm", None) or getattr(self.base, "final_layernorm", None)
            if self.final_norm is None:
                raise BackendUnavailableError(
                    f"{lm.spec.alias}: no final norm found on {type(self.base).__name__} for the quirk "
                    "hf_last_layer_post_norm; run with --quirk hf_last_layer_post_norm=off")

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @torch.inference_mode()
    def residuals(self, input_ids, attention_mask, positions, layers=None) -> torch.Tensor:
        """Residual stream after each block in ``layers`` at ``positions`` ([B], or [B, P] for several
        positions per row): [n_sel, B, d] (or [n_sel, B, P, d]) float32."""
        layers = list(range(self.n_layers)) if layers is None else list(layers)
        out: dict[int, torch.Tensor] = {}
        handles = []
        last = self.n_layers - 1
        for i in layers:
            def hook(_mod, _inp, output, i=i):
                hidden = output[0] if isinstance(output, tuple) else output
                if i == last and self.final_norm is not None:
                    hidden = self.final_norm(hidden)  # what HF returns as hidden_states[-1]
                out[i] = _gather(hidden, positions)
            handles.append(self.layers[i].register_forward_hook(hook))
        try:
            dev = self.lm.model.device
            # The decoder alone: no lm_head, so no [B, T, vocab] logits are ever materialised.
            self.base(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev),
                      position_ids=position_ids_from_mask(attention_mask).to(dev), use_cache=False)
        finally:
            for h in handles:
                h.remove()
        return torch.stack([out[i].cpu() for i in layers])


class TLBackend:
    name = "tl"

    def __init__(self, lm: LoadedModel):
        if lm.quantized:
            # TransformerLens reads weights directly and refuses bitsandbytes 8-bit models.
            raise BackendUnavailableError(
                f"TransformerLens cannot load a {lm.precision} (bitsandbytes) model; use --backend hf")
        self.lm = lm
        self.model = build_hooked_transformer(lm)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    @torch.inference_mode()
    def residuals(self, input_ids, attention_mask, positions, layers=None) -> torch.Tensor:
        layers = list(range(self.n_layers)) if layers is None else list(layers)
        wanted = {f"blocks.{i}.hook_resid_post": i for i in layers}
        out: dict[int, torch.Tensor] = {}

        def hook(act, hook):
            out[wanted[hook.name]] = _gather(act, positions)

        dev = self.model.cfg.device
        self.model.run_with_hooks(
            input_ids.to(dev), attention_mask=attention_mask.to(dev), return_type=None,
            fwd_hooks=[(lambda name: name in wanted, hook)],
            stop_at_layer=max(layers) + 1)  # blocks past the last wanted one are never run
        return torch.stack([out[i].cpu() for i in layers])


def tl_supports(lm: LoadedModel) -> tuple[bool, str]:
    """Can TransformerLens build this model? (official name, or a supported architecture)."""
    if lm.quantized:
        return False, f"{lm.precision} weights (TransformerLens refuses bitsandbytes models)"
    try:
        import transformer_lens  # noqa: F401
        from transformer_lens.loading_from_pretrained import OFFICIAL_MODEL_NAMES
    except ImportError as exc:  # pragma: no cover - TL is in both locks
        return False, f"transformer_lens not importable: {exc}"
    name = lm.spec.tl_name or lm.spec.hub_id
    if name in OFFICIAL_MODEL_NAMES:
        return True, f"official TransformerLens model {name}"
    if lm.spec.source == "hub":
        # The paper's rule (Section 2.4): hub models outside TL's list go to the HF backend.
        return False, f"{lm.spec.hub_id} is not in TransformerLens's supported-model list"
    arch = (lm.model.config.architectures or [type(lm.model).__name__])[0]
    if arch in _TL_LOCAL_ARCHS:
        return True, f"local/embedded {arch} built from its config"
    return False, f"architecture {arch} is not supported by TransformerLens"


# Architectures whose weights TL converts from a local config directory (no hub call).
# (TL builds Gemma-3 configs from the official name only, so a tiny/local Gemma-3 goes to HF.)
_TL_LOCAL_ARCHS = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"}


def build_hooked_transformer(lm: LoadedModel):
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    ok, why = tl_supports(lm)
    if not ok:
        raise BackendUnavailableError(f"TransformerLens backend unavailable for {lm.spec.alias}: {why}")
    dtype = lm.model.dtype
    common = dict(fold_ln=False, center_writing_weights=False, center_unembed=False,
                  device=lm.device, dtype=dtype)
    name = lm.spec.tl_name  # embedded Gemma-3 270M is an official TL name: no hub call needed
    if name:
        return HookedTransformer.from_pretrained(name, hf_model=lm.model, tokenizer=lm.tokenizer, **common)
    # Non-hub (embedded/local/tiny) models: TL's from_pretrained insists on an official name, so build
    # the config from a private copy of config.json (TL picks architectures from substrings of the
    # path, hence a fresh neutral directory) and convert the already-loaded HF weights.
    tmp = Path(tempfile.mkdtemp(prefix="emogeo-tlcfg-"))
    try:
        lm.model.config.to_json_file(tmp / "config.json")
        cfg = loading.get_pretrained_model_config(str(tmp), hf_cfg=lm.model.config.to_dict(),
                                                  fold_ln=False, device=lm.device, dtype=dtype)
        model = HookedTransformer(cfg, tokenizer=lm.tokenizer, move_to_device=False)
        state = loading.get_pretrained_state_dict(str(tmp), cfg, lm.model, dtype=dtype)
        model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False,
                                          center_unembed=False, refactor_factored_attn_matrices=False)
        model.to(lm.device)
        model.eval()
        return model
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def paper_backend(spec) -> str | None:
    """The backend Table A1 extracted this model with ("tl"/"hf"); None for models outside the paper."""
    return spec.paper_backend.lower() if getattr(spec, "paper_backend", None) else None


def method_departures(spec, backend_ran: str) -> list[str]:
    """How a run of ``spec`` on ``backend_ran`` departs from the paper's method (empty: it does not).
    Written into every run's metadata (``paper_method``/``method_departures``) for the report and verify."""
    want = paper_backend(spec)
    if want and backend_ran != want:
        return [f"backend {backend_ran} instead of Table A1's {want} (asked for explicitly with --backend)"]
    return []


def make_backend(lm: LoadedModel, backend: str = "auto"):
    """Returns (backend, reason).

    ``auto`` never changes the method silently:
    * a paper model runs on its Table A1 backend; when that backend is TransformerLens and TL cannot run
      here, it is a ``BackendUnavailableError`` naming the cause, never an HF run. Another backend must be
      asked for explicitly (``--backend hf``/``tl``), and the run then records the departure
      (``method_departures``);
    * any other model (embedded, tiny, local, unregistered hub id) takes TL where TL supports it (the
      paper's preference, Section 2.4), else HF; the reason is recorded.
    """
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    want = paper_backend(lm.spec)
    departure = method_departures(lm.spec, backend)[:1] if backend != "auto" else []
    if backend == "hf" or (backend == "auto" and want == "hf"):
        if backend == "auto":
            return HFBackend(lm), "Table A1 backend (raw HF hooks)"
        return HFBackend(lm), f"requested; {departure[0]}" if departure else "requested"
    ok, why = tl_supports(lm)
    if backend == "tl" or want == "tl":
        if not ok:
            if backend == "tl":
                raise BackendUnavailableError(f"--backend tl impossible for {lm.spec.alias}: {why}")
            raise BackendUnavailableError(
                f"{lm.spec.alias}: Table A1 extracts it with TransformerLens, which cannot run here ({why}); "
                "install the pinned stack (requirements/cpu.lock or cuda.lock) or pass --backend hf to run "
                "HF hooks instead, recorded as a departure from the paper's method")
        try:
            be = TLBackend(lm)
        except Exception as exc:  # asked for, or the paper's backend: never swapped for HF
            raise BackendUnavailableError(
                f"TransformerLens could not build {lm.spec.alias} ({type(exc).__name__}: {str(exc)[:300]})") from exc
        if backend == "auto":
            return be, f"Table A1 backend ({why})"
        return be, f"requested; {departure[0]}" if departure else why
    if ok:
        try:
            return TLBackend(lm), why
        except Exception as exc:  # not a paper model: HF is the documented fallback, and the reason is kept
            return HFBackend(lm), f"TL build failed ({type(exc).__name__}: {str(exc)[:200]}); fell back to HF"
    return HFBackend(lm), f"fell back to HF: {why}"
