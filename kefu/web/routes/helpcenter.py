"""/api/v1/helpcenter: search (public), articles (public reads, agent writes),
feedback (public) and analytics (supervisors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from kefu.actions.articles import ArticleData, do_log_search, do_record_feedback, do_save_article
from kefu.domain.errors import PermissionDenied, RateLimited
from kefu.domain.helpcenter import ArticleStatus
from kefu.queries.articles import (
    access_article_by_id,
    article_translations,
    get_published_article,
    list_articles_for_agents,
    list_published,
    list_revisions,
    searches_without_results,
    unhelpful_articles,
)
from kefu.queries.tickets import access_ticket_by_number
from kefu.web.deps import AgentDep, AppState, ReadDbDep, StateDep
from kefu.web.routes.auth import client_ip
from kefu.web.schemas import (
    ArticleIn,
    ArticleList,
    ArticlePublic,
    ArticleSummary,
    FeedbackIn,
    HelpAnalytics,
    RevisionList,
    RevisionPublic,
    SearchGapPublic,
    SearchHit,
    SearchResults,
)

router = APIRouter(prefix="/helpcenter", tags=["helpcenter"])
ArticleId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Locale = Annotated[str, Query(pattern=r"^(zh-CN|en)$")]
FEEDBACK_PER_MINUTE = 20


def article_url(article_id: str) -> str:
    return f"/help/articles/{article_id}"


def run_search(state: AppState, q: str, locale: str, limit: int, *, log: bool) -> SearchResults:
    """Ranked results; a full search (not typeahead) is logged for the no-result report."""
    hits = state.search.search(q, locale, limit)
    if log and q.strip():
        with state.transaction() as db:
            do_log_search(db, q.strip(), locale, [h[0] for h in hits])
    return SearchResults(
        results=[
            SearchHit(id=i, title=t, score=round(s, 4), url=article_url(i)) for i, t, s in hits
        ]
    )


@router.get("/search", response_model=SearchResults)
def search(
    state: StateDep,
    response: Response,
    q: Annotated[str, Query(max_length=10_000)] = "",
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    locale: Locale = "zh-CN",
    suggest: bool = False,
) -> SearchResults:
    # Public and read-only: the chat widget, embedded on the exchange's own pages (another
    # origin), suggests articles while the customer types. No credentials are involved.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return run_search(state, q, locale, limit, log=not suggest)


@router.get("/articles", response_model=ArticleList)
def get_articles(
    db: ReadDbDep,
    locale: Locale = "zh-CN",
    category: Annotated[str | None, Query(max_length=32)] = None,
) -> ArticleList:
    return ArticleList(items=[ArticleSummary.of(a) for a in list_published(db, locale, category)])


@router.get("/articles/{article_id}", response_model=ArticlePublic)
def get_article(article_id: ArticleId, db: ReadDbDep) -> ArticlePublic:
    article = get_published_article(db, article_id)
    return ArticlePublic.of(article, article_translations(db, article))


@router.post("/articles/{article_id}/feedback", status_code=204)
async def post_feedback(
    request: Request, article_id: ArticleId, body: FeedbackIn, state: StateDep
) -> None:
    wait = await state.limiter.hit(f"feedback:{client_ip(request)}", FEEDBACK_PER_MINUTE, 60)
    if wait:
        raise RateLimited("too many requests", retry_after_seconds=wait)

    def run() -> None:
        with state.transaction() as db:
            do_record_feedback(db, article_id, helpful=body.helpful, comment=body.comment)

    await run_in_threadpool(run)


# Agents: drafts, editing, history.


@router.get("/admin/articles", response_model=ArticleList)
def get_all_articles(
    db: ReadDbDep,
    principal: AgentDep,
    status: ArticleStatus | None = None,
    cursor: Annotated[str, Query(max_length=64)] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
) -> ArticleList:
    rows = list_articles_for_agents(db, status=status, after_id=cursor, limit=limit)
    return ArticleList(items=[ArticleSummary.of(a) for a in rows])


@router.get("/admin/articles/{article_id}", response_model=ArticlePublic)
def get_article_for_agent(
    article_id: ArticleId, db: ReadDbDep, principal: AgentDep
) -> ArticlePublic:
    article = access_article_by_id(db, principal.actor, article_id)
    return ArticlePublic.of(article, article_translations(db, article, published_only=False))


@router.post("/admin/articles", status_code=201, response_model=ArticlePublic)
def create_article(body: ArticleIn, state: StateDep, principal: AgentDep) -> ArticlePublic:
    with state.transaction() as db:
        article, _ = do_save_article(db, principal.actor, _data(body))
        return ArticlePublic.of(article, article_translations(db, article, published_only=False))


@router.put("/admin/articles/{article_id}", response_model=ArticlePublic)
def save_article(
    article_id: ArticleId, body: ArticleIn, state: StateDep, principal: AgentDep
) -> ArticlePublic:
    with state.transaction() as db:
        article, _ = do_save_article(db, principal.actor, _data(body), article_id=article_id)
        return ArticlePublic.of(article, article_translations(db, article, published_only=False))


@router.get("/admin/articles/{article_id}/revisions", response_model=RevisionList)
def get_revisions(article_id: ArticleId, db: ReadDbDep, principal: AgentDep) -> RevisionList:
    access_article_by_id(db, principal.actor, article_id)
    return RevisionList(items=[RevisionPublic.of(r) for r in list_revisions(db, article_id)])


@router.get("/admin/analytics", response_model=HelpAnalytics)
def get_analytics(db: ReadDbDep, principal: AgentDep) -> HelpAnalytics:
    if not principal.actor.is_supervisor_or_admin:
        raise PermissionDenied("supervisors and admins only")
    return HelpAnalytics(
        searches_without_results=[
            SearchGapPublic(query=g.query, count=g.count, last_at=g.last_at)
            for g in searches_without_results(db)
        ],
        unhelpful_articles=[ArticleSummary.of(a) for a in unhelpful_articles(db)],
    )


def _data(body: ArticleIn) -> ArticleData:
    return ArticleData(
        title=body.title,
        body_md=body.body,
        category=body.category,
        locale=body.locale,
        status=body.status,
        position=body.position,
        tags=body.tags,
        related_ids=body.related_ids,
        translation_of=body.translation_of,
    )


# Deflection for agents: articles that may answer the ticket they are looking at.
tickets_router = APIRouter(prefix="/tickets", tags=["tickets"])


@tickets_router.get("/{number}/suggested-articles", response_model=SearchResults)
def suggested_articles(
    number: str, state: StateDep, db: ReadDbDep, principal: AgentDep
) -> SearchResults:
    ticket = access_ticket_by_number(db, principal.actor, number)
    hits = state.search.suggest([ticket.subject], "zh-CN", 5)
    return SearchResults(
        results=[
            SearchHit(id=i, title=t, score=round(s, 4), url=article_url(i)) for i, t, s in hits
        ]
    )
