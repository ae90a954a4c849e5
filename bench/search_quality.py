"""Help-centre search quality on faq-zh: the plain baseline beside kefu's ArticleIndex.

Data: ../shared/bench/faq-zh (read in place, never copied; see its README). Each FAQ
entry is indexed with its question as the title and no body; each dev query has one
relevant entry.

Rankers:
  baseline  jieba (default dictionary, default mode) + BM25 (k1=1.5, b=0.75) over the
            question, implemented here; tokens without a word character are dropped.
  kefu      kefu.infra.search.articles.ArticleIndex with its default RankingParams,
            and the same index with some of its three signals switched off (ablation).

Metrics: MRR@10, Recall@1, Recall@5, and p50/p95 latency of one search call in this
process (after a warm-up query; the HTTP layer is not included).

The dev queries are split once, with a fixed seed, into a "tune" half, the only half
that parameters were chosen on, and a "held-out" half reported beside it; a gain that
does not hold on the held-out half is not a gain.

Prints a markdown table and writes bench/results/search_quality.json. Options:
--limit N (first N queries only, for a quick look).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "bench" / "faq-zh"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from kefu.infra.search.articles import ArticleIndex  # noqa: E402

SPLIT_SEED = 20251125
TOP_K = 10
# kefu with signals switched off, to show what each one adds.
ABLATION: dict[str, dict[str, float]] = {
    "words only": {"char_weight": 0.0, "bigram_weight": 0.0},
    "words + characters": {"bigram_weight": 0.0},
    "words + bigrams": {"char_weight": 0.0},
}

Search = Callable[[str], list[str]]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def split_queries(
    queries: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A fixed random half to tune on, and the other half to check on."""
    order = list(range(len(queries)))
    random.Random(SPLIT_SEED).shuffle(order)
    half = len(order) // 2
    return [queries[i] for i in sorted(order[:half])], [queries[i] for i in sorted(order[half:])]


class Bm25Baseline:
    """The README's plain baseline: jieba default dictionary + BM25 over one field."""

    def __init__(self, docs: Sequence[tuple[str, str]], k1: float = 1.5, b: float = 0.75):
        self.cut = _jieba_cut()
        self.k1 = k1
        self.b = b
        self.ids = [doc_id for doc_id, _ in docs]
        self.lengths: list[int] = []
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for index, (_, text) in enumerate(docs):
            tokens = self.tokens(text)
            self.lengths.append(len(tokens))
            for term, tf in Counter(tokens).items():
                self.postings.setdefault(term, []).append((index, tf))
        self.avg_length = sum(self.lengths) / max(len(self.lengths), 1)

    def tokens(self, text: str) -> list[str]:
        return [token for token in self.cut(text) if any(ch.isalnum() for ch in token)]

    def search(self, query: str, limit: int = TOP_K) -> list[str]:
        count = len(self.ids)
        scores: dict[int, float] = {}
        for term, query_tf in Counter(self.tokens(query)).items():
            postings = self.postings.get(term)
            if not postings:
                continue
            df = len(postings)
            idf = math.log(1.0 + (count - df + 0.5) / (df + 0.5))
            for index, tf in postings:
                norm = 1.0 - self.b + self.b * self.lengths[index] / self.avg_length
                score = idf * tf * (self.k1 + 1.0) / (tf + self.k1 * norm)
                scores[index] = scores.get(index, 0.0) + query_tf * score
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [self.ids[index] for index, _ in best]


def _jieba_cut() -> Callable[[str], list[str]]:
    """jieba's own package when installed (the README's baseline), else its Rust port.

    rjieba ships the same dictionary and model and cuts the 11,454 FAQ questions the
    same way but for one e-mail address, so the fallback changes no number that matters.
    """
    try:
        import jieba
    except ImportError:
        import rjieba

        return rjieba.Jieba().cut
    jieba.setLogLevel(logging.WARNING)
    # jieba caches its parsed dictionary as a file; keep ours private, not /tmp/jieba.cache.
    jieba.dt.tmp_dir = tempfile.mkdtemp(prefix="kefu-bench-jieba-")
    jieba.initialize()
    return jieba.lcut


