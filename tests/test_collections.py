"""Collections, their import and export, on SQLite and PostgreSQL: the core functions, then the
site through TestClient (privacy, every bad import, fetching from a local arXiv replaying a
recorded answer)."""

import http.server
import json
import re
import threading
import xml.etree.ElementTree as ET
from importlib.resources import files

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from dailypapers import accounts, community
from dailypapers.collections import saved as saved_list
from dailypapers import collections as C
from dailypapers.bibtex import bibtex
from dailypapers.collections import importing, references
from dailypapers.collections.references import BadFile, csl_json, normalize_title, read_references, ris
from dailypapers.community import Forbidden, NotFound
from dailypapers.config import get_settings
from dailypapers.ingest import ingest
from dailypapers.search.backends import upkeep
from dailypapers.sources.arxiv_api import parse_feed
from dailypapers.sources.hf_daily import parse_hf_json
from dailypapers.store.schema import papers, users
from dailypapers.web.app import create_app

VGC = "2506.10326"  # "A Benchmark for Generalizing Across Diverse Team Strategies in Competitive Pokémon"
ROBOTICS = "2507.10087"
THINK = "2505.08617"
ORDER = ["1605.08386", THINK, "1111.2011", VGC, "astro-ph/0601001", ROBOTICS]


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def stored(engine, recorded):
    """The sample (papers without an arXiv id) and three arXiv papers, indexed for title matching."""
    ingest(engine, parse_hf_json(files("dailypapers.sample").joinpath("papers.json").read_bytes()))
    for name in ("query_id_list-1605.08386.xml", "classic-2016_query_id_list-1111.2011v2.xml",
                 "query_id_list-astro-ph_0601001.xml"):
        ingest(engine, parse_feed((recorded / "arxiv-api" / name).read_bytes()))
    upkeep(engine)
    return engine


def reader(engine, name="ada") -> int:
    return accounts.sign_up(engine, f"{name}@example.org", "correct horse", name)


def version(engine, user_pk) -> int:
    with engine.connect() as conn:
        return conn.execute(select(users.c.signals_version).where(users.c.pk == user_pk)).scalar_one()


def ids(engine, pk, viewer) -> list[str]:
    return [r["id"] for r in C.papers_of(engine, pk, viewer)]


def filled(engine, user_pk, name="Reading") -> int:
    pk = C.create(engine, user_pk, name)
    for paper_id in ORDER:
        assert C.add_paper(engine, user_pk, pk, paper_id)
    return pk


# --- the core -----------------------------------------------------------------------------------


def test_collections_are_made_renamed_described_shared_and_deleted(stored, monkeypatch):
    ada = reader(stored)
    pk = C.create(stored, ada, "  Reading   list ", "For the weekend")
    row = C.get(stored, pk, ada)
    assert (row["name"], row["description"], row["is_public"], row["count"]) == ("Reading list", "For the weekend",
                                                                                 False, 0)
    for bad, message in [("", "needs a name"), ("saved", "the name of your saved papers"),
                         ("READING LIST", "already have a collection named"), ("x" * 201, "at most 200 characters")]:
        with pytest.raises(community.CommunityError, match=message):
            C.create(stored, ada, bad)
    with pytest.raises(community.CommunityError, match="at most 2,000 characters; this one has 2,001"):
        C.create(stored, ada, "Long", "d" * 2001)
    C.update_collection(stored, ada, pk, name="Weekend", description="", is_public=True)
    row = C.get(stored, pk, ada)
    assert (row["name"], row["description"], row["is_public"]) == ("Weekend", None, True)

    saved = C.ensure_default(stored, ada)
    assert [c["name"] for c in C.of_reader(stored, ada)] == ["Saved", "Weekend"]
    with pytest.raises(community.CommunityError, match="keep the name"):
        C.update_collection(stored, ada, saved, name="Favourites")
    with pytest.raises(community.CommunityError, match="the name of your saved papers"):
        C.update_collection(stored, ada, pk, name="Saved")
    with pytest.raises(community.CommunityError, match="cannot be deleted"):
        C.delete_collection(stored, ada, saved)
    C.update_collection(stored, ada, saved, description="Mine", is_public=True)  # allowed on Saved

    C.add_paper(stored, ada, pk, VGC)
    before = version(stored, ada)
    C.delete_collection(stored, ada, pk)
    assert version(stored, ada) == before + 1  # its papers were signals
    with pytest.raises(NotFound):
        C.get(stored, pk, ada)
    assert saved_list.saved_ids(stored, ada, [VGC]) == set()

    monkeypatch.setattr(C, "MAX_COLLECTIONS", 3)
    C.create(stored, ada, "Two")
    C.create(stored, ada, "Three")
    with pytest.raises(community.CommunityError, match="You have 3 collections, the most"):
        C.create(stored, ada, "Four")


