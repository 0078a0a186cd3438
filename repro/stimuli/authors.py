"""Import the original study's stimuli from a local clone of the authors' repository.

The comprehension passages are a CSV; every other input (neutral sentences, story templates, neutral
topics and template, the loose per-emotion prompts, the steering scenarios) is a literal inside their
scripts. We read those literals by parsing the scripts with :mod:`ast` -- their code is never imported or
run -- at the places named in ``authors_digests.json`` (a data file beside this module), and check each
extracted list against the digest recorded there. The digest is over a canonical JSON serialisation of the
list, so an edit elsewhere in their files does not matter but a changed stimulus does. Each file's sha256
at the commit we read is recorded too, for information only.

The result is written as a named stimulus set (see :mod:`repro.stimuli.sets`) that every task takes with
``--stimuli-set authors``. Their files never enter this repository.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import subprocess
import time
from pathlib import Path

from . import GENERATION_EMOTIONS, StimulusError, _read_rows, load_comprehension
from .sets import LOOSE_PROMPTS, MANIFEST, STEERING_SCENARIOS, StimulusSet, resolve_set, sets_dir

RECORDED = Path(__file__).with_name("authors_digests.json")


def canonical_digest(value) -> str:
    """sha256 of the list's canonical JSON (key order as found, no whitespace, UTF-8)."""
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