def evaluate(search: Search, queries: Sequence[dict[str, Any]]) -> dict[str, float]:
    search("预热")  # warm-up: lazy loading is not part of any query's latency
    reciprocal = hit1 = hit5 = 0.0
    latencies: list[float] = []
    for query in queries:
        relevant = set(query["relevant_ids"])
        start = time.perf_counter()
        ranked = search(query["query"])
        latencies.append(time.perf_counter() - start)
        for rank, doc_id in enumerate(ranked[:TOP_K], 1):
            if doc_id in relevant:
                reciprocal += 1.0 / rank
                break
        hit1 += len(relevant.intersection(ranked[:1])) / len(relevant)
        hit5 += len(relevant.intersection(ranked[:5])) / len(relevant)
    count = max(len(queries), 1)
    latencies.sort()
    return {
        "queries": len(queries),
        "mrr@10": round(reciprocal / count, 4),
        "recall@1": round(hit1 / count, 4),
        "recall@5": round(hit5 / count, 4),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 3),
        "p95_ms": round(_percentile(latencies, 0.95) * 1000, 3),
    }


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def build_kefu(faq: Sequence[dict[str, Any]]) -> tuple[ArticleIndex, float]:
    start = time.perf_counter()
    index = ArticleIndex()
    for entry in faq:
        index.add(entry["id"], entry["question"], "")
    return index, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="use only the first N queries")
    args = parser.parse_args()

    faq = load_jsonl(DATA / "faq.jsonl")
    queries = load_jsonl(DATA / "queries-dev.jsonl")
    if args.limit:
        queries = queries[: args.limit]
    tune, held_out = split_queries(queries)

    start = time.perf_counter()
    baseline = Bm25Baseline([(entry["id"], entry["question"]) for entry in faq])
    baseline_build = time.perf_counter() - start
    kefu, kefu_build = build_kefu(faq)

    def kefu_search(query: str) -> list[str]:
        return [doc_id for doc_id, _ in kefu.search(query, TOP_K)]

    rankers: dict[str, Search] = {"baseline": baseline.search, "kefu": kefu_search}
    subsets = {"tune": tune, "held-out": held_out, "all": queries}
    results: dict[str, dict[str, dict[str, float]]] = {
        name: {subset: evaluate(search, rows) for subset, rows in subsets.items()}
        for name, search in rankers.items()
    }

    # What each signal adds: the same index with signals switched off.
    defaults = kefu.params
    ablation: dict[str, dict[str, dict[str, float]]] = {}
    for name, changes in ABLATION.items():
        kefu.params = dataclasses.replace(defaults, **changes)
        ablation[name] = {subset: evaluate(kefu_search, rows) for subset, rows in subsets.items()}
    kefu.params = defaults

    print(
        f"faq-zh: {len(faq):,} entries, {len(queries):,} dev queries "
        f"(tune {len(tune)}, held-out {len(held_out)})\n"
    )
    print("| ranker | queries | MRR@10 | R@1 | R@5 | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, by_subset in results.items():
        for subset, row in by_subset.items():
            print(
                f"| {name} | {subset} ({row['queries']}) | {row['mrr@10']:.4f} "
                f"| {row['recall@1']:.4f} | {row['recall@5']:.4f} "
                f"| {row['p50_ms']:.2f} | {row['p95_ms']:.2f} |"
            )
    print(f"\nbuild: baseline {baseline_build:.1f} s, kefu {kefu_build:.1f} s\n")
    print("| kefu ablation | tune MRR@10 | tune R@5 | held-out MRR@10 | held-out R@5 |")
    print("| --- | --- | --- | --- | --- |")
    for name, by_subset in {**ablation, "all signals (kefu)": results["kefu"]}.items():
        tuned, held = by_subset["tune"], by_subset["held-out"]
        print(
            f"| {name} | {tuned['mrr@10']:.4f} | {tuned['recall@5']:.4f} "
            f"| {held['mrr@10']:.4f} | {held['recall@5']:.4f} |"
        )

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "search_quality",
        "dataset": "faq-zh",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "entries": len(faq),
        "split_seed": SPLIT_SEED,
        "kefu_params": dataclasses.asdict(kefu.params),
        "build_seconds": {"baseline": round(baseline_build, 2), "kefu": round(kefu_build, 2)},
        "results": results,
        "ablation": ablation,
    }
    (RESULTS / "search_quality.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
