"""Build the bundled sample corpus from the seed page's 98 papers (../shared/data/seed/seed_papers.json).

The output is Hugging Face daily-papers JSON (what `dailypapers ingest hf-daily` reads), with the
papers spread over the ten weekdays that end on the seed page's date, so the feed has days to show.
The seed page gives author counts but not names; they go in the `numAuthors` extension key.
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
    day = days[(p["rank"] - 1) % len(days)]
    if p["published"] and date.fromisoformat(p["published"]) > day:
        day = date.fromisoformat(p["published"])
    code, page = find_links(" ".join(p["urls"]))
    org = p["organization"]
    paper = {
        "id": local_id(p["title"]),
        "title": p["title"],
        "summary": p["abstract"],
        "authors": [],
        "numAuthors": p["authors_count"],
        "publishedAt": f"{p['published']}T00:00:00.000Z" if p["published"] else None,
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
