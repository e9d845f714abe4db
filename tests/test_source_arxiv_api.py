"""arXiv API source: id normalisation, the Atom parser, and fetching against a local replay server.

The server replays the recorded responses in ``recorded/arxiv-api`` (read at test time, keyed by the
``id_list`` of each request), so the client's requests and retries run over real HTTP.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dailypapers.domain import Author, Paper, RecordError, Version
from dailypapers.sources.arxiv_api import ArxivApiError, fetch_papers, normalize_id, parse_feed
from dailypapers.sources.common import SourceError

# id_list as the server receives it -> (HTTP status, recorded file under arxiv-api/).
ROUTES = {
    "1605.08386": (200, "query_id_list-1605.08386.xml"),
    "2104.12255v1": (200, "query_id_list-2104.12255v1.xml"),
    "quant-ph/0201082v1": (200, "query_id_list-quant-ph_0201082v1.xml"),
    "astro-ph/0601001": (200, "query_id_list-astro-ph_0601001.xml"),
    "0808.05394,1707.08567": (200, "query_id_list-0808.05394+1707.08567_one-missing.xml"),
    "0000.0000": (200, "query_id_list-0000.0000_empty-result.xml"),
    "abc": (400, "query_id_list-abc_error-entry_HTTP400.xml"),
    "0808.05394": (200, "arxiv.py-recordings/id_0808.05394_s0_m100_7b0c7d0a7cdd.json"),
    "1707.08567": (200, "arxiv.py-recordings/id_1707.08567_s0_m100_6a1afebfc6a3.json"),
}


def recorded_body(path: Path) -> bytes:
    """The bytes the server sent: .xml files as they are, arxiv.py's JSON recordings decoded back."""
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))["body"].encode("latin-1")
    return path.read_bytes()


