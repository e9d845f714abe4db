"""Community on both databases: votes (also under concurrent clicks), comments, saved papers and
BibTeX, moderation, submissions by arXiv id; and the migration that adds them."""

import threading
from datetime import date, datetime

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import func, insert, inspect, select, text

from dailypapers.bibtex import bibtex
from dailypapers.community import (
    CommunityError,
    Forbidden,
    NotFound,
    SubmissionError,
    add_comment,
    comment_counts,
    delete_comment,
    edit_comment,
    has_voted,
    hide_comment,
    hide_paper,
    list_comments,
    submit_paper,
    toggle_upvote,
)
from dailypapers.collections.saved import saved_ids, saved_papers, toggle_saved
from dailypapers.domain import Author, Paper
from dailypapers.ingest import ingest
from dailypapers.sources.arxiv_api import ArxivApiError, parse_feed
from dailypapers.store.db import MIGRATIONS, is_current
from dailypapers.store.queries import daily_papers
from dailypapers.store.schema import papers, upvotes, users

T0 = datetime(2026, 5, 2, 15, 30)


def add_user(engine, name: str) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(users).values(username=name, email=f"{name}@example.org", created_at=T0)
                            .returning(users.c.pk)).scalar_one()


def add_paper(engine, id="2501.00001", title="Attention is all you need", **kw) -> str:
    fields = dict(summary="We propose the Transformer.", published_at=datetime(2025, 1, 2, 10),
                  authors=[Author("Ashish Vaswani"), Author("Noam Shazeer")], categories=["cs.CL", "cs.LG"])
    report = ingest(engine, [("test", Paper(id=id, title=title, **(fields | kw)))])
    assert report.inserted == 1, report.rejections
    return id


def counts(engine, paper_id: str) -> tuple[int, int, int]:
    """(shown upvotes, the source's count, local vote rows) of a paper."""
    with engine.connect() as conn:
        shown, source, pk = conn.execute(select(papers.c.upvotes, papers.c.source_upvotes, papers.c.pk)
                                         .where(papers.c.id == paper_id)).one()
        rows = conn.execute(select(func.count()).select_from(upvotes)
                            .where(upvotes.c.paper_pk == pk)).scalar_one()
    return shown, source, rows


# --- upvotes ------------------------------------------------------------------------------------


def test_upvote_toggles_and_counts_add_to_the_source_count(engine):
    paper = add_paper(engine, upvotes=5)
    ada, bob = add_user(engine, "ada"), add_user(engine, "bob")
    assert toggle_upvote(engine, ada, paper) == (True, 6)
    assert toggle_upvote(engine, bob, paper) == (True, 7)
    assert has_voted(engine, ada, [paper, "2501.09999"]) == {paper}
    assert toggle_upvote(engine, ada, paper) == (False, 6)
    assert has_voted(engine, ada, [paper]) == set() and has_voted(engine, bob, [paper]) == {paper}
    assert has_voted(engine, None, [paper]) == set()
    assert counts(engine, paper) == (6, 5, 1)


def test_a_new_source_count_keeps_the_local_votes(engine):
    paper = add_paper(engine, upvotes=5)
    toggle_upvote(engine, add_user(engine, "ada"), paper)
    ingest(engine, [("again", Paper(id=paper, title="Attention is all you need", summary="x", upvotes=9))])
    assert counts(engine, paper) == (10, 9, 1)


def test_votes_on_unknown_or_hidden_papers_are_refused(engine):
    ada = add_user(engine, "ada")
    with pytest.raises(NotFound, match=r"^There is no paper 2501\.09999\.$"):
        toggle_upvote(engine, ada, "2501.09999")
    paper = add_paper(engine)
    hide_paper(engine, paper)
    with pytest.raises(NotFound, match=r"^There is no paper 2501\.00001\.$"):
        toggle_upvote(engine, ada, paper)
    assert counts(engine, paper) == (0, 0, 0)


def _in_threads(n: int, work) -> None:
    """Run work(i) in n threads started together; re-raise the first error."""
    barrier, errors = threading.Barrier(n), []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


def test_concurrent_votes_of_many_users_are_all_counted(engine):
    paper = add_paper(engine, upvotes=3)
    people = [add_user(engine, f"user{i}") for i in range(8)]
    _in_threads(8, lambda i: toggle_upvote(engine, people[i], paper))
    assert counts(engine, paper) == (3 + 8, 3, 8)
    # Each user clicks five more times (on, off, on, off, on... from "on": ends "off"), all at once.
    _in_threads(8, lambda i: [toggle_upvote(engine, people[i], paper) for _ in range(5)])
    assert counts(engine, paper) == (3, 3, 0)


