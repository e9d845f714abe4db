"""Follows and "not interested" on both databases: validation, idempotence, the signals version,
an author's papers (exact names, accents, quotes, newest first) and the "followed only" condition."""

from datetime import datetime

import pytest
from sqlalchemy import func, insert, select

from dailypapers import follows
from dailypapers.community import NotFound
from dailypapers.domain import Author, Organization, Paper
from dailypapers.follows import FollowError
from dailypapers.ingest import ingest
from dailypapers.store import queries
from dailypapers.store.schema import dismissals, papers, users
from dailypapers.store.schema import follows as follows_table

T0 = datetime(2026, 5, 2, 15, 30)
ACCENTED = "José Ñúñez-O'Brien"
QUOTED = 'Ada "the Countess" Lovelace'


def add_user(engine, name="ada") -> int:
    with engine.begin() as conn:
        return conn.execute(insert(users).values(username=name, email=f"{name}@example.org", created_at=T0)
                            .returning(users.c.pk)).scalar_one()


def version(engine, user_pk) -> int:
    with engine.connect() as conn:
        return conn.execute(select(users.c.signals_version).where(users.c.pk == user_pk)).scalar_one()


def paper(id, authors, categories=("cs.CL",), day=1, org=None, **kw) -> tuple[str, Paper]:
    return ("test", Paper(id=id, title=f"Paper {id}", summary="Words.", authors=[Author(a) for a in authors],
                          categories=list(categories), published_at=datetime(2025, 1, day, 10),
                          organization=Organization(org) if org else None, **kw))


@pytest.fixture
def corpus(engine):
    report = ingest(engine, [
        paper("2501.00001", ["Ada Lovelace", "Alan Turing"], ["cs.LG"], day=1, org="deepmind"),
        paper("2501.00002", ["Ada Lovelace"], ["cs.RO", "cs.LG"], day=3),
        paper("2501.00003", [ACCENTED, QUOTED], ["math.AG"], day=2),
        paper("2501.00004", ["Ada Lovelace Jr."], ["q-bio.NC"], day=4),  # not Ada Lovelace
        paper("2501.00005", ["Grace Hopper"], ["cs.PL"], day=5, org="deepmind"),
        paper("2501.00006", ["Edsger Dijkstra"], ["hep-th", "xx.NEW"], day=6),
    ])
    assert report.inserted == 6, report.rejections
    return engine


def test_follow_is_idempotent_and_raises_the_signals_version(corpus):
    ada = add_user(corpus)
    assert follows.follow(corpus, ada, "category", "cs.RO") is True
    assert follows.follow(corpus, ada, "category", "cs.RO") is False  # twice is one row
    assert follows.follow(corpus, ada, "author", "  Ada   Lovelace ") is True  # spaces collapsed
    assert follows.follow(corpus, ada, "organization", "deepmind") is True
    with corpus.connect() as conn:
        assert conn.execute(select(func.count()).select_from(follows_table)).scalar_one() == 3
    assert version(corpus, ada) == 3
    assert follows.following(corpus, ada) == {"author": ["Ada Lovelace"], "category": ["cs.RO"],
                                              "organization": ["deepmind"]}
    assert follows.unfollow(corpus, ada, "category", "cs.RO") is True
    assert follows.unfollow(corpus, ada, "category", "cs.RO") is False
    assert version(corpus, ada) == 4  # an unfollow that removed nothing changes nothing
    assert follows.following(corpus, ada)["category"] == []


@pytest.mark.parametrize("kind, target, message", [
    ("category", "cs.ZZ", "there is no arXiv category 'cs.ZZ'"),
    ("category", "CS.LG", "does not look like an arXiv category"),
    ("category", "cs.LG; drop", "does not look like an arXiv category"),
    ("author", "", "name the author to follow"),
    ("author", "   ", "name the author to follow"),
    ("author", "x" * 301, "at most 300 characters; this one has 301"),
    ("author", "Ada\x00Lovelace", "cannot hold control characters"),
    ("author", "Ada\nLovelace", "cannot hold control characters"),
    ("organization", "nobody", "there is no organization 'nobody' here"),
    ("person", "Ada", "follow an author, a category or an organization"),
])
def test_bad_follows_say_what_is_wrong(corpus, kind, target, message):
    ada = add_user(corpus)
    with pytest.raises(FollowError) as error:
        follows.follow(corpus, ada, kind, target)
    assert message in error.value.message
    assert version(corpus, ada) == 0


def test_categories_come_from_the_taxonomy_or_the_stored_papers(corpus):
    ada = add_user(corpus)
    assert follows.follow(corpus, ada, "category", "astro-ph.GA")  # no paper has it: arXiv does
    assert follows.follow(corpus, ada, "category", "cs")  # a whole archive
    assert follows.follow(corpus, ada, "category", "xx.NEW")  # not in the taxonomy, but on a paper


def test_dismiss_then_undo(corpus):
    ada = add_user(corpus)
    assert follows.dismiss(corpus, ada, "2501.00001") is True
    assert follows.dismiss(corpus, ada, "2501.00001") is False
    assert follows.dismissed_ids(corpus, ada, ["2501.00001", "2501.00002"]) == {"2501.00001"}
    assert follows.dismissed_ids(corpus, None, ["2501.00001"]) == set()
    assert version(corpus, ada) == 1
    assert follows.undismiss(corpus, ada, "2501.00001") is True
    assert follows.undismiss(corpus, ada, "2501.00001") is False
    assert follows.dismissed_ids(corpus, ada, ["2501.00001"]) == set()
    assert version(corpus, ada) == 2
    with corpus.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dismissals)).scalar_one() == 0
    with pytest.raises(NotFound):
        follows.dismiss(corpus, ada, "2999.99999")


def test_an_authors_papers_are_exactly_theirs_newest_first(corpus):
    assert [p["id"] for p in queries.author_papers(corpus, "Ada Lovelace")] == ["2501.00002", "2501.00001"]
    assert [p["id"] for p in queries.author_papers(corpus, ACCENTED)] == ["2501.00003"]
    assert [p["id"] for p in queries.author_papers(corpus, QUOTED)] == ["2501.00003"]
    assert queries.author_papers(corpus, "Ada") == []  # a part of a name is not the name
    assert queries.author_papers(corpus, "Nobody at all") == []
    assert [p["id"] for p in queries.author_papers(corpus, "Ada Lovelace", limit=1, offset=1)] == ["2501.00001"]


def test_followed_only_selects_followed_categories_authors_and_organizations(corpus):
    ada = add_user(corpus)

    def followed():
        with corpus.connect() as conn:
            return set(conn.execute(select(papers.c.id).where(follows.followed_condition(corpus, ada))).scalars())

    assert followed() == set()
    follows.follow(corpus, ada, "category", "math")  # the archive: math.AG
    assert followed() == {"2501.00003"}
    follows.follow(corpus, ada, "author", "Ada Lovelace")
    assert followed() == {"2501.00001", "2501.00002", "2501.00003"}
    follows.follow(corpus, ada, "organization", "deepmind")
    assert followed() == {"2501.00001", "2501.00002", "2501.00003", "2501.00005"}
    follows.follow(corpus, ada, "category", "hep-th")
    assert "2501.00006" in followed()


def test_category_counts_list_the_stored_categories(corpus):
    counts = dict(follows.category_counts(corpus))
    assert counts["cs.LG"] == 2 and counts["math.AG"] == 1 and counts["xx.NEW"] == 1
    assert follows.category_counts(corpus)[0] == ("cs.LG", 2)