def test_papers_are_added_ordered_moved_noted_and_removed(stored, monkeypatch):
    ada = reader(stored)
    pk = filled(stored, ada)
    assert ids(stored, pk, ada) == ORDER
    assert not C.add_paper(stored, ada, pk, VGC)  # there already: nothing changes
    before = version(stored, ada)
    C.remove_paper(stored, ada, pk, VGC)
    assert version(stored, ada) == before + 1
    assert C.add_paper(stored, ada, pk, VGC, note="Read section 3")
    assert version(stored, ada) == before + 2
    assert ids(stored, pk, ada) == [p for p in ORDER if p != VGC] + [VGC]

    assert C.move_paper(stored, ada, pk, VGC, 1) == 1
    assert C.move_paper(stored, ada, pk, "1605.08386", 99) == len(ORDER)  # beyond the end: last
    assert C.move_paper(stored, ada, pk, "1111.2011", 0) == 1  # before the start: first
    assert ids(stored, pk, ada) == ["1111.2011", VGC, THINK, "astro-ph/0601001", ROBOTICS, "1605.08386"]
    C.set_note(stored, ada, pk, THINK, "  images as thoughts ")
    notes = {r["id"]: r["note"] for r in C.papers_of(stored, pk, ada)}
    assert notes[THINK] == "images as thoughts" and notes[VGC] == "Read section 3"
    with pytest.raises(community.CommunityError, match="A note can be at most 2,000"):
        C.set_note(stored, ada, pk, THINK, "n" * 2001)
    with pytest.raises(NotFound, match="not in this collection"):
        C.remove_paper(stored, ada, pk, "2104.12255")
    with pytest.raises(NotFound, match="There is no paper"):
        C.add_paper(stored, ada, pk, "no-such-paper")
    community.hide_paper(stored, ROBOTICS)
    assert ROBOTICS not in ids(stored, pk, ada)  # hidden papers are not shown
    assert C.get(stored, pk, ada)["count"] == len(ORDER) - 1

    small = C.create(stored, ada, "Small")
    monkeypatch.setattr(C, "MAX_PAPERS", 2)
    C.add_paper(stored, ada, small, VGC)
    C.add_paper(stored, ada, small, THINK)
    with pytest.raises(community.CommunityError, match="at most 2 papers; this would make 3"):
        C.add_paper(stored, ada, small, "1605.08386")


def test_the_saved_list_is_the_default_collection_newest_first(stored):
    ada = reader(stored)
    saved_list.toggle_saved(stored, ada, VGC)
    saved = C.ensure_default(stored, ada)
    assert C.add_paper(stored, ada, saved, THINK)  # the same list as the Save button, on top
    assert ids(stored, saved, ada) == [THINK, VGC]
    assert [p["id"] for p in saved_list.saved_papers(stored, ada)] == [THINK, VGC]
    assert saved_list.saved_ids(stored, ada, [THINK, VGC]) == {THINK, VGC}


