"""Protocols: the procedure that produced the published numbers (``paper``, the default) or the paper's text
(``corrected``).

The procedure behind the published numbers departs from the paper's text in a few places. Each such place
is one ``Departure`` below; docs/PROTOCOLS.md is the same table for readers, with what each one changes.
A protocol gives each departure's switch a value. ``--protocol paper|corrected`` chooses a named set of
values, and ``--quirk ID=on|off[,ID=on|off]`` flips single switches on top of it.

Only what a run actually applied goes into its identity (``Protocol.identity(stage)``): the switches of
its stage that are implemented. A switch still marked pending never changes a number, so it never changes
a run's name either. Every artifact records the protocol it was asked for, what was applied, and what is
still pending.
"""
from __future__ import annotations

from dataclasses import dataclass

# Stages a departure can change; a run belongs to one.
STAGES = ("extraction-hf", "extraction-tl", "generation-loose", "steering", "analysis")
PROTOCOL_NAMES = ("paper", "corrected")


@dataclass(frozen=True)
class Departure:
    id: str
    stage: str
    authors: str  # what the authors' code does (the switch on)
    where: str  # where in their code
    corrected_on: bool  # the switch under `corrected` (True where the departure IS the paper's analysis)
    implemented: bool  # False: emogeo cannot do it yet and runs the corrected behaviour, said in the record


DEPARTURES: tuple[Departure, ...] = (
    Departure("decomposition_post_centring", "analysis",
              "each condition's vectors centred over all of its own emotions before its RDM, then restricted "
              "to the shared emotions", "paper5/analysis/finding8_3layer.py (compare, post_center)",
              corrected_on=True, implemented=True),
    Departure("hf_neutral_first10", "extraction-hf",
              "anisotropy baseline from the first 10 of the 20 neutral sentences",
              "scripts/paper5_extract.py (compute_anisotropy_hf)", corrected_on=False, implemented=True),
    Departure("hf_last_layer_post_norm", "extraction-hf",
              "the last layer read after the final norm (hidden_states[-1])",
              "scripts/paper5_extract.py (extract_vectors_hf)", corrected_on=False, implemented=True),
    Departure("tl_to_tokens_bos", "extraction-tl",
              "texts tokenised with TransformerLens to_tokens (its per-model prepend-BOS default)",
              "scripts/paper5_extract.py (extract_vectors_at_layer, compute_anisotropy)",
              corrected_on=False, implemented=True),
    # The switch applies "no top_k". It does not apply "no seed": an unseeded draw is one draw of a seed
    # nobody wrote down, so emogeo keeps its recorded fixed seed under both protocols (docs/PROTOCOLS.md).
    # Steering (the regime descriptor): the authors' classify_steering_regime, TL only in their run.
    Departure("steer_best_vector_every_layer", "steering",
              "the best layer's unit vector (v / (|v| + 1e-8)) added at every layer's resid_post",
              "scripts/paper5_extract.py (classify_steering_regime)", corrected_on=False, implemented=True),
    Departure("steer_live_norm_all_positions", "steering",
              "scaled by strength x the mean L2 norm, over every position (BOS included), of the activation "
              "being steered, recomputed on the whole sequence at every new token",
              "scripts/paper5_extract.py (classify_steering_regime, make_hook)", corrected_on=False,
              implemented=True),
    Departure("steer_to_tokens_20", "steering",
              "prompt tokenised with TransformerLens to_tokens (BOS prepended by default); 20 greedy new tokens, "
              "stopping at the tokenizer's EOS",
              "scripts/paper5_extract.py (classify_steering_regime)", corrected_on=False, implemented=True),
    Departure("steer_regime_first200_whitespace", "steering",
              "regime judged from each text's first 200 characters, words split on whitespace",
              "scripts/paper5_extract.py (classify_steering_regime, _has_repetition)", corrected_on=False,
              implemented=True),
    Departure("loose_no_top_k_unseeded", "generation-loose",
              "loose generation sampled with TransformerLens generate defaults: no top_k, no seed "
              "(emogeo applies no top_k and keeps its recorded seed)",
              "scripts/paper5_extract.py (extract_vectors_generation)", corrected_on=False, implemented=True),
)
BY_ID = {d.id: d for d in DEPARTURES}


class ProtocolError(ValueError):
    """A protocol or quirk the user named does not exist or is malformed (one line naming the fix)."""


@dataclass(frozen=True)
class Protocol:
    switches: tuple[tuple[str, bool], ...]  # every departure id with its value, in DEPARTURES order

    def on(self, departure_id: str) -> bool:
        """Is the departure applied? (asked for AND implemented)."""
        d = BY_ID[departure_id]
        return dict(self.switches)[departure_id] and d.implemented

    @property
    def name(self) -> str:
        """``paper`` or ``corrected`` when the switches are exactly one of them, else ``custom``."""
        for name in PROTOCOL_NAMES:
            if self.switches == named(name).switches:
                return name
        return "custom"

    def to_dict(self) -> dict:
        return {"name": self.name, "switches": dict(self.switches)}

    def identity(self, stage: str) -> dict[str, bool]:
        """What changes the numbers of a run of ``stage``: its implemented switches (empty when none)."""
        return {d.id: dict(self.switches)[d.id] for d in DEPARTURES if d.stage == stage and d.implemented}

    def record(self, stage: str, applied: dict[str, bool] | None = None) -> dict:
        """What an artifact of ``stage`` writes down: asked, applied (default: this protocol's switches of
        the stage; a run that read another run adds that run's), the named protocols the run is a run of
        (``matches``), and what was asked but is pending."""
        asked = dict(self.switches)
        applied = self.identity(stage) if applied is None else applied
        return {"name": self.name, "asked": asked, "applied": applied, "matches": matching(stage, applied),
                "pending": [d.id for d in DEPARTURES if d.stage == stage and not d.implemented
                            and asked[d.id] != d.corrected_on]}


