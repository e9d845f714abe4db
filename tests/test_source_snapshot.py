"""The Kaggle arXiv metadata snapshot reader, on the 200 recorded lines and on lines broken on purpose."""

from __future__ import annotations

import gzip
import io
import json
import re
import tracemalloc
from datetime import datetime
from pathlib import Path

import pytest

from dailypapers.domain import Author, Paper, RecordError, Version
from dailypapers.sources.common import clean_text
from dailypapers.sources.snapshot import SnapshotError, iter_snapshot, parse_line, read_snapshot

LICENSE = "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"


@pytest.fixture(scope="module")
def snapshot(recorded: Path) -> Path:
    return recorded / "arxiv-snapshot" / "arxiv-metadata-oai-snapshot.first200.jsonl"


@pytest.fixture(scope="module")
def lines(snapshot: Path) -> list[bytes]:
    """The recorded lines, as bytes, with their line endings."""
    return snapshot.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def papers(snapshot: Path) -> dict[str, Paper]:
    out = {}
    for where, item in read_snapshot(snapshot):
        assert isinstance(item, Paper), (where, item)
        out[item.id] = item
    return out


def line_with(lines: list[bytes], number: int, **changes) -> bytes:
    """Recorded line ``number`` (1-based) with some keys replaced (or deleted, given ``...``)."""
    record = json.loads(lines[number - 1])
    for key, value in changes.items():
        key = key.replace("_", "-") if key in ("journal_ref", "report_no") else key
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record).encode("ascii") + b"\n"


def errors_and_ids(results) -> list[tuple[str, str | tuple[str, str]]]:
    return [
        (where, (item.field, item.reason) if isinstance(item, RecordError) else item.id)
        for where, item in results
    ]


# --- the recorded lines ---------------------------------------------------------------------------------


def test_all_200_recorded_lines_are_papers_in_file_order(snapshot: Path):
    results = list(read_snapshot(snapshot))
    assert [where for where, _ in results] == [f"line {n}" for n in range(1, 201)]
    assert [item.id for _, item in results] == [f"0704.{n:04d}" for n in range(1, 201)]
    assert all(isinstance(item, Paper) and item.source == "arxiv-snapshot" for _, item in results)
    # Every record has a title, an abstract, authors, a category and a first version date.
    assert all(p.title and p.summary and p.authors and p.categories and p.published_at for _, p in results)


def test_read_snapshot_accepts_a_str_path(snapshot: Path):
    assert sum(1 for _ in read_snapshot(str(snapshot))) == 200


def test_first_record(papers: dict[str, Paper]):
    p = papers["0704.0001"]
    assert p.title == "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    assert p.summary.startswith("A fully differential calculation in perturbative quantum chromodynamics is")
    assert p.summary.endswith("can be obtained with judicious selection of events.")
    assert "\n" not in p.summary and "  " not in p.summary
    assert p.authors == [
        Author("C. Balázs"),  # TeX accent in "authors" (C. Bal\'azs), decoded in authors_parsed
        Author("E. L. Berger"),
        Author("P. M. Nadolsky"),
        Author("C. -P. Yuan"),
    ]
    assert p.author_count == 4
    assert p.categories == ["hep-ph"]
    assert p.versions == [
        Version(1, datetime(2007, 4, 2, 19, 18, 42)),
        Version(2, datetime(2007, 7, 24, 20, 10, 27)),
    ]
    assert p.published_at == datetime(2007, 4, 2, 19, 18, 42)
    assert p.updated_at == datetime(2007, 7, 24, 20, 10, 27)
    assert p.latest_version == 2
    assert p.doi == "10.1103/PhysRevD.76.013009"
    assert p.journal_ref == "Phys.Rev.D76:013009,2007"
    assert p.comments == "37 pages, 15 figures; published version"
    assert p.report_no == "ANL-HEP-PR-07-12"
    assert p.license is None
    assert p.submitter == "Pavel Nadolsky"
    assert (p.github_repo, p.project_page) == (None, None)
    assert p.abs_url == "https://arxiv.org/abs/0704.0001"


