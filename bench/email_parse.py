"""Inbound email parse throughput: `kefu.channels.email.parse.parse_email` alone.

Generates a realistic mix with ../shared/bench/peers/mailgen.py (1,000 messages: UTF-8,
GBK and Big5 plain text, text+HTML, HTML only, PNG/PDF attachments, quoted replies),
parses each one after a warm-up pass, and reports messages/s and per-message latency.
This is the parsing share of the inbound-email bar in DESIGN.md (≥ 200 messages/s
parsed, threaded and stored); threading and storage are measured elsewhere.

Writes bench/results/email_parse.json and prints a summary. Options: --count N,
--rounds N (timed passes over the same messages), --raw-8bit-gbk N (extra messages
with raw 8-bit GBK bodies), --mail-dir DIR (reuse generated .eml files).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAILGEN = ROOT.parent / "shared" / "bench" / "peers" / "mailgen.py"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from kefu.channels.email.parse import parse_email  # noqa: E402


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def generate(out_dir: Path, count: int, raw_8bit_gbk: int) -> None:
    # The same interpreter as this script: mailgen needs only the standard library.
    subprocess.run(
        [
            sys.executable,
            str(MAILGEN),
            str(out_dir),
            "--count",
            str(count),
            "--raw-8bit-gbk",
            str(raw_8bit_gbk),
        ],
        check=True,
    )


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def run(messages: list[bytes], rounds: int) -> dict[str, Any]:
    for raw in messages:  # warm-up: imports, regex and codec caches
        parse_email(raw)
    latencies: list[float] = []
    flags: Counter[str] = Counter()
    empty_text = with_attachments = errors = 0
    started = time.perf_counter()
    for round_number in range(rounds):
        for raw in messages:
            t0 = time.perf_counter()
            try:
                parsed = parse_email(raw)
            except Exception:  # parse_email promises never to raise; count if it does
                errors += 1
                continue
            finally:
                latencies.append(time.perf_counter() - t0)
            if round_number == 0:
                flags.update(parsed.flags)
                empty_text += not parsed.text.strip()
                with_attachments += bool(parsed.attachments)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "parsed": len(latencies),
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p90_ms": round(percentile(latencies, 0.90) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "errors": errors,
        "empty_text": empty_text,
        "with_attachments": with_attachments,
        "flags": dict(flags.most_common()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--raw-8bit-gbk", type=int, default=0)
    ap.add_argument("--mail-dir", type=Path, default=None)
    args = ap.parse_args()

    loadavg_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="kefu-mailgen-") as tmp:
        mail_dir = args.mail_dir or Path(tmp)
        if args.mail_dir is None:
            generate(mail_dir, args.count, args.raw_8bit_gbk)
        messages = [p.read_bytes() for p in sorted(mail_dir.glob("*.eml"))]
    if not messages:
        print(f"no .eml files in {mail_dir}", file=sys.stderr)
        return 1

    figures = run(messages, args.rounds)
    result: dict[str, Any] = {
        "benchmark": "email_parse",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "cpu": _cpu_model(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_before": loadavg_before,
        },
        "workload": (
            f"{len(messages)} messages from shared/bench/peers/mailgen.py "
            f"({sum(map(len, messages)) / 1e6:.1f} MB), {args.rounds} timed passes after one "
            "warm-up pass, one process, parse only (no threading, no storage)"
        ),
        "messages": len(messages),
        "bytes": sum(map(len, messages)),
        **figures,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "email_parse.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(
        f"email parse: {result['messages_per_s']} messages/s over {result['parsed']} parses "
        f"(p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms); "
        f"errors {result['errors']}, empty text {result['empty_text']}, flags {result['flags']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
