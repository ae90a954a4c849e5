"""Write the latest figures from bench/results/*.json into README.md.

The tables sit between ``<!-- bench:start -->`` and ``<!-- bench:end -->``; everything
else in the README is left alone. A benchmark without a results file is listed as not
yet run rather than left out, so a reader sees what was and was not measured.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine(result: dict[str, Any]) -> str:
    m = result.get("machine")
    if isinstance(m, str):
        return m
    if not isinstance(m, dict):
        return "unknown machine"
    parts = [f"{m.get('cores', '?')} cores"]
    if m.get("cpu"):
        parts.append(str(m["cpu"]))
    if m.get("python"):
        parts.append(f"Python {m['python']}")
    if m.get("loadavg_before"):
        parts.append(f"load average before {m['loadavg_before'][0]}")
    return ", ".join(parts)


def when(result: dict[str, Any]) -> str:
    return str(result.get("timestamp") or result.get("measured_at") or "?")[:16].replace("T", " ")


def api_section(r: dict[str, Any]) -> list[str]:
    peer = r.get("peer") or {}
    out = [
        f"**Ticket API** ({r['load']}; {when(r)} UTC, {machine(r)}). "
        f"Peer: {peer.get('source', 'not measured')}.",
        "",
        "| scenario | kefu SQLite | kefu PostgreSQL | django-helpdesk | kefu ÷ peer |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("create", "get", "list", "list_filtered"):
        cells = []
        for backend in ("sqlite", "postgresql"):
            k = r["kefu"].get(backend, {}).get(name)
            cells.append(
                f"{k['rps']:.0f} req/s, p50 {k['p50_ms']:.0f} ms, p99 {k['p99_ms']:.0f} ms"
                if k
                else "–"
            )
        p = peer.get(name)
        cells.append(f"{p['rps']:.1f} req/s, p99 {p['p99_ms']:.0f} ms" if p else "–")
        k = r["kefu"].get("sqlite", {}).get(name)
        cells.append(f"{k['rps'] / p['rps']:.1f}×" if k and p and p.get("rps") else "–")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    tickets = r["kefu"].get("sqlite", {}).get("tickets_in_db")
    if tickets:
        out += ["", f"Reads run against {tickets:,} tickets."]
    return out


def chat_section(r: dict[str, Any]) -> list[str]:
    idle = r["idle"]
    out = [
        f"**Live chat** ({r['client']}; kefu on {r['database']}, every message stored "
        f"before its ack; {when(r)} UTC, {machine(r)}). Highest offered rate it kept up with: "
        f"**{r['messages_per_s']} messages/s**, contact→agent p50 {r['p50_ms']} ms, p99 "
        f"{r['p99_ms']} ms. Ceiling, the bare Starlette relay with no storage "
        f"({r['ceiling'] or 'its README'}): {r['ceiling_messages_per_s']:,.0f} messages/s; "
        f"ratio {r.get('ratio', '–')}. Idle sockets: {idle['open_sockets']:,} of "
        f"{idle['target']:,} open, {idle['kb_per_idle_socket']} KB each. Acknowledged "
        f"{r['acked_total']:,}; stored {r['stored_total']:,} contact messages (also each "
        f"chat's opening, and messages acknowledged after a phase's wait ended); lost "
        f"{r['lost']}.",
        "",
        "| offered/s | delivered/s | p50 ms | p99 ms | ack p50 ms | ack p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in r["rate"]:
        out.append(
            f"| {run['offered_per_s']} | {run['messages_per_s']} | {run['p50_ms']} | "
            f"{run['p99_ms']} | {run['ack_p50_ms']} | {run['ack_p99_ms']} | {run['errors']} |"
        )
    return out


def search_section(r: dict[str, Any]) -> list[str]:
    out = [
        f"**Help-center search** ({r['dataset']}; {r['latency']}; {when(r)} UTC, "
        f"{machine(r)}). Import of the whole set: {r['import_seconds']} s.",
        "",
        "| engine | split | MRR@10 | R@1 | R@5 | p50 ms | p95 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for engine in ("kefu", "baseline"):
        for split in ("tune", "held-out", "all"):
            s = r[engine][split]
            out.append(
                f"| {engine} | {split} | {s['mrr@10']:.3f} | {s['recall@1']:.3f} | "
                f"{s['recall@5']:.3f} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} |"
            )
    return out


def ticket_search_section(r: dict[str, Any]) -> list[str]:
    load, s = r["load"], r["search"]
    return [
        f"**Ticket search** (full-text over {r['messages']:,} messages in {r['tickets']:,} "
        f"tickets on {r['database']}, {r['corpus']}; each query through "
        f"`GET /api/v1/tickets?q=…&limit=25` in-process as an admin; {when(r)} UTC, "
        f"{machine(r)}; bar p95 ≤ {r['bar_p95_ms']} ms): {s['queries']:,} queries, "
        f"p50 {s['p50_ms']} ms, **p95 {s['p95_ms']} ms**, p99 {s['p99_ms']} ms, "
        f"max {s['max_ms']} ms; {s['queries_with_hits']:,} found a ticket. Loading: "
        f"segmentation {load['segmentation_us_per_message']} µs a message, GIN index built "
        f"in {load['gin_build_s']} s.",
    ]


def email_ingest_section(r: dict[str, Any]) -> list[str]:
    out = [
        f"**Email ingest over SMTP** ({r['load']}; parsed, threaded and stored; "
        f"{when(r)} UTC, {machine(r)}).",
        "",
        "| database | accepted messages/s | p50 ms | p99 ms | accepted | rejected (code: n) | stored | lost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in r["runs"]:
        out.append(
            f"| {run['database']} | {run['messages_per_s']} | {run['p50_ms']} | "
            f"{run['p99_ms']} | {run['accepted']} | {run.get('rejected_by_code') or '–'} | "
            f"{run['stored']} | {run['lost']} |"
        )
    if any(run.get("rejected_by_code") for run in r["runs"]):
        out += [
            "",
            "Rejected mail stays with the sending server, which reports it: 500 is a line "
            "over SMTP's 1,000-octet limit (refused by the SMTP library), 550 a mail kefu "
            "refused. The share rejected from this generated mix is an open item.",
        ]
    return out


def email_parse_section(r: dict[str, Any]) -> list[str]:
    return [
        f"**Email parsing alone** ({r['workload']}; {when(r)} UTC, {machine(r)}): "
        f"{r['messages_per_s']:.0f} messages/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
        f"max {r['max_ms']} ms."
    ]


def dlp_section(r: dict[str, Any]) -> list[str]:
    adv = ", ".join(f"{k} {v} ms" for k, v in r["adversarial_100k_ms"].items())
    faq = r["faq_zh_flagged"]
    return [
        f"**Secret detection** ({r['messages']:,} chat-like messages of {r['mean_chars']} "
        f"characters on average; {when(r)} UTC, {machine(r)}): {r['messages_per_s']:,} "
        f"messages/s, p50 {r['p50_us']} µs, p99 {r['p99_us']} µs. Precision {r['precision']}, "
        f"recall {r['recall']} on {r['cases']} labelled cases (written alongside the "
        f"detectors, so an upper bound); {faq['flagged']} false alarms on "
        f"{faq['questions']:,} real customer questions (faq-zh). Worst case, 100,000 "
        f"characters of adversarial input: {adv}.",
    ]


def console_section(r: dict[str, Any]) -> list[str]:
    labels = {
        "ticket_page_500_messages_first_view": "ticket page, 500 messages, first view",
        "ticket_page_500_messages": "same, repeat view",
        "timeline_fragment_500_messages": "live timeline refresh",
        "inbox_50_rows_of_10000": "inbox, 50 rows of 10,000 tickets",
    }
    lines = [
        f"**Agent console** (server time in-process, {r['rounds']} requests each; "
        f"{when(r)} UTC, {machine(r)}; bar ≤ {r['bar_ms']} ms):",
        "",
        "| page | backend | p50 ms | p95 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, label in labels.items():
        for backend, figures in r["backends"].items():
            f = figures[key]
            lines.append(f"| {label} | {backend} | {f['p50_ms']} | {f['p95_ms']} | {f['max_ms']} |")
    return lines


SECTIONS = [
    ("api", api_section),
    ("chat", chat_section),
    ("search", search_section),
    ("ticket_search", ticket_search_section),
    ("email_ingest", email_ingest_section),
    ("email_parse", email_parse_section),
    ("dlp", dlp_section),
    ("console", console_section),
]


def render() -> str:
    lines: list[str] = []
    for name, section in SECTIONS:
        result = load(name)
        if result is None:
            lines.append(f"**{name}**: not yet run on this machine (`python bench/{name}.py`).")
        else:
            lines.extend(section(result))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    text = README.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        print(f"README.md has no {START} … {END} block", file=sys.stderr)
        return 1
    README.write_text(pattern.sub(lambda _: f"{START}\n{render()}{END}", text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
