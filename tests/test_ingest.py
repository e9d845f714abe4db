"""The ingest pipeline on both databases: idempotence, versions, feed days, and every bad-input case."""

from datetime import datetime

import pytest
from sqlalchemy import func, select, text

from dailypapers.domain import Author, Deletion, Organization, Paper, RecordError, User, Version
from dailypapers.ingest import ingest
from dailypapers.store.schema import organizations, papers, users


def paper(id="2501.00001", title="Attention is all you need", version=1, **kw) -> Paper:
    defaults = dict(
        summary="We propose the Transformer.",
        authors=[Author("Ashish Vaswani", ("Google",)), Author("Noam Shazeer")],
        categories=["cs.CL", "cs.LG"],
        published_at=datetime(2025, 1, 2, 10, 0),
        updated_at=datetime(2025, 1, 2, 10, 0) if version == 1 else datetime(2025, 2, 1),
        versions=[Version(v, datetime(2025, 1, v + 1)) for v in range(1, version + 1)],
    )
    return Paper(id=id, title=title, **(defaults | kw))


def rows(engine):
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(papers)).mappings()}


def test_insert_then_same_input_again_changes_nothing(engine):
    records = [(f"line {i}", paper(id=f"2501.0000{i}")) for i in range(1, 4)]
    first = ingest(engine, records)
    before = rows(engine)
    second = ingest(engine, records)
    assert (first.inserted, first.updated, first.unchanged, first.rejected) == (3, 0, 0, 0)
    assert (second.inserted, second.updated, second.unchanged, second.rejected) == (0, 0, 3, 0)
    assert rows(engine) == before
    stored = before["2501.00001"]
    assert stored["authors"] == [{"name": "Ashish Vaswani", "affiliations": ["Google"]},
                                 {"name": "Noam Shazeer", "affiliations": []}]
    assert stored["num_authors"] == 2 and stored["categories"] == "cs.CL cs.LG" and stored["upvotes"] == 0


def test_newer_version_updates_in_place_and_keeps_history(engine):
    ingest(engine, [("line 1", paper(version=1))])
    report = ingest(engine, [("line 1", paper(version=2, title="Attention is all you need, revised"))])
    assert report.updated == 1
    stored = rows(engine)
    assert len(stored) == 1
    row = stored["2501.00001"]
    assert row["title"] == "Attention is all you need, revised"
    assert [v["version"] for v in row["versions"]] == [1, 2]
    assert row["versions"][0]["title"] == "Attention is all you need"  # the replaced title is kept
    assert "title" not in row["versions"][1]


def test_older_version_never_overwrites_a_newer_one(engine):
    ingest(engine, [("line 1", paper(version=2, title="New title"))])
    report = ingest(engine, [("line 1", paper(version=1, title="Old title"))])
    assert report.unchanged == 1
    assert rows(engine)["2501.00001"]["title"] == "New title"


def test_feed_day_and_submitter_are_set_once(engine):
    first_day = datetime(2025, 10, 9)
    ingest(engine, [("item 1", paper(submitted_on_daily_at=first_day, upvotes=3,
                                     submitted_on_daily_by=User("ak", "AK"),
                                     organization=Organization("facebook", "AI at Meta")))])
    ingest(engine, [("item 1", paper(submitted_on_daily_at=datetime(2025, 10, 10), upvotes=7,
                                     submitted_on_daily_by=User("someone-else")))])
    row = rows(engine)["2501.00001"]
    assert row["submitted_on_daily_at"] == first_day
    assert row["upvotes"] == 7  # counts do follow the source
    with engine.connect() as conn:
        assert conn.execute(select(users.c.username).where(users.c.pk == row["submitted_by_pk"])).scalar() == "ak"
        assert conn.execute(select(organizations.c.fullname)).scalar() == "AI at Meta"


def test_an_arxiv_record_enriches_an_imported_daily_paper_without_losing_its_votes(engine):
    ingest(engine, [("item 1", Paper(id="2501.00001", title="Attention is all you need", summary="short",
                                     upvotes=42, submitted_on_daily_at=datetime(2025, 1, 3), source="hf"))])
    ingest(engine, [("line 1", paper())])
    row = rows(engine)["2501.00001"]
    assert (row["upvotes"], row["submitted_on_daily_at"], row["categories"]) == (42, datetime(2025, 1, 3),
                                                                                 "cs.CL cs.LG")
    assert row["summary"] == "We propose the Transformer." and row["source"] == "hf"


