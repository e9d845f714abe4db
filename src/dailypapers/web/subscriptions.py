"""Email subscriptions on the site: the subscribe form, confirmation, manage pages, one-click unsubscribe.

The web only parses input and maps errors; the work is in dailypapers.mail. Links from mail carry a
token (confirm / manage / unsubscribe); a link that no longer works gets a page that says why and
what to do. POST /unsubscribe/TOKEN takes no CSRF token: RFC 8058 one-click unsubscribe is a POST
from the mail provider, and the unguessable token is its proof. Opening a confirmation link (GET)
changes nothing, since mail scanners open links: its page has one button whose POST confirms.

A signed-in account sees and manages the subscriptions of its address only once it has verified
that address (otherwise anyone could sign up with someone else's address and manage their mail).
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from dailypapers import throttle
from dailypapers.mail import compose
from dailypapers.mail import subscriptions as subs
from dailypapers.mail.clock import utc_now
from dailypapers.mail.smtp import MailError, Permanent, Transient, send_now
from dailypapers.mail.subscription_spec import PERIODS, SubscriptionError, check_spec, describe
from dailypapers.mail.tokens import check_token, new_token
from dailypapers.throttle import Throttled
from dailypapers.web.deps import Csrf, Db, SignedIn, User, render

router = APIRouter()
SUBSCRIBES_PER_CLIENT = ("20/hour", "100/day")
SUBSCRIBES_PER_ADDRESS = ("5/hour", "20/day")  # mails to one address, whoever asks
UNVERIFIED = ("Verify your address first (open the link we mailed you; your account page can send it "
              "again): until then your account shows and changes no subscriptions.")


def _verified_email(user: dict | None) -> str | None:
    """The signed-in user's address, when they proved it is theirs."""
    return user["email"] if user and user.get("email") and user.get("email_verified_at") else None

FIELDS = ("email", "kind", "period", "query", "since", "cat", "org", "has_code")


def _base(request: Request) -> str:
    return request.app.state.base_url(request)


def _invalid(request: Request, problem: str | None, purpose: str) -> HTMLResponse:
    return render(
        request,
        "link_invalid.html",
        {"problem": problem, "purpose": purpose},
        status_code=404 if problem == "unknown" else 410,
    )


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_form(request: Request, user: User) -> HTMLResponse:
    params = request.query_params
    values = {name: params.get(name, "") for name in FIELDS}
    values["query"] = values["query"] or params.get("q", "")
    values["cat"] = values["cat"] or ", ".join(params.getlist("cat"))
    values["kind"] = ("alert" if values["kind"] == "alert" or values["query"]
                      else "foryou" if values["kind"] == "foryou" else "digest")
    values["period"] = values["period"] if values["period"] in PERIODS else "daily"
    if user and user.get("email") and not values["email"]:
        values["email"] = user["email"]
    return render(request, "subscribe.html", {"values": values, "errors": {}})