def test_racing_clicks_of_one_user_never_vote_twice(engine):
    paper = add_paper(engine, upvotes=2)
    ada = add_user(engine, "ada")
    results = []
    _in_threads(8, lambda i: results.append(toggle_upvote(engine, ada, paper)))
    shown, source, rows = counts(engine, paper)
    assert rows in (0, 1) and shown == source + rows
    assert len(results) == 8 and all(total in (2, 3) for _, total in results)


# --- comments -----------------------------------------------------------------------------------


def test_comments_are_rendered_from_markdown_and_sanitized(engine):
    paper = add_paper(engine)
    ada = add_user(engine, "ada")
    text = ("**Nice** <script>alert(1)</script> [x](javascript:alert(1)) [code](https://github.com/a/b) "
            "<b>raw</b> <a href=\"javascript:alert(2)\">y</a>\n\n<img src=x onerror=alert(3)>\n\n"
            "![tracker](https://example.org/pixel.png)")
    pk = add_comment(engine, ada, paper, text, now=T0)
    [comment] = list_comments(engine, paper)
    assert comment["pk"] == pk and comment["username"] == "ada" and comment["body"] == text
    assert comment["created_at"] == T0 and comment["edited_at"] is None and comment["hidden"] is False
    assert comment["html"] == (
        '<p><strong>Nice</strong> &lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1)) '
        '<a href="https://github.com/a/b" rel="nofollow noopener">code</a> &lt;b&gt;raw&lt;/b&gt; '
        '&lt;a href="javascript:alert(2)"&gt;y&lt;/a&gt;</p>\n'
        '<p>&lt;img src=x onerror=alert(3)&gt;</p>\n'
        '<p>!<a href="https://example.org/pixel.png" rel="nofollow noopener">tracker</a></p>\n'
    )


@pytest.mark.parametrize("text, message", [
    ("", "A comment cannot be empty."),
    ("  \n\t ", "A comment cannot be empty."),
    ("x" * 10_001, "A comment can be at most 10,000 characters; this one has 10,001."),
])
def test_comment_length_is_checked(engine, text, message):
    paper, ada = add_paper(engine), add_user(engine, "ada")
    with pytest.raises(CommunityError) as info:
        add_comment(engine, ada, paper, text)
    assert (info.value.field, str(info.value)) == ("body", message)
    assert add_comment(engine, ada, paper, "x" * 10_000)
    with pytest.raises(NotFound, match=r"^There is no paper 2501\.09999\.$"):
        add_comment(engine, ada, "2501.09999", "hello")


def test_only_the_author_edits_or_deletes_and_an_admin_hides(engine):
    paper = add_paper(engine)
    ada, bob = add_user(engine, "ada"), add_user(engine, "bob")
    first = add_comment(engine, ada, paper, "First!", now=T0)
    second = add_comment(engine, bob, paper, "Second.", now=T0)
    with pytest.raises(Forbidden, match=r"^Only its author can edit this comment\.$"):
        edit_comment(engine, bob, first, "Bob was here")
    with pytest.raises(Forbidden, match=r"^Only its author can delete this comment\.$"):
        delete_comment(engine, bob, first)
    with pytest.raises(NotFound, match=r"^That comment does not exist\.$"):
        edit_comment(engine, ada, 999_999, "x")
    edit_comment(engine, ada, first, "First, *edited*", now=datetime(2026, 5, 3))
    shown = list_comments(engine, paper)
    assert [(c["username"], c["html"]) for c in shown] == [
        ("ada", "<p>First, <em>edited</em></p>\n"), ("bob", "<p>Second.</p>\n")]
    assert shown[0]["edited_at"] == datetime(2026, 5, 3)
    assert comment_counts(engine, [paper, "2501.09999"]) == {paper: 2, "2501.09999": 0}

    hide_comment(engine, second)  # the web lets only admins reach this
    assert [c["pk"] for c in list_comments(engine, paper)] == [first]
    assert [c["hidden"] for c in list_comments(engine, paper, include_hidden=True)] == [False, True]
    assert comment_counts(engine, [paper]) == {paper: 1}
    hide_comment(engine, second, hidden=False)
    assert comment_counts(engine, [paper]) == {paper: 2}

    delete_comment(engine, ada, first)
    assert [c["pk"] for c in list_comments(engine, paper)] == [second]
    with pytest.raises(NotFound):
        hide_comment(engine, first)


# --- saved papers and BibTeX --------------------------------------------------------------------