def test_bad_records_are_rejected_by_position_and_field_and_the_rest_is_stored(engine):
    records = [
        ("line 1", paper(id="2501.00001")),
        ("line 2", RecordError("json", "Expecting value: line 1 column 1 (char 0)")),
        ("line 3", paper(id="../../etc/passwd")),
        ("line 4", paper(id="2501.00004", title="x" * 5000)),
        ("line 5", paper(id="2501.00005", summary="null \x00 byte")),
        ("line 6", paper(id="2501.00006", title="lone \ud800 surrogate")),
        ("line 7", paper(id="2501.00007", github_repo="javascript:alert(1)")),
        ("line 8", paper(id="2501.00008", published_at=datetime(2999, 1, 1))),
        ("line 9", paper(id="2501.00009", categories=["cs.LG", "<script>"])),
        ("line 10", paper(id="2501.00010", title="   ")),
        ("line 11", paper(id="2501.00011", authors=[Author("")])),
        ("line 12", paper(id="2501.00001")),
        ("line 13", paper(id="2501.00013")),
    ]
    messages = []
    report = ingest(engine, records, on_reject=lambda r: messages.append(str(r)))
    assert messages == [
        "line 2: json: Expecting value: line 1 column 1 (char 0)",
        "line 3: id: '../../etc/passwd' is not an arXiv identifier",
        "line 4: title: is 5,000 characters long; the limit is 1,000",
        "line 6: title: is not valid Unicode (lone surrogate U+D800)",
        "line 7: github_repo: 'javascript:alert(1)' is not an http(s) URL",
        "line 8: published_at: 2999-01-01 is not a plausible date",
        "line 9: categories: '<script>' is not an arXiv category",
        "line 10: title: is empty",
        "line 11: authors[1].name: is empty",
        "line 12: id: '2501.00001' appears again (first at line 1)",
    ]
    assert report.rejected == 10 and report.inserted == 3 and report.cleaned == 1  # line 5: its NUL removed
    assert sorted(rows(engine)) == ["2501.00001", "2501.00005", "2501.00013"]


def test_control_characters_are_removed_and_counted_not_the_record_rejected(engine):
    """Real metadata holds stray control characters (U+0019 in an arXiv abstract): the record is kept
    without them, and the report says how many records were cleaned."""
    records = [
        ("line 1", paper(id="2501.00001", summary="It\x19s a model\x7f.", title="A\x0btitle")),
        ("line 2", paper(id="2501.00002", authors=[Author("Ada\x1b Lovelace", ("Uni\x00 A",))])),
        ("line 3", paper(id="2501.00003", title="\x01\x02")),  # nothing left: rejected as empty
        ("line 4", paper(id="2501.00004")),
    ]
    messages = []
    report = ingest(engine, records, on_reject=lambda r: messages.append(str(r)))
    assert messages == ["line 3: title: is empty"]
    assert (report.inserted, report.rejected, report.cleaned) == (3, 1, 2)
    assert "(2 kept without their control characters)" in report.summary()
    assert report.as_dict()["cleaned"] == 2
    stored = rows(engine)
    assert (stored["2501.00001"]["summary"], stored["2501.00001"]["title"]) == ("Its a model.", "Atitle")
    assert stored["2501.00002"]["authors"] == [{"name": "Ada Lovelace", "affiliations": ["Uni A"]}]


def test_duplicates_across_batches_are_caught_too(engine):
    records = [("line 1", paper(id="2501.00001")), ("line 2", paper(id="2501.00002")),
               ("line 3", paper(id="2501.00001", title="Changed"))]
    messages = []
    report = ingest(engine, records, batch_size=2, on_reject=lambda r: messages.append(str(r)))
    assert messages == ["line 3: id: '2501.00001' appears again (earlier in this input)"]
    assert report.inserted == 2 and rows(engine)["2501.00001"]["title"] == "Attention is all you need"