def test_private_collections_are_found_by_their_owner_only(stored):
    ada, bob = reader(stored), reader(stored, "bob")
    pk = filled(stored, ada)
    for viewer in (bob, None):
        with pytest.raises(NotFound, match="no such collection"):
            C.get(stored, pk, viewer)
        with pytest.raises(NotFound):
            C.papers_of(stored, pk, viewer)
    with pytest.raises(NotFound):
        C.add_paper(stored, bob, pk, VGC)
    C.update_collection(stored, ada, pk, is_public=True)
    assert ids(stored, pk, None) == ORDER and C.get(stored, pk, bob)["owner"] == "ada"
    for change in (lambda: C.add_paper(stored, bob, pk, "2104.12255"), lambda: C.remove_paper(stored, bob, pk, VGC),
                   lambda: C.update_collection(stored, bob, pk, name="Mine now"),
                   lambda: C.delete_collection(stored, bob, pk), lambda: C.move_paper(stored, bob, pk, VGC, 1),
                   lambda: C.set_note(stored, bob, pk, VGC, "hi")):
        with pytest.raises(Forbidden, match="Only its owner"):
            change()
    assert ids(stored, pk, ada) == ORDER


@pytest.mark.parametrize("kind", ["bib", "ris"])
def test_an_exported_collection_imports_back_as_the_same_papers_in_the_same_order(stored, kind):
    ada = reader(stored)
    pk = filled(stored, ada)
    rows = C.papers_of(stored, pk, ada)
    data = (bibtex(rows) if kind == "bib" else ris(rows)).encode()
    report = importing.import_as_new(stored, ada, "Copy", data)
    assert report.kind == {"bib": "BibTeX", "ris": "RIS"}[kind]
    assert [f.paper_id for f in report.added] == ORDER and not report.already and not report.not_found
    assert ids(stored, report.collection_pk, ada) == ORDER
    again = importing.import_file(stored, ada, report.collection_pk, data)  # nothing new
    assert not again.added and [f.paper_id for f in again.already] == ORDER


def test_csl_json_has_the_fields_citation_tools_read(stored):
    ada = reader(stored)
    pk = filled(stored, ada)
    items = json.loads(json.dumps(csl_json(C.papers_of(stored, pk, ada))))
    heat = items[0]
    assert heat["id"] == "stanley2016heat" and heat["type"] == "article"
    assert heat["title"] == "Heat-bath random walks with Markov bases"
    assert heat["author"][:2] == [{"family": "Stanley", "given": "Caprice"}, {"family": "Windisch", "given": "Tobias"}]
    assert heat["issued"] == {"date-parts": [[2016, 5, 26]]}
    assert heat["DOI"] == "10.48550/arXiv.1605.08386" and heat["URL"] == "https://arxiv.org/abs/1605.08386"
    murray = items[2]
    assert murray["DOI"] == "10.1103/PhysRevB.85.115117" and murray["URL"] == "https://arxiv.org/abs/1111.2011"
    assert murray["type"] == "article-journal" and murray["container-title"]
    vgc = items[3]
    assert vgc["type"] == "article" and vgc["author"][0] == {"family": "Angliss", "given": "Cameron"}
    assert vgc["URL"] == "https://arxiv.org/abs/2506.10326"
    assert len({i["id"] for i in items}) == len(items)


ZOTERO = r"""
@misc{stanley_heat-bath_2016,
  title = {Heat-bath random walks with {Markov} bases},
  url = {http://arxiv.org/abs/1605.08386},
  doi = {10.48550/arXiv.1605.08386},
  note = {arXiv:1605.08386 [math]},
}
@article{murray_2012,
  title = {Some other title entirely},
  doi = {10.1103/physrevb.85.115117},
}
@article{mendeley,
  title = {Frequency of hot jupiters},
  arxivId = {astro-ph/0601001},
  archivePrefix = {arXiv},
}
@inproceedings{pokemon,
  title = {A {B}enchmark for generalizing across diverse team strategies in competitive {Pok\'emon}},
}
@misc{scholar, title={Foundation model driven robotics: a comprehensive review.}}
@misc{missing_arxiv, title = {Something Not Here}, eprint = {2104.12255}, archivePrefix = {arXiv}}
@misc{missing_doi, title = {Nor This}, doi = {10.1000/nothing}}
@misc{again, title = {Heat-Bath Random Walks with Markov Bases}}
"""


