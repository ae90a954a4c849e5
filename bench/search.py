"""Help-center search benchmark, end to end: `kefu kb import` the faq-zh set, then run the
dev queries through the HTTP search API of a real `kefu serve`, beside the plain
jieba + BM25 baseline (computed in the same run, as ../shared/bench/faq-zh/README.md says).

Reports MRR@10, Recall@1, Recall@5 and p50/p95 latency per query (HTTP round trip
on 127.0.0.1, one client) and writes bench/results/search.json. The queries are
split into a random half that parameters may be tuned on and a held-out half.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "bench" / "faq-zh"
RESULTS = ROOT / "bench" / "results"
KEFU = ROOT / ".venv" / "bin" / "kefu"


def _quality_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "search_quality", ROOT / "bench" / "search_quality.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_quality"] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    sq = _quality_module()
    faq = sq.load_jsonl(DATA / "faq.jsonl")
    queries = sq.load_jsonl(DATA / "queries-dev.jsonl")
    tune, held_out = sq.split_queries(queries)

    data_dir = Path("/tmp/kefu-bench-search")
    subprocess.run(["rm", "-rf", str(data_dir)], check=True)
    data_dir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    env.update(
        {
            "KEFU_DATA_DIR": str(data_dir),
            "KEFU_SECRET_KEY": "bench",
            "KEFU_LOG_LEVEL": "WARNING",
            "KEFU_RUN_SMTP": "false",
        }
    )
    subprocess.run([str(KEFU), "migrate"], env=env, check=True, capture_output=True)
    start = time.perf_counter()
    imported = subprocess.run(
        [str(KEFU), "kb", "import", str(DATA / "faq.jsonl")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    import_seconds = time.perf_counter() - start
    print(imported.stdout.strip(), f"in {import_seconds:.1f} s")

    port = free_port()
    log = (data_dir / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(KEFU), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(300):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)

            def kefu_search(q: str) -> list[str]:
                r = client.get("/api/v1/helpcenter/search", params={"q": q, "limit": 10})
                r.raise_for_status()
                return [hit["id"] for hit in r.json()["results"]]

            # The first query builds the in-memory index from the database; not a query cost.
            t0 = time.perf_counter()
            kefu_search("预热")
            index_seconds = time.perf_counter() - t0
            kefu = {
                name: sq.evaluate(kefu_search, part)
                for name, part in (("tune", tune), ("held-out", held_out), ("all", queries))
            }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
        log.close()

    baseline_index = sq.Bm25Baseline([(str(row["id"]), row["question"]) for row in faq])
    baseline = {
        name: sq.evaluate(baseline_index.search, part)
        for name, part in (("tune", tune), ("held-out", held_out), ("all", queries))
    }

    result = {
        "benchmark": "search",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "dataset": "faq-zh (ATEC), 11,454 entries, 1,500 dev queries",
        "latency": "kefu: HTTP round trip to kefu serve on 127.0.0.1, one client; baseline: in-process",
        "import_seconds": round(import_seconds, 1),
        "index_build_seconds": round(index_seconds, 2),
        "kefu": kefu,
        "baseline": baseline,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print("| queries | system | MRR@10 | Recall@1 | Recall@5 | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for part in ("tune", "held-out", "all"):
        for name, res in (
            ("jieba + BM25 baseline", baseline[part]),
            ("kefu (HTTP API)", kefu[part]),
        ):
            print(
                f"| {part} | {name} | {res['mrr@10']:.3f} | {res['recall@1']:.3f} | {res['recall@5']:.3f} | {res['p50_ms']:.1f} | {res['p95_ms']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
