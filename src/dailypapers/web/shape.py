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
        "arxivComments": row["comments"],  # not "comments": huggingface_hub reads that as a count
        "license": row["license"],
        "ai_keywords": row.get("keywords") or None,  # Hugging Face's name: another instance reads them back
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


def markdown(row: dict) -> str:
    """A paper as Markdown (/papers/{id}.md, what huggingface_hub's ``read_paper`` reads): title,
    authors, dates, links, then the abstract as the source wrote it."""
    names = [a["name"] for a in row["authors"]]
    lines = [f"# {' '.join(row['title'].split())}", ""]
    if names:
        lines.append(f"**Authors:** {', '.join(names)}")
    elif row["num_authors"]:
        lines.append(f"**Authors:** {row['num_authors']} (names not known)")
    dates = [(label, row[key]) for label, key in (("Published", "published_at"),
                                                  ("On the daily feed", "submitted_on_daily_at")) if row[key]]
    if dates:
        lines.append(" · ".join(f"**{label}:** {value:%Y-%m-%d}" for label, value in dates))
    links = []
    if not row["id"].startswith("dp-"):
        links += [f"[arXiv](https://arxiv.org/abs/{row['id']})", f"[PDF](https://arxiv.org/pdf/{row['id']})"]
    links += [f"[{label}]({row[key]})" for label, key in (("Code", "github_repo"), ("Project page", "project_page"))
              if row[key]]
    if row["doi"]:
        links.append(f"[DOI](https://doi.org/{row['doi']})")
    if links:
        lines.append(" · ".join(links))
    if row["categories"]:
        lines.append(f"**Categories:** {', '.join(row['categories'].split())}")
    lines.append(f"**Upvotes:** {row['upvotes']}")
    lines += ["", "## Abstract", "", row["summary"], ""]
    return "\n".join(lines)
