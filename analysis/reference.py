"""The paper's published numbers and the authors' released numeric outputs, as frozen reference data.

Everything lives under ``artifacts/reference/`` (``REFERENCE_DIR``) and is covered by
``checksums/reference.sha256``:

- ``paper_numbers.json``: numbers printed in the paper, one entry per number (or per table row), each
  ``{"id", "value", "source", ...}`` where ``source`` names the section or table it was read from.
  Correlations that the text extraction printed without a minus sign carry their true sign (see the
  file's ``conventions``).
- ``released/``: byte-exact copies of the authors' released JSON files (JihoonJeong/Neural-MRI, relative
  paths kept), ``released/PROVENANCE.md`` (how they were obtained) and ``released/PROVENANCE.json``
  (per file: source repo, path, commit, bytes, sha256, parsed from the PROVENANCE.md table).

These are reference numbers to verify against, never inputs to a computation.

Every loader takes an optional ``ref_dir`` so that tests can point it at a copy.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR: Path = REPO / "artifacts" / "reference"
PAPER_NUMBERS = "paper_numbers.json"
RELEASED = "released"
SOURCE_REPO = "JihoonJeong/Neural-MRI"

TABLE_A1_KEYS = ("row", "hub_id", "family", "variant", "size_b", "n_layers", "d_model", "backend", "best_layer",
                 "best_layer_pct", "anisotropy", "rdm_std")

N12_FILE = "paper5/analysis/n12_output/n12_analysis_results.json"
FINDING8_FILE = "paper5/analysis/finding8_3layer_output/finding8_3layer_results.json"
CROSS_BACKEND_FILE = "paper5/analysis/h2_pilot/cross_backend_test.json"
H2_PILOT_FILE = "paper5/analysis/h2_pilot/h2_pilot_results.json"
MTI_FILES = {
    "Qwen/Qwen2.5-1.5B-Instruct": {"B": "paper5/data/mti/compliance_b/compliance_b_qwen2.5_1.5b.json",
                                   "D": "paper5/data/mti/compliance_d/compliance_d_qwen2.5_1.5b.json"},
    "meta-llama/Llama-3.2-3B-Instruct": {"B": "paper5/data/mti/compliance_b/compliance_b_llama3.2_3b.json",
                                         "D": "paper5/data/mti/compliance_d/compliance_d_llama3.2_3b.json"},
}

# Labels of the released n12 RDM-of-RDMs -> the model each one actually holds. "Mistral7B-B" is
# Mistral-7B-v0.1 (its anisotropy 0.4804 and best-layer 8/32 = 25.0% are those of the released
# mistralai_Mistral-7B-v0.1/metadata.json), not the v0.3 base of Table A1 (see PROVENANCE.md, Appendix A.4).
N12_LABEL_HUB_IDS: dict[str, str] = {
    "Qwen1.5B-I": "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen1.5B-B": "Qwen/Qwen2.5-1.5B",
    "SmolLM1.7B-I": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "SmolLM1.7B-B": "HuggingFaceTB/SmolLM2-1.7B",
    "Llama3.2-3B-I": "meta-llama/Llama-3.2-3B-Instruct",
    "Llama3.2-3B-B": "meta-llama/Llama-3.2-3B",
    "Gemma1B-IT": "google/gemma-3-1b-it",
    "Gemma1B-PT": "google/gemma-3-1b-pt",
    "Mistral7B-B": "mistralai/Mistral-7B-v0.1",
    "Mistral7B-I": "mistralai/Mistral-7B-Instruct-v0.3",
    "Llama3.1-8B-B": "meta-llama/Llama-3.1-8B",
    "Llama3.1-8B-I": "meta-llama/Llama-3.1-8B-Instruct",
}
# Table A1 hub id -> the n12 label that stands in for it (row 9, the v0.3 base, is stood in for by v0.1).
N12_ROLE: dict[str, str] = {h: lab for lab, h in N12_LABEL_HUB_IDS.items()}
N12_ROLE["mistralai/Mistral-7B-v0.3"] = N12_ROLE.pop("mistralai/Mistral-7B-v0.1")


def _dir(ref_dir: Path | None) -> Path:
    return Path(ref_dir) if ref_dir is not None else REFERENCE_DIR


def released_dir(ref_dir: Path | None = None) -> Path:
    return _dir(ref_dir) / RELEASED


def load_released(relpath: str, ref_dir: Path | None = None):
    """A released JSON file by its path in the authors' repository (NaN/Infinity tokens accepted)."""
    return json.loads((released_dir(ref_dir) / relpath).read_text(encoding="utf-8"))


# ---- the paper -------------------------------------------------------------------------------------

def load_paper_numbers(ref_dir: Path | None = None) -> dict:
    """The whole ``paper_numbers.json`` (keys ``schema``, ``paper``, ``conventions``, ``numbers``)."""
    return json.loads((_dir(ref_dir) / PAPER_NUMBERS).read_text(encoding="utf-8"))


def paper_number(number_id: str, ref_dir: Path | None = None) -> dict:
    """One entry of ``paper_numbers.json`` by id (KeyError if absent)."""
    for entry in load_paper_numbers(ref_dir)["numbers"]:
        if entry["id"] == number_id:
            return entry
    raise KeyError(number_id)


def paper_numbers_by_id(ref_dir: Path | None = None) -> dict[str, dict]:
    return {e["id"]: e for e in load_paper_numbers(ref_dir)["numbers"]}


