"""How `invoke verify` shows its result: the terminal table (rich) and the report's markdown section."""
from __future__ import annotations

import sys

from .verify_model import FAIL, MISMATCH, NOT_RUN, PASS, VerifyResult


def fmt(v, width: int | None = None) -> str:
    if v is None:
        s = "-"
    elif isinstance(v, bool):
        s = str(v)
    elif isinstance(v, float):
        s = f"{v:.6g}"
    elif isinstance(v, dict):
        s = ", ".join(f"{k.split('/')[-1]}={fmt(x)}" for k, x in v.items())
    elif isinstance(v, (list, tuple)):
        s = "[" + ", ".join(fmt(x) for x in v) + "]"
    else:
        s = str(v)
    if width and len(s) > width:
        s = s[: width - 1] + "…"
    return s


def _summary_line(res: VerifyResult) -> str:
    s = res.summary
    return (f"{len(res.claims)} claims: {s[PASS]} PASS, {s[MISMATCH]} MISMATCH-IN-RELEASE, {s[NOT_RUN]} NOT RUN, "
            f"{s[FAIL]} FAIL; integrity {s['integrity']}; exit {res.exit_code}")


def markdown_section(results: VerifyResult | dict) -> str:
    """The verification section for the report (markdown)."""
    res = results if isinstance(results, dict) else results.to_dict()
    claims, integ = res["claims"], res["integrity"]
    L = ["## Verification of the paper's numbers (`invoke verify`)", ""]
    s = res["summary"]
    L.append(f"**{len(claims)} claims: {s[PASS]} PASS, {s[MISMATCH]} MISMATCH-IN-RELEASE, {s[NOT_RUN]} NOT RUN, "
             f"{s[FAIL]} FAIL; integrity {s['integrity']}; exit code {res['exit_code']}.**")
    L += ["", "Exit codes: 0 nothing failed, 1 a claim failed, 2 a checksum failed.", "",
          "### Tolerance policy", "",
          "Inputs and frozen references (the paper's numbers, the authors' released files) are checked by sha256: "
          "`checksums/reference.sha256` (and `checksums/runs.sha256` over the run artifacts, once written), and the "
          "released files against the sha256 in the authors' PROVENANCE.md. Regenerated floats are not bit-exact "
          "(fp16 on different hardware), so they are checked within tolerances: a printed number within half a unit "
          "of its last digit; the Section 3.5 size table recomputed from Table A1 to 3 decimals (p within 5%); runs vs "
          "Table A1 (fp16 runs only): best layer exact (+-1 passes but is flagged), anisotropy +-0.01, RDM std +-0.005; "
          "RSA from runs +-0.02; size correlations from runs +-0.05; decomposition from runs +-0.10 per layer with the "
          "L4-vs-L3 direction exact; cross-backend equivalence by emogeo's bar, cosine >= 0.9999 (the paper states "
          "no threshold). Every number a run reports is first recomputed from its saved tensors (+-1e-5). "
          "Embedded models are checked for integrity and equivalence only, never against paper values.", "",
          "Correlation signs: the paper's text lost the minus signs of the Section 3.5 size correlations; they are "
          "negative (recomputed from Table A1 and in the authors' n12 task3).", "",
          "### Integrity", "", "| manifest | path | status | detail |", "|---|---|---|---|"]
    for r in integ:
        L.append(f"| `{r['manifest']}` | {('`' + r['path'] + '`') if r['path'] else ''} | {r['status']} | {r['detail']} |")
    L += ["", "### Claims", "", "The claims, their tolerances and why: `analysis/claims.csv`.", "",
          "| claim | source | kind | expected | got | tolerance | status |", "|---|---|---|---|---|---|---|"]
    for c in claims:
        got = fmt(c["got"], 60) if c["status"] != NOT_RUN else f"`{c['command']}`" if c.get("command") else "-"
        L.append(f"| `{c['id']}` | {c['source']} | {c['kind']} | {fmt(c['expected'], 60)} | {got} | {c['tolerance']} "
                 f"| {c['status']} |".replace("\n", " "))
    findings = res.get("findings") or []
    release = [f for f in findings if not f["finding"].startswith("paper-internal")]
    internal = [f for f in findings if f["finding"].startswith("paper-internal")]
    if release:
        L += ["", "### Where the authors' released files disagree with the paper", ""]
        for f in release:
            L.append(f"- `{f['claim']}` ({f['source']}): paper {fmt(f['expected'])}, release {fmt(f['got'])}. {f['finding']}")
    if internal:
        L += ["", "### Paper-internal notes (the claim passes against the release)", ""]
        for f in internal:
            L.append(f"- `{f['claim']}` ({f['source']}): {f['finding'].split(': ', 1)[1]}")
    nr = [c for c in claims if c["status"] == NOT_RUN]
    if nr:
        L += ["", "### Claims that need model runs", ""]
        by_cmd: dict[str, list[str]] = {}
        for c in nr:
            by_cmd.setdefault(c.get("command") or "-", []).append(c["id"])
        for cmd, ids in by_cmd.items():
            L.append(f"- `{cmd}`: {', '.join('`' + i + '`' for i in ids)}")
    read = _runs_read(claims)
    if read:
        L += ["", "### Runs the claims read", "", (s.get("runs_rule") or "") + ".", "",
              "| run | claims |", "|---|---|"]
        L += [f"| `{run}` | {', '.join('`' + i + '`' for i in ids)} |" for run, ids in read.items()]
    fails = [c for c in claims if c["status"] == FAIL]
    if fails:
        L += ["", "### Failures", ""] + [f"- `{c['id']}`: {c['note']}" for c in fails]
    return "\n".join(L) + "\n"


