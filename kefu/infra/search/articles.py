"""In-memory ranked index of help-centre articles (docs/subsystems/helpcenter.md).

Owns ranking: which article answers a customer's question best. Text analysis is not
here; every field goes through ``kefu.domain.text`` so that the index and the query
agree on what a word is.

Three signals are each scored with BM25F (a title occurrence counts more than a body
one) and fused:

* words: the analyser's tokens, synonyms already made canonical;
* characters: each CJK character (and each non-CJK token);
* bigrams: adjacent CJK character pairs.

jieba cuts the same phrase differently in different contexts (花呗额度 / 花呗的额度 /
额度花呗), paraphrases share characters more often than words, and a one-character typo
keeps most of them: on the faq-zh benchmark the character signals are the largest
single gain (bench/search_quality.py). Each signal's scores are divided by the query's
best score for that signal before the weighted sum, so a weight means the same
whatever the query's length.

Storage is compact because real articles are long: a term's postings are one
``array('i')`` of (slot, title tf << 16 | body tf) pairs, 8 bytes a posting, read
through a zero-copy numpy view. A query scores all its postings in one vectorised pass,
so characters that occur in most articles and long pasted questions stay cheap.
Removal only marks the slot dead; dead postings are dropped the next time a query reads
the term, and slots are renumbered once dead ones outnumber live ones.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kefu.domain.text import analyze_features

__all__ = ["ArticleIndex", "RankingParams"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int32]
BoolArray = npt.NDArray[np.bool_]

# A question longer than this is a pasted log or an attack, not a question; the rest
# would only cost time. Long enough for any real question with its context.
MAX_QUERY_CHARS = 500
# Renumber slots once this many are dead and they outnumber the live ones.
_COMPACT_MIN_DEAD = 1024
_TITLE = 0
_BODY = 1
# Term frequencies share one int32 per posting; a count past these caps (a word 32,768
# times in one title) is saturated by BM25 long before, so capping loses nothing.
_TITLE_TF_MAX = 0x7FFF
_BODY_TF_MAX = 0xFFFF


@dataclass(frozen=True, slots=True)
class RankingParams:
    """Knobs of the ranker; the defaults are the ones bench/search_quality.py reports.

    ``k1``/``b`` are BM25's term saturation and length normalisation, shared by the
    three signals (tuning them apart moved nothing beyond noise). ``title_weight``
    scales a title occurrence against a body one (BM25F): a title is the question an
    article answers, so a match there says more. ``char_weight`` and ``bigram_weight``
    weigh the character signals against the word signal's 1.0.
    """

    k1: float = 1.2
    b: float = 0.75
    title_weight: float = 3.0
    body_weight: float = 1.0
    char_weight: float = 3.0
    bigram_weight: float = 1.0


class _Signal:
    """One BM25F signal: postings and per-slot field lengths."""

    def __init__(self) -> None:
        # term -> flat (slot, packed title and body tf) pairs; see the module docstring.
        self.postings: dict[str, array[int]] = {}
        # term -> numpy view of the postings, valid while ``views_generation`` holds.
        self.views: dict[str, IntArray] = {}
        self.views_generation = 0
        self.lengths = np.zeros((2, 0), dtype=np.float64)
        self.totals = [0.0, 0.0]

    def resize(self, capacity: int) -> None:
        lengths = np.zeros((2, capacity), dtype=np.float64)
        kept = min(capacity, self.lengths.shape[1])
        lengths[:, :kept] = self.lengths[:, :kept]
        self.lengths = lengths

    def add(self, slot: int, title: list[str], body: list[str]) -> None:
        title_counts = Counter(title)
        body_counts = Counter(body)
        self.lengths[_TITLE, slot] = len(title)
        self.lengths[_BODY, slot] = len(body)
        self.totals[_TITLE] += len(title)
        self.totals[_BODY] += len(body)
        views = self.views
        all_postings = self.postings
        for term in title_counts.keys() | body_counts.keys():
            if views:
                # Drop the view first: an array cannot grow while numpy holds its buffer.
                views.pop(term, None)
            postings = all_postings.get(term)
            if postings is None:
                postings = all_postings[term] = array("i")
            title_tf = min(title_counts[term], _TITLE_TF_MAX)
            body_tf = min(body_counts[term], _BODY_TF_MAX)
            postings.extend((slot, title_tf << 16 | body_tf))

    def remove(self, slot: int) -> None:
        for part in (_TITLE, _BODY):
            self.totals[part] -= float(self.lengths[part, slot])
            self.lengths[part, slot] = 0.0

    def view(self, term: str, alive: BoolArray, generation: int) -> IntArray | None:
        """The term's live postings as an (n, 2) array, purging dead ones on the way."""
        if self.views_generation != generation:
            self.views.clear()
            self.views_generation = generation
        view = self.views.get(term)
        if view is not None:
            return view
        postings = self.postings.get(term)
        if postings is None:
            return None
        view = np.frombuffer(postings, dtype=np.int32).reshape(-1, 2)
        keep = alive[view[:, 0]]
        if not keep.all():
            live = np.ascontiguousarray(view[keep])
            del view  # release the old buffer before the array is replaced
            if live.size == 0:
                del self.postings[term]
                return None
            postings = array("i")
            postings.frombytes(live.tobytes())
            self.postings[term] = postings
            view = np.frombuffer(postings, dtype=np.int32).reshape(-1, 2)
        self.views[term] = view
        return view

    def renumber(self, new_slot: IntArray, alive: BoolArray, capacity: int) -> None:
        """Move every live posting to its slot in a compacted numbering."""
        self.views.clear()
        for term in list(self.postings):
            pairs = np.frombuffer(self.postings[term], dtype=np.int32).reshape(-1, 2)
            live = pairs[alive[pairs[:, 0]]].copy()
            del pairs
            if live.size == 0:
                del self.postings[term]
                continue
            live[:, 0] = new_slot[live[:, 0]]
            postings = array("i")
            postings.frombytes(live.tobytes())
            self.postings[term] = postings
        old = self.lengths
        self.lengths = np.zeros((2, capacity), dtype=np.float64)
        live_slots = np.flatnonzero(alive)
        self.lengths[:, new_slot[live_slots]] = old[:, live_slots]

    def score(
        self,
        query: Counter[str],
        params: RankingParams,
        live: int,
        alive: BoolArray,
        generation: int,
        capacity: int,
    ) -> FloatArray | None:
        """This signal's BM25F score of every slot, or None when no term matches."""
        k1 = params.k1
        views: list[IntArray] = []
        weights: list[float] = []
        for term, query_tf in query.items():
            view = self.view(term, alive, generation)
            if view is not None:
                df = view.shape[0]
                idf = math.log(1.0 + (live - df + 0.5) / (df + 0.5))
                views.append(view)
                weights.append(idf * query_tf * (k1 + 1.0))
        if not views:
            return None
        # All the query's postings in one pass: per-term numpy calls would cost more
        # than the arithmetic for a long query (a pasted ticket message).
        postings = np.concatenate(views)
        slots = postings[:, 0]
        packed = postings[:, 1]
        weight = np.repeat(np.array(weights), [view.shape[0] for view in views])
        tf = (packed >> 16) * self._inverse_norm(_TITLE, params, live, params.title_weight)[slots]
        if self.totals[_BODY] > 0:
            body_tf = packed & _BODY_TF_MAX
            tf += body_tf * self._inverse_norm(_BODY, params, live, params.body_weight)[slots]
        scores = np.bincount(slots, weights=weight * tf / (tf + k1), minlength=capacity)
        return scores.astype(np.float64, copy=False)

    def _inverse_norm(
        self, part: int, params: RankingParams, live: int, field_weight: float
    ) -> FloatArray:
        """Field weight over BM25's length normalisation, for every slot."""
        b = params.b
        average = max(self.totals[part] / live, 1e-9)
        norm = (1.0 - b) + b * (self.lengths[part] / average)
        # With b = 1 an empty field has norm 0; its tf is 0 too, so any finite value does.
        inverse: FloatArray = field_weight / np.maximum(norm, 1e-9)
        return inverse