def test_a_huge_id_is_shown_cut_short(engine):
    messages = []
    ingest(engine, [("line 1", paper(id="9" * 10_000))], on_reject=lambda r: messages.append(str(r)))
    assert messages == ["line 1: id: '" + "9" * 60 + "'… (10,000 characters) is not an arXiv identifier"]


def test_deleted_record_hides_the_paper(engine):
    ingest(engine, [("line 1", paper())])
    report = ingest(engine, [("record 1", Deletion("2501.00001")), ("record 2", Deletion("2501.09999"))])
    assert (report.deleted, report.unchanged) == (1, 1)
    assert rows(engine)["2501.00001"]["hidden"] is True


def test_feature_rule_puts_new_papers_of_chosen_categories_on_the_feed(engine):
    ingest(engine, [("line 1", paper(id="2501.00001", categories=["cs.CL"])),
                    ("line 2", paper(id="2501.00002", categories=["math.AG"]))], feature_categories=["cs"])
    stored = rows(engine)
    assert stored["2501.00001"]["submitted_on_daily_at"] == datetime(2025, 1, 2)
    assert stored["2501.00002"]["submitted_on_daily_at"] is None


def test_progress_and_commit_hooks_run_per_batch(engine):
    progress, commits = [], []
    records = [(f"line {i}", paper(id=f"2501.{i:05d}")) for i in range(1, 6)]
    report = ingest(engine, records, batch_size=2, on_progress=progress.append,
                    on_commit=lambda: commits.append(1))
    assert progress == [2, 2, 1] and len(commits) == 3
    assert report.summary().startswith("5 inserted, 0 updated, 0 unchanged, 0 deleted, 0 rejected in ")


def test_a_record_the_database_refuses_is_rejected_alone(engine):
    if engine.dialect.name == "sqlite":
        ddl = ["CREATE TRIGGER refuse BEFORE INSERT ON papers WHEN new.title = 'poison' "
               "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"]
    else:
        ddl = ["CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.title = 'poison' THEN "
               "RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
               "CREATE TRIGGER refuse BEFORE INSERT ON papers FOR EACH ROW EXECUTE FUNCTION refuse()"]
    with engine.begin() as conn:
        for statement in ddl:
            conn.execute(text(statement))
    messages = []
    report = ingest(engine, [("line 1", paper(id="2501.00001")), ("line 2", paper(id="2501.00002", title="poison")),
                             ("line 3", paper(id="2501.00003"))], on_reject=lambda r: messages.append(str(r)))
    assert messages == ["line 2: record: the database refused it: refused by a test trigger"]
    assert report.inserted == 2 and sorted(rows(engine)) == ["2501.00001", "2501.00003"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(papers)).scalar() == 2


def test_read_ahead_gives_the_same_result_and_surfaces_source_errors(engine):
    from dailypapers.sources.common import SourceError

    records = [(f"line {i}", paper(id=f"2501.{i:05d}")) for i in range(1, 8)] + [("line 8", paper(id="bad"))]
    messages = []
    report = ingest(engine, records, batch_size=3, read_ahead=True, on_reject=lambda r: messages.append(str(r)))
    assert (report.inserted, report.rejected) == (7, 1)
    assert messages == ["line 8: id: 'bad' is not an arXiv identifier"]

    def broken():
        yield "line 1", paper(id="2502.00001")
        raise SourceError("feed.jsonl: gzip stream is truncated after line 1")

    with pytest.raises(SourceError, match="truncated after line 1"):
        ingest(engine, broken(), batch_size=1, read_ahead=True)
    assert "2502.00001" in rows(engine)  # the batch before the failure is stored


def test_local_votes_survive_a_new_count_from_the_source(engine):
    ingest(engine, [("item 1", paper(upvotes=5))])
    with engine.begin() as conn:  # two local votes, as the web's upvote does it: an increment
        conn.execute(papers.update().values(upvotes=papers.c.upvotes + 2))
    ingest(engine, [("item 1", paper(upvotes=8))])
    row = rows(engine)["2501.00001"]
    assert (row["upvotes"], row["source_upvotes"]) == (10, 8)
    assert ingest(engine, [("item 1", paper(upvotes=8))]).unchanged == 1


