"""Render the compliance report's JSON document as Markdown and as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path

import jinja2

HTML_TEMPLATE = Path(__file__).resolve().parent / "report.html.j2"
# Status -> the sentence an auditor reads first. Order is the summary's order.
STATUS_MEANING = {
    "met": "a test passed against live hosts and none failed",
    "failed": "a test for the clause failed or errored",
    "not proven": "no test passed against live hosts",
    "measured": "a measurement on the running cluster exists",
    "not measured": "a measure clause without a measurement yet",
    "support": "the kit helps; the operator must add the rest",
    "organisational": "out of the software's reach; the operator supplies it",
}


def markdown_cell(text: object) -> str:
    """Return text that stays inside one Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def run_sentence(report: dict) -> str:
    run = report["run"]
    if not run["found"]:
        return f"No test run found: `{run['junit']}` does not exist."
    inventories = ", ".join(f"`{path}`" for path in run["inventories"]) or "an unrecorded inventory"
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in sorted(run["outcomes"].items()))
    return (
        f"Tests from `{run['junit']}` started {run['started'] or 'at an unknown time'} on"
        f" {run['machine'] or 'an unknown machine'} against {inventories}:"
        f" {run['tests']} tests ({run['live_tests']} against live hosts), {outcomes or 'none'}."
    )


def inventory_lines(inventory: dict) -> list[str]:
    lines = [f"Inventory `{inventory['path']}`:"]
    if inventory["error"]:
        lines += ["", "```", inventory["error"], "```"]
    for host in inventory["hosts"]:
        lines.append(f"- {host['name']} ({host['address']}): {', '.join(host['roles'])}")
    return lines


def clause_lines(clause: dict) -> list[str]:
    lines = [
        f"### {clause['id']}: {clause['text']}",
        "",
        f"Kind: {clause['kind']}. Status: **{clause['status']}**. {clause['explanation']}",
        "",
    ]
    if clause["settings"]:
        lines.append("Settings:")
        for setting in clause["settings"]:
            hosts = f" on {', '.join(setting['hosts'])}" if setting["hosts"] else ""
            lines.append(
                f"- `{setting['setting']}` ({setting['source']}{hosts}): {setting['purpose']}"
            )
        lines.append("")
    if clause["tests"]:
        lines.append("Tests:")
        for test in clause["tests"]:
            message = f": {test['message']}" if test["message"] else ""
            lines.append(f"- {test['outcome']} ({test['proof']}) `{test['test']}`{message}")
        lines.append("")
    return lines


def render_markdown(report: dict) -> str:
    """Render the report as Markdown: a summary, a table of clauses, then each clause."""
    lines = [
        "# Compliance report",
        "",
        f"Generated {report['generated']}. {run_sentence(report)}",
        "",
        *inventory_lines(report["inventory"]),
        "",
        "| status | clauses | meaning |",
        "|---|---|---|",
    ]
    for status, meaning in STATUS_MEANING.items():
        lines.append(f"| {status} | {report['summary'].get(status, 0)} | {meaning} |")
    lines += ["", "| clause | kind | status | what it asks |", "|---|---|---|---|"]
    for clause in report["clauses"]:
        cells = (clause["id"], clause["kind"], clause["status"], clause["text"])
        lines.append("| " + " | ".join(markdown_cell(cell) for cell in cells) + " |")
    lines += ["", "## Clauses", ""]
    for clause in report["clauses"]:
        lines += clause_lines(clause)
    if report["unknown_clause_ids"]:
        lines += ["## Clause ids not in the registry", ""]
        for unknown in report["unknown_clause_ids"]:
            lines.append(f"- `{unknown['id']}`: {', '.join(unknown['where'])}")
        lines.append("")
    return "\n".join(lines)


def render_html(report: dict) -> str:
    """Render the report as one HTML page with inline CSS and no external assets."""
    environment = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    template = environment.from_string(HTML_TEMPLATE.read_text(encoding="utf-8"))
    return template.render(
        report=report, run_sentence=run_sentence(report), status_meaning=STATUS_MEANING
    )
