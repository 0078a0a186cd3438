"""Collect run artifacts (docs/ARTIFACTS.md) into in-memory records, plus the analysis settings.

``collect(root)`` reads every finished run under ``<root>/runs`` (default: ``repro.artifacts.runs_dir()``,
which honours ``EMOGEO_ARTIFACTS``) and the optional per-model JSON files written by other stages
(``ablation.json``, ``steering/steering.json``, ``equivalence.json``, ``decomposition.json``). Nothing here
loads a model; tensors are read lazily and only when an analysis needs them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from repro import artifacts
from repro.layout import layout_problem
from repro.protocol import is_run_of, run_protocol_label, run_protocols
from repro.stimuli.sets import DEFAULT_SET, run_stimuli_set

from .descriptors import as_array, rdm_std
from .descriptors import finite_float as _f
from .isotropy import DEFAULT_D, is_flagged
from .rsa import RDM, ModelInfo


@dataclass
class AnalysisConfig:
    """Settings of the analysis (every number a table reports is computed with these)."""

    seed: int = 0
    n_perm: int = 10_000  # Mantel permutations
    n_boot: int = 1_000  # bootstrap resamples over emotions (tables); stats.bootstrap_ci defaults to 2000
    ci_level: float = 0.95
    n_splits: int = 100  # split-half reliability splits
    noise_ceiling_threshold: float = 0.5
    anisotropy_threshold: float = 0.95
    isotropy_d: int = DEFAULT_D  # All-but-the-Top directions removed (see analysis.isotropy)
    dtype_preference: tuple[str, ...] = ("fp16", "bf16", "fp32")  # which comprehension run represents a model
    backend_preference: tuple[str, ...] = ("tl", "hf")
    stimuli_set: str | None = None  # the set whose runs represent a model (None: the shipped set, ours)
    decomposition_centring: str = "post"  # analysis.decomposition.CENTRING: "post" (the paper's) or "stored"
    protocol: str = "paper"  # runs of this protocol represent a model first (repro.protocol; docs/PROTOCOLS.md)
    # Every switch of the asked protocol, ((id, on), ...), when it is a --quirk mix ("custom"); () for a
    # named protocol. Runs that applied exactly these switches represent a model first.
    protocol_switches: tuple = ()

    def wanted_protocol(self):
        """The asked protocol as a ``repro.protocol.Protocol`` (a name that is not one: ``paper``)."""
        from repro.protocol import PROTOCOL_NAMES, Protocol, named

        if self.protocol_switches:
            return Protocol(tuple(self.protocol_switches))
        return named(self.protocol if self.protocol in PROTOCOL_NAMES else "paper")


def config_for_protocol(protocol=None, **settings) -> AnalysisConfig:
    """The analysis settings a protocol (``repro.protocol``; default ``paper``) implies: whose runs represent
    a model first, and the decomposition's centring (switch ``decomposition_post_centring``)."""
    from repro.protocol import resolve_protocol

    p = protocol or resolve_protocol()
    return AnalysisConfig(protocol=p.name, protocol_switches=p.switches if p.name == "custom" else (),
                          decomposition_centring="post" if p.on("decomposition_post_centring") else "stored",
                          **settings)


def artifacts_root(root=None) -> Path:
    """The artifacts directory: ``root`` if given, else $EMOGEO_ARTIFACTS, else the repository's artifacts/."""
    if root is not None:
        return Path(root)
    return artifacts.runs_dir().parent


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def stimuli_label(meta: dict) -> str:
    """The run's stimulus set by name, or ``file <name>`` for a loose ``--stimuli`` file."""
    name = run_stimuli_set(meta)
    if name:
        return name
    comp = (meta.get("stimuli") or {}).get("comprehension")
    return f"file {Path(str(comp)).name}" if comp else "file"


def short_name(hub_id: str) -> str:
    """'meta-llama/Llama-3.2-3B-Instruct' -> 'Llama-3.2-3B-I', 'mistralai/Mistral-7B-Instruct-v0.3' ->
    'Mistral-7B-v0.3-I'; other names keep their own spelling ('google/gemma-3-1b-it' -> 'gemma-3-1b-it')."""
    name = hub_id.rstrip("/").split("/")[-1]
    if "-Instruct" in name:
        name = name.replace("-Instruct", "") + "-I"
    return name