def test_import_matches_by_arxiv_id_then_doi_then_title(stored):
    ada = reader(stored)
    pk = C.create(stored, ada, "Library")
    C.add_paper(stored, ada, pk, ROBOTICS)
    before = version(stored, ada)
    report = importing.import_file(stored, ada, pk, ZOTERO.encode())
    assert [(f.reference.key, f.paper_id) for f in report.added] == [
        ("stanley_heat-bath_2016", "1605.08386"), ("murray_2012", "1111.2011"), ("mendeley", "astro-ph/0601001"),
        ("pokemon", VGC)]
    assert [(f.reference.label, f.paper_id) for f in report.already] == [
        ("entry 5 (scholar)", ROBOTICS), ("entry 8 (again)", "1605.08386")]
    assert [(r.key, r.title, r.arxiv_id) for r in report.not_found] == [
        ("missing_arxiv", "Something Not Here", "2104.12255"), ("missing_doi", "Nor This", None)]
    assert [r.key for r in report.fetchable] == ["missing_arxiv"]
    assert ids(stored, pk, ada) == [ROBOTICS, "1605.08386", "1111.2011", "astro-ph/0601001", VGC]
    assert version(stored, ada) == before + 1  # one import, one change of signals


def test_titles_are_compared_without_latex_accents_case_or_punctuation():
    assert normalize_title(r"{Deep} Learning for {\"U}ber Caf\'e: 50\% $\alpha$-tests") == \
        normalize_title("deep learning for über café 50% α tests") == "deep learning for uber cafe 50 α tests"


def test_ris_from_zotero_and_mendeley_is_read():
    kind, refs = read_references(
        b"\xef\xbb\xbfTY  - JOUR\r\nTI  - Heat-bath random walks\r\nAU  - Stanley, Caprice\r\n"
        b"UR  - https://arxiv.org/pdf/1605.08386v1.pdf\r\nER  - \r\n\r\n"
        b"TY  - PREPRINT\nT1  - Other\nDO  - https://doi.org/10.1103/PhysRevB.85.115117\nID  - k2\n"
        b"AB  - a long abstract\ncontinued on a second line\nER  - \n")
    assert kind == "RIS"
    assert [(r.number, r.key, r.title, r.arxiv_id, r.doi) for r in refs] == [
        (1, "", "Heat-bath random walks", "1605.08386", None), (2, "k2", "Other", None, "10.1103/physrevb.85.115117")]


BAD_FILES = [
    (b"", "The file is empty."),
    (b" \n\t\n", "The file is empty."),
    (b"@misc{a, title={caf\xe9}}", "not UTF-8 text (byte 0xe9 at offset 19)"),
    (b"@misc{a, title={x\x00}}", "contains NUL characters"),
    (b"Dear reader,\nthis is a letter.\n", "neither BibTeX"),
    (b"%PDF-1.7 binary", "neither BibTeX"),
    (b"@comment{nothing here}\n", "The file has no BibTeX entries."),
    (b"@misc{ok, title={Fine}}\n@misc{smith2020, title = {unclosed\n@misc{next, title={x}}\n",
     "line 2 (smith2020): this entry is not valid BibTeX"),
    (b"@misc{a, title={A}}\n@misc{b, title={B}}\n@article{smith2020, author={Smith, J.}, year={2020}}\n",
     "entry 3 (smith2020): no title, DOI or arXiv id"),
    (b"TY  - JOUR\nTI  - A\nER  - \nTY  - JOUR\nTI  - B\n", "line 4: the reference that starts here has no ER"),
    (b"TY  - JOUR\nTI  - A\nTY  - JOUR\nER  - \n", "line 3: a reference starts (TY) before the one of line 1 ended"),
    (b"TY  - JOUR\nTI  - A\nER  - \nAU  - Smith\n", "line 4: AU is outside a reference"),
    (b"TY  - JOUR\nAU  - Smith\nER  - \n", "entry 1: no title, DOI or arXiv id"),
]