@router.post("/subscribe", dependencies=[Csrf])
def subscribe(
    request: Request,
    engine: Db,
    user: User,
    email: str = Form(""),
    kind: str = Form("digest"),
    period: str = Form("daily"),
    query: str = Form(""),
    since: str = Form(""),
    cat: str = Form(""),
    org: str = Form(""),
    has_code: str = Form(""),
) -> Response:
    values = {
        "email": email,
        "kind": kind,
        "period": period,
        "query": query,
        "since": since,
        "cat": cat,
        "org": org,
        "has_code": has_code,
    }
    settings = request.app.state.settings
    try:
        throttle.hit(engine, f"subscribe:ip:{request.client.host if request.client else 'unknown'}",
                     *SUBSCRIBES_PER_CLIENT)
        spec = check_spec(
            email,
            kind=kind,
            period=period,
            query=query,
            since=since,
            categories=cat,
            organization=org,
            has_code=True if has_code else None,
        )
        throttle.hit(engine, f"subscribe:to:{spec.email}", *SUBSCRIBES_PER_ADDRESS)
        user_pk = user["pk"] if _verified_email(user) == spec.email else None
        if spec.kind == "foryou" and user_pk is None:
            raise SubscriptionError("kind", "Papers picked for you go to your account's verified address: sign "
                                            "in, verify your address, and use it here.")
        outcome = subs.subscribe(engine, spec, user_pk=user_pk)
    except Throttled as exc:
        response = render(request, "subscribe.html", {"values": _shown(values), "errors": {"email": exc.message}},
                          status_code=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except SubscriptionError as exc:
        return render(
            request,
            "subscribe.html",
            {"values": _shown(values), "errors": {exc.field: exc.message}},
            status_code=400,
        )
    base = _base(request)
    sub = outcome.subscription
    if outcome.action == "confirm":
        subject, text = compose.confirmation(sub, f"{base}/subscriptions/confirm/{outcome.token}", base)
    else:
        subject, text = compose.already_subscribed(sub, f"{base}/subscriptions/manage/{outcome.token}", base)
    message = compose.build_message(settings.mail_from, spec.email, subject, text)
    try:
        send_now(settings, message, spec.email)
    except Permanent:
        subs.forget_request(engine, sub["pk"])
        return render(
            request,
            "subscribe.html",
            {
                "values": _shown(values),
                "errors": {"email": "The mail server refused this address: check it for typos."},
            },
            status_code=400,
        )
    except (Transient, MailError):
        subs.forget_request(engine, sub["pk"])
        return render(
            request,
            "subscribe.html",
            {
                "values": _shown(values),
                "errors": {
                    "email": "We could not send the confirmation mail just now; "
                    "please try again in a few minutes."
                },
            },
            status_code=503,
        )
    # The same page whether the address was new or already subscribed: the form tells strangers nothing.
    return render(request, "subscribe_sent.html", {"email": spec.email, "what": describe(sub)})


def _shown(values: dict) -> dict:
    """Values to put back in the form: control characters out, long text cut (the message says why)."""
    return {k: "".join(ch for ch in str(v)[:400] if ch >= " " or ch == "\t") for k, v in values.items()}


@router.get("/subscriptions/confirm/{token:path}", response_class=HTMLResponse)
def confirm_page(request: Request, engine: Db, token: str) -> HTMLResponse:
    check = check_token(engine, token, "confirm")
    if not check.ok:
        return _invalid(request, check.problem, "confirm")
    sub = check.subscription
    return render(request, "subscription_confirm.html", {"sub": sub, "what": describe(sub), "token": token})


@router.post("/subscriptions/confirm/{token:path}", response_class=HTMLResponse, dependencies=[Csrf])
def confirm(request: Request, engine: Db, token: str) -> HTMLResponse:
    check = subs.confirm(engine, token)
    if not check.ok:
        return _invalid(request, check.problem, "confirm")
    return render(
        request,
        "subscription_confirmed.html",
        {
            "sub": check.subscription,
            "what": describe(check.subscription),
            "manage_url": _manage_url(request, engine, check.subscription["pk"]),
        },
    )


def _manage_url(request: Request, engine, pk: int) -> str:  # noqa: ANN001
    with engine.begin() as conn:
        token = new_token(conn, pk, "manage", utc_now())
    return f"/subscriptions/manage/{token}"


def _manage_page(
    request: Request,
    rows: list[dict],
    action_url: str,
    *,
    notice: str | None = None,
    error: str | None = None,
    email: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "manage.html",
        {
            "subscriptions": [r | {"what": describe(r)} for r in rows],
            "action_url": action_url,
            "notice": notice,
            "error": error,
            "email": email,
        },
        status_code=status_code,
    )


@router.get("/subscriptions/manage/{token:path}", response_class=HTMLResponse)
def manage(request: Request, engine: Db, token: str) -> HTMLResponse:
    check = check_token(engine, token, "manage")
    if not check.ok:
        return _invalid(request, check.problem, "manage")
    email = check.subscription["email"]
    return _manage_page(
        request, subs.of_address(engine, email), f"/subscriptions/manage/{token}", email=email
    )


def _apply(engine, pk: str, action: str, allowed: list[dict]) -> tuple[str | None, str | None]:  # noqa: ANN001
    try:
        number = int(pk)
    except ValueError:
        return None, "Choose a subscription."
    if number not in {r["pk"] for r in allowed}:
        return None, "This subscription no longer exists."
    period = action if action in PERIODS else None
    try:
        return subs.change(engine, number, "period" if period else action, period=period), None
    except SubscriptionError as exc:
        return None, exc.message


@router.post("/subscriptions/manage/{token:path}", dependencies=[Csrf])
def manage_change(
    request: Request, engine: Db, token: str, pk: str = Form(""), action: str = Form("")
) -> Response:
    check = check_token(engine, token, "manage")
    if not check.ok:
        return _invalid(request, check.problem, "manage")
    email = check.subscription["email"]
    notice, error = _apply(engine, pk, action, subs.of_address(engine, email))
    rows = subs.of_address(engine, email)
    if not rows:  # the last one was deleted: the token went with it
        return render(
            request,
            "manage.html",
            {"subscriptions": [], "action_url": "", "notice": notice, "error": error, "email": email},
        )
    return _manage_page(
        request,
        rows,
        f"/subscriptions/manage/{token}",
        notice=notice,
        error=error,
        email=email,
        status_code=400 if error else 200,
    )


def _mine(engine, user: dict) -> list[dict]:  # noqa: ANN001
    """The subscriptions an account manages: none before it verified its address."""
    if not _verified_email(user):
        return []
    return subs.of_address(engine, user["email"], user["pk"])


@router.get("/subscriptions", response_class=HTMLResponse)
def my_subscriptions(request: Request, engine: Db, user: SignedIn) -> HTMLResponse:
    notice = None if _verified_email(user) else UNVERIFIED
    return _manage_page(request, _mine(engine, user), "/subscriptions", notice=notice, email=user.get("email"))


@router.post("/subscriptions", dependencies=[Csrf])
def my_subscriptions_change(
    request: Request, engine: Db, user: SignedIn, pk: str = Form(""), action: str = Form("")
) -> HTMLResponse:
    if not _verified_email(user):
        return _manage_page(request, [], "/subscriptions", error=UNVERIFIED, email=user.get("email"),
                            status_code=403)
    notice, error = _apply(engine, pk, action, _mine(engine, user))
    return _manage_page(
        request,
        _mine(engine, user),
        "/subscriptions",
        notice=notice,
        error=error,
        email=user.get("email"),
        status_code=400 if error else 200,
    )


def _unsubscribe_page(request: Request, sub: dict, token: str, *, done: bool,
                      manage_url: str | None) -> HTMLResponse:
    context = {"sub": sub, "what": describe(sub), "token": token, "done": done, "manage_url": manage_url}
    return render(request, "unsubscribe.html", context)


@router.get("/unsubscribe/{token:path}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, engine: Db, token: str) -> HTMLResponse:
    check = check_token(engine, token, "unsubscribe")
    if not check.ok:
        return _invalid(request, check.problem, "unsubscribe")
    sub = check.subscription
    return _unsubscribe_page(request, sub, token, done=sub["status"] == "unsubscribed", manage_url=None)


@router.post("/unsubscribe/{token:path}", response_class=HTMLResponse)
def unsubscribe(request: Request, engine: Db, token: str) -> HTMLResponse:
    """One click (RFC 8058): the body is "List-Unsubscribe=One-Click"; no CSRF token, no sign-in."""
    check = check_token(engine, token, "unsubscribe")
    if not check.ok:
        return _invalid(request, check.problem, "unsubscribe")
    sub = check.subscription
    if sub["status"] != "unsubscribed":
        subs.change(engine, sub["pk"], "unsubscribe")
    return _unsubscribe_page(request, sub, token, done=True, manage_url=_manage_url(request, engine, sub["pk"]))
