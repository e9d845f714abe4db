"""Build the bundled sample corpus from the seed page's 98 papers (../shared/data/seed/seed_papers.json)
joined by rank with their arXiv metadata (seed_papers_arxiv.json beside it).

The output is Hugging Face daily-papers JSON (what `dailypapers ingest hf-daily` reads), with the
papers spread over the ten weekdays that end on the seed page's date, so the feed has days to show.
A paper takes its arXiv id, authors, categories and first submission date where arXiv's pages showed
them; one without an arXiv id keeps its stable local id, and one without names its author count (the
`numAuthors` extension key). An unconfirmed id candidate is not used.
Run: python scripts/make_sample.py [SEED_JSON] > src/dailypapers/sample/papers.json
"""

import json
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from dailypapers.domain import local_id  # noqa: E402
from dailypapers.sources.common import find_links  # noqa: E402

seed = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/seed/seed_papers.json"
papers = json.loads(seed.read_text())["papers"]
arxiv = {p["rank"]: p for p in json.loads(seed.with_name("seed_papers_arxiv.json").read_text())["papers"]}

last = date(2025, 10, 10)  # the seed page's date
days = []
d = last
while len(days) < 10:
    if d.weekday() < 5:
        days.append(d)
    d -= timedelta(days=1)
days.reverse()

items = []
for p in papers:
    known = arxiv.get(p["rank"], {})
    published = known.get("first_submitted") or p["published"]
    day = days[(p["rank"] - 1) % len(days)]
    if published and date.fromisoformat(published) > day:
        day = date.fromisoformat(published)
    code, page = find_links(" ".join(p["urls"]))
    org = p["organization"]
    names = known.get("authors") or []
    categories = known.get("categories") or ([known["primary_category"]] if known.get("primary_category") else [])
    paper = {
        "id": known.get("arxiv_id") or local_id(p["title"]),
        "title": p["title"],
        "summary": p["abstract"],
        "authors": [{"name": name} for name in names],
        "numAuthors": None if names else p["authors_count"],
        "categories": categories or None,
        "publishedAt": f"{published}T00:00:00.000Z" if published else None,
        "submittedOnDailyAt": f"{day.isoformat()}T00:00:00.000Z",
        "upvotes": p["upvotes"],
        "githubRepo": code,
        "projectPage": page,
    }
    item = {"paper": {k: v for k, v in paper.items() if v is not None}, "title": p["title"], "numComments": 0}
    if org:
        handle, _, fullname = org.partition(" ")
        item["organization"] = {"name": handle, "fullname": fullname or handle}
    items.append(item)

json.dump(items, sys.stdout, ensure_ascii=False, indent=1)
sys.stdout.write("\n")