# ------------------------------------------------------------------------------------ literal reading
def _literal(node: ast.AST, slot: str | None, where: str):
    """The value of a literal expression. An f-string becomes a template in which every replacement
    field is ``{slot}``; anything that is not a literal is refused (we never evaluate their code)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return -node.operand.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, slot, where) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise StimulusError(f"{where}: '**' in a dict literal is not supported")
        return {_literal(k, slot, where): _literal(v, slot, where) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.JoinedStr) and slot:
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant):
                parts.append(str(v.value).replace("{", "{{").replace("}", "}}"))
            elif isinstance(v, ast.FormattedValue) and v.conversion == -1 and v.format_spec is None:
                parts.append("{" + slot + "}")
            else:
                raise StimulusError(f"{where}: f-string field with a conversion or format spec is not supported")
        return "".join(parts)
    raise StimulusError(f"{where}: expected a literal, found {type(node).__name__} at line "
                        f"{getattr(node, 'lineno', '?')}")


def _find(tree: ast.Module, locator: str) -> ast.AST:
    """``NAME`` (a module-level assignment), ``FUNC.NAME`` (an assignment inside a function) or
    ``FUNC.return`` (the expression a function returns)."""
    scope_name, _, name = locator.rpartition(".")
    body = tree.body
    if scope_name:
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name == scope_name]
        if len(funcs) != 1:
            raise KeyError(f"function {scope_name}() found {len(funcs)} times")
        body = list(ast.walk(funcs[0]))
    hits = []
    for n in body:
        if name == "return" and isinstance(n, ast.Return) and n.value is not None:
            hits.append(n.value)
        elif isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name) \
                and n.targets[0].id == name:
            hits.append(n.value)
        elif isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.target.id == name and n.value:
            hits.append(n.value)
    if len(hits) != 1:
        raise KeyError(f"{locator} assigned {len(hits)} times (expected once)")
    return hits[0]


def _comprehension_rows(path: Path) -> list[list[str]]:
    """[emotion, passage_id, text] in file order, as read by our loader (which also validates it)."""
    rows = [[r["emotion"], r["passage_id"], r["text"]]
            for _, r in _read_rows(path, ("emotion", "passage_id", "text"), positional=True)]
    load_comprehension(path)  # the same file must also pass every check a run applies
    return rows


def read_lists(src: Path, recorded: dict) -> dict[str, object]:
    """Every list named in ``recorded["lists"]``, read from the clone at ``src``."""
    src = Path(src)
    trees: dict[str, ast.Module] = {}
    out: dict[str, object] = {}
    for key, spec in recorded["lists"].items():
        path = src / spec["file"]
        if not path.is_file():
            raise StimulusError(f"{path}: not found; DIR must be a clone of JihoonJeong/Neural-MRI "
                                f"(it needs {spec['file']})")
        if spec["locator"] == "csv":
            out[key] = _comprehension_rows(path)
            continue
        if spec["file"] not in trees:
            try:
                trees[spec["file"]] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            except SyntaxError as exc:
                raise StimulusError(f"{path}: cannot be parsed as Python ({exc.msg}, line {exc.lineno})") from None
        where = f"{path} ({spec['locator']})"
        try:
            node = _find(trees[spec["file"]], spec["locator"])
        except KeyError as exc:
            raise StimulusError(f"{path}: list {spec['locator']} ({key}) not found: {exc.args[0]}; "
                                "this is not the version of their script emogeo knows") from None
        value = _literal(node, spec.get("slot"), where)
        if isinstance(value, dict):
            value = [[k, v] for k, v in value.items()]
        out[key] = value
    return out


def check_lists(lists: dict, recorded: dict) -> None:
    """Each list must match its recorded digest; the error names the file and the list."""
    for key, spec in recorded["lists"].items():
        value = lists[key]
        n = len(value) if isinstance(value, list) else 1
        digest = canonical_digest(value)
        if digest != spec["sha256"]:
            raise StimulusError(
                f"{spec['file']}: list {spec['locator']} ({key}) differs from the version emogeo recorded "
                f"({n} items, sha256 {digest[:12]}; recorded {spec['count']} items, sha256 {spec['sha256'][:12]}); "
                f"a stimulus changed, so runs on it would not be the study's")


def record(src: Path, template: dict) -> dict:
    """A new recorded-digests document for the clone at ``src`` (maintainers: ``python -m
    repro.stimuli.authors --record DIR``)."""
    lists = read_lists(src, template)
    doc = {k: v for k, v in template.items() if k not in ("lists", "files")}
    doc["files"] = {f: {**template.get("files", {}).get(f, {}), "sha256": _sha256(Path(src) / f)}
                    for f in sorted({s["file"] for s in template["lists"].values()})}
    doc["lists"] = {k: {**s, "count": len(lists[k]) if isinstance(lists[k], list) else 1,
                        "sha256": canonical_digest(lists[k])} for k, s in template["lists"].items()}
    return doc


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _git_head(src: Path) -> str | None:
    try:
        r = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


# ------------------------------------------------------------------------------------------ writing
def _csv(header: tuple[str, ...], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def import_authors(src: str | Path, name: str = "authors", recorded: dict | None = None) -> StimulusSet:
    """Read, check and write the authors' stimuli as the set ``name``; returns it."""
    src = Path(src).expanduser()
    if not src.is_dir():
        raise StimulusError(f"{src}: not a directory; pass your local clone of JihoonJeong/Neural-MRI")
    recorded = recorded if recorded is not None else json.loads(RECORDED.read_text())
    lists = read_lists(src, recorded)
    check_lists(lists, recorded)
    neutral, neutral_hf = lists["neutral_sentences"], lists["neutral_sentences_hf"]
    if neutral[:len(neutral_hf)] != neutral_hf:
        raise StimulusError(f"{recorded['lists']['neutral_sentences_hf']['file']}: the HF path's neutral sentences "
                            "are not the first ones of the TransformerLens path's list")
    loose = dict(lists["loose_prompts"])
    missing = [e for e in GENERATION_EMOTIONS if e not in loose]
    if missing:
        raise StimulusError(f"{recorded['lists']['loose_prompts']['file']}: no loose prompt for {', '.join(missing)}")
    (template,) = [lists["neutral_template"]]
    files = {
        "comprehension.csv": _csv(("emotion", "passage_id", "text"), lists["comprehension"]),
        "neutral_sentences.csv": _csv(("sentence_id", "text"),
                                      [(f"a{i:02d}", s) for i, s in enumerate(neutral, 1)]),
        "generation_templates.csv": _csv(("template_id", "text"),
                                         [(f"t{i}", t) for i, t in enumerate(lists["generation_templates"], 1)]),
        "neutral_topics.csv": _csv(("topic_id", "text"),
                                   [(f"topic{i:02d}", t) for i, t in enumerate(lists["neutral_topics"], 1)]),
        "neutral_template.txt": template + "\n",
        LOOSE_PROMPTS: _csv(("emotion", "text"), [(e, loose[e]) for e in GENERATION_EMOTIONS]),
        STEERING_SCENARIOS: json.dumps(lists["steering_scenarios"], ensure_ascii=False, indent=2) + "\n",
    }
    manifest = {
        "schema": "emogeo.stimuli-set/1",
        "name": name,
        "source": {"repository": recorded.get("repository"), "clone": str(src.resolve()),
                   "git_head": _git_head(src),
                   "files": {f: {"sha256": _sha256(src / f), "recorded_sha256": r.get("sha256"),
                                 "recorded_commit": r.get("commit")}
                             for f, r in recorded.get("files", {}).items() if (src / f).is_file()}},
        "lists": {k: {"file": s["file"], "locator": s["locator"], "count": s["count"], "sha256": s["sha256"],
                      "matches_recorded": True} for k, s in recorded["lists"].items()},
        "notes": [
            "passages, neutral sentences, templates, topics, loose prompts and steering scenarios are the "
            "authors' (JihoonJeong/Neural-MRI), read by parsing their files; emogeo ships none of them",
            f"their HF-fallback anisotropy reads only the first {len(neutral_hf)} of the {len(neutral)} "
            "neutral sentences (compute_anisotropy_hf); neutral_sentences.csv holds all of them",
        ],
        "imported_unix": int(time.time()),
    }
    from ..artifacts import atomic_dir, write_json_atomic

    with atomic_dir(sets_dir() / name) as tmp:
        for fname, text in files.items():
            (tmp / fname).write_text(text, encoding="utf-8")
        write_json_atomic(tmp / MANIFEST, manifest)
    return resolve_set(name)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Print a recorded-digests document for a clone (maintainers).")
    ap.add_argument("--record", required=True, metavar="DIR")
    args = ap.parse_args(argv)
    print(json.dumps(record(Path(args.record), json.loads(RECORDED.read_text())), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