def test_second_record_nulls_license_and_cross_list(papers: dict[str, Paper]):
    p = papers["0704.0002"]
    assert p.title == "Sparsity-certifying Graph Decompositions"
    assert p.authors == [Author("Ileana Streinu"), Author("Louis Theran")]
    assert p.categories == ["math.CO", "cs.CG"]
    assert p.primary_category == "math.CO"
    assert (p.journal_ref, p.doi, p.report_no) == (None, None, None)
    assert p.license == LICENSE
    assert p.comments == "To appear in Graphs and Combinatorics"


def test_tex_in_title_is_kept_and_whitespace_collapsed(papers: dict[str, Paper]):
    assert papers["0704.0005"].title == r"From dyadic $\Lambda_{\alpha}$ to $\Lambda_{\alpha}$"
    assert papers["0704.0003"].title == (
        "The evolution of the Earth-Moon system based on the dark matter field fluid model"
    )


def test_multi_version_paper(papers: dict[str, Paper]):
    p = papers["0704.0064"]
    assert [v.version for v in p.versions] == [1, 2, 3, 4, 5]
    assert [v.submitted_at for v in p.versions] == [
        datetime(2007, 4, 1, 13, 32, 15),
        datetime(2007, 5, 3, 16, 35, 49),
        datetime(2007, 12, 6, 13, 31, 19),
        datetime(2008, 6, 5, 11, 21, 43),
        datetime(2008, 10, 24, 12, 23, 58),
    ]
    assert p.published_at == datetime(2007, 4, 1, 13, 32, 15)
    assert p.updated_at == datetime(2008, 10, 24, 12, 23, 58)
    assert p.latest_version == 5


def test_single_version_paper_has_same_published_and_updated(papers: dict[str, Paper]):
    p = papers["0704.0009"]
    assert p.versions == [Version(1, datetime(2007, 4, 2, 19, 41, 34))]
    assert p.published_at == p.updated_at == datetime(2007, 4, 2, 19, 41, 34)


def test_authors_parsed_suffix(papers: dict[str, Paper]):
    names = [a.name for a in papers["0704.0009"].authors]
    assert names == [
        "Paul Harvey",
        "Bruno Merin",
        "Tracy L. Huard",
        "Luisa M. Rebull",
        "Nicholas Chapman",
        "Neal J. Evans II",
        "Philip C. Myers",
    ]


def test_authors_parsed_affiliation_element(papers: dict[str, Paper]):
    # authors_parsed carries the bracketed affiliation of the author line as a fourth element.
    assert papers["0704.0064"].authors == [Author("R. P. Malik", ("Bhu",))]
    affiliation = ("Institut für Theoretische und Angewandte Physik, Universität Stuttgart",)
    assert papers["0704.0163"].authors == [
        Author("Peter Brommer", affiliation),
        Author("Franz Gähler", affiliation),
    ]
    assert papers["0704.0155"].authors[0] == Author("Floris van der Tak", ("SRON Groningen",))


def test_several_dois_and_report_numbers_are_kept_as_given(papers: dict[str, Paper]):
    assert papers["0704.0033"].doi == "10.1364/JOSAA.23.002578 10.1364/JOSAA.32.002407"
    assert papers["0704.0008"].report_no == "LA-UR-07-2051, LLNL-JRNL-410358"
    # A multi-line report-no is collapsed like every other text field.
    assert papers["0704.0042"].report_no == (
        "Published in Systemics of Emergence. Research and Development, "
        "Minati G., Pessa E., Abram M., Springer, 2006, pages 723-734"
    )


def test_project_page_from_comments(papers: dict[str, Paper]):
    assert papers["0704.0024"].project_page == "http://www.physik.uni-kl.de/w_hilleb/ann05.html"
    assert papers["0704.0192"].project_page == "http://www.gb.nrao.edu/~koneil"
    # a dx.doi.org link is not a project page; the next link is
    assert papers["0704.0086"].project_page == "http://www.imstat.org/aap/"
    assert papers["0704.0086"].github_repo is None