class Replay:
    """A local arXiv API: answers from the recordings, or from ``script`` (status, headers, body) first."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[dict[str, list[str]]] = []
        self.paths: list[str] = []
        self.script: deque[tuple[int, dict[str, str], bytes]] = deque()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                url = urlsplit(self.path)
                params = parse_qs(url.query, keep_blank_values=True)
                replay.paths.append(url.path)
                replay.requests.append(params)
                if replay.script:
                    status, headers, body = replay.script.popleft()
                elif url.path == "/api/query" and (route := ROUTES.get(params.get("id_list", [""])[0])):
                    status, headers = route[0], {"Content-Type": "application/atom+xml; charset=utf-8"}
                    body = recorded_body(replay.folder / route[1])
                else:
                    status, headers, body = 404, {"Content-Type": "text/plain"}, b"no recording"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/api/query"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def id_lists(self) -> list[str]:
        return [p["id_list"][0] for p in self.requests]


@pytest.fixture
def api(recorded):
    replay = Replay(recorded / "arxiv-api")
    replay.thread.start()
    try:
        yield replay
    finally:
        replay.server.shutdown()
        replay.server.server_close()
        replay.thread.join(timeout=5)


@pytest.fixture
def sleeps() -> list[float]:
    return []


def fetch(api: Replay, sleeps: list[float], ids: list[str], **kwargs) -> list:
    kwargs.setdefault("sleep", sleeps.append)
    with httpx.Client(timeout=5) as client:
        return list(fetch_papers(ids, base_url=api.url, client=client, **kwargs))


def papers(results: list) -> list[Paper]:
    return [r for _, r in results if isinstance(r, Paper)]


def feed(recorded: Path, name: str) -> bytes:
    return (recorded / "arxiv-api" / name).read_bytes()


# --- normalize_id -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2104.12255", ("2104.12255", None)),
        ("2104.12255v1", ("2104.12255", 1)),
        ("  2501.01234\n", ("2501.01234", None)),
        ("0704.0001", ("0704.0001", None)),
        ("https://arxiv.org/abs/2104.12255v1", ("2104.12255", 1)),
        ("http://arxiv.org/abs/2104.12255", ("2104.12255", None)),
        ("arxiv.org/pdf/2104.12255.pdf", ("2104.12255", None)),
        ("https://arxiv.org/pdf/2104.12255v3", ("2104.12255", 3)),
        ("https://export.arxiv.org/abs/2104.12255v2", ("2104.12255", 2)),
        ("https://www.arxiv.org/abs/2104.12255?context=cs#top", ("2104.12255", None)),
        ("https://arxiv.org/html/2501.01234v1/", ("2501.01234", 1)),
        ("arXiv:2104.12255", ("2104.12255", None)),
        ("arxiv:2104.12255v4", ("2104.12255", 4)),
        ("hep-th/9901001", ("hep-th/9901001", None)),
        ("quant-ph/0201082v1", ("quant-ph/0201082", 1)),
        ("https://arxiv.org/abs/astro-ph/0601001v1", ("astro-ph/0601001", 1)),
        ("math.GT/0309136", ("math/0309136", None)),
    ],
)
def test_normalize_id_accepts_ids_and_urls(text, expected):
    assert normalize_id(text) == expected


ARABIC_INDIC_ID = "\u0662\u0661\u0660\u0664.\u0661\u0662\u0662\u0665\u0665"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("abc", "'abc'"),
        ("../../etc/passwd", "'../../etc/passwd'"),
        ("", "''"),
        ("   ", "'   '"),
        ("2104.12255\x00", "'2104.12255\\x00'"),
        ("\x00", "'\\x00'"),
        ("x" * 10_000, "'" + "x" * 100 + "...'"),
        ("2104.12255" * 1000, "'" + ("2104.12255" * 10) + "...'"),
        ("2104.12255v0", "'2104.12255v0'"),
        ("2104.12255v", "'2104.12255v'"),
        ("2104.123", "'2104.123'"),
        ("https://evil.example/abs/2104.12255", "'https://evil.example/abs/2104.12255'"),
        ("2104.12255,1605.08386", "'2104.12255,1605.08386'"),
        ("2104.12255&max_results=30000", "'2104.12255&max_results=30000'"),
        (ARABIC_INDIC_ID, f"'{ARABIC_INDIC_ID}'"),  # \d would match these digits
        ("it's", "\"it's\""),
    ],
)
def test_normalize_id_rejects_anything_else_with_the_exact_message(text, shown):
    with pytest.raises(RecordError) as info:
        normalize_id(text)
    assert info.value.field == "id"
    assert info.value.reason == f"{shown} is not an arXiv identifier"
    assert str(info.value) == f"id: {shown} is not an arXiv identifier"


def test_normalize_id_message_for_plain_inputs_is_the_input_in_quotes():
    for text in ("abc", "../../etc/passwd", ""):
        with pytest.raises(RecordError, match="is not an arXiv identifier") as info:
            normalize_id(text)
        assert info.value.reason == f"'{text}' is not an arXiv identifier"


# --- parse_feed: current (2026) serialisation ---------------------------------------------------


def test_parse_feed_current_single_entry(recorded):
    [(where, paper)] = parse_feed(feed(recorded, "query_id_list-1605.08386.xml"))
    assert where == "entry 1 (1605.08386)"
    assert paper == Paper(
        id="1605.08386",
        title="Heat-bath random walks with Markov bases",
        summary=paper.summary,
        authors=[Author("Caprice Stanley"), Author("Tobias Windisch")],
        categories=["math.CO", "math.ST"],
        published_at=datetime(2016, 5, 26, 17, 59, 46),
        updated_at=datetime(2016, 5, 26, 17, 59, 46),
        versions=[Version(1, submitted_at=datetime(2016, 5, 26, 17, 59, 46))],
        comments="20 pages, 3 figures",
        source="arxiv-api",
    )
    assert paper.summary.startswith("Graphs on lattice points are studied")
    assert paper.summary.endswith("is an expander in fixed dimension.")
    assert paper.doi is None and paper.journal_ref is None


def test_parse_feed_title_zero_is_a_title(recorded):
    [(_, paper)] = parse_feed(feed(recorded, "query_id_list-2104.12255v1.xml"))
    assert paper.title == "0"
    assert paper.id == "2104.12255" and paper.latest_version == 1
    assert paper.github_repo is None  # "ethereum/py ecc" is not a URL


def test_parse_feed_affiliations_journal_ref_and_comment_links(recorded):
    [(_, paper)] = parse_feed(feed(recorded, "query_id_list-astro-ph_0601001.xml"))
    assert paper.id == "astro-ph/0601001"
    assert paper.authors[0] == Author("Andrew Gould", ("Ohio State",))
    assert [a.affiliations for a in paper.authors] == [
        ("Ohio State",),
        ("Ohio State",),
        ("CfA",),
        ("Warsaw University Observatory",),
    ]
    assert paper.journal_ref == "ActaAstron.56:1-50,2006"
    assert paper.summary.startswith("We derive the frequencies")  # leading spaces gone
    assert "V_max<17.5" in paper.summary  # entities decoded
    assert paper.project_page == "http://www.astronomy.ohio-state.edu/~gould/ogle_hot_jupiters.ps.gz"


def test_parse_feed_error_feed_raises(recorded):
    assert issubclass(ArxivApiError, SourceError)  # the CLI reports every source failure the same way
    with pytest.raises(ArxivApiError, match="^arXiv API error: incorrect id format for abc$"):
        parse_feed(feed(recorded, "query_id_list-abc_error-entry_HTTP400.xml"))


def test_parse_feed_empty_feed(recorded):
    assert parse_feed(feed(recorded, "query_id_list-0000.0000_empty-result.xml")) == []


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("query_search_query-testing_start0_max10.xml", 10),
        ("query_search_query-testing_start10_max10.xml", 10),
        ("query_search_query-testing_start20_max10.xml", 10),
        ("query_search_query-all_transformer+AND+cat_cs.LG_sortBy-submittedDate_max5.xml", 5),
        ("classic-2016_query_search_query-au_del_maestro.xml", 10),
        ("classic-2016_query_search_query-au_del_maestro+ANDNOT+ti_checkerboard_OR_ti_Pyrochlore.xml", 10),
        ("classic-2016_query_search_query-au_del_maestro+AND+ti_quantum_criticality.xml", 2),
        ("classic-2016_query_search_query-au_del_maestro+AND+ti_checkerboard.xml", 1),
    ],
)
def test_parse_feed_search_pages(recorded, name, count):
    results = parse_feed(feed(recorded, name))
    assert len(results) == count
    for n, (where, paper) in enumerate(results, start=1):
        assert isinstance(paper, Paper), (where, paper)
        assert where == f"entry {n} ({paper.id})"
        assert paper.is_arxiv and paper.title and paper.summary and paper.authors
        assert paper.categories and paper.primary_category == paper.categories[0]
        assert len(paper.versions) == 1 and paper.versions[0].submitted_at == paper.updated_at
        assert paper.published_at <= paper.updated_at
        assert paper.source == "arxiv-api"
        assert "\n" not in paper.title and "\n" not in paper.summary
        assert paper.summary == paper.summary.strip()


def test_parse_feed_search_page_dois(recorded):
    results = parse_feed(feed(recorded, "query_search_query-testing_start0_max10.xml"))
    dois = [p.doi for _, p in results if p.doi]
    assert dois and all(d.startswith("10.") for d in dois)


# --- parse_feed: classic (2016) serialisation ---------------------------------------------------


def test_parse_feed_classic_id_list(recorded):
    [(where, paper)] = parse_feed(feed(recorded, "classic-2016_query_id_list-1111.2011v2.xml"))
    assert where == "entry 1 (1111.2011)"
    assert paper.id == "1111.2011"
    assert paper.title == (
        "Quantum Criticality for Extended Nodes on a Bethe Lattice in the Large Connectivity Limit"
    )
    assert paper.summary.startswith("Theoretical description of anisotropic systems, such as layered")
    assert paper.summary.endswith("adding a single extra dimension to the theory describing a single node.")
    assert "  " not in paper.summary and "\n" not in paper.summary
    assert [a.name for a in paper.authors] == ["James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic"]
    assert paper.doi == "10.1103/PhysRevB.85.115117"
    assert paper.journal_ref == "Phys. Rev. B 85, 115117 (2012)"
    assert paper.comments == "8 pages, 3 figures. Published version"
    assert paper.categories == ["cond-mat.str-el", "cond-mat.stat-mech"]
    assert paper.published_at == datetime(2011, 11, 8, 18, 48, 36)
    assert paper.updated_at == datetime(2012, 4, 2, 12, 38, 54)
    assert paper.versions == [Version(2, submitted_at=datetime(2012, 4, 2, 12, 38, 54))]


CLASSIC_ERROR_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
  <link xmlns="http://www.w3.org/2005/Atom" rel="self" type="application/atom+xml"
        href="http://arxiv.org/api/query?search_query=&amp;id_list=1234.12345"/>
  <title xmlns="http://www.w3.org/2005/Atom">ArXiv Query: search_query=&amp;id_list=1234.12345</title>
  <id xmlns="http://www.w3.org/2005/Atom">http://arxiv.org/api/kvuntZ8c9a4Eq5CF7KY03nMug+Q</id>
  <updated xmlns="http://www.w3.org/2005/Atom">2007-10-12T00:00:00-04:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:totalResults>
  <entry xmlns="http://www.w3.org/2005/Atom">
    <id xmlns="http://www.w3.org/2005/Atom"
      >http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id>
    <title xmlns="http://www.w3.org/2005/Atom">Error</title>
    <summary xmlns="http://www.w3.org/2005/Atom">incorrect id format for 1234.12345</summary>
    <updated>2007-10-12T00:00:00-04:00</updated>
    <author xmlns="http://www.w3.org/2005/Atom">
      <name xmlns="http://www.w3.org/2005/Atom">arXiv api core</name>
    </author>
  </entry>
</feed>
"""