def test_saved_papers_and_their_bibtex(engine):
    ada = add_user(engine, "ada")
    arxiv = add_paper(engine, doi="10.48550/arXiv.2501.00001")
    counted = add_paper(engine, id="dp-0123456789ab", title="The 100% solution: R&D on $x_1$ {fast} #1 ~ ^",
                        authors=[], num_authors=7, categories=[], published_at=datetime(2024, 6, 1),
                        journal_ref="Nature 600, 1-10 (2024)", doi="10.1000/xyz_1")
    assert toggle_saved(engine, ada, arxiv, now=datetime(2026, 1, 1)) is True
    assert toggle_saved(engine, ada, counted, now=datetime(2026, 1, 2)) is True
    assert saved_ids(engine, ada, [arxiv, counted, "2501.09999"]) == {arxiv, counted}
    mine = saved_papers(engine, ada)
    assert [p["id"] for p in mine] == [counted, arxiv]  # last saved first
    assert mine[0]["saved_at"] == datetime(2026, 1, 2)
    assert bibtex(mine) == (
        "@article{anonymous2024solution,\n"
        "  title = {The 100\\% solution: R\\&D on \\$x\\_1\\$ \\{fast\\} \\#1 \\textasciitilde{} "
        "\\textasciicircum{}},\n"
        "  author = {others},\n"
        "  year = {2024},\n"
        "  journal = {Nature 600, 1-10 (2024)},\n"
        "  doi = {10.1000/xyz_1},\n"
        "  url = {https://doi.org/10.1000/xyz_1}\n"
        "}\n"
        "\n"
        "@misc{vaswani2025attention,\n"
        "  title = {Attention is all you need},\n"
        "  author = {Ashish Vaswani and Noam Shazeer},\n"
        "  year = {2025},\n"
        "  eprint = {2501.00001},\n"
        "  archivePrefix = {arXiv},\n"
        "  primaryClass = {cs.CL},\n"
        "  doi = {10.48550/arXiv.2501.00001},\n"
        "  url = {https://arxiv.org/abs/2501.00001}\n"
        "}\n"
    )
    assert toggle_saved(engine, ada, arxiv) is False
    assert [p["id"] for p in saved_papers(engine, ada)] == [counted]
    hide_paper(engine, counted)
    assert saved_papers(engine, ada) == []
    with pytest.raises(NotFound):
        toggle_saved(engine, ada, "2501.09999")


def test_bibtex_keys_are_stable_and_unique_and_names_are_folded():
    paper = {"id": "2501.00002", "title": "On the Élan of Graphs", "published_at": "2025-01-03T00:00:00",
             "authors": [{"name": "José Núñez-García"}, {"name": "Martin King Jr."}], "num_authors": 3,
             "categories": "math.CO"}
    text = bibtex([paper, paper])
    assert "@misc{nunezgarcia2025elan," in text and "@misc{nunezgarcia2025elanb," in text
    assert "  author = {José Núñez-García and Martin King Jr. and others},\n" in text
    assert bibtex([paper]) == bibtex([paper])  # same input, same keys


# --- moderation ---------------------------------------------------------------------------------


def test_hide_paper_and_show_it_again(engine):
    paper = add_paper(engine)
    hide_paper(engine, paper)
    with engine.connect() as conn:
        assert conn.execute(select(papers.c.hidden)).scalar_one() is True
    hide_paper(engine, paper, hidden=False)
    with engine.connect() as conn:
        assert conn.execute(select(papers.c.hidden)).scalar_one() is False
    with pytest.raises(NotFound, match=r"^There is no paper 2501\.09999\.$"):
        hide_paper(engine, "2501.09999")


# --- submissions --------------------------------------------------------------------------------


class FakeArxiv:
    """Stands in for fetch_papers: answers from recorded API responses and remembers what was asked."""

    def __init__(self, recorded, name: str):
        self.body = (recorded / "arxiv-api" / name).read_bytes()
        self.asked: list[list[str]] = []

    def __call__(self, ids):
        self.asked.append(list(ids))
        yield from parse_feed(self.body)


def test_a_new_submission_is_fetched_and_put_on_todays_feed(engine, recorded):
    ada = add_user(engine, "ada")
    fetch = FakeArxiv(recorded, "query_id_list-1605.08386.xml")
    assert submit_paper(engine, "https://arxiv.org/abs/1605.08386v1", ada, fetch=fetch, now=T0) == (
        "1605.08386", False, True)
    assert fetch.asked == [["1605.08386"]]
    [row] = daily_papers(engine, date(2026, 5, 2))
    assert row["id"] == "1605.08386" and row["title"] == "Heat-bath random walks with Markov bases"
    assert row["submitted_on_daily_at"] == datetime(2026, 5, 2) and row["submitted_by_pk"] == ada
    assert row["source"] == "arxiv-api" and row["categories"] == "math.CO math.ST"

    # The same paper again, by another spelling and another user: already there, nothing fetched.
    bob = add_user(engine, "bob")
    assert submit_paper(engine, "arXiv:1605.08386", bob, fetch=fetch, now=datetime(2026, 5, 3)) == (
        "1605.08386", True, False)
    assert fetch.asked == [["1605.08386"]]
    [row] = daily_papers(engine, date(2026, 5, 2))
    assert row["submitted_by_pk"] == ada