@pytest.mark.parametrize("data, message", BAD_FILES)
def test_a_bad_file_gets_a_message_naming_the_line_or_entry(data, message):
    with pytest.raises(BadFile) as caught:
        read_references(data)
    assert message in caught.value.message


def test_huge_files_and_too_many_entries_are_refused():
    with pytest.raises(BadFile, match=r"The file has 5.0 MB; an import takes at most 5 MB"):
        read_references(b"@misc{a, title={A}}\n" + b" " * references.MAX_BYTES)
    many = "".join(f"@misc{{k{i}, title={{T{i}}}}}\n" for i in range(references.MAX_ENTRIES + 1)).encode()
    with pytest.raises(BadFile, match="The file has 5,001 entries; an import takes at most 5,000"):
        read_references(many)


def test_an_import_is_all_or_nothing(stored, monkeypatch):
    ada = reader(stored)
    pk = C.create(stored, ada, "Small")
    C.add_paper(stored, ada, pk, ROBOTICS)
    monkeypatch.setattr(C, "MAX_PAPERS", 3)
    before = version(stored, ada)
    with pytest.raises(community.CommunityError, match="at most 3 papers; this would make 5"):
        importing.import_file(stored, ada, pk, ZOTERO.encode())
    assert ids(stored, pk, ada) == [ROBOTICS] and version(stored, ada) == before
    with pytest.raises(community.CommunityError, match="at most 3 papers"):
        importing.import_as_new(stored, ada, "From file", ZOTERO.encode())
    with pytest.raises(BadFile):
        importing.import_as_new(stored, ada, "Bad", BAD_FILES[8][0])
    assert [c["name"] for c in C.of_reader(stored, ada)] == ["Small"]  # neither was made


# --- the site -----------------------------------------------------------------------------------


class Arxiv(http.server.ThreadingHTTPServer):
    """A local arXiv API answering every request with one recorded feed."""

    def __init__(self, body: bytes):
        self.body, self.requests = body, 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/atom+xml")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/query"