def test_parse_feed_classic_error_feed_from_the_manual():
    with pytest.raises(ArxivApiError, match="^arXiv API error: incorrect id format for 1234.12345$"):
        parse_feed(CLASSIC_ERROR_FEED)


# --- parse_feed: odd and hostile feeds ----------------------------------------------------------

ENTRY_FEED = """<?xml version='1.0' encoding='UTF-8'?>
<feed xmlns:arxiv="http://arxiv.org/schemas/atom" xmlns="http://www.w3.org/2005/Atom">
  <entry>
    <id>{id}</id>
    <title>A title</title>
    <updated>{updated}</updated>
    <published>2020-01-01T00:00:00Z</published>
    <summary>Code at https://github.com/org/repo. Project page https://example.org/p.</summary>
    {categories}
    <arxiv:primary_category term="cs.LG"/>
    <author><name>A. Author</name></author>
  </entry>
</feed>
"""


def entry_feed(id="http://arxiv.org/abs/2001.00001v2", updated="2020-02-01T00:00:00Z", categories=""):
    return ENTRY_FEED.format(id=id, updated=updated, categories=categories).encode("utf-8")


def test_parse_feed_keeps_only_arxiv_categories_primary_first():
    terms = ["stat.ML", "cs.LG", "I.2.6; I.5.1", "I.2.6", "F.2.2", "68T05", "62H30 (Primary)", "hep-th",
             "math.GT", "cond-mat.str-el", "physics.acc-ph", "q-bio.QM", "math-ph", "cs.AI"]
    categories = "\n".join(f'<category term="{t}" scheme="http://arxiv.org/schemas/atom"/>' for t in terms)
    [(_, paper)] = parse_feed(entry_feed(categories=categories))
    assert paper.categories == ["cs.LG", "stat.ML", "hep-th", "math.GT", "cond-mat.str-el", "physics.acc-ph",
                                "q-bio.QM", "math-ph", "cs.AI"]
    assert paper.github_repo == "https://github.com/org/repo"
    assert paper.project_page == "https://example.org/p"
    assert paper.versions == [Version(2, submitted_at=datetime(2020, 2, 1))]


