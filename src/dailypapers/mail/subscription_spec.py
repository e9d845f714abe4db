"""What a subscription asks for: form and command-line input checked into a ``Spec`` (refused with
``SubscriptionError(field, message)``, which the web shows beside the field and the CLI prints as one
line), and a subscription described in words for people.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date

from dailypapers.accounts import AccountError, check_email
from dailypapers.search.filters import Filters

KINDS = ("digest", "alert", "foryou")  # foryou: a reader's recommendations (accounts only)
PERIODS = ("daily", "weekly")
QUERY_MAX = 300
CATEGORIES_MAX = 10

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_CATEGORY = re.compile(r"[a-z][a-z-]{0,19}(\.[A-Za-z-]{1,20})?")
_ORG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


class SubscriptionError(ValueError):
    """Input refused: which field, and a sentence to show beside it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Spec:
    """What a subscription asks for, checked."""

    email: str
    kind: str = "digest"
    period: str = "daily"
    query: str | None = None
    since: date | None = None
    categories: tuple[str, ...] = ()
    organization: str | None = None
    has_code: bool | None = None

    @property
    def filters_json(self) -> dict:
        if self.kind != "alert":
            return {}
        return {
            "since": self.since.isoformat() if self.since else None,
            "categories": list(self.categories),
            "organization": self.organization,
            "has_code": self.has_code,
        }

    @property
    def signature(self) -> str:
        """What makes two subscriptions of one address the same (not the period: that can change)."""
        canonical = json.dumps(
            {"kind": self.kind, "query": (self.query or "").lower(), **self.filters_json}, sort_keys=True
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_address(email: object) -> str:
    """A single, valid address; a line break (header injection) or a control character is refused."""
    if not isinstance(email, str) or not email.strip():
        raise SubscriptionError("email", "Enter your email address.")
    if _CONTROL.search(email.strip()):
        raise SubscriptionError(
            "email", "Enter one email address, without line breaks or control characters."
        )
    if "," in email or ";" in email:
        raise SubscriptionError("email", "Enter one email address (no commas or semicolons).")
    try:
        return check_email(email)
    except AccountError as exc:
        raise SubscriptionError("email", exc.message) from None


def check_spec(
    email: object,
    *,
    kind: str = "digest",
    period: str = "daily",
    query: str | None = None,
    since: str | date | None = None,
    categories: str | list[str] | tuple[str, ...] | None = None,
    organization: str | None = None,
    has_code: bool | None = None,
) -> Spec:
    """Check form or command-line input; raises SubscriptionError naming the field at fault."""
    address = check_address(email)
    if kind not in KINDS:
        raise SubscriptionError("kind", "Choose a digest of trending papers or an alert for a search.")
    if period not in PERIODS:
        raise SubscriptionError("period", "Choose daily or weekly.")
    if kind in ("digest", "foryou"):
        return Spec(address, kind, period)

    text = (query or "").strip() if isinstance(query, str) else ""
    if _CONTROL.search(text):
        raise SubscriptionError(
            "query", "Remove the control characters (such as NUL or line breaks) from the search."
        )
    text = " ".join(text.split())
    if len(text) > QUERY_MAX:
        raise SubscriptionError(
            "query", f"A saved search can be at most {QUERY_MAX} characters (this one has {len(text):,})."
        )

    day = None
    if isinstance(since, date):
        day = since
    elif isinstance(since, str) and since.strip():
        try:
            day = (
                date.fromisoformat(since.strip())
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", since.strip())
                else None
            )
        except ValueError:
            day = None
        if day is None:
            raise SubscriptionError("since", "Enter a date like 2025-01-31, or leave it empty.")

    if isinstance(categories, str):
        categories = [c for c in re.split(r"[\s,]+", categories) if c]
    cats = tuple(dict.fromkeys(c.strip() for c in categories or () if c.strip()))
    if len(cats) > CATEGORIES_MAX:
        raise SubscriptionError("cat", f"Choose at most {CATEGORIES_MAX} categories.")
    for cat in cats:
        if not _CATEGORY.fullmatch(cat):
            raise SubscriptionError("cat", "Categories look like cs.LG or cs; separate several with commas.")

    org = organization.strip() if isinstance(organization, str) and organization.strip() else None
    if org is not None and not _ORG.fullmatch(org):
        raise SubscriptionError(
            "org", "An organization is its handle, like facebook (letters, digits, '-', '_' and '.')."
        )

    if not text and not cats and not org and not has_code:
        raise SubscriptionError(
            "query", "Enter words to search for, or choose a category, an organization or papers with code."
        )
    return Spec(address, "alert", period, text or None, day, cats, org, has_code or None)


def filters_of(sub: dict) -> Filters:
    f = sub.get("filters") or {}
    since = date.fromisoformat(f["since"]) if f.get("since") else None
    return Filters(
        since=since,
        categories=tuple(f.get("categories") or ()),
        organization=f.get("organization"),
        has_code=f.get("has_code"),
    )


def describe(sub: dict) -> str:
    """One line for people: "daily digest of trending papers", "weekly alert for “x” (cs.LG)"."""
    if sub["kind"] == "digest":
        return f"{sub['period']} digest of trending papers"
    if sub["kind"] == "foryou":
        return f"{sub['period']} digest of papers picked for you"
    return f"{sub['period']} alert for {search_label(sub)}"


def search_label(sub: dict) -> str:
    f = sub.get("filters") or {}
    parts = [*(f.get("categories") or ())]
    if f.get("organization"):
        parts.append(f"from {f['organization']}")
    if f.get("has_code"):
        parts.append("with code")
    if f.get("since"):
        parts.append(f"since {f['since']}")
    if sub.get("query"):
        return f"“{sub['query']}”" + (f" ({', '.join(parts)})" if parts else "")
    return ", ".join(parts) or "all papers"