def client_for(engine, db_url, tmp_path, arxiv_url="http://127.0.0.1:9/api/query"):
    settings = get_settings(database_url=db_url, data_dir=tmp_path, base_url="http://testserver",
                            embedding_runtime="off", arxiv_api_url=arxiv_url, request_delay=0.0)
    return TestClient(create_app(settings, embedder=None), raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture
def site(stored, db_url, tmp_path):
    with client_for(stored, db_url, tmp_path) as client:
        yield client


def token_of(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def sign_up(client, name="ada") -> str:
    token = token_of(client.get("/signup").text)
    response = client.post("/signup", data={"email": f"{name}@example.org", "username": name,
                                            "password": "correct horse", "csrf_token": token})
    assert response.status_code == 303, response.text
    return token_of(client.get("/").text)


def user_pk(engine, name="ada") -> int:
    with engine.connect() as conn:
        return conn.execute(select(users.c.pk).where(users.c.username == name)).scalar_one()


def make(client, token, name="Reading", public=False) -> int:
    response = client.post("/collections", data={"name": name, "csrf_token": token, **({"public": "1"} if public else {})})
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_a_reader_builds_a_collection_from_the_cards_and_edits_it(site, stored):
    token = sign_up(site)
    assert 'action="/collections/add"' not in site.get(f"/papers/{VGC}").text  # only Saved so far
    pk = make(site, token)
    assert "Reading" in site.get("/collections").text
    card = site.get("/").text
    assert 'action="/collections/add"' in card and f'<option value="{pk}">Reading</option>' in card
    for paper_id in (VGC, THINK, "1605.08386"):
        response = site.post("/collections/add", data={"collection": str(pk), "paper": paper_id, "csrf_token": token},
                             headers={"referer": "http://testserver/"})
        assert response.status_code == 303 and response.headers["location"] == "/"
    assert site.post("/collections/add", data={"collection": str(pk), "paper": VGC, "csrf_token": token},
                     headers={"accept": "application/json"}).json() == {"added": False}
    assert site.post(f"/collections/{pk}/move", data={"paper": "1605.08386", "to": "up", "csrf_token": token}
                     ).status_code == 303
    assert site.post(f"/collections/{pk}/note", data={"paper": VGC, "note": "Pokémon!", "csrf_token": token}
                     ).status_code == 303
    assert ids(stored, pk, user_pk(stored)) == [VGC, "1605.08386", THINK]
    page = site.get(f"/collections/{pk}").text
    assert "Pokémon!</textarea>" in page and "Edit this collection" in page and page.count('class="card"') == 3
    assert site.post(f"/collections/{pk}/move", data={"paper": VGC, "to": "3", "csrf_token": token}).status_code == 303
    assert site.post(f"/collections/{pk}/remove", data={"paper": THINK, "csrf_token": token}).status_code == 303
    assert site.post(f"/collections/{pk}/edit", data={"name": "Weekend", "description": "Slow reads",
                                                      "public": "1", "csrf_token": token}).status_code == 303
    page = site.get(f"/collections/{pk}").text
    assert "<h1>Weekend" in page and "Slow reads" in page and "feed.rss" in page
    assert page.index("1605.08386") < page.index(VGC)

    bib = site.get(f"/collections/{pk}/export.bib")
    assert bib.headers["content-type"].startswith("application/x-bibtex")
    assert 'filename="weekend.bib"' in bib.headers["content-disposition"] and "eprint = {1605.08386}" in bib.text
    assert "ID  - stanley2016heat" in site.get(f"/collections/{pk}/export.ris").text
    assert [i["id"] for i in site.get(f"/collections/{pk}/export.json").json()] == ["stanley2016heat",
                                                                                  "angliss2025benchmark"]
    assert site.get(f"/collections/{pk}/export.pdf").status_code == 404
    assert site.get("/papers/1605.08386.ris").text.startswith("TY  - GEN")
    assert site.get("/papers/1111.2011.json").json()[0]["DOI"] == "10.1103/PhysRevB.85.115117"
    assert site.get("/papers/nope.json").status_code == 404
    assert site.get("/papers/1605.08386.bib").text.startswith("@misc{stanley2016heat")  # still served

    assert site.post(f"/collections/{pk}/delete", data={"csrf_token": token}).headers["location"] == "/collections"
    assert site.get(f"/collections/{pk}").status_code == 404


def test_saved_papers_open_as_the_default_collection(site, stored):
    token = sign_up(site)
    assert site.post(f"/papers/{VGC}/save", data={"csrf_token": token}).status_code == 303
    assert "/collections/saved" in site.get("/account").text
    response = site.get("/collections/saved")
    pk = int(response.headers["location"].rsplit("/", 1)[1])
    page = site.get(f"/collections/{pk}").text
    assert "<h1>Saved" in page and VGC in page and "Delete this collection" not in page
    response = site.post(f"/collections/{pk}/delete", data={"csrf_token": token})
    assert response.status_code == 400 and "cannot be deleted" in response.text
    assert "@misc{angliss2025benchmark" in site.get("/saved.bib").text


def test_private_collections_are_404_to_others_and_public_ones_read_only(stored, db_url, tmp_path):
    with client_for(stored, db_url, tmp_path) as ada, client_for(stored, db_url, tmp_path) as bob:
        ada_token, bob_token = sign_up(ada), sign_up(bob, "bob")
        pk = make(ada, ada_token, "Secret")
        ada.post("/collections/add", data={"collection": str(pk), "paper": VGC, "csrf_token": ada_token})
        private = [f"/collections/{pk}", f"/collections/{pk}/export.bib", f"/collections/{pk}/export.json",
                   f"/collections/{pk}/feed.rss", f"/collections/{pk}/feed.atom"]
        for path in private:
            response = bob.get(path)
            assert response.status_code == 404 and "Secret" not in response.text, path
        assert ada.get(f"/collections/{pk}/feed.rss").status_code == 404  # feed readers sign in nowhere
        writes = [("/collections/add", {"collection": str(pk), "paper": THINK}), (f"/collections/{pk}/edit", {"name": "x"}),
                  (f"/collections/{pk}/delete", {}), (f"/collections/{pk}/remove", {"paper": VGC}),
                  (f"/collections/{pk}/note", {"paper": VGC, "note": "x"}), (f"/collections/{pk}/move", {"paper": VGC, "to": "1"}),
                  (f"/collections/{pk}/fetch", {"arxiv": "2104.12255"})]
        for path, data in writes:
            assert bob.post(path, data={**data, "csrf_token": bob_token}).status_code == 404, path
        response = bob.post(f"/collections/{pk}/import", data={"csrf_token": bob_token},
                            files={"file": ("x.bib", ZOTERO.encode())})
        assert response.status_code == 404

        ada.post(f"/collections/{pk}/edit", data={"public": "1", "csrf_token": ada_token})
        with TestClient(bob.app) as anyone:
            assert "Secret" in anyone.get(f"/collections/{pk}").text
            rss = anyone.get(f"/collections/{pk}/feed.rss")
            assert rss.headers["content-type"].startswith("application/rss+xml")
            assert [e.text for e in ET.fromstring(rss.content).iter("link")][-1] == f"http://testserver/papers/{VGC}"
            atom = anyone.get(f"/collections/{pk}/feed.atom")
            assert atom.headers["content-type"].startswith("application/atom+xml") and "Competitive Pok" in atom.text
            assert anyone.get(f"/collections/{pk}/feed.txt").status_code == 404
            assert anyone.get("/collections").status_code == 401
        page = bob.get(f"/collections/{pk}").text
        assert "Edit this collection" not in page and "Save note" not in page
        for path, data in writes:
            assert bob.post(path, data={**data, "csrf_token": bob_token}).status_code == 403, path
        assert bob.post(f"/collections/{pk}/import", data={"csrf_token": bob_token},
                        files={"file": ("x.bib", ZOTERO.encode())}).status_code == 403
        assert ids(stored, pk, None) == [VGC]
        assert ada.post("/collections", data={"name": "No token"}).status_code == 403  # CSRF


def test_import_pages_list_what_was_found_and_bad_files_get_a_400(site, stored):
    token = sign_up(site)
    pk = make(site, token)
    response = site.post(f"/collections/{pk}/import", data={"csrf_token": token},
                         files={"file": ("My Library.bib", ZOTERO.encode(), "application/x-bibtex")})
    assert response.status_code == 200
    page = response.text
    assert "BibTeX file: 5 added, 1 already there, 2 not found on this site." in page
    assert "entry 6 (missing_arxiv): Something Not Here" in page and "entry 7 (missing_doi): Nor This" in page
    assert 'name="arxiv" value="2104.12255"' in page and f'action="/collections/{pk}/fetch"' in page

    response = site.post("/collections/import", data={"name": "From Zotero", "csrf_token": token},
                         files={"file": ("lib.ris", ris(C.papers_of(stored, pk, user_pk(stored))).encode())})
    assert response.status_code == 200 and "RIS file: 5 added" in response.text

    names_before = [c["name"] for c in C.of_reader(stored, user_pk(stored))]
    for data, message in BAD_FILES:
        for path, form in ((f"/collections/{pk}/import", {}), ("/collections/import", {"name": "Broken"})):
            response = site.post(path, data={**form, "csrf_token": token}, files={"file": ("f.bib", data)})
            assert response.status_code == 400 and message in response.text.replace("&#39;", "'"), (path, data)
    just_over = b"@misc{a, title={A}}\n" + b" " * references.MAX_BYTES
    response = site.post(f"/collections/{pk}/import", data={"csrf_token": token}, files={"file": ("f.bib", just_over)})
    assert response.status_code == 400 and "The file has 5.0 MB; an import takes at most 5 MB" in response.text
    huge = b" " * (6 * 2**20)  # refused by its Content-Length, before the form is read
    response = site.post(f"/collections/{pk}/import", data={"csrf_token": token}, files={"file": ("f.bib", huge)})
    assert response.status_code == 400 and "more than 5 MB" in response.text
    response = site.post(f"/collections/{pk}/import", data={"csrf_token": token})
    assert response.status_code == 400 and "Choose a BibTeX" in response.text
    response = site.post("/collections/import", data={"name": "Saved", "csrf_token": token},
                         files={"file": ("f.bib", ZOTERO.encode())})
    assert response.status_code == 400 and "the name of your saved papers" in response.text
    assert [c["name"] for c in C.of_reader(stored, user_pk(stored))] == names_before  # nothing made by a failed import
    assert len(ids(stored, pk, user_pk(stored))) == 5


def test_entries_arxiv_has_are_fetched_through_the_submission_path(stored, db_url, tmp_path, recorded):
    with stored.begin() as conn:  # make 1605.08386 an entry the site does not have
        conn.execute(papers.delete().where(papers.c.id == "1605.08386"))
    arxiv = Arxiv((recorded / "arxiv-api" / "query_id_list-1605.08386.xml").read_bytes())
    with client_for(stored, db_url, tmp_path, arxiv.url) as client:
        token = sign_up(client)
        pk = make(client, token)
        page = client.post(f"/collections/{pk}/import", data={"csrf_token": token},
                           files={"file": ("z.bib", ZOTERO.encode())}).text
        wanted = re.findall(r'name="arxiv" value="([^"]+)"', page)
        assert wanted == ["1605.08386", "2104.12255"]
        response = client.post(f"/collections/{pk}/fetch", data={"arxiv": wanted, "csrf_token": token})
        assert response.status_code == 200, response.text
        assert "1 added, 1 could not be fetched" in response.text and "2104.12255 was not found on arXiv" in response.text
        assert ids(stored, pk, user_pk(stored))[-1] == "1605.08386"
        with stored.connect() as conn:  # on today's feed, as a submission
            assert conn.execute(select(papers.c.submitted_on_daily_at).where(papers.c.id == "1605.08386")).scalar()
        for _ in range(3):  # the submission throttle: 5 a minute
            client.post(f"/collections/{pk}/fetch", data={"arxiv": ["2104.12255"], "csrf_token": token})
        response = client.post(f"/collections/{pk}/fetch", data={"arxiv": ["2104.12255", "1605.08386"],
                                                                 "csrf_token": token})
        assert "2 left for later" in response.text and "Fetch the other 2" in response.text
    arxiv.shutdown()


def test_collection_forms_refuse_bad_values_with_a_400(site, stored):
    token = sign_up(site)
    pk = make(site, token)
    cases = [("/collections", {"name": ""}, "needs a name"),
             ("/collections", {"name": "n" * 201}, "at most 200 characters"),
             ("/collections", {"name": "Reading"}, "already have a collection named"),
             ("/collections", {"name": "x", "description": "d" * 2001}, "at most 2,000 characters"),
             ("/collections/add", {"collection": "abc", "paper": VGC}, "choose one of your collections"),
             ("/collections/add", {"collection": str(pk), "paper": "nope"}, "There is no paper"),
             (f"/collections/{pk}/note", {"paper": VGC, "note": "x"}, "not in this collection"),
             (f"/collections/{pk}/move", {"paper": VGC, "to": "sideways"}, "up, down or a position"),
             (f"/collections/{pk}/fetch", {}, "no arXiv id to fetch"),
             (f"/collections/{pk}/fetch", {"arxiv": [str(i) for i in range(101)]}, "at most 100 ids")]
    for path, data, message in cases:
        response = site.post(path, data={**data, "csrf_token": token})
        assert response.status_code in (400, 404) and message in response.text.replace("&#39;", "'"), (path, response.text)
    site.post("/collections/add", data={"collection": str(pk), "paper": VGC, "csrf_token": token})
    response = site.post(f"/collections/{pk}/note", data={"paper": VGC, "note": "n" * 2001, "csrf_token": token})
    assert response.status_code == 400 and "A note can be at most 2,000" in response.text
    assert site.get("/collections/0").status_code == 400
    assert site.get("/collections/99999").status_code == 404
    assert site.post("/collections/1/edit", data={"name": "x\x00", "csrf_token": token}).status_code == 400