def test_parse_feed_bad_entries_become_record_errors():
    [(where, error)] = parse_feed(entry_feed(id="https://example.org/not-arxiv"))
    assert where == "entry 1"
    assert isinstance(error, RecordError) and error.field == "id"
    [(where, error)] = parse_feed(entry_feed(updated="yesterday"))
    assert where == "entry 1 (2001.00001)"
    assert isinstance(error, RecordError) and error.field == "updated"
    assert error.reason == "'yesterday' is not a date"


@pytest.mark.parametrize(
    ("body", "position"),
    [
        (b"", "line 1, column 1"),
        (b"<feed", "line 1, column 6"),
        (b"<?xml version='1.0'?>\n<feed xmlns='http://www.w3.org/2005/Atom'>\n<entry></feed>", "line 3"),
    ],
)
def test_parse_feed_malformed_xml_names_the_position(body, position):
    with pytest.raises(ArxivApiError, match="not well-formed XML") as info:
        parse_feed(body)
    assert position in str(info.value)


def test_parse_feed_rejects_what_is_not_an_atom_feed():
    with pytest.raises(ArxivApiError, match="not an Atom feed"):
        parse_feed(b"<html><body>Service Unavailable</body></html>")


def test_parse_feed_does_not_resolve_external_entities():
    body = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY leak SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry>