@dataclass
class ComprehensionRun:
    path: Path
    meta: dict

    @property
    def kind(self) -> str:
        return self.path.name

    @property
    def slug(self) -> str:
        return self.path.parent.name

    @property
    def stimuli_set(self) -> str:
        """The stimulus set the run read ('file <name>' for a loose --stimuli file)."""
        return stimuli_label(self.meta)

    @property
    def protocols(self) -> list[str]:
        """The named protocols this run is a run of (``repro.protocol.run_protocols``)."""
        return run_protocols(self.meta)

    def is_run_of(self, protocol) -> bool:
        """Did the run apply exactly the switches of its stage that ``protocol`` sets?"""
        return is_run_of(self.meta, protocol)

    @property
    def protocol_label(self) -> str:
        return run_protocol_label(self.meta)

    @property
    def model(self) -> dict:
        return self.meta.get("model") or {}

    @property
    def hub_id(self) -> str:
        return self.model.get("hub_id") or self.slug

    @property
    def family(self) -> str | None:
        return self.model.get("family")

    @property
    def variant(self) -> str | None:
        return self.model.get("variant")

    @property
    def size_b(self) -> float | None:
        return _f(self.model.get("size_b"))

    @property
    def source(self) -> str:
        return self.model.get("source") or "hub"

    @property
    def is_embedded(self) -> bool:
        return self.source == "embedded"

    @property
    def n_layers(self) -> int | None:
        return self.meta.get("n_layers") or self.model.get("n_layers")

    @property
    def d_model(self) -> int | None:
        return self.meta.get("d_model") or self.model.get("d_model")

    @property
    def backend(self) -> str:
        return str(self.meta.get("backend") or "?")

    @property
    def dtype(self) -> str:
        return str(self.meta.get("dtype") or self.meta.get("precision") or "?")

    @property
    def best_layer(self) -> int | None:
        return self.meta.get("best_layer")

    @property
    def best_layer_pct(self) -> float | None:
        v = _f(self.meta.get("best_layer_pct"))
        if v is None and self.best_layer is not None and self.n_layers:
            v = 100.0 * self.best_layer / self.n_layers
        return v

    @property
    def anisotropy(self) -> float | None:
        """Anisotropy at the best layer."""
        best = (self.meta.get("descriptors") or {}).get("best") or {}
        v = _f(best.get("anisotropy"))
        if v is None:
            v = _f(self.meta.get("anisotropy_best"))
        if v is None and self.best_layer is not None:
            per_layer = self.meta.get("anisotropy") or []
            if isinstance(per_layer, list) and self.best_layer < len(per_layer):
                v = _f(per_layer[self.best_layer])
        return v

    @property
    def rdm_std(self) -> float | None:
        best = (self.meta.get("descriptors") or {}).get("best") or {}
        v = _f(best.get("rdm_std"))
        if v is None and self.meta.get("rdm") is not None:
            v = rdm_std(self.rdm_matrix)
        return v

    @property
    def flagged(self) -> bool:
        return is_flagged(self.anisotropy)

    @property
    def fragile(self) -> bool | None:
        return self.meta.get("fragile")

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.meta.get("emotions") or ())

    @cached_property
    def rdm_matrix(self) -> np.ndarray:
        return as_array([[np.nan if v is None else v for v in row] for row in self.meta["rdm"]])

    @property
    def label(self) -> str:
        return short_name(self.hub_id)

    @property
    def layer_sweep(self) -> list[float | None]:
        return [_f(v) for v in (self.meta.get("layer_sweep") or [])]

    @property
    def anisotropy_by_layer(self) -> list[float | None]:
        v = self.meta.get("anisotropy")
        return [_f(x) for x in v] if isinstance(v, list) else []

    def rdm(self, label: str | None = None) -> RDM:
        return RDM(self.rdm_matrix, self.emotions, self.hub_id, self.best_layer, self.anisotropy,
                   label or self.label, self.family, self.variant, "run",
                   {"path": str(self.path), "dtype": self.dtype, "backend": self.backend})

    def info(self, label: str | None = None) -> ModelInfo:
        return ModelInfo(label or self.label, self.family, self.variant, self.size_b, self.anisotropy, self.hub_id)

    def table_row(self) -> dict:
        return {"model": self.hub_id, "run": f"{self.slug}/{self.kind}", "stimuli": self.stimuli_set,
                "protocol": self.protocol_label,
                "source": self.source,
                "family": self.family, "variant": self.variant, "size_b": self.size_b, "backend": self.backend,
                "dtype": self.dtype, "n_layers": self.n_layers, "d_model": self.d_model,
                "best_layer": self.best_layer, "best_layer_pct": self.best_layer_pct,
                "anisotropy": self.anisotropy, "rdm_std": self.rdm_std, "flag": self.flagged,
                "fragile": self.fragile,
                # How the run departs from the paper's method (e.g. HF hooks asked for on a TL row of Table A1).
                "method_departures": list(self.meta.get("method_departures") or [])}

    @cached_property
    def _tensors(self) -> dict:
        return {k: as_array(v) for k, v in artifacts.load_vectors(self.path).items()}

    def tensors(self) -> dict[str, np.ndarray]:
        """vectors.safetensors as float64 numpy arrays (loaded once)."""
        return self._tensors

    def condition_vectors(self) -> np.ndarray:
        """The 21 emotion vectors at the best layer [21, d] (a condition of the decomposition)."""
        return self.tensors()["vectors"][self.best_layer]

    def has_tensors(self) -> bool:
        return (self.path / "vectors.safetensors").exists()