def named(name: str) -> Protocol:
    if name not in PROTOCOL_NAMES:
        raise ProtocolError(f"unknown protocol {name!r}: use --protocol paper (the published numbers' "
                            "procedure, the default) or --protocol corrected (the paper's text)")
    return Protocol(tuple((d.id, True if name == "paper" else d.corrected_on) for d in DEPARTURES))


def resolve_protocol(name: str | None = None, quirks: str | None = None) -> Protocol:
    """``name`` (default ``paper``) with ``quirks`` ("ID=on|off,...") flipped on top."""
    base = dict(named(name or "paper").switches)
    for item in filter(None, (q.strip() for q in (quirks or "").split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip().lower()
        if key not in BY_ID:
            raise ProtocolError(f"unknown quirk {key!r} in --quirk; known: {', '.join(BY_ID)}")
        if not sep or value not in ("on", "off"):
            raise ProtocolError(f"--quirk {item!r}: write ID=on or ID=off (e.g. --quirk {key}=off)")
        base[key] = value == "on"
    return Protocol(tuple((d.id, base[d.id]) for d in DEPARTURES))


def stages_of(stage: str, applied: dict[str, bool] | None) -> tuple[str, ...]:
    """The stages whose switches reach a run of ``stage``: its own, and those of the runs it read, whose
    switches it records in ``applied`` (a loose run reads its best layer from a comprehension run)."""
    return (stage,) + tuple(sorted({BY_ID[k].stage for k in (applied or {}) if k in BY_ID} - {stage}))


def normalised_applied(stage: str, applied: dict[str, bool] | None) -> dict[str, bool]:
    # Switches missing from a record count as off: that is what emogeo did before the switch existed.
    stages = stages_of(stage, applied)
    return {d.id: bool((applied or {}).get(d.id, False)) for d in DEPARTURES if d.stage in stages and d.implemented}


def identity_for(protocol: Protocol, stage: str, applied: dict[str, bool] | None) -> dict[str, bool]:
    """What ``protocol`` sets for every switch that reaches a run of ``stage`` recording ``applied``."""
    stages = stages_of(stage, applied)
    return {k: v for s in stages for k, v in protocol.identity(s).items()}


def matching(stage: str, applied: dict[str, bool] | None) -> list[str]:
    """The named protocols a run of ``stage`` that applied ``applied`` is a run of (empty: a custom mix)."""
    got = normalised_applied(stage, applied)
    return [name for name in PROTOCOL_NAMES if identity_for(named(name), stage, applied) == got]


def run_stage(meta: dict) -> str | None:
    """The stage a run's metadata belongs to: ``extraction-<backend>`` for a comprehension run,
    ``generation-loose`` for a loose generation run, ``steering``; None for a run no switch changes
    (protocol_matched)."""
    if meta.get("kind") == "generation":
        preset = meta.get("preset") or (meta.get("config") or {}).get("preset")
        return "generation-loose" if preset == "loose" else None
    if meta.get("kind") == "steering":
        return "steering"
    return f"extraction-{meta.get('backend')}"


def run_applied(meta: dict) -> dict[str, bool]:
    """A run's implemented switches with their values (absent from an old record: off)."""
    stage = run_stage(meta)
    return normalised_applied(stage, (meta.get("protocol") or {}).get("applied")) if stage else {}


def run_protocols(meta: dict) -> list[str]:
    """The named protocols a run's metadata makes it a run of (runs written before protocols were recorded:
    judged by what emogeo did then, every switch off; a run no switch changes: both)."""
    stage = run_stage(meta)
    return matching(stage, (meta.get("protocol") or {}).get("applied")) if stage else list(PROTOCOL_NAMES)


def is_run_of(meta: dict, protocol: Protocol) -> bool:
    """Did the run apply exactly the switches that ``protocol`` sets, of its stage and of what it read?"""
    stage = run_stage(meta)
    applied = (meta.get("protocol") or {}).get("applied")
    return stage is None or run_applied(meta) == identity_for(protocol, stage, applied)


def run_protocol_label(meta: dict) -> str:
    """``paper``, ``corrected``, ``paper = corrected`` (a run both would make) or ``custom``."""
    return " = ".join(run_protocols(meta)) or "custom"


def suffix(stage: str, applied: dict[str, bool] | None) -> str:
    """Run-folder suffix for what a run applied: none for the paper's procedure (the default),
    ``-corrected`` for the paper's text, ``-q<hash8>`` for any other mix. Switches missing from
    ``applied`` count as off: that is what emogeo did before the switch existed."""
    from .artifacts import config_hash

    got = normalised_applied(stage, applied)
    if got == identity_for(named("paper"), stage, applied):
        return ""
    if got == identity_for(named("corrected"), stage, applied):
        return "-corrected"
    return f"-q{config_hash(got)[:8]}"


def table_markdown() -> str:
    """The departures as a Markdown table (docs/PROTOCOLS.md carries the longer version)."""
    rows = ["| id | stage | the authors' code (`paper`) | where | `corrected` | implemented |", "|---|---|---|---|---|---|"]
    for d in DEPARTURES:
        rows.append(f"| `{d.id}` | {d.stage} | {d.authors} | `{d.where}` | {'on' if d.corrected_on else 'off'} | "
                    f"{'yes' if d.implemented else 'pending'} |")
    return "\n".join(rows)