def test_github_link_in_abstract(lines: list[bytes]):
    record = json.loads(lines[0])
    line = line_with(lines, 1, abstract=record["abstract"] + "Code: https://github.com/example/diphoton.\n")
    paper = parse_line(line)
    assert isinstance(paper, Paper)
    assert paper.github_repo == "https://github.com/example/diphoton"
    assert paper.project_page is None


def test_fallback_to_author_line_when_authors_parsed_is_empty_or_absent(lines: list[bytes]):
    for value in ([], ..., None):
        paper = parse_line(line_with(lines, 1, authors_parsed=value))
        assert isinstance(paper, Paper)
        # split_authors decodes the TeX accent of "C. Bal\'azs" itself
        names = [a.name for a in paper.authors]
        assert names == ["C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C.-P. Yuan"]
    paper = parse_line(line_with(lines, 64, authors_parsed=[]))
    assert paper.authors == [Author("R. P. Malik", ("Bhu",))]


def test_leftover_tex_in_authors_parsed_is_decoded(lines: list[bytes]):
    paper = parse_line(line_with(lines, 1, authors_parsed=[["Bal\\'azs", "C.", ""], ["Berger", "E. L.", ""]]))
    assert [a.name for a in paper.authors] == ["C. Balázs", "E. L. Berger"]


def test_odd_authors_parsed_entries(lines: list[bytes]):
    paper = parse_line(line_with(lines, 1, authors_parsed=[["Solo"], ["", "", ""], ["Doe", None, "Jr."], []]))
    assert paper.authors == [Author("Solo"), Author("Doe Jr.")]


def test_versioned_id_loses_its_version(lines: list[bytes]):
    assert parse_line(line_with(lines, 1, id="0704.0001v2")).id == "0704.0001"
    assert parse_line(line_with(lines, 1, id="hep-th/9901001v3")).id == "hep-th/9901001"
    assert parse_line(line_with(lines, 1, id=" 2301.01234 ")).id == "2301.01234"
    assert parse_line(line_with(lines, 1, id="solv-int/9901001")).id == "solv-int/9901001"


def test_clean_text_collapses_exactly_the_regex_whitespace(lines: list[bytes]):
    # clean_text uses str.split() for speed; it must agree with the regex \s it replaced.
    regex = lambda t: re.sub(r"\s+", " ", t).strip() or None if t is not None else None  # noqa: E731
    samples = ["", " ", "\u00a0a\u2003b\u3000", "a\x1cb\x1fc\x85d\u2028e\u2029", "\ta\r\n\x0b\x0cb  "]
    for line in lines:
        record = json.loads(line)
        samples += [record["title"], record["abstract"], record["authors"], record["comments"] or ""]
    for text in [*samples, None]:
        assert clean_text(text) == regex(text), repr(text)


# --- gzip and other kinds of stream ----------------------------------------------------------------------


def test_gzip_copy_gives_identical_records(snapshot: Path, tmp_path: Path):
    # The name says nothing: gzip is told by its magic bytes.
    copy = tmp_path / "snapshot.json"
    copy.write_bytes(gzip.compress(snapshot.read_bytes()))
    assert copy.read_bytes()[:2] == b"\x1f\x8b"
    assert list(read_snapshot(copy)) == list(read_snapshot(snapshot))


def test_multi_member_gzip(snapshot: Path, tmp_path: Path, lines: list[bytes]):
    copy = tmp_path / "two-members.jsonl.gz"
    copy.write_bytes(gzip.compress(b"".join(lines[:3])) + gzip.compress(b"".join(lines[3:5])))
    assert [(w, p.id) for w, p in read_snapshot(copy)] == [(f"line {n}", f"0704.000{n}") for n in range(1, 6)]