@dataclass
class GenerationRun:
    path: Path
    meta: dict

    @property
    def kind(self) -> str:
        return self.path.name

    @property
    def slug(self) -> str:
        return self.path.parent.name

    @property
    def default_stimuli(self) -> bool:
        """On our shipped set (runs written before sets were recorded were)."""
        return bool((self.meta.get("stimuli") or {}).get("default", True))

    @property
    def stimuli_set(self) -> str:
        return stimuli_label(self.meta)

    @property
    def applied(self) -> dict[str, bool] | None:
        """The protocol switches the run applied (None: a run recorded before protocols)."""
        return (self.meta.get("protocol") or {}).get("applied")

    @property
    def protocols(self) -> list[str]:
        """The named protocols this run is a run of: a loose run by its decoding switch (recorded before
        protocols: top_k 50, i.e. ``corrected``); any other preset is the same under both."""
        return run_protocols({**self.meta, "kind": "generation", "preset": self.preset})

    def is_run_of(self, protocol) -> bool:
        """A loose run: did it apply the loose switch ``protocol`` sets? (Other presets: always.)"""
        return is_run_of({**self.meta, "kind": "generation", "preset": self.preset}, protocol)

    @property
    def at_preset(self) -> bool:
        """Run with its preset's own config under the protocol it applied (not a reduced budget or another
        departure)."""
        from repro.generation import PRESETS, preset, recorded_applied

        if self.preset not in PRESETS:
            return False
        applied = recorded_applied(self.preset, self.applied)
        return self.meta.get("generation_config") == preset(self.preset, applied=applied).to_dict()

    @property
    def preset(self) -> str:
        if self.meta.get("preset"):
            return str(self.meta["preset"])
        cfg = self.meta.get("config") or {}
        if cfg.get("preset"):
            return str(cfg["preset"])
        body = self.kind[len("generation-"):]
        return body.rsplit("-", 1)[0] if "-" in body else body

    @property
    def precision(self) -> str:
        p = self.meta.get("precision")
        return str(p) if p else self.kind.rsplit("-", 1)[-1]

    @property
    def hub_id(self) -> str:
        return (self.meta.get("model") or {}).get("hub_id") or self.slug

    @property
    def emotions(self) -> tuple[str, ...]:
        return tuple(self.meta.get("emotions") or ())

    def condition_vectors(self) -> np.ndarray:
        """The run's per-emotion vectors at its layer [20, d], in the order of ``emotions``."""
        v = as_array(artifacts.load_vectors(self.path)["vectors"])
        if v.shape[0] != len(self.emotions):
            raise ValueError(f"{self.path}: {v.shape[0]} vectors for {len(self.emotions)} emotions")
        return v

    def rdm(self, label: str | None = None) -> RDM:
        m = as_array([[np.nan if v is None else v for v in row] for row in self.meta["rdm"]])
        return RDM(m, self.emotions, self.hub_id, self.meta.get("layer"), None,
                   label or f"{short_name(self.hub_id)} gen-{self.preset}-{self.precision}",
                   (self.meta.get("model") or {}).get("family"), (self.meta.get("model") or {}).get("variant"),
                   "run", {"path": str(self.path), "preset": self.preset, "precision": self.precision})


# How Runs.primary picks the one run per model (said in the report next to the runs it picked).
PRIMARY_RULES = ("one run per model, picked by these rules in order: stimulus set '{stimuli}' first "
                 "(`--stimuli-set` to ask for another), a run of protocol '{protocol}' first (`--protocol`), "
                 "the paper's method before a run that departs from it, "
                 "dtype fp16 then bf16 then fp32, TransformerLens before HF hooks, then by folder name.")


