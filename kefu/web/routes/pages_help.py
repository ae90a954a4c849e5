"""The public help center: home, category, article, search and FAQ pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kefu.actions.articles import do_record_feedback
from kefu.actions.contacts import ContactData, do_find_or_create_contact
from kefu.actions.messages import NewMessage
from kefu.actions.tickets import NewTicket, do_create_ticket
from kefu.domain.access import SYSTEM, Actor, ActorKind
from kefu.domain.errors import KefuError
from kefu.domain.helpcenter import CATEGORIES, CATEGORY_BY_SLUG
from kefu.domain.tickets import Channel, TicketKind
from kefu.infra.i18n import gettext_for
from kefu.models import Article
from kefu.queries.articles import article_translations, get_published_article, list_published
from kefu.web.deps import StateDep
from kefu.web.pages import render, request_locale
from kefu.web.routes.auth import client_ip
from kefu.web.routes.helpcenter import run_search

router = APIRouter(include_in_schema=False)
ArticleId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/help", status_code=302)


@router.get("/help", response_class=HTMLResponse)
def help_home(request: Request, state: StateDep) -> HTMLResponse:
    locale = request_locale(request)
    with state.read_sessions() as db:
        articles = list_published(db, locale)
    by_category: dict[str, list[object]] = {c.slug: [] for c in CATEGORIES}
    for article in articles:
        by_category.setdefault(article.category, []).append(article)
    return render(
        request, "pages/help/home.html", categories=CATEGORIES, by_category=by_category, query=""
    )


@router.get("/help/category/{slug}", response_class=HTMLResponse)
def help_category(
    request: Request, slug: Annotated[str, Path(max_length=32)], state: StateDep
) -> HTMLResponse:
    category = CATEGORY_BY_SLUG.get(slug)
    if category is None:
        return render(request, "pages/help/not_found.html", status_code=404)
    with state.read_sessions() as db:
        articles = list_published(db, request_locale(request), slug)
    return render(
        request, "pages/help/category.html", category=category, articles=articles, query=""
    )


@router.get("/help/articles/{article_id}", response_class=HTMLResponse)
def help_article(request: Request, article_id: ArticleId, state: StateDep) -> Response:
    try:
        with state.read_sessions() as db:
            article = get_published_article(db, article_id)
            translations = article_translations(db, article)
            related = [
                (a.id, a.title)
                for a in (db.get(Article, rid) for rid in article.related_ids)
                if a is not None
            ]
    except KefuError:
        return render(request, "pages/help/not_found.html", status_code=404)
    wanted = request.query_params.get("lang")
    if wanted in translations and wanted != article.locale:
        # The language switch asked for this article in another language: go to it.
        return RedirectResponse(
            f"/help/articles/{translations[wanted]}?lang={wanted}", status_code=303
        )
    if not related:
        # No hand-picked links: the nearest articles by the same ranking as search.
        hits = state.search.search(article.title, article.locale, 4)
        related = [(i, t) for i, t, _ in hits if i != article.id][:3]
    return render(
        request,
        "pages/help/article.html",
        article=article,
        category=CATEGORY_BY_SLUG.get(article.category),
        related=related,
        translations=translations,
        thanks=request.query_params.get("thanks"),
        query="",
    )


@router.post("/help/articles/{article_id}/feedback")
async def help_feedback(
    request: Request,
    article_id: ArticleId,
    state: StateDep,
    helpful: Annotated[str, Form(pattern="^(yes|no)$")],
) -> Response:
    def run() -> None:
        with state.transaction() as db:
            do_record_feedback(db, article_id, helpful=helpful == "yes")

    try:
        await run_in_threadpool(run)
    except KefuError:
        return render(request, "pages/help/not_found.html", status_code=404)
    # Post/redirect/get, so a reload does not vote twice.
    return RedirectResponse(f"/help/articles/{article_id}?thanks={helpful}", status_code=303)


@router.get("/help/search", response_class=HTMLResponse)
def help_search(
    request: Request, state: StateDep, q: Annotated[str, Query(max_length=10_000)] = ""
) -> HTMLResponse:
    results = run_search(state, q, request_locale(request), 20, log=True)
    return render(request, "pages/help/search.html", query=q, results=results.results)


@router.get("/help/faq", response_class=HTMLResponse)
def help_faq(request: Request, state: StateDep) -> HTMLResponse:
    with state.read_sessions() as db:
        articles = list_published(db, request_locale(request))
    by_category: dict[str, list[object]] = {}
    for article in articles:
        by_category.setdefault(article.category, []).append(article)
    return render(
        request, "pages/help/faq.html", categories=CATEGORIES, by_category=by_category, query=""
    )


# What a customer picks in the form, and what it becomes on the ticket.
CONTACT_TOPICS: tuple[tuple[str, str, TicketKind], ...] = (
    ("deposit_withdrawal", "充值提现 / Deposits & withdrawals", TicketKind.QUESTION),
    ("account_stolen", "账户被盗 / Account stolen", TicketKind.ACCOUNT_SECURITY),
    ("trading", "交易 / Trading", TicketKind.QUESTION),
    ("kyc", "身份认证 KYC", TicketKind.QUESTION),
    ("complaint", "投诉 / Complaint", TicketKind.COMPLAINT),
    ("other", "其他 / Other", TicketKind.QUESTION),
)
CONTACT_PER_HOUR = 10


def _topics() -> list[tuple[str, str]]:
    return [(value, label) for value, label, _ in CONTACT_TOPICS]


@router.get("/help/contact", response_class=HTMLResponse)
def help_contact(request: Request) -> HTMLResponse:
    return render(request, "pages/help/contact.html", topics=_topics(), form={}, query="")


@router.post("/help/contact", response_class=HTMLResponse)
async def help_contact_submit(
    request: Request,
    state: StateDep,
    email: Annotated[str, Form(max_length=200)],
    subject: Annotated[str, Form(max_length=300)],
    body: Annotated[str, Form(max_length=20_000)],
    topic: Annotated[str, Form(max_length=32)] = "other",
    uid: Annotated[str, Form(max_length=20)] = "",
) -> HTMLResponse:
    form = {"email": email, "subject": subject, "body": body, "topic": topic, "uid": uid}
    wait = await state.limiter.hit(f"contact:{client_ip(request)}", CONTACT_PER_HOUR, 3600)
    if wait:
        message = "Too many requests from your network. Please try later."
        return render(
            request,
            "pages/help/contact.html",
            status_code=429,
            topics=_topics(),
            form=form,
            error=gettext_for(request_locale(request), message),
        )
    kind = next((k for v, _, k in CONTACT_TOPICS if v == topic), TicketKind.QUESTION)

    def run() -> str:
        with state.transaction() as db:
            contact = do_find_or_create_contact(
                db, SYSTEM, ContactData(email=email, exchange_uid=uid.strip() or None)
            )
            ticket = do_create_ticket(
                db,
                SYSTEM,
                NewTicket(
                    subject=subject,
                    channel=Channel.WEB,
                    kind=kind,
                    contact_id=contact.id,
                    tags=[topic] if topic in {v for v, _, _ in CONTACT_TOPICS} else [],
                    first_message=NewMessage(body=body, channel=Channel.WEB),
                    author=Actor(kind=ActorKind.CONTACT, id=contact.id),
                ),
            )
            return ticket.number

    try:
        number = await run_in_threadpool(run)
    except KefuError as exc:
        locale = request_locale(request)
        return render(
            request,
            "pages/help/contact.html",
            status_code=422,
            topics=_topics(),
            form=form,
            error=gettext_for(locale, exc.message),
        )
    return render(request, "pages/help/contact.html", created=number, form={}, query="")