def _runs_read(claims: list[dict]) -> dict[str, list[str]]:
    """run (or run file) -> the ids of the claims that read it, for the claims that were checked."""
    out: dict[str, list[str]] = {}
    for c in claims:
        if c["status"] != NOT_RUN:
            for run in c.get("runs") or []:
                out.setdefault(run, []).append(c["id"])
    return dict(sorted(out.items()))


def print_table(res: VerifyResult, file=None) -> None:
    """Terminal output: integrity, then the claims (rich if available)."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        out = file or sys.stdout
        for r in res.integrity:
            print(f"[{r['status']}] {r['manifest']} {r['path'] or ''} {r['detail']}", file=out)
        for c in res.claims:
            got = fmt(c["got"]) if c["status"] != NOT_RUN else (c.get("command") or "-")
            print(f"{c['status']:<20} {c['id']:<50} {c['kind']:<9} exp {fmt(c['expected'], 50)} got {got}", file=out)
        print(_summary_line(res), file=out)
        return
    con = Console(file=file, width=max(160, Console(file=file).width))
    colour = {PASS: "green", FAIL: "bold red", NOT_RUN: "yellow", MISMATCH: "magenta", "OK": "green",
              "NOT RUN": "yellow"}
    it = Table(title="Integrity (sha256)", show_lines=False)
    for col in ("manifest", "path", "status", "detail"):
        it.add_column(col)
    for r in res.integrity:
        it.add_row(r["manifest"], r["path"] or "", f"[{colour.get(r['status'], 'bold red')}]{r['status']}[/]", r["detail"])
    con.print(it)
    t = Table(title="Claims", show_lines=False)
    for col, kw in (("claim", {"overflow": "fold", "max_width": 48}), ("kind", {}), ("expected", {"max_width": 40}),
                    ("got", {"max_width": 52, "overflow": "fold"}), ("tolerance", {"max_width": 28}), ("status", {})):
        t.add_column(col, **kw)
    for c in res.claims:
        got = fmt(c["got"], 120) if c["status"] != NOT_RUN else f"→ {c.get('command') or '-'}"
        t.add_row(c["id"], c["kind"], fmt(c["expected"], 80), got, c["tolerance"],
                  f"[{colour[c['status']]}]{c['status']}[/]")
    con.print(t)
    if res.findings:
        con.print("[magenta]Released files vs the paper (registered findings):[/]")
        for f in res.findings:
            con.print(f"  • {f['claim']}: {f['finding']}", highlight=False)
    for c in res.claims:
        if c["status"] == FAIL:
            con.print(f"[bold red]FAIL[/] {c['id']}: {c['note']}", highlight=False)
    read = _runs_read(res.claims)
    if read:
        con.print(f"Runs read ({res.summary.get('runs_rule')}): " + ", ".join(read), highlight=False)
    con.print(_summary_line(res), highlight=False)