def table_a1(ref_dir: Path | None = None) -> list[dict]:
    """Table A1, the twelve models in the paper's row order."""
    rows = [e["value"] for e in load_paper_numbers(ref_dir)["numbers"] if e["source"] == "Table A1"]
    rows = sorted(rows, key=lambda r: r["row"])
    return [{k: r[k] for k in TABLE_A1_KEYS} for r in rows]


def size_table(ref_dir: Path | None = None) -> list[dict]:
    """Section 3.5's size table with signed Spearman rho (the paper's text lost the minus signs)."""
    out = []
    for e in load_paper_numbers(ref_dir)["numbers"]:
        if e["id"].startswith("S3.5.size_table."):
            v = e["value"]
            out.append({"predictor": v["predictor"], "outcome": v["outcome"], "rho": v["rho"], "p": v["p"],
                        "source": e["source"]})
    return out


def decomposition(ref_dir: Path | None = None) -> dict:
    """Section 4.3's four-layer table: {hub_id: {"L1_A_vs_C", "L2_B_vs_C", "L3_C_vs_D", "L4_A_vs_D"}}."""
    out = {}
    for e in load_paper_numbers(ref_dir)["numbers"]:
        if e["id"].startswith("S4.3.decomposition."):
            out[e["models"][0]] = dict(e["value"])
    return out


def mti_scores(ref_dir: Path | None = None) -> dict:
    """Section 2.7 / 3.2 MTI Compliance facets: {hub_id: {"B": flip rate, "D": mean compliance}}."""
    out = {}
    for e in load_paper_numbers(ref_dir)["numbers"]:
        if e["id"].startswith("S2.7.mti."):
            out[e["models"][0]] = {"B": e["value"]["B"], "D": e["value"]["D"]}
    return out


# ---- the authors' release --------------------------------------------------------------------------

def released_rdm_of_rdms(ref_dir: Path | None = None) -> tuple[list[str], np.ndarray]:
    """Labels and the 12x12 Spearman matrix of the released n12 task1 (labels: see ``N12_LABEL_HUB_IDS``)."""
    task1 = load_released(N12_FILE, ref_dir)["task1_rdm_of_rdms"]
    labels = list(task1["models"])
    mat = np.asarray(task1["rho_matrix"], dtype=float)
    if mat.shape != (len(labels), len(labels)):
        raise ValueError(f"released RDM-of-RDMs is {mat.shape}, labels {len(labels)}")
    return labels, mat


def released_metadata(hub_id: str, ref_dir: Path | None = None) -> dict | None:
    """The released per-model ``metadata.json`` (scripts/paper5_output/<slug>/), or None if not released."""
    slug = hub_id.replace("/", "_")
    p = released_dir(ref_dir) / "scripts" / "paper5_output" / slug / "metadata.json"
    if not p.exists():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def released_provenance(ref_dir: Path | None = None) -> dict:
    return json.loads((released_dir(ref_dir) / "PROVENANCE.json").read_text(encoding="utf-8"))


# ---- building released/ from the read-only source tree --------------------------------------------

# Which released files are copied: every numeric JSON, except the MTI files other than the four
# Compliance B/D files of the two Section 3.2 models, and except the prose story samples.
def _wanted(relpath: str) -> bool:
    if not relpath.endswith(".json"):
        return False
    if relpath.endswith("emotion_stories_sample.json"):
        return False
    if relpath.startswith("paper5/data/mti/"):
        return relpath in {f for files in MTI_FILES.values() for f in files.values()}
    return True


_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([0-9a-f]{40})`\s*\|\s*(\d+)\s*\|\s*`([0-9a-f]{64})`\s*\|")


def parse_provenance_md(text: str) -> dict[str, dict]:
    """The file table of PROVENANCE.md: {path: {"commit", "bytes", "sha256"}}."""
    out = {}
    for line in text.splitlines():
        m = _ROW.match(line.strip())
        if m:
            out[m.group(1)] = {"commit": m.group(2), "bytes": int(m.group(3)), "sha256": m.group(4)}
    return out


def sync_released(source: Path, ref_dir: Path | None = None) -> list[str]:
    """Copy the wanted released files from ``source`` (e.g. /work/shared/reference/neural-mri) into
    ``released/``, byte for byte, and write PROVENANCE.md + PROVENANCE.json. Every copy must match the
    sha256 in PROVENANCE.md. Returns the copied relative paths."""
    from repro.artifacts import write_json_atomic

    source = Path(source)
    dest = released_dir(ref_dir)
    table = parse_provenance_md((source / "PROVENANCE.md").read_text(encoding="utf-8"))
    copied = []
    for p in sorted(source.rglob("*.json")):
        rel = p.relative_to(source).as_posix()
        if not _wanted(rel):
            continue
        if rel not in table:
            raise ValueError(f"{rel}: not listed in PROVENANCE.md")
        data = p.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != table[rel]["sha256"] or len(data) != table[rel]["bytes"]:
            raise ValueError(f"{rel}: sha256/size differs from PROVENANCE.md")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
        copied.append(rel)
    shutil.copyfile(source / "PROVENANCE.md", dest / "PROVENANCE.md")
    write_json_atomic(dest / "PROVENANCE.json", {
        "schema": "emogeo.released_provenance/1",
        "source_repo": SOURCE_REPO,
        "note": "parsed from PROVENANCE.md's file table; only the files copied here are listed",
        "files": [{"path": rel, "source_repo": SOURCE_REPO, "commit": table[rel]["commit"],
                   "bytes": table[rel]["bytes"], "sha256": table[rel]["sha256"]} for rel in copied],
    })
    return copied