@dataclass
class Runs:
    root: Path
    comprehension: list[ComprehensionRun] = field(default_factory=list)
    generation: list[GenerationRun] = field(default_factory=list)
    extras: dict[str, dict] = field(default_factory=dict)  # slug -> {"ablation":..., "steering":..., ...}
    skipped: list[str] = field(default_factory=list)  # unreadable run directories, with the reason

    def primary(self, config: AnalysisConfig | None = None) -> list[ComprehensionRun]:
        """One comprehension run per model, by explicit rules in this order (``PRIMARY_RULES``): the asked
        stimulus set (default: the shipped one) before any other; the paper's method (no recorded departure)
        before a departing run; dtype fp16, then bf16, fp32; TL before HF; then by name. Table A1 of the
        report marks the run each model used."""
        cfg = config or AnalysisConfig()
        want = cfg.stimuli_set or DEFAULT_SET
        wanted = cfg.wanted_protocol()

        def rank(r: ComprehensionRun):
            d = cfg.dtype_preference.index(r.dtype) if r.dtype in cfg.dtype_preference else 99
            b = cfg.backend_preference.index(r.backend) if r.backend in cfg.backend_preference else 99
            return (r.stimuli_set != want, not r.is_run_of(wanted), bool(r.meta.get("method_departures")),
                    d, b, r.kind)

        best: dict[str, ComprehensionRun] = {}
        for r in self.comprehension:
            if r.hub_id not in best or rank(r) < rank(best[r.hub_id]):
                best[r.hub_id] = r
        return sorted(best.values(), key=model_order_key)

    def generation_for(self, slug: str) -> list[GenerationRun]:
        return [g for g in self.generation if g.slug == slug]

    def slugs(self) -> list[str]:
        return sorted({r.slug for r in self.comprehension} | {g.slug for g in self.generation} | set(self.extras))

    @property
    def empty(self) -> bool:
        return not self.comprehension and not self.generation


def model_order_key(run) -> tuple:
    """Paper models in Table A1 order, then the embedded/other models by name."""
    from repro.models import PAPER_MODELS

    order = [m.hub_id for m in PAPER_MODELS]
    hub = getattr(run, "hub_id", str(run))
    return (order.index(hub) if hub in order else len(order), hub, getattr(run, "kind", ""))


EXTRA_FILES = {"ablation": "ablation.json", "steering": os.path.join("steering", "steering.json"),
               "equivalence": "equivalence.json", "decomposition": "decomposition.json"}


def collect(root=None) -> Runs:
    """Every finished run under ``<root>/runs`` (root = artifacts dir; default $EMOGEO_ARTIFACTS)."""
    base = artifacts_root(root)
    runs_root = base / "runs"
    out = Runs(base)
    if not runs_root.is_dir():
        return out
    for path in artifacts.list_runs(runs_root):
        try:
            meta = artifacts.load_metadata(path)
        except artifacts.ArtifactError as exc:
            out.skipped.append(f"{path}: {exc}")
            continue
        problem = layout_problem(path, meta)
        if problem:  # a folder of the old layout could pass for another config's run: refused
            out.skipped.append(f"{path}: {problem}")
            continue
        kind = meta.get("kind") or path.name.split("-", 1)[0]
        if kind == "comprehension" or path.name.startswith("comprehension-"):
            run, bucket = ComprehensionRun(path, meta), out.comprehension
        elif kind == "generation" or path.name.startswith("generation-"):
            run, bucket = GenerationRun(path, meta), out.generation
        else:
            continue
        if meta.get("rdm") is None or not meta.get("emotions"):
            out.skipped.append(f"{path}: metadata has no rdm/emotions")
            continue
        try:
            run.rdm()  # shape, label count and duplicate labels are checked here, once
        except (ValueError, TypeError) as exc:
            out.skipped.append(f"{path}: {exc}")
            continue
        bucket.append(run)
    for slug_dir in sorted(p for p in runs_root.iterdir() if p.is_dir()):
        found = {}
        for name, rel in EXTRA_FILES.items():
            f = slug_dir / rel
            if f.exists():
                data = _read_json(f)
                if data is None:
                    out.skipped.append(f"{f}: unreadable JSON")
                else:
                    found[name] = data
        if found:
            out.extras[slug_dir.name] = found
    out.comprehension.sort(key=model_order_key)
    out.generation.sort(key=lambda g: (g.slug, g.kind))
    return out
