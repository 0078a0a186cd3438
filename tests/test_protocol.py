"""Protocols (repro.protocol, docs/PROTOCOLS.md): named sets of switches, single flips, identity, records."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from repro import protocol as P

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOLS.md"


def test_paper_is_the_default_and_corrected_follows_the_text():
    paper, corrected = P.resolve_protocol(), P.resolve_protocol("corrected")
    assert paper.name == "paper" and corrected.name == "corrected"
    assert all(on for _, on in paper.switches)  # the authors' procedure: every departure as they did it
    # corrected switches every departure off, except post-centring, which is the paper's own analysis
    assert dict(corrected.switches) == {d.id: d.id == "decomposition_post_centring" for d in P.DEPARTURES}


def test_single_switches_flip_on_top_and_name_the_mix_custom():
    p = P.resolve_protocol("paper", "decomposition_post_centring=off")
    assert p.name == "custom" and not p.on("decomposition_post_centring")
    assert P.resolve_protocol("corrected", " hf_neutral_first10=on , ").name == "custom"
    assert P.resolve_protocol("corrected", "hf_neutral_first10=off").name == "corrected"  # no change
    with pytest.raises(P.ProtocolError, match="unknown quirk 'nope'.*hf_neutral_first10"):
        P.resolve_protocol("paper", "nope=on")
    with pytest.raises(P.ProtocolError, match="write ID=on or ID=off"):
        P.resolve_protocol("paper", "hf_neutral_first10")
    with pytest.raises(P.ProtocolError, match="unknown protocol 'faithful'"):
        P.resolve_protocol("faithful")


def test_a_pending_switch_changes_neither_numbers_nor_names():
    pending = [d for d in P.DEPARTURES if not d.implemented]
    for d in pending:
        paper = P.resolve_protocol("paper")
        assert not paper.on(d.id)  # asked for, not applied: emogeo runs the corrected behaviour
        assert d.id not in paper.identity(d.stage)
        rec = paper.record(d.stage)
        assert d.id in rec["pending"] and d.id not in rec["applied"] and rec["asked"][d.id] is True
        assert P.resolve_protocol("corrected").record(d.stage)["pending"] == []  # nothing asked that differs
    assert P.suffix("extraction-hf", P.resolve_protocol("paper").identity("extraction-hf")) == ""


def test_suffix_names_what_a_run_applied():
    stage = "analysis"  # the one stage with an implemented switch: post-centring, on in both protocols
    assert P.suffix(stage, {"decomposition_post_centring": True}) == ""
    off = P.suffix(stage, {"decomposition_post_centring": False})
    assert re.fullmatch(r"-q[0-9a-f]{8}", off)
    assert P.suffix(stage, None) == off  # before the switch existed: off


def test_the_doc_table_lists_every_departure_with_its_status():
    text = DOC.read_text()
    for d in P.DEPARTURES:
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{d.id}` |")), None)
        assert row is not None, f"{d.id} missing from docs/PROTOCOLS.md"
        assert ("done" in row.split("|")[-2]) == d.implemented, f"{d.id}: status in the doc disagrees with the code"
        assert d.where.split(" (")[0] in row


def test_which_named_protocols_a_run_is_a_run_of():
    both = {"hf_neutral_first10": True, "hf_last_layer_post_norm": True}
    assert P.run_protocols({"backend": "hf", "protocol": {"applied": both}}) == ["paper"]
    assert P.run_protocols({"backend": "hf"}) == ["corrected"]  # written before protocols: switches off
    assert P.run_protocols({"backend": "hf", "protocol": {"applied": {"hf_neutral_first10": True}}}) == []
    assert P.run_protocols({"backend": "tl"}) == ["corrected"]
    assert P.run_protocols({"backend": "tl", "protocol": {"applied": {"tl_to_tokens_bos": True}}}) == ["paper"]
    assert P.resolve_protocol().record("extraction-hf")["matches"] == ["paper"]


def test_reproduce_records_its_protocol_as_json():
    """reproduce.json writes the options: the protocol goes in by name and switches (CI once caught a raw
    Protocol object there)."""
    import json

    from repro import artifacts
    from emogeo.pipeline import ReproduceOptions, options_record

    for opt in (ReproduceOptions(), ReproduceOptions(protocol=P.resolve_protocol("corrected", "tl_to_tokens_bos=on"))):
        rec = json.loads(artifacts.dumps({"options": options_record(opt)}))["options"]["protocol"]
        assert rec["name"] == ("paper" if opt.protocol is None else "custom")
        assert set(rec["switches"]) == set(P.BY_ID)


def test_loose_preset_follows_the_protocol_and_names_its_run():
    from repro.generation import LOOSE_STAGE, generation_kind, preset
    from repro.layout import expected_name

    paper, corrected = P.resolve_protocol(), P.resolve_protocol("corrected")
    assert preset("loose").top_k is None and preset("loose", protocol=paper).top_k is None  # TL generate default
    assert preset("loose", protocol=corrected).top_k == 50  # the transformers default
    assert preset("loose").seed == preset("loose", protocol=corrected).seed  # both seeded (the documented exception)
    assert preset("loose", 12, protocol=corrected).replace(top_k=None) == preset("loose", 12)  # nothing else moves
    assert preset("protocol_matched", protocol=corrected) == preset("protocol_matched")  # greedy: no switch
    on, off = paper.identity(LOOSE_STAGE), corrected.identity(LOOSE_STAGE)
    assert on == {"loose_no_top_k_unseeded": True} and off == {"loose_no_top_k_unseeded": False}
    assert generation_kind("loose", "fp16", preset("loose", 12), None, on) == "generation-loose-fp16-tok12"
    assert generation_kind("loose", "fp16", preset("loose", 12, protocol=corrected), None, off) == \
        "generation-loose-fp16-tok12-corrected"
    # a loose run written before protocols (top_k 50, no record) is a corrected run, and is named so
    old = {"kind": "generation", "preset": "loose", "precision": "fp16",
           "generation_config": preset("loose", 12, protocol=corrected).to_dict()}
    assert expected_name(old) == "generation-loose-fp16-tok12-corrected"
    new = {**old, "generation_config": preset("loose", 12).to_dict(), "protocol": paper.record(LOOSE_STAGE)}
    assert expected_name(new) == "generation-loose-fp16-tok12"
    # a loose run records the switches of the comprehension run its best layer came from: they name it too
    both = {"loose_no_top_k_unseeded": True, "tl_to_tokens_bos": True}
    assert generation_kind("loose", "fp16", preset("loose"), None, both) == "generation-loose-fp16"
    mix = {"loose_no_top_k_unseeded": True, "tl_to_tokens_bos": False}  # paper decoding, corrected layer
    assert re.fullmatch(r"generation-loose-fp16-q[0-9a-f]{8}", generation_kind("loose", "fp16", preset("loose"),
                                                                              None, mix))
    run = {"kind": "generation", "preset": "loose", "protocol": {"applied": mix}}
    assert P.run_protocols(run) == [] and P.is_run_of(run, P.resolve_protocol("paper", "tl_to_tokens_bos=off"))
    assert not P.is_run_of(run, paper) and not P.is_run_of(run, corrected)
    # a protocol_matched run keeps its name under every protocol
    pm = {"kind": "generation", "preset": "protocol_matched", "precision": "int8",
          "generation_config": preset("protocol_matched", 32, 2).to_dict()}
    assert expected_name(pm) == "generation-protocol_matched-int8-tok32-rep2"


def test_the_loose_layer_comes_from_the_comprehension_run_of_the_same_protocol(tmp_path, monkeypatch):
    """find_comprehension_run: stimulus set, then protocol, then the Table A1 backend, then dtype."""
    import json

    from repro import artifacts
    from repro.generation import find_comprehension_run

    monkeypatch.setenv("EMOGEO_ARTIFACTS", str(tmp_path))
    model = {"hub_id": "Qwen/Qwen2.5-1.5B", "paper_backend": "TL"}
    runs = {  # name -> (backend, dtype, applied)
        "comprehension-fp16-hf": ("hf", "fp16", {"hf_neutral_first10": True, "hf_last_layer_post_norm": True}),
        "comprehension-fp16-hf-corrected": ("hf", "fp16", {"hf_neutral_first10": False,
                                                           "hf_last_layer_post_norm": False}),
        "comprehension-fp32-tl": ("tl", "fp32", {"tl_to_tokens_bos": True}),
        "comprehension-fp32-tl-corrected": ("tl", "fp32", {"tl_to_tokens_bos": False}),
    }
    for name, (backend, dtype, applied) in runs.items():
        artifacts.write_json_atomic(artifacts.run_dir("qwen", name) / "metadata.json", {
            "kind": "comprehension", "backend": backend, "dtype": dtype, "model": model,
            "protocol": {"applied": applied}})
    pick = lambda proto: find_comprehension_run("qwen", protocol=P.resolve_protocol(proto)).name  # noqa: E731
    assert pick("paper") == "comprehension-fp32-tl"  # Table A1 backend before dtype
    assert pick("corrected") == "comprehension-fp32-tl-corrected"
    assert find_comprehension_run("qwen").name == "comprehension-fp32-tl"  # default: paper
    model.update(paper_backend="HF")
    for name in runs:
        path = artifacts.run_dir("qwen", name) / "metadata.json"
        artifacts.write_json_atomic(path, {**json.loads(path.read_text()), "model": model})
    assert pick("paper") == "comprehension-fp16-hf" and pick("corrected") == "comprehension-fp16-hf-corrected"