def test_a_stored_paper_off_the_feed_is_put_on_it_without_fetching(engine, recorded):
    paper = add_paper(engine)
    ada = add_user(engine, "ada")
    fetch = FakeArxiv(recorded, "query_id_list-1605.08386.xml")
    assert submit_paper(engine, paper, ada, fetch=fetch, now=T0) == (paper, False, False)
    assert fetch.asked == []
    assert [r["id"] for r in daily_papers(engine, date(2026, 5, 2))] == [paper]


def test_submission_errors_say_what_is_wrong(engine, recorded):
    ada = add_user(engine, "ada")

    def refused(text, fetch) -> str:
        with pytest.raises(SubmissionError) as info:
            submit_paper(engine, text, ada, fetch=fetch, now=T0)
        assert info.value.field == "paper"
        return str(info.value)

    fetch = FakeArxiv(recorded, "query_id_list-0000.0000_empty-result.xml")
    assert refused("not an id", fetch) == "'not an id' is not an arXiv identifier"
    assert refused("https://example.org/abs/2501.00001", fetch) == (
        "'https://example.org/abs/2501.00001' is not an arXiv identifier")
    assert fetch.asked == []
    assert refused("2501.99999", fetch) == "2501.99999 was not found on arXiv"

    def broken(ids):
        raise ArxivApiError("arXiv API unavailable after 4 attempts: HTTP 503")
        yield  # a generator, like fetch_papers

    assert refused("2501.99999", broken) == (
        "arXiv could not be asked for 2501.99999 (arXiv API unavailable after 4 attempts: HTTP 503); "
        "try again later.")
    hidden = add_paper(engine, id="2501.00003")
    hide_paper(engine, hidden)
    assert refused(hidden, fetch) == "2501.00003 was removed from this site and cannot be submitted."
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(papers)).scalar_one() == 1


# --- the migration ------------------------------------------------------------------------------


# login_attempts went in 0006; saved_papers in 0008 (into collections)
COMMUNITY_TABLES = {"upvotes", "comments", "sessions", "password_resets"}


def _migrate(engine, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_the_community_migration_downgrades_and_upgrades_again(engine):
    _migrate(engine, "0002", down=True)
    tables = set(inspect(engine).get_table_names())
    assert not tables & COMMUNITY_TABLES
    assert "email" not in {c["name"] for c in inspect(engine).get_columns("users")}
    _migrate(engine, "head")
    assert is_current(engine)
    assert COMMUNITY_TABLES | {"collections", "follows"} <= set(inspect(engine).get_table_names())


def test_saved_lists_become_default_collections_and_come_back(engine):
    """0008 moves each reader's saved papers, newest first, into a private "Saved" collection; a
    downgrade puts the same rows back in saved_papers."""
    ada, bob = add_user(engine, "ada"), add_user(engine, "bob")
    first, second = add_paper(engine), add_paper(engine, id="2501.00002", title="BERT")
    assert toggle_saved(engine, ada, first, now=datetime(2026, 1, 1)) is True
    assert toggle_saved(engine, ada, second, now=datetime(2026, 1, 2)) is True
    assert toggle_saved(engine, bob, second, now=datetime(2026, 1, 3)) is True
    _migrate(engine, "0007", down=True)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_pk, paper_pk, created_at FROM saved_papers")).all()
    assert len(rows) == 3
    assert "collections" not in inspect(engine).get_table_names()
    _migrate(engine, "head")
    assert "saved_papers" not in inspect(engine).get_table_names()
    assert [p["id"] for p in saved_papers(engine, ada)] == [second, first]
    assert [p["saved_at"] for p in saved_papers(engine, ada)] == [datetime(2026, 1, 2), datetime(2026, 1, 1)]
    assert [p["id"] for p in saved_papers(engine, bob)] == [second]
    with engine.connect() as conn:
        lists = conn.execute(text("SELECT user_pk, name, is_public, is_default FROM collections "
                                  "ORDER BY user_pk")).all()
    assert [tuple(r) for r in lists] == [(ada, "Saved", False, True), (bob, "Saved", False, True)]
    assert toggle_saved(engine, ada, first) is False  # the migrated list keeps working
    assert [p["id"] for p in saved_papers(engine, ada)] == [second]


def test_saving_and_voting_make_recommendations_stale(engine):
    ada = add_user(engine, "ada")
    paper = add_paper(engine)

    def version() -> int:
        with engine.connect() as conn:
            return conn.execute(select(users.c.signals_version).where(users.c.pk == ada)).scalar_one()

    assert version() == 0
    toggle_saved(engine, ada, paper)
    toggle_upvote(engine, ada, paper)
    assert version() == 2