<id>http://arxiv.org/abs/2001.00001v1</id><title>T &leak;</title><summary>S</summary>
</entry></feed>"""
    [(_, paper)] = parse_feed(body)
    assert "root:" not in paper.title


# --- fetch_papers against the replay server -----------------------------------------------------


def test_fetch_several_ids(api, sleeps):
    ids = ["1605.08386", "https://arxiv.org/abs/2104.12255v1", "quant-ph/0201082v1", "arXiv:astro-ph/0601001"]
    results = fetch(api, sleeps, ids, batch_size=1)
    assert api.id_lists == ["1605.08386", "2104.12255v1", "quant-ph/0201082v1", "astro-ph/0601001"]
    assert all(p["max_results"] == ["1"] for p in api.requests)
    assert set(api.paths) == {"/api/query"}
    assert sleeps == [3.0, 3.0, 3.0]  # between calls, not before the first
    assert [where for where, _ in results] == [
        "entry 1 (1605.08386)",
        "entry 1 (2104.12255)",
        "entry 1 (quant-ph/0201082)",
        "entry 1 (astro-ph/0601001)",
    ]
    p1, p2, p3, p4 = papers(results)
    assert (p1.title, p1.author_count, p1.primary_category, p1.versions) == (
        "Heat-bath random walks with Markov bases",
        2,
        "math.CO",
        [Version(1, datetime(2016, 5, 26, 17, 59, 46))],
    )
    assert (p2.title, p2.author_count, p2.primary_category, p2.latest_version) == ("0", 1, "cs.CR", 1)
    assert p3.title.startswith("Quantum Computers and Quantum Computer Languages")
    assert (p3.id, p3.author_count, p3.categories) == ("quant-ph/0201082", 1, ["quant-ph", "cs.PL"])
    assert p3.versions == [Version(1, datetime(2002, 1, 18, 15, 8, 5))]
    assert p4.title.startswith("Frequency of Hot Jupiters and Very Hot Jupiters")
    assert (p4.author_count, p4.primary_category) == (4, "astro-ph")
    assert p4.journal_ref == "ActaAstron.56:1-50,2006"
    assert p4.published_at == datetime(2006, 1, 2, 14, 57, 58)
    assert all(p.source == "arxiv-api" for p in (p1, p2, p3, p4))


def test_fetch_reports_the_id_the_feed_leaves_out(api, sleeps):
    results = fetch(api, sleeps, ["0808.05394", "1707.08567"])
    assert api.requests == [{"id_list": ["0808.05394,1707.08567"], "start": ["0"], "max_results": ["2"]}]
    assert sleeps == []
    [(where, paper), (missing_where, error)] = results
    assert (where, paper.id, paper.author_count) == ("entry 1 (1707.08567)", "1707.08567", 34)
    assert paper.primary_category == "cs.IT"
    assert missing_where == "id 0808.05394"
    assert isinstance(error, RecordError)
    assert str(error) == "id: '0808.05394' was not found on arXiv"
    assert error.reason == "'0808.05394' was not found on arXiv"


def test_fetch_in_batches_of_one_uses_the_single_recordings(api, sleeps):
    results = fetch(api, sleeps, ["0808.05394", "1707.08567"], batch_size=1)
    assert api.id_lists == ["0808.05394", "1707.08567"]
    assert [where for where, _ in results] == ["id 0808.05394", "entry 1 (1707.08567)"]


def test_fetch_empty_result_is_not_found(api, sleeps):
    [(where, error)] = fetch(api, sleeps, ["0000.0000"])
    assert api.id_lists == ["0000.0000"]
    assert where == "id 0000.0000"
    assert error.reason == "'0000.0000' was not found on arXiv"


def test_fetch_versioned_id_missing_names_the_version(api, sleeps, recorded):
    api.script.append((200, {}, feed(recorded, "query_id_list-0000.0000_empty-result.xml")))
    [(where, error)] = fetch(api, sleeps, ["arxiv.org/abs/2104.12255v7"])
    assert api.id_lists == ["2104.12255v7"]
    assert (where, error.reason) == ("id 2104.12255v7", "'2104.12255v7' was not found on arXiv")


def test_fetch_rejects_bad_ids_before_any_request(api, sleeps):
    results = fetch(api, sleeps, ["abc", "../../etc/passwd", "", "\x00", "x" * 10_000])
    assert api.requests == []
    assert [where for where, _ in results] == [f"argument {i}" for i in range(1, 6)]
    assert all(isinstance(e, RecordError) and e.field == "id" for _, e in results)
    assert results[0][1].reason == "'abc' is not an arXiv identifier"
    assert results[1][1].reason == "'../../etc/passwd' is not an arXiv identifier"
    assert results[2][1].reason == "'' is not an arXiv identifier"
    assert results[3][1].reason == "'\\x00' is not an arXiv identifier"
    assert results[4][1].reason == "'" + "x" * 100 + "...' is not an arXiv identifier"


def test_fetch_sends_only_the_good_ids(api, sleeps):
    results = fetch(api, sleeps, ["abc", "1605.08386", "https://arxiv.org/pdf/1605.08386.pdf"])
    assert api.requests == [{"id_list": ["1605.08386"], "start": ["0"], "max_results": ["1"]}]
    assert [where for where, _ in results] == ["argument 1", "entry 1 (1605.08386)"]
    assert results[0][1].reason == "'abc' is not an arXiv identifier"


def test_fetch_error_feed_with_http_400_raises(api, sleeps, recorded):
    api.script.append((400, {}, feed(recorded, "query_id_list-abc_error-entry_HTTP400.xml")))
    with pytest.raises(ArxivApiError, match="^arXiv API error: incorrect id format for abc$"):
        fetch(api, sleeps, ["1605.08386"])
    assert len(api.requests) == 1  # a 400 is an answer, not something to retry
    assert sleeps == []


def test_fetch_error_feed_with_http_200_raises(api, sleeps):
    api.script.append((200, {}, CLASSIC_ERROR_FEED))
    with pytest.raises(ArxivApiError, match="incorrect id format for 1234.12345"):
        fetch(api, sleeps, ["1605.08386"])


def test_fetch_retries_503_honouring_retry_after(api, sleeps):
    api.script.append((503, {"Retry-After": "7", "Content-Type": "text/html"}, b"<html>busy</html>"))
    [(where, paper)] = fetch(api, sleeps, ["1605.08386"])
    assert paper.title == "Heat-bath random walks with Markov bases"
    assert api.id_lists == ["1605.08386", "1605.08386"]
    assert api.requests[0] == api.requests[1]
    assert sleeps == [7.0]


def test_fetch_retries_429_and_5xx_with_backoff(api, sleeps):
    api.script.extend([(429, {}, b""), (500, {}, b"oops"), (502, {}, b"")])
    [(_, paper)] = fetch(api, sleeps, ["1605.08386"], delay=2.0)
    assert paper.id == "1605.08386"
    assert len(api.requests) == 4
    assert sleeps == [2.0, 4.0, 8.0]


def test_fetch_gives_up_after_max_retries(api, sleeps):
    api.script.extend([(503, {"Retry-After": "1"}, b"")] * 5)
    with pytest.raises(ArxivApiError, match="after 3 attempts: HTTP 503"):
        fetch(api, sleeps, ["1605.08386"], max_retries=2)
    assert len(api.requests) == 3
    assert sleeps == [1.0, 1.0]


def test_fetch_caps_a_huge_retry_after(api, sleeps):
    api.script.append((503, {"Retry-After": "999999999"}, b""))
    fetch(api, sleeps, ["1605.08386"])
    assert sleeps == [300.0]


def test_fetch_retries_connection_errors(sleeps):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/query"
    with httpx.Client(timeout=2) as client, pytest.raises(ArxivApiError, match="4 attempts: ConnectError"):
        list(fetch_papers(["1605.08386"], base_url=url, client=client, delay=0.5, sleep=sleeps.append))
    assert sleeps == [1.0, 2.0, 4.0]


def test_fetch_malformed_body_names_the_parser_position(api, sleeps):
    body = b"<?xml version='1.0'?>\n<feed xmlns='http://www.w3.org/2005/Atom'>\n<entry>"
    api.script.append((200, {}, body))
    with pytest.raises(ArxivApiError, match=r"not well-formed XML \(line 3, column"):
        fetch(api, sleeps, ["1605.08386"])


def test_fetch_other_http_error_without_a_feed(api, sleeps):
    with pytest.raises(ArxivApiError, match="HTTP 404"):
        fetch(api, sleeps, ["2501.99999"])  # the replay server has no recording for it
    assert len(api.requests) == 1


def test_fetch_deduplicates_and_batches(api, sleeps):
    api.script.extend([(200, {}, b"<feed xmlns='http://www.w3.org/2005/Atom'/>")] * 2)
    ids = ["2501.00001", "arXiv:2501.00001", "2501.00002", "2501.00003v2"]
    results = fetch(api, sleeps, ids, batch_size=2)
    assert api.requests == [
        {"id_list": ["2501.00001,2501.00002"], "start": ["0"], "max_results": ["2"]},
        {"id_list": ["2501.00003v2"], "start": ["0"], "max_results": ["1"]},
    ]
    assert sleeps == [3.0]
    assert [where for where, _ in results] == ["id 2501.00001", "id 2501.00002", "id 2501.00003v2"]


def test_fetch_nothing_to_do_makes_no_request(api, sleeps):
    assert fetch(api, sleeps, []) == []
    assert api.requests == []