class ArticleIndex:
    """Ranked search over articles held in memory; safe to share between threads."""

    def __init__(self, params: RankingParams | None = None) -> None:
        self.params = params or RankingParams()
        self._words = _Signal()
        self._chars = _Signal()
        self._bigrams = _Signal()
        self._slot_of: dict[str, int] = {}
        self._ids: list[str | None] = []
        self._alive = np.zeros(0, dtype=np.bool_)
        self._boost = np.zeros(0, dtype=np.float64)
        # Bumped by every removal: cached postings views may hold dead slots.
        self._generation = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._slot_of

    def add(self, doc_id: str, title: str, body: str, *, boost: float = 1.0) -> None:
        """Index an article, replacing any earlier version with the same id.

        ``boost`` multiplies the article's score (pinned or popular articles > 1); a
        value that is not a positive finite number counts as 1.
        """
        title_features = analyze_features(title)
        body_features = analyze_features(body)
        with self._lock:
            self._remove(doc_id)
            slot = self._new_slot(doc_id)
            self._words.add(slot, title_features.words, body_features.words)
            self._chars.add(slot, title_features.chars, body_features.chars)
            self._bigrams.add(slot, title_features.bigrams, body_features.bigrams)
            self._boost[slot] = boost if math.isfinite(boost) and boost > 0 else 1.0

    def remove(self, doc_id: str) -> None:
        """Drop an article; an unknown id is ignored."""
        with self._lock:
            self._remove(doc_id)

    def search(self, query: str, limit: int = 10) -> list[tuple[str, float]]:
        """The best ``limit`` articles for ``query`` as (id, score), best first."""
        if limit <= 0 or not query or query.isspace():
            return []
        features = analyze_features(query[:MAX_QUERY_CHARS], query=True)
        if not features.words:
            return []
        words = Counter(features.words)
        chars = Counter(features.chars)
        bigrams = Counter(features.bigrams)
        with self._lock:
            return self._search(words, chars, bigrams, limit)

    def _search(
        self, words: Counter[str], chars: Counter[str], bigrams: Counter[str], limit: int
    ) -> list[tuple[str, float]]:
        live = len(self._slot_of)
        if live == 0:
            return []
        params = self.params
        capacity = len(self._ids)
        alive = self._alive
        total = np.zeros(capacity, dtype=np.float64)
        for signal, query, weight in (
            (self._words, words, 1.0),
            (self._chars, chars, params.char_weight),
            (self._bigrams, bigrams, params.bigram_weight),
        ):
            if not query or weight <= 0:
                continue
            scores = signal.score(query, params, live, alive, self._generation, capacity)
            best = float(scores.max()) if scores is not None else 0.0
            if scores is not None and best > 0:
                total += (weight / best) * scores
        total *= self._boost[:capacity]
        matched = np.flatnonzero(total > 0)
        if matched.size > limit:
            matched = matched[np.argpartition(-total[matched], limit - 1)[:limit]]
        # Equal scores (same text) fall back to insertion order: results are stable.
        order = sorted(matched.tolist(), key=lambda slot: (-total[slot], slot))
        ids = self._ids
        return [(doc_id, float(total[slot])) for slot in order if (doc_id := ids[slot])]

    def _remove(self, doc_id: str) -> None:
        slot = self._slot_of.pop(doc_id, None)
        if slot is None:
            return
        for signal in (self._words, self._chars, self._bigrams):
            signal.remove(slot)
        self._ids[slot] = None
        self._alive[slot] = False
        self._boost[slot] = 0.0
        self._generation += 1
        dead = len(self._ids) - len(self._slot_of)
        if dead >= _COMPACT_MIN_DEAD and dead > len(self._slot_of):
            self._compact()

    def _new_slot(self, doc_id: str) -> int:
        slot = len(self._ids)
        if slot >= self._alive.shape[0]:
            self._resize(max(64, 2 * slot))
        self._ids.append(doc_id)
        self._alive[slot] = True
        self._slot_of[doc_id] = slot
        return slot

    def _resize(self, capacity: int) -> None:
        kept = min(capacity, self._alive.shape[0])
        alive = np.zeros(capacity, dtype=np.bool_)
        alive[:kept] = self._alive[:kept]
        boost = np.zeros(capacity, dtype=np.float64)
        boost[:kept] = self._boost[:kept]
        self._alive = alive
        self._boost = boost
        for signal in (self._words, self._chars, self._bigrams):
            signal.resize(capacity)

    def _compact(self) -> None:
        """Renumber live slots 0..n-1 so dead ones stop costing memory and time."""
        used = len(self._ids)
        alive = self._alive[:used]
        new_slot = np.full(used, -1, dtype=np.int32)
        new_slot[alive] = np.arange(int(alive.sum()), dtype=np.int32)
        capacity = max(64, 2 * len(self._slot_of))
        for signal in (self._words, self._chars, self._bigrams):
            signal.renumber(new_slot, alive, capacity)
        boost = np.zeros(capacity, dtype=np.float64)
        boost[new_slot[alive]] = self._boost[:used][alive]
        self._boost = boost
        self._alive = np.zeros(capacity, dtype=np.bool_)
        self._alive[: len(self._slot_of)] = True
        live_ids = [doc_id for doc_id in self._ids if doc_id is not None]
        self._ids = list(live_ids)
        self._slot_of = {doc_id: slot for slot, doc_id in enumerate(live_ids)}
        self._generation += 1
