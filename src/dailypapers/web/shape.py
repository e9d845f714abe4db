"""Papers as the Hugging Face papers API shapes them (FORMATS.md §4), so its scripts work here."""

from __future__ import annotations

from datetime import datetime


def iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z" if value else None


def _user(row: dict) -> dict | None:
    if not row.get("submitter_username"):
        return None
    return {"name": row["submitter_username"], "user": row["submitter_username"],
            "fullname": row.get("submitter_fullname") or row["submitter_username"],
            "avatarUrl": row.get("submitter_avatar"), "type": "user"}


def _organization(row: dict) -> dict | None:
    if not row.get("organization_name"):
        return None
    return {"name": row["organization_name"], "fullname": row.get("organization_fullname") or row["organization_name"],
            "avatar": row.get("organization_avatar")}


def paper(row: dict, num_comments: int | None = None) -> dict:
    """The paper object of /api/papers/{id}."""
    out = {
        "id": row["id"],
        "authors": [{"name": a["name"], "hidden": False} for a in row["authors"]],
        "numAuthors": row["num_authors"],
        "publishedAt": iso(row["published_at"]),
        "submittedOnDailyAt": iso(row["submitted_on_daily_at"]),
        "title": row["title"],
        "summary": row["summary"],
        "upvotes": row["upvotes"],
        "categories": row["categories"].split(),
        "githubRepo": row["github_repo"],
        "projectPage": row["project_page"],
        "doi": row["doi"],
        "journalRef": row["journal_ref"],
        "comments": row["comments"],
        "license": row["license"],
    }
    if (user := _user(row)) is not None:
        out["submittedOnDailyBy"] = user
    if (org := _organization(row)) is not None:
        out["organization"] = org
    if num_comments is not None:
        out["numComments"] = num_comments
    return {k: v for k, v in out.items() if v is not None}


def daily_item(row: dict, num_comments: int) -> dict:
    """One item of /api/daily_papers: the paper wrapped with list-level fields."""
    item = {
        "paper": paper(row),
        "title": row["title"],
        "summary": row["summary"],
        "publishedAt": iso(row["published_at"]),
        "numComments": num_comments,
        "isAuthorParticipating": False,
    }
    if (user := _user(row)) is not None:
        item["submittedBy"] = user
    if (org := _organization(row)) is not None:
        item["organization"] = org
    return {k: v for k, v in item.items() if v is not None}
