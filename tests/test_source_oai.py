"""The arXiv OAI-PMH harvester against the recorded responses (oai-pmh/ in the recorded data).

``parse_page`` is checked field by field on recorded files. ``OaiHarvest`` talks to a real HTTP
server on 127.0.0.1 that replays recorded bodies in a scripted order and logs every request.

Some pages are DERIVED from recorded files at test time (the recordings hold no multi-page chain,
no deleted record, no current-server token; see oai-pmh/README.md "Not found"):

- ``CURRENT_TOKEN`` has the shape of the current server's token (FORMATS.md §1.1), its values
  adapted to the recorded request; it is inserted into the recorded ``..._complete.xml`` to make
  that file page 1 of an ``arXiv`` chain whose page 2 is the recorded ``set-physics-hep-th`` file
  with an empty ``<resumptionToken/>`` (the current server's last-page shape) appended.
- The ``arXivRaw`` chain's page 1 is the recorded page with its classic token ``726959|1001``, as
  recorded; its page 2 is the recorded ``GetRecord_arXivRaw_1302.2146.xml`` with ``GetRecord``
  renamed ``ListRecords`` and a classic last-page token ``<resumptionToken cursor="1000"
  completeListSize="1001"/>`` (no text) added.
- Deleted records, missing elements, TeX names, truncated pages: edits of recorded files, each
  described where it is made.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from lxml import etree

from dailypapers.domain import Author, Deletion, Paper, RecordError, Version
from dailypapers.sources.oai import OaiHarvest, last_harvest_date
from dailypapers.sources.oai_records import HarvestError, Page, parse_page

CLASSIC_TOKEN = "726959|1001"  # recorded, in ListRecords_arXivRaw_..._page1_with-resumptionToken.xml
CURRENT_TOKEN = (
    "verb%3DListRecords%26metadataPrefix%3DarXiv%26from%3D2015-01-01%26until%3D2015-01-03%26skip%3D2"
)
PAGE1_ARXIV_IDS = ["1412.8544", "hep-th/9504118"]
PAGE2_ARXIV_IDS = ["1412.8323", "1507.07790", "1607.01710"]
RAW_PAGE1_IDS = ["0704.0471", "0704.0716", "0704.0874", "0704.1109", "0704.1114", "0704.1586"]
ARXIV_ARGS = dict(metadata_prefix="arXiv", from_=date(2015, 1, 1), until=date(2015, 1, 3))


def oai(recorded: Path, name: str) -> bytes:
    return (recorded / "oai-pmh" / name).read_bytes()


def ids(items) -> list[str]:
    return [item.id for _, item in items]


# -- derived pages ---------------------------------------------------------------------------------


def add_token(xml: bytes, token_element: str) -> bytes:
    """Put a resumptionToken element last in <ListRecords> (replacing one that is there)."""
    xml = re.sub(rb"<resumptionToken[^>]*(?:/>|>[^<]*</resumptionToken>)\s*", b"", xml)
    assert xml.count(b"</ListRecords>") == 1
    return xml.replace(b"</ListRecords>", token_element.encode() + b"\n</ListRecords>")


def arxiv_chain(recorded: Path) -> tuple[bytes, bytes]:
    page1 = add_token(
        oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"),
        f"<resumptionToken expirationDate='2026-09-21T00:00:00Z'>{CURRENT_TOKEN}</resumptionToken>",
    )
    page2 = add_token(
        oai(recorded, "ListRecords_arXiv_set-physics-hep-th_from-2017-12-14.xml"), "<resumptionToken/>"
    )
    return page1, page2


def raw_chain(recorded: Path) -> tuple[bytes, bytes]:
    page1 = oai(recorded, "ListRecords_arXivRaw_from-2014-10-01_page1_with-resumptionToken.xml")
    record = oai(recorded, "GetRecord_arXivRaw_1302.2146.xml")
    page2 = record.replace(b'verb="GetRecord"', b'verb="ListRecords"')
    page2 = page2.replace(b"<GetRecord>", b"<ListRecords>")
    page2 = page2.replace(
        b"</GetRecord>", b'<resumptionToken cursor="1000" completeListSize="1001"/>\n</ListRecords>'
    )
    return page1, page2


# -- a scripted OAI-PMH server ---------------------------------------------------------------------


@dataclass
class Request:
    query: str  # as sent, still URL-encoded
    params: dict[str, str]  # decoded


class Replay:
    """Answers GET requests with the scripted responses, in order, and logs every request."""

    def __init__(self) -> None:
        self.url = ""
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.log: list[Request] = []
        self.lock = threading.Lock()

    def add(self, body: bytes, status: int = 200, **headers: str) -> Replay:
        headers = {k.replace("_", "-"): v for k, v in headers.items()}
        headers.setdefault("Content-Type", "text/xml; charset=utf-8")
        self.script.append((status, headers, body))
        return self


@pytest.fixture
def server() -> Iterator[Replay]:
    replay = Replay()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = urlsplit(self.path).query
            with replay.lock:
                replay.log.append(Request(query, dict(parse_qsl(query, keep_blank_values=True))))
                status, headers, body = (
                    replay.script.pop(0) if replay.script else (404, {}, b"no scripted response left")
                )
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    replay.url = f"http://127.0.0.1:{httpd.server_address[1]}/oai"
    try:
        yield replay
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as c:
        yield c


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make(server: Replay, client: httpx.Client, sleeps: list[float]):
    def make(**kwargs) -> OaiHarvest:
        kwargs.setdefault("delay", 0)
        return OaiHarvest(base_url=server.url, client=client, sleep=sleeps.append, **kwargs)

    return make


# -- parse_page: field by field --------------------------------------------------------------------


def test_getrecord_arxiv_maps_every_field_with_affiliations(recorded):
    page = parse_page(oai(recorded, "GetRecord_arXiv_1412.8544.xml"))
    assert page.token is None
    assert page.response_date == datetime(2018, 6, 21, 14, 30, 12)
    [(where, paper)] = page.records
    assert where == "page 1, record 1 (oai:arXiv.org:1412.8544)"
    assert isinstance(paper, Paper)
    assert paper.id == "1412.8544"
    assert paper.title == "A Kochen-Specker system has at least 22 vectors (extended abstract)"
    assert paper.summary.startswith(
        "At the heart of the Conway-Kochen Free Will theorem and Kochen and Specker's argument against"
    )
    assert paper.summary.endswith("embeddability to improve the lower bound to 22.")
    assert "\n" not in paper.summary and "  " not in paper.summary
    assert paper.authors == [
        Author("Sander Uijlen", ("Radboud Universiteit",)),
        Author("Bas Westerbaan", ("Radboud Universiteit",)),
    ]
    assert paper.categories == ["cs.DM"]
    assert paper.published_at == paper.updated_at == datetime(2014, 12, 29)
    assert paper.versions == [Version(1, datetime(2014, 12, 29))]  # no <updated>: only v1 exists
    assert paper.comments == "In Proceedings QPL 2014, arXiv:1412.8102"
    assert paper.journal_ref == "EPTCS 172, 2014, pp. 154-164"
    assert paper.doi == "10.4204/EPTCS.172.11"
    assert paper.license == "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
    assert paper.report_no is None
    assert paper.submitter is None  # <proxy>EPTCS</proxy> is not the submitter: ignored
    assert (paper.github_repo, paper.project_page) == (None, None)
    assert paper.source == "arxiv-oai"


def test_getrecord_arxivraw_gives_every_version_and_the_submitter(recorded):
    page = parse_page(oai(recorded, "GetRecord_arXivRaw_1302.2146.xml"))
    [(where, paper)] = page.records
    assert where == "page 1, record 1 (oai:arXiv.org:1302.2146)"
    assert paper.id == "1302.2146"
    assert paper.title == "The Same-Sign Dilepton Signature of RPV/MFV SUSY"
    assert paper.submitter == "Michael Saelim"
    assert paper.versions == [
        Version(1, datetime(2013, 2, 8, 21, 0, 1)),
        Version(2, datetime(2013, 4, 2, 1, 50, 8)),
    ]
    assert paper.published_at == datetime(2013, 2, 8, 21, 0, 1)
    assert paper.updated_at == datetime(2013, 4, 2, 1, 50, 8)
    assert paper.latest_version == 2
    assert [a.name for a in paper.authors] == [
        "Joshua Berger", "Maxim Perelstein", "Michael Saelim", "Philip Tanedo",
    ]
    assert paper.categories == ["hep-ph", "hep-ex"] and paper.primary_category == "hep-ph"
    assert paper.comments == "18 pages, 6 figures; v2: References added"
    assert paper.summary.endswith("TeV LHC with a 100 fb^-1 data set.")
    assert paper.doi is None and paper.journal_ref is None
    assert paper.source == "arxiv-oai"


def test_listrecords_arxivraw_page_with_classic_token(recorded):
    xml = oai(recorded, "ListRecords_arXivRaw_from-2014-10-01_page1_with-resumptionToken.xml")
    page = parse_page(xml, page=3)
    assert page.token == CLASSIC_TOKEN
    assert page.response_date == datetime(2015, 1, 6, 20, 49, 59)
    assert ids(page.records) == RAW_PAGE1_IDS
    assert [where for where, _ in page.records][:2] == [
        "page 3, record 1 (oai:arXiv.org:0704.0471)",
        "page 3, record 2 (oai:arXiv.org:0704.0716)",
    ]
    by_id = {p.id: p for _, p in page.records}

    shetty = by_id["0704.0471"]
    assert shetty.title == (
        "Density dependence of the symmetry energy and the nuclear equation of state: "
        "A Dynamical and Statistical model perspective"
    )
    assert [a.name for a in shetty.authors] == ["D.V. Shetty", "S.J. Yennello", "G.A. Souliotis"]
    assert 'rules out an extremely " stiff " and " soft " form' in shetty.summary  # &quot; decoded
    assert shetty.doi == "10.1103/PhysRevC.76.024606 10.1103/PhysRevC.76.039902"
    assert shetty.journal_ref == "Phys.Rev.C76:024606,2007; Erratum-ibid.C76:039902,2007"
    assert shetty.versions == [Version(1, datetime(2007, 4, 3, 22, 4, 11))]
    assert shetty.published_at == shetty.updated_at == datetime(2007, 4, 3, 22, 4, 11)
    assert shetty.license is None
    assert shetty.categories == ["nucl-ex", "nucl-th"]

    richard = by_id["0704.0716"]
    assert [v.version for v in richard.versions] == [1, 2, 3, 4]
    assert richard.published_at == datetime(2007, 4, 5, 12, 45, 3)
    assert richard.updated_at == datetime(2008, 11, 14, 9, 7, 25)
    assert richard.comments == (
        "54 pages, 2 figures; v2 updated and slightly expanded; v3 changes in some proofs; "
        "v4 slightly expanded"
    )
    assert richard.journal_ref == (
        "Polygons, polyominoes and polycubes, 247-299, Lecture Notes in Phys., 775, Springer, Dordrecht, 2009"
    )
    assert richard.categories == ["math-ph", "math.MP"]
    assert by_id["0704.1586"].title == (
        "Core excitation in the elastic scattering and breakup of $^{11}$Be on protons"
    )


def test_listrecords_set_hep_th_revised_papers(recorded):
    page = parse_page(oai(recorded, "ListRecords_arXiv_set-physics-hep-th_from-2017-12-14.xml"))
    assert page.token is None  # no token element: the list is complete
    assert ids(page.records) == PAGE2_ARXIV_IDS
    hoehn, castro, correa = (p for _, p in page.records)
    # Revised (<updated> present): the dates are known, the version numbers are not.
    assert hoehn.published_at == datetime(2014, 12, 29) and hoehn.updated_at == datetime(2017, 12, 13)
    assert hoehn.versions == []
    assert hoehn.categories == ["quant-ph", "gr-qc", "hep-th", "math-ph", "math.MP", "physics.hist-ph"]
    assert hoehn.primary_category == "quant-ph"
    assert hoehn.license == "http://creativecommons.org/licenses/by/4.0/"
    assert hoehn.title == "Toolbox for reconstructing quantum theory from rules on information acquisition"
    assert hoehn.authors == [Author("Philipp A Hoehn")]
    assert castro.journal_ref == "J. Phys. A: Math. Theor. 51 (2018) 035201"
    assert castro.doi == "10.1088/1751-8121/aa9c53"
    assert castro.comments == "7 pages"
    assert [a.name for a in correa.authors] == [
        "R. A. C. Correa", "D. M. Dantas", "P. H. R. S. Moraes", "A. de Souza Dutra", "C. A. S. Almeida",
    ]
    assert correa.comments is None and correa.journal_ref is None and correa.report_no is None


def test_complete_list_report_number_and_entities(recorded):
    page = parse_page(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    assert page.token is None
    requardt = page.records[1][1]
    assert requardt.id == "hep-th/9504118" and requardt.is_arxiv
    assert requardt.report_no == "GOET-TP 101/95"
    assert requardt.license is None
    assert 'the "strength" of the bonds' in requardt.summary
    assert requardt.authors == [Author("M. Requardt")]


def test_author_suffix_and_keyname_only_collaboration(recorded):
    bicep = parse_page(oai(recorded, "GetRecord_arXiv_1603.05976.xml")).records[0][1]
    # <keyname>W.</keyname><forenames>R.</forenames><suffix>IV</suffix>
    assert Author("R. W. IV") in bicep.authors
    jlqcd = parse_page(oai(recorded, "GetRecord_arXiv_1603.00997.xml")).records[0][1]
    assert jlqcd.authors == [Author("Sinya for JLQCD Collaboration")]


def test_pretty_printed_record_is_cleaned(recorded):
    paper = parse_page(oai(recorded, "GetRecord_arXiv_1305.0014_pretty.xml")).records[0][1]
    assert paper.title == (
        "Framework for maximum likelihood analysis of neutron beta decay observables "
        "to resolve the limits of the V-A law"
    )
    assert paper.authors == [Author("S. Gardner"), Author("B. Plaster")]
    assert paper.published_at == datetime(2013, 4, 30) and paper.updated_at == datetime(2013, 6, 28)


def test_tex_accents_in_names_are_decoded(recorded):
    # Derived: the recorded forenames "Sander" replaced with the TeX "S\'{a}nder".
    xml = oai(recorded, "GetRecord_arXiv_1412.8544.xml").replace(
        b"<forenames>Sander</forenames>", rb"<forenames>S\'{a}nder</forenames>"
    )
    paper = parse_page(xml).records[0][1]
    assert paper.authors[0] == Author("Sánder Uijlen", ("Radboud Universiteit",))


def test_links_found_in_abstract_and_comments(recorded):
    # Derived: a code link appended to the recorded comments, a project page to the abstract.
    xml = oai(recorded, "GetRecord_arXiv_1412.8544.xml")
    xml = xml.replace(
        b"arXiv:1412.8102</comments>", b"arXiv:1412.8102. Code: https://github.com/bwesterb/ks.</comments>"
    )
    xml = xml.replace(
        b"lower bound to 22.\n</abstract>", b"lower bound to 22. See https://example.org/ks22.\n</abstract>"
    )
    paper = parse_page(xml).records[0][1]
    assert paper.github_repo == "https://github.com/bwesterb/ks"
    assert paper.project_page == "https://example.org/ks22"


def test_deleted_header_gives_a_deletion(recorded):
    # Derived: status="deleted" set on the 2nd recorded header, its <metadata> removed (as OAI-PMH sends it).
    root = etree.fromstring(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    ns = {"o": "http://www.openarchives.org/OAI/2.0/"}
    record = root.findall(".//o:record", ns)[1]
    record.find("o:header", ns).set("status", "deleted")
    record.remove(record.find("o:metadata", ns))
    page = parse_page(etree.tostring(root))
    assert isinstance(page.records[0][1], Paper)
    assert page.records[1] == ("page 1, record 2 (oai:arXiv.org:hep-th/9504118)", Deletion("hep-th/9504118"))


def test_missing_required_element_is_a_record_error(recorded):
    # Derived: <title> removed from the 1st recorded record, <id> from the 2nd.
    xml = oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml")
    xml = re.sub(rb"<title>A Kochen.*?</title>", b"", xml)
    xml = xml.replace(b"<id>hep-th/9504118</id>", b"")
    page = parse_page(xml, page=2)
    (where1, err1), (where2, err2) = page.records
    assert where1 == "page 2, record 1 (oai:arXiv.org:1412.8544)"
    assert isinstance(err1, RecordError) and (err1.field, err1.reason) == ("title", "is missing")
    assert str(err1) == "title: is missing"
    assert where2 == "page 2, record 2 (oai:arXiv.org:hep-th/9504118)"
    assert isinstance(err2, RecordError) and str(err2) == "id: is missing"


def test_bad_version_date_and_missing_metadata_are_record_errors(recorded):
    # Derived: the 1st recorded arXivRaw version date garbled; the 2nd record's <metadata> removed.
    xml = oai(recorded, "ListRecords_arXivRaw_from-2014-10-01_page1_with-resumptionToken.xml")
    xml = xml.replace(b"Tue, 3 Apr 2007 22:04:11 GMT", b"sometime in April")
    xml = re.sub(
        rb"(<identifier>oai:arXiv.org:0704.0716</identifier>.*?</header>)\s*<metadata>.*?</metadata>",
        rb"\1",
        xml,
        flags=re.S,
    )
    page = parse_page(xml)
    assert str(page.records[0][1]) == "version: v1: 'sometime in April' is not a date"
    assert page.records[1][0] == "page 1, record 2 (oai:arXiv.org:0704.0716)"
    assert str(page.records[1][1]) == "metadata: is missing"
    assert ids(page.records[2:]) == RAW_PAGE1_IDS[2:]
    assert page.token == CLASSIC_TOKEN


def test_no_records_match_is_an_empty_page(recorded):
    page = parse_page(oai(recorded, "error_noRecordsMatch_unknown-set.xml"))
    assert page == Page([], None, datetime(2015, 6, 23, 13, 28, 30))


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "error_badResumptionToken.xml",
            'page 1 of http://h/oai?x: OAI-PMH error badResumptionToken ("The resumptionToken supplied is '
            'illegal for this repository"): the resumption token was rejected (expired?): '
            "harvest again from the start",
        ),
        (
            "error_badArgument.xml",
            "page 1 of http://h/oai?x: OAI-PMH error badArgument (\"Verb 'ListRecords', illegal argument "
            "'identifier'.\"): the server refused the request arguments: check from/until (YYYY-MM-DD), "
            "set and metadataPrefix",
        ),
        (
            "error_badVerb.xml",
            "page 1 of http://h/oai?x: OAI-PMH error badVerb (\"Bad verb. Verb 'wah' not implemented.\"): "
            "the server did not understand the request: check that the base URL is an OAI-PMH endpoint",
        ),
    ],
)
def test_oai_errors_raise(recorded, name, message):
    with pytest.raises(HarvestError) as caught:
        parse_page(oai(recorded, name), url="http://h/oai?x")
    assert str(caught.value) == message
    assert caught.value.code == name.split("_")[1].removesuffix(".xml")


def test_cannot_disseminate_format_raises():
    # Built from scratch: no recording of this error exists (README "Not found").
    xml = (
        b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">'
        b"<responseDate>2026-01-01T00:00:00Z</responseDate>"
        b"<request>https://oaipmh.arxiv.org/oai</request>"
        b'<error code="cannotDisseminateFormat">Unknown metadata format</error></OAI-PMH>'
    )
    with pytest.raises(HarvestError) as caught:
        parse_page(xml, page=4)
    assert str(caught.value) == (
        'page 4: OAI-PMH error cannotDisseminateFormat ("Unknown metadata format"): '
        "the server does not offer this metadataPrefix: use arXiv or arXivRaw"
    )


def test_html_body_is_not_oai(recorded):
    body = oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_HTTP503-retry-after.html")
    with pytest.raises(HarvestError) as caught:
        parse_page(body, page=2, url="http://h/oai")
    assert str(caught.value) == (
        "page 2 of http://h/oai is not an OAI-PMH response (root element <html>): check the base URL"
    )


# -- OaiHarvest against a local server -------------------------------------------------------------


def test_classic_token_chain(recorded, server, make):
    page1, page2 = raw_chain(recorded)
    server.add(page1).add(page2)
    harvest = make(metadata_prefix="arXivRaw", from_=date(2014, 10, 1))
    items = list(harvest)
    assert ids(items) == RAW_PAGE1_IDS + ["1302.2146"]
    assert items[-1][0] == "page 2, record 1 (oai:arXiv.org:1302.2146)"
    assert items[-1][1].versions[-1] == Version(2, datetime(2013, 4, 2, 1, 50, 8))
    assert [r.params for r in server.log] == [
        {"verb": "ListRecords", "metadataPrefix": "arXivRaw", "from": "2014-10-01"},
        {"verb": "ListRecords", "resumptionToken": CLASSIC_TOKEN},  # only verb + token when resuming
    ]
    assert server.log[1].query == "verb=ListRecords&resumptionToken=726959%7C1001"
    assert (harvest.pages_fetched, harvest.records_seen) == (2, 7)


def test_current_url_encoded_token_chain(recorded, server, make):
    page1, page2 = arxiv_chain(recorded)
    server.add(page1).add(page2)
    harvest = make(**ARXIV_ARGS, set_="physics:hep-th")
    assert ids(harvest) == PAGE1_ARXIV_IDS + PAGE2_ARXIV_IDS
    assert server.log[0].params == {
        "verb": "ListRecords",
        "metadataPrefix": "arXiv",
        "from": "2015-01-01",
        "until": "2015-01-03",
        "set": "physics:hep-th",
    }
    # The token comes back exactly as received, URL-encoded once more on the way.
    assert server.log[1].params == {"verb": "ListRecords", "resumptionToken": CURRENT_TOKEN}
    assert server.log[1].query == "verb=ListRecords&resumptionToken=" + CURRENT_TOKEN.replace("%", "%25")
    assert harvest.pages_fetched == 2


def test_503_retry_after_is_honoured(recorded, server, make, sleeps):
    html = oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_HTTP503-retry-after.html")
    server.add(html, 503, Retry_After="10", Content_Type="text/html")
    server.add(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    harvest = make(**ARXIV_ARGS)
    assert ids(harvest) == PAGE1_ARXIV_IDS
    assert sleeps == [10]
    assert len(server.log) == 2 and server.log[0].query == server.log[1].query  # the same request, repeated
    assert harvest.pages_fetched == 1


def test_503_retry_after_is_capped_and_retries_are_limited(recorded, server, make, sleeps):
    html = oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_HTTP503-retry-after.html")
    for _ in range(3):
        server.add(html, 503, Retry_After="3600", Content_Type="text/html")
    harvest = make(**ARXIV_ARGS, max_retries=2)
    with pytest.raises(HarvestError) as caught:
        list(harvest)
    url = f"{server.url}?verb=ListRecords&metadataPrefix=arXiv&from=2015-01-01&until=2015-01-03"
    assert str(caught.value) == (
        f"page 1 of {url}: gave up after 2 retries, last: HTTP 503 (Retry-After: 3600): "
        "the server is unavailable, harvest again later (the checkpoint keeps the progress)"
    )
    assert sleeps == [600, 600]
    assert len(server.log) == 3


def test_server_errors_are_retried_with_backoff(recorded, server, make, sleeps):
    server.add(b"oops", 500, Content_Type="text/plain").add(b"", 502)
    server.add(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    assert ids(make(**ARXIV_ARGS)) == PAGE1_ARXIV_IDS
    assert sleeps == [5, 10]


def test_client_error_is_not_retried(server, make, sleeps):
    server.add(b"<html><body>Not Found</body></html>", 404, Content_Type="text/html")
    with pytest.raises(HarvestError) as caught:
        list(make(metadata_prefix="arXiv"))
    assert str(caught.value) == (
        f"page 1 of {server.url}?verb=ListRecords&metadataPrefix=arXiv: HTTP 404 "
        "(<html><body>Not Found</body></html>): check the base URL and the harvest arguments"
    )
    assert sleeps == [] and len(server.log) == 1


def test_connection_errors_are_retried_then_reported(client, sleeps):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    harvest = OaiHarvest(
        f"http://127.0.0.1:{port}/oai", client=client, sleep=sleeps.append, max_retries=1, delay=0
    )
    with pytest.raises(HarvestError) as caught:
        list(harvest)
    assert str(caught.value).startswith(
        f"page 1 of http://127.0.0.1:{port}/oai?verb=ListRecords&metadataPrefix=arXiv: "
        "gave up after 1 retry, "
        "last: ConnectError: "
    )
    assert sleeps == [5]


def test_no_records_match_harvests_nothing(recorded, server, make, tmp_path):
    server.add(oai(recorded, "error_noRecordsMatch_unknown-set.xml"))
    checkpoint = tmp_path / "oai.json"
    harvest = make(metadata_prefix="arXivRaw", set_="moo", checkpoint=checkpoint)
    assert list(harvest) == []
    assert server.log[0].params == {"verb": "ListRecords", "metadataPrefix": "arXivRaw", "set": "moo"}
    # Nothing to commit: the (empty) list is complete at once.
    saved = json.loads(checkpoint.read_text())
    assert saved["complete"] is True and saved["response_date"] == "2015-06-23T13:28:30Z"


def test_bad_resumption_token_names_the_checkpoint(recorded, server, make, tmp_path):
    page1, _ = raw_chain(recorded)
    server.add(page1).add(oai(recorded, "error_badResumptionToken.xml"))
    checkpoint = tmp_path / "oai.json"
    harvest = make(metadata_prefix="arXivRaw", from_=date(2014, 10, 1), checkpoint=checkpoint)
    seen = []
    with pytest.raises(HarvestError) as caught:
        for item in harvest:
            seen.append(item)
    assert ids(seen) == RAW_PAGE1_IDS
    assert str(caught.value) == (
        f"page 2 of {server.url}?verb=ListRecords&resumptionToken=726959%7C1001: "
        "OAI-PMH error badResumptionToken "
        '("The resumptionToken supplied is illegal for this repository"): the resumption token was rejected '
        f"(expired?): delete the checkpoint {checkpoint} and harvest again"
    )
    assert caught.value.code == "badResumptionToken" and caught.value.page == 2


def test_truncated_page_names_the_page(recorded, server, make):
    page1, _ = raw_chain(recorded)
    cut = page1[: len(page1) // 2]  # Derived: the recorded page cut in half
    server.add(page1).add(cut)
    harvest = make(metadata_prefix="arXivRaw", from_=date(2014, 10, 1))
    with pytest.raises(HarvestError) as caught:
        list(harvest)
    line, column = cut.count(b"\n") + 1, len(cut) - cut.rfind(b"\n")  # where the data ends
    reason = re.sub(r", line \d+, column \d+$", "", caught.value.__cause__.msg)
    assert (line, column) == (64, 68)
    assert str(caught.value) == (
        f"page 2 of {server.url}?verb=ListRecords&resumptionToken=726959%7C1001 is not well-formed XML "
        f"(line 64, column 68: {reason}): the response was cut off or is not OAI-PMH; harvest again"
    )
    assert caught.value.page == 2


def test_deleted_record_through_the_harvest(recorded, server, make):
    # Derived: the 1st recorded header of the complete list marked deleted, its metadata removed.
    xml = oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml")
    xml = xml.replace(b"<header>", b'<header status="deleted">', 1)
    xml = re.sub(rb"<metadata>.*?</metadata>", b"", xml, count=1, flags=re.S)
    server.add(xml)
    items = list(make(**ARXIV_ARGS))
    assert items[0] == ("page 1, record 1 (oai:arXiv.org:1412.8544)", Deletion("1412.8544"))
    assert items[1][1].id == "hep-th/9504118"


def test_polite_delay_between_pages(recorded, server, make, sleeps):
    server.add(arxiv_chain(recorded)[0]).add(arxiv_chain(recorded)[1])
    assert len(list(make(**ARXIV_ARGS, delay=3.0))) == 5
    assert len(sleeps) == 1 and 2.0 < sleeps[0] <= 3.0  # once, between the two requests


def test_default_client_is_used_when_none_given(recorded, server, sleeps, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server.add(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    with OaiHarvest(server.url, from_=date(2015, 1, 1), sleep=sleeps.append) as harvest:
        assert ids(harvest) == PAGE1_ARXIV_IDS


def test_only_arxiv_formats_are_accepted():
    with pytest.raises(ValueError, match="metadata_prefix must be one of arXiv, arXivRaw, not 'oai_dc'"):
        OaiHarvest(metadata_prefix="oai_dc")


# -- checkpoints -----------------------------------------------------------------------------------


def test_checkpoint_resume_after_a_crash(recorded, server, make, tmp_path):
    page1, page2 = arxiv_chain(recorded)
    server.add(page1).add(page2)
    checkpoint = tmp_path / "state" / "oai.json"
    first = make(**ARXIV_ARGS, checkpoint=checkpoint)
    it = iter(first)

    # Half of page 1 committed: the checkpoint must fetch page 1 again.
    assert next(it)[1].id == "1412.8544"
    first.committed()
    saved = json.loads(checkpoint.read_text())
    assert saved["resumption_token"] is None and saved["page"] == 1 and saved["complete"] is False
    assert saved["arguments"] == {
        "verb": "ListRecords",
        "metadataPrefix": "arXiv",
        "from": "2015-01-01",
        "until": "2015-01-03",
        "set": None,
    }

    # All of page 1 committed: the checkpoint holds the token of page 2.
    assert next(it)[1].id == "hep-th/9504118"
    first.committed()
    saved = json.loads(checkpoint.read_text())
    assert (saved["resumption_token"], saved["page"], saved["complete"]) == (CURRENT_TOKEN, 2, False)
    assert saved["response_date"] == "2018-06-21T14:31:04Z"
    assert not list(tmp_path.glob("state/*.tmp"))  # written atomically, no leftovers

    # One record of page 2 read but never committed; then the process dies.
    assert next(it)[1].id == PAGE2_ARXIV_IDS[0]
    del it, first
    assert len(server.log) == 2

    server.log.clear()
    server.add(page2)
    second = make(**ARXIV_ARGS, checkpoint=checkpoint)
    assert second.resuming
    assert ids(second) == PAGE2_ARXIV_IDS  # page 2 only, its first record again
    assert [r.params for r in server.log] == [{"verb": "ListRecords", "resumptionToken": CURRENT_TOKEN}]
    second.committed()
    saved = json.loads(checkpoint.read_text())
    assert saved["complete"] is True and saved["resumption_token"] is None
    # The first response's date (page 1, 2018), not the resumed page's (2017): the next `from`.
    assert saved["response_date"] == "2018-06-21T14:31:04Z"
    assert last_harvest_date(checkpoint) == date(2018, 6, 21)


def test_end_of_list_waits_for_the_last_commit(recorded, server, make, tmp_path):
    server.add(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    checkpoint = tmp_path / "oai.json"
    harvest = make(**ARXIV_ARGS, checkpoint=checkpoint)
    assert len(list(harvest)) == 2
    assert not checkpoint.exists()  # the last records are not committed yet: not complete
    assert last_harvest_date(checkpoint) is None
    harvest.committed()
    assert json.loads(checkpoint.read_text())["complete"] is True


def test_last_page_committed_before_the_end_is_complete(recorded, server, make, tmp_path):
    page1, page2 = raw_chain(recorded)
    server.add(page1).add(page2)
    checkpoint = tmp_path / "oai.json"
    harvest = make(metadata_prefix="arXivRaw", from_=date(2014, 10, 1), checkpoint=checkpoint)
    it = iter(harvest)
    for _ in range(7):
        next(it)
    harvest.committed()  # every record of the last page is in: done, even before StopIteration
    saved = json.loads(checkpoint.read_text())
    assert saved["complete"] is True and saved["page"] == 2
    assert list(it) == []


def test_checkpoint_for_other_arguments_is_refused(recorded, server, make, tmp_path):
    page1, page2 = arxiv_chain(recorded)
    server.add(page1)
    checkpoint = tmp_path / "oai.json"
    harvest = make(**ARXIV_ARGS, checkpoint=checkpoint)
    it = iter(harvest)
    next(it), next(it)
    harvest.committed()
    with pytest.raises(HarvestError) as caught:
        make(metadata_prefix="arXivRaw", from_=date(2015, 1, 1), checkpoint=checkpoint)
    assert str(caught.value) == (
        f"the checkpoint {checkpoint} belongs to an unfinished harvest of {server.url} metadataPrefix=arXiv "
        f"from=2015-01-01 until=2015-01-03, not of {server.url} metadataPrefix=arXivRaw from=2015-01-01: "
        "run that harvest again to finish it, or delete the checkpoint to start this one"
    )


def test_complete_checkpoint_does_not_block_the_next_harvest(recorded, server, make, tmp_path):
    checkpoint = tmp_path / "oai.json"
    server.add(oai(recorded, "ListRecords_arXiv_from-2015-01-01_until-2015-01-03_complete.xml"))
    first = make(**ARXIV_ARGS, checkpoint=checkpoint)
    list(first)
    first.committed()
    # The incremental harvest that follows: from = the date of the last one, other arguments.
    since = last_harvest_date(checkpoint)
    server.add(oai(recorded, "ListRecords_arXiv_set-physics-hep-th_from-2017-12-14.xml"))
    second = make(metadata_prefix="arXiv", from_=since, checkpoint=checkpoint)
    assert not second.resuming
    assert ids(second) == PAGE2_ARXIV_IDS
    assert server.log[-1].params == {"verb": "ListRecords", "metadataPrefix": "arXiv", "from": "2018-06-21"}


def test_unreadable_checkpoint_is_reported(tmp_path):
    checkpoint = tmp_path / "oai.json"
    checkpoint.write_text("{not json")
    with pytest.raises(HarvestError) as caught:
        OaiHarvest(checkpoint=checkpoint)
    assert str(caught.value).startswith(f"the checkpoint {checkpoint} is unreadable (")
    assert str(caught.value).endswith("): delete it and harvest again")