class Pipe(io.RawIOBase):
    """A non-seekable stream without peek(), like a socket or a pipe."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_iter_snapshot_on_streams(snapshot: Path, compress: bool):
    data = snapshot.read_bytes()
    if compress:
        data = gzip.compress(data)
    expected = list(read_snapshot(snapshot))
    assert list(iter_snapshot(io.BytesIO(data))) == expected
    assert list(iter_snapshot(Pipe(data))) == expected
    assert list(iter_snapshot(io.BufferedReader(Pipe(data)))) == expected


def test_crlf_bom_blank_lines_and_no_final_newline(lines: list[bytes]):
    data = b"\xef\xbb\xbf" + lines[0].rstrip(b"\n") + b"\r\n\r\n   \n\t\n" + lines[1].rstrip(b"\n")
    results = list(iter_snapshot(io.BytesIO(data)))
    assert errors_and_ids(results) == [("line 1", "0704.0001"), ("line 5", "0704.0002")]


def test_empty_line_text():
    assert (parse_line(b"").field, parse_line(b"").reason) == ("json", "Expecting value: column 1")


def test_empty_file(tmp_path: Path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert list(read_snapshot(tmp_path / "empty.jsonl")) == []
    (tmp_path / "empty.jsonl.gz").write_bytes(gzip.compress(b""))
    assert list(read_snapshot(tmp_path / "empty.jsonl.gz")) == []


# --- bad lines -------------------------------------------------------------------------------------------


def test_bad_lines_are_reported_and_good_lines_still_come_through(lines: list[bytes], tmp_path: Path):
    invalid_utf8 = lines[3][:79] + b"\xff" + lines[3][80:]  # the "A" starting line 4's title
    bad = [
        lines[0],
        invalid_utf8,
        lines[1],
        lines[4][:150] + b"\n",  # cut inside the title
        b"\n",
        json.dumps([json.loads(lines[2])]).encode() + b"\n",
        line_with(lines, 6, title=...),
        line_with(lines, 7, abstract=None),
        line_with(lines, 8, title=42),
        line_with(lines, 9, versions=[{"version": "v1", "created": "Mon, 32 Apr 2007 19:41:34 GMT"}]),
        lines[2],
        line_with(lines, 11, update_date="yesterday"),
        line_with(lines, 12, update_date="2008-02-30"),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(bad))
    assert errors_and_ids(read_snapshot(path)) == [
        ("line 1", "0704.0001"),
        ("line 2", ("line", "is not valid UTF-8 (byte 0xff at column 80)")),
        ("line 3", "0704.0002"),
        ("line 4", ("json", "Unterminated string starting at: column 113")),
        ("line 6", ("json", "expected an object, got a list")),
        ("line 7", ("title", "is missing")),
        ("line 8", ("abstract", "is missing")),
        ("line 9", ("title", "must be a string, got int")),
        ("line 10", ("versions", "entry 1 created 'Mon, 32 Apr 2007 19:41:34 GMT' is not a date")),
        ("line 11", "0704.0003"),
        ("line 12", ("update_date", "'yesterday' is not a date (YYYY-MM-DD)")),
        ("line 13", ("update_date", "'2008-02-30' is not a date (YYYY-MM-DD)")),
    ]


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        (b'"a string"', "json", "expected an object, got a string"),
        (b"null", "json", "expected an object, got null"),
        (b"12", "json", "expected an object, got an int"),
        (b"{", "json", "Expecting property name enclosed in double quotes: column 2"),
        (b'{"id": "x",}', "json", "Expecting property name enclosed in double quotes: column 12"),
        (b'{"id": "x"} {}', "json", "Extra data: column 13"),
        (b"\xc3(", "line", "is not valid UTF-8 (byte 0xc3 at column 1)"),
        (b'{"id": "2301.0\xe2\x82"}', "line", "is not valid UTF-8 (byte 0xe2 at column 15)"),
        (b"[" * 100_000 + b"]" * 100_000, "json", "is nested too deeply"),
        (b'{"id": 1' + b"0" * 5000 + b"}", "json",
         "Exceeds the limit (4300 digits) for integer string conversion: value has 5001 digits; "
         "use sys.set_int_max_str_digits() to increase the limit"),
        (b'{"id": "x", "title": "t\\ud800", "abstract": "a"}', "json",
         "holds a lone UTF-16 surrogate \\ud800, not a character"),
    ],
)
def test_unreadable_lines(line: bytes, field: str, reason: str):
    error = parse_line(line)
    assert isinstance(error, RecordError)
    assert (error.field, error.reason) == (field, reason)


def test_surrogate_pairs_are_fine(lines: list[bytes]):
    line = lines[0].replace(b"Calculation", b"\\ud835\\udc9e alculation", 1)
    assert parse_line(line).title.startswith("\U0001d49e alculation")


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"id": ...}, "id", "is missing"),
        ({"id": None}, "id", "is missing"),
        ({"id": 704.0001}, "id", "must be a string, got float"),
        ({"id": "  "}, "id", "is empty"),
        ({"title": " \n "}, "title", "is empty"),
        ({"abstract": ...}, "abstract", "is missing"),
        ({"abstract": ["A"]}, "abstract", "must be a string, got list"),
        ({"title": {"en": "T"}}, "title", "must be a string, got object"),
        ({"title": True}, "title", "must be a string, got bool"),
        ({"doi": 10}, "doi", "must be a string, got int"),
        ({"journal_ref": ["Phys.Rev."]}, "journal-ref", "must be a string, got list"),
        ({"report_no": 7}, "report-no", "must be a string, got int"),
        ({"license": False}, "license", "must be a string, got bool"),
        ({"submitter": {}}, "submitter", "must be a string, got object"),
        ({"comments": 1.5}, "comments", "must be a string, got float"),
        ({"categories": ["hep-ph"]}, "categories", "must be a string, got list"),
        ({"authors_parsed": "Balázs, C."}, "authors_parsed", "must be a list, got string"),
        ({"authors_parsed": [["Bal\u00e1zs", "C.", ""], "Berger"]}, "authors_parsed",
         "entry 2 must be a list, got string"),
        ({"authors_parsed": [["Bal\u00e1zs", 1, ""]]}, "authors_parsed",
         "entry 1 must hold strings, got int"),
        ({"authors_parsed": [], "authors": 3}, "authors", "must be a string, got int"),
        ({"versions": "v1"}, "versions", "must be a list, got string"),
        ({"versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}, "v2"]}, "versions",
         "entry 2 must be an object, got string"),
        ({"versions": [{"version": "1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}]}, "versions",
         "entry 1 has version '1', expected 'v' and a number"),
        ({"versions": [{"version": 1}]}, "versions", "entry 1 has version 1, expected 'v' and a number"),
        ({"versions": [{"created": "Mon, 2 Apr 2007 19:18:42 GMT"}]}, "versions",
         "entry 1 has version None, expected 'v' and a number"),
        ({"versions": [{"version": "v1", "created": 1175541522}]}, "versions",
         "entry 1 created must be a string, got int"),
        ({"versions": [{"version": "v1", "created": "2007-04-02"}, {"version": "v2", "created": "never"}]},
         "versions", "entry 2 created 'never' is not a date"),
    ],
)
def test_missing_and_mistyped_fields(lines: list[bytes], changes: dict, field: str, reason: str):
    error = parse_line(line_with(lines, 1, **changes))
    assert isinstance(error, RecordError)
    assert (error.field, error.reason) == (field, reason)


def test_lenient_values(lines: list[bytes]):
    # Absent or null optional values, and dates in the other forms parse_date knows.
    line = line_with(
        lines,
        1,
        categories=None,
        doi=...,
        comments="",
        versions=[
            {"version": "v1", "created": "2007-04-02T19:18:42Z"},
            {"version": "v2", "created": None},
            {"version": "v3", "created": "Tue, 24 Jul 2007 22:10:27 +0200"},
        ],
    )
    paper = parse_line(line)
    assert isinstance(paper, Paper)
    assert paper.categories == []
    assert (paper.doi, paper.comments) == (None, None)
    assert paper.versions == [
        Version(1, datetime(2007, 4, 2, 19, 18, 42)),
        Version(2, None),
        Version(3, datetime(2007, 7, 24, 20, 10, 27)),
    ]
    assert paper.published_at == datetime(2007, 4, 2, 19, 18, 42)
    assert paper.updated_at == datetime(2007, 7, 24, 20, 10, 27)
    no_versions = parse_line(line_with(lines, 1, versions=...))
    assert (no_versions.versions, no_versions.published_at, no_versions.updated_at) == ([], None, None)


# --- the file itself -------------------------------------------------------------------------------------


def test_truncated_gzip_raises_after_the_complete_lines(snapshot: Path, tmp_path: Path):
    data = gzip.compress(snapshot.read_bytes())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    seen = []
    with pytest.raises(SnapshotError) as raised:
        for where, item in read_snapshot(path):
            assert isinstance(item, Paper)  # the half line at the cut is never parsed
            seen.append(where)
    assert seen  # the lines before the cut came through
    assert str(raised.value) == f"{path}: gzip stream is truncated after line {len(seen)}"


def test_gzip_cut_in_its_trailer_or_header(snapshot: Path, tmp_path: Path):
    data = gzip.compress(snapshot.read_bytes())
    path = tmp_path / "cut.gz"
    path.write_bytes(data[:-4])  # every line is there, the size check is not
    with pytest.raises(SnapshotError, match=r"gzip stream is truncated after line 200$"):
        list(read_snapshot(path))
    path.write_bytes(data[:5])
    with pytest.raises(SnapshotError, match=r"gzip stream is truncated after line 0$"):
        list(read_snapshot(path))


def test_garbage_after_gzip(snapshot: Path, tmp_path: Path):
    path = tmp_path / "garbage.gz"
    path.write_bytes(gzip.compress(snapshot.read_bytes()) + b"garbage")
    with pytest.raises(SnapshotError) as raised:
        list(read_snapshot(path))
    assert str(raised.value) == f"{path}: gzip stream is corrupt after line 200: Not a gzipped file (b'ga')"


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(SnapshotError) as raised:
        next(read_snapshot(path))
    assert str(raised.value) == f"{path}: cannot open: No such file or directory"


def test_stream_name_in_errors(snapshot: Path):
    data = gzip.compress(snapshot.read_bytes())[:1000]
    with pytest.raises(SnapshotError, match=r"^<stream>: gzip stream is truncated after line 0$"):
        list(iter_snapshot(Pipe(data)))
    with pytest.raises(SnapshotError, match=r"^snap\.gz: gzip stream is truncated"):
        list(iter_snapshot(io.BytesIO(data), name="snap.gz"))


# --- streaming -------------------------------------------------------------------------------------------


# One record of the usual shape, small so that 200,000 of them parse in reasonable time under tracemalloc.
LEAN = (
    b'{"id":"2301.%05d","submitter":"Louis Theran","authors":"Louis Theran","title":"Sparse\\n  graphs",'
    b'"comments":null,"journal-ref":null,"doi":null,"report-no":null,"categories":"math.CO cs.CG",'
    b'"license":null,"abstract":"  A short abstract\\nabout graphs.\\n",'
    b'"versions":[{"version":"v1","created":"Sat, 31 Mar 2007 02:26:18 GMT"}],'
    b'"update_date":"2008-12-13","authors_parsed":[["Theran","Louis",""]]}\n'
)


@pytest.mark.parametrize(("compress", "count"), [(False, 200_000), (True, 50_000)], ids=["plain", "gzip"])
def test_streaming_keeps_memory_flat(tmp_path: Path, compress: bool, count: int):
    path = tmp_path / ("big.jsonl.gz" if compress else "big.jsonl")
    with (gzip.open(path, "wb", compresslevel=1) if compress else open(path, "wb")) as out:
        for start in range(0, count, 10_000):
            out.write(b"".join(LEAN % n for n in range(start, start + 10_000)))
    size = count * len(LEAN)  # bytes of JSON Lines: 73 MiB for 200,000 lines

    tracemalloc.start()
    try:
        n = 0
        last = None
        for where, item in read_snapshot(path):
            n += 1
            last = (where, item.id, item.title)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == count
    assert last == (f"line {count}", f"2301.{count - 1:05d}", "Sparse graphs")
    # Reading it all at once would take more than the file's size; streamed, only a few buffers are live.
    assert peak < 2**20, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.0f} MiB file"