def test_a_changed_abstract_drops_the_stale_embedding(engine):
    from dailypapers.search.vectors import to_blob
    from dailypapers.store.schema import paper_embeddings
    import numpy as np

    ingest(engine, [("line 1", paper())])
    pk = rows(engine)["2501.00001"]["pk"]
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    with engine.begin() as conn:
        value = vector.tolist() if engine.dialect.name == "postgresql" else to_blob(vector)
        conn.execute(paper_embeddings.insert(), {"paper_pk": pk, "model": "m", "vector": value, "seq": 1})
    ingest(engine, [("line 1", paper(upvotes=3))])  # votes only: the embedding stays
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(paper_embeddings)).scalar() == 1
    ingest(engine, [("line 1", paper(summary="A different abstract."))])
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(paper_embeddings)).scalar() == 0


def _dies():  # a source whose reading process is killed (module level: the child imports it by name)
    import os

    os._exit(7)


def test_read_ahead_in_a_child_process_gives_the_same_result_and_surfaces_errors(engine, tmp_path):
    import gzip
    import json
    from functools import partial

    from dailypapers.sources.common import SourceError
    from dailypapers.sources.snapshot import SnapshotError, read_snapshot

    def line(n, **kw):
        record = {"id": f"2501.{n:05d}", "title": f"Paper {n}", "abstract": "An abstract.", "authors": "A. Author",
                  "categories": "cs.LG", "versions": [{"version": "v1", "created": "Mon, 6 Jan 2025 10:00:00 GMT"}]}
        return json.dumps(record | kw)

    lines = [line(1), line(2), "{not json", line(3, id="../../etc/passwd"), line(2), line(4)]
    snapshot = tmp_path / "snapshot.jsonl"
    snapshot.write_text("\n".join(lines) + "\n")
    messages = []
    report = ingest(engine, partial(read_snapshot, snapshot), batch_size=2, read_ahead=True,
                    on_reject=lambda r: messages.append(str(r)))
    assert (report.inserted, report.rejected) == (3, 3)
    assert messages == [
        "line 3: json: Expecting property name enclosed in double quotes: column 2",
        "line 4: id: '../../etc/passwd' is not an arXiv identifier",
        "line 5: id: '2501.00002' appears again (earlier in this input)",
    ]
    assert sorted(rows(engine)) == ["2501.00001", "2501.00002", "2501.00004"]
    again = ingest(engine, partial(read_snapshot, snapshot), batch_size=2, read_ahead=True)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)

    # The child's errors are raised here, with their message; what came before them is stored.
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress((line(5) + "\n" + line(6) + "\n").encode())[:-12])
    with pytest.raises(SnapshotError, match="gzip stream is truncated after line"):
        ingest(engine, partial(read_snapshot, cut), batch_size=1, read_ahead=True)
    assert "2501.00005" in rows(engine)
    with pytest.raises(SourceError, match=r"the process reading the input stopped \(exit code 7\)"):
        ingest(engine, _dies, read_ahead=True)


def test_keywords_are_stored_kept_when_a_source_has_none_and_bad_ones_named(engine):
    messages = []
    ingest(engine, [
        ("line 1", paper(id="2501.00001", keywords=["transformer", "self-attention"])),
        ("line 2", paper(id="2501.00002", keywords=["x" * 300])),
        ("line 3", paper(id="2501.00003", keywords=["fine"] * 101)),
        ("line 4", paper(id="2501.00004", keywords=["ok", " "])),
    ], on_reject=lambda r: messages.append(str(r)))
    assert messages == [
        "line 2: keywords[1]: is 300 characters long; the limit is 200",
        "line 3: keywords: has 101; the limit is 100",
        "line 4: keywords[2]: is empty",
    ]
    assert rows(engine)["2501.00001"]["keywords"] == ["transformer", "self-attention"]
    ingest(engine, [("line 1", paper(id="2501.00001", version=2))])  # an arXiv record says nothing of keywords
    assert rows(engine)["2501.00001"]["keywords"] == ["transformer", "self-attention"]
    ingest(engine, [("line 1", paper(id="2501.00001", version=2, keywords=["transformers"]))])
    assert rows(engine)["2501.00001"]["keywords"] == ["transformers"]
