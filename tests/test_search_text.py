"""Full-text search on both databases: the query language, ranking, filters, hostile input, highlighting."""

import random
from datetime import date, datetime

import pytest
from markupsafe import Markup
from sqlalchemy import func, select, text

from dailypapers.domain import Author, Deletion, Organization, Paper, Version
from dailypapers.ingest import ingest
from dailypapers.search.filters import Filters
from dailypapers.search.fulltext import FullTextIndex
from dailypapers.search.fulltext_search import build_query
from dailypapers.search.highlight import highlight
from dailypapers.search.query import MAX_QUERY_CHARS, Query, parse_query
from dailypapers.search.text import TextHit, text_search
from dailypapers.store.schema import papers


def paper(n: int, title: str, summary: str, authors: list[str], categories: list[str], published: datetime,
          **kw) -> Paper:
    return Paper(id=f"2501.{n:05d}", title=title, summary=summary, authors=[Author(a) for a in authors],
                 categories=categories, published_at=published, updated_at=published,
                 versions=[Version(1, published)], **kw)


CORPUS = [
    paper(1, "Generalizing Transformers to Long Sequences",
          "We extend attention to sequences of a million tokens with a linear-time kernel.",
          ["Ada Lovelace", "Charles Babbage"], ["cs.LG", "stat.ML"], datetime(2025, 1, 5, 12),
          github_repo="https://github.com/example/longformer", organization=Organization("deepmind")),
    paper(2, "Convolutional Networks for Image Recognition",
          "Unlike transformers, our residual convolutional networks need no attention at all.",
          ["Grace Hopper"], ["cs.CV"], datetime(2025, 1, 10, 12)),
    paper(3, "Reinforcement Learning with Sparse Rewards",
          "We learn a state space model of the environment and plan in its latent space.",
          ["Alan Turing", "Jan de Vries"], ["cs.AI"], datetime(2025, 2, 1, 12)),
    paper(4, "Estimation for Model Predictive Control",
          "The model of the plant: each space has a state, estimated online by a filter.",
          ["Emmy Noether"], ["math.OC", "eess.SY"], datetime(2025, 2, 15, 12)),
    paper(5, "Quantum Error Correction Codes",
          "Surface codes protect logical qubits; we lower the threshold of quantum error correction.",
          ["Lise Meitner"], ["quant-ph"], datetime(2025, 3, 1, 12), organization=Organization("ibm")),
    paper(6, "A Survey of Large Language Models",
          "We review large language models: pretraining, instruction tuning and evaluation.",
          ["Katherine Johnson"], ["cs.CL"], datetime(2025, 3, 10, 12)),
    paper(7, "Lovelace Numbers in Combinatorics",
          "We count lattice paths and prove an identity for these numbers.",
          ["Srinivasa Ramanujan"], ["math.CO"], datetime(2025, 3, 15, 12)),
    paper(8, "Diffusion Models for Video Synthesis",
          "A latent diffusion model generates video; language prompts condition the models.",
          ["Ada Smith"], ["cs.CV", "cs.LG"], datetime(2025, 3, 20, 12),
          github_repo="https://github.com/example/videodiffusion"),
]


@pytest.fixture
def corpus(engine):
    report = ingest(engine, [(f"paper {i}", p) for i, p in enumerate(CORPUS, 1)])
    assert report.inserted == len(CORPUS), report.rejections
    with engine.connect() as conn:
        pk = {r.id: r.pk for r in conn.execute(select(papers.c.id, papers.c.pk))}
    return engine, {int(i.split(".")[1]): p for i, p in pk.items()}  # paper number -> pk


def search(corpus, q: str, filters: Filters = Filters(), limit: int = 50) -> list[int]:
    """The paper numbers found, best first."""
    engine, pks = corpus
    numbers = {pk: n for n, pk in pks.items()}
    with engine.connect() as conn:
        hits = text_search(conn, parse_query(q), filters, limit)
    assert all(isinstance(h, TextHit) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    return [numbers[h.pk] for h in hits]


# --- parse_query ----------------------------------------------------------------------------------


def test_parse_query_parts():
    q = parse_query('Diffusion  VIDEO "State Space  Model" -survey -"large language" author:Lovelace '
                    'author:"Jan de Vries" cat:cs.lg cat:CS cat:cond-mat.str-el video')
    assert q.terms == ("diffusion", "video")  # lowercased, deduplicated, in order
    assert q.phrases == ("state space model",)
    assert q.excluded == ("survey", "large language")
    assert q.authors == ("lovelace", "jan de vries")
    assert q.categories == ("cs.LG", "cs", "cond-mat.str-el")  # arXiv's spelling
    assert q.arxiv_id is None and not q.empty
    assert q.raw.startswith('Diffusion VIDEO "State Space Model"')  # whitespace collapsed


def test_parse_query_operators_are_plain_words():
    assert parse_query("AND OR NOT").terms == ("and", "or", "not")
    assert parse_query("cats and dogs or not").terms == ("cats", "and", "dogs", "or", "not")
    assert parse_query("NEAR(a b)").terms == ("near", "a", "b")
    assert parse_query("title:x").terms == ("title", "x")
    assert parse_query("x:y:z").terms == ("x", "y", "z")
    assert parse_query("^start* {col}").terms == ("start", "col")
    q = parse_query('a"b"c')
    assert (q.terms, q.phrases) == (("a", "c"), ("b",))
    assert parse_query('"unbalanced quote').phrases == ("unbalanced quote",)  # closed at the end
    assert parse_query("-gpt-4 state-of-the-art").excluded == ("gpt 4",)
    assert parse_query("author:").terms == ("author",)


def test_parse_query_empty_and_exclusion_only():
    for raw in ("", "   ", '"', '""', "*", "(", ")", "%", "_", "\\", "-", "--", '-"', "😀🔥", "\x00\x01"):
        q = parse_query(raw)
        assert q.empty and q.terms == q.phrases == q.authors == q.excluded == (), raw
    q = parse_query("-survey -\"large language\"")
    assert q.empty and q.excluded == ("survey", "large language")
    q = parse_query("cat:cs.LG")
    assert q.empty and q.categories == ("cs.LG",)


def test_parse_query_cleans_and_cuts():
    q = parse_query("a\x00b\tc\u200fd\ud800e")
    assert q.terms == ("a", "b", "c", "d", "e") and q.raw == "a b c d e"
    long = parse_query("word " * 5000)
    assert len(long.raw) <= MAX_QUERY_CHARS and long.terms == ("word",)
    many = parse_query(" ".join(f"w{i}" for i in range(500)))
    assert 0 < len(many.terms) <= 64 and many.terms[:3] == ("w0", "w1", "w2")
    assert parse_query("שלום עולם").terms == ("שלום", "עולם")  # RTL text is words too


@pytest.mark.parametrize("raw", [
    "2104.12255", "2104.12255v2", "arXiv:2104.12255", "arxiv:2104.12255v2",
    " https://arxiv.org/abs/2104.12255 ", "http://arxiv.org/abs/2104.12255v1", "arxiv.org/pdf/2104.12255",
    "https://arxiv.org/pdf/2104.12255v3.pdf", "https://www.arxiv.org/html/2104.12255v1",
    "https://huggingface.co/papers/2104.12255", "hf.co/papers/2104.12255",
])
def test_parse_query_arxiv_ids(raw):
    q = parse_query(raw)
    assert q.arxiv_id == "2104.12255" and q.empty


def test_parse_query_non_ids():
    assert parse_query("hep-th/9901001").arxiv_id == "hep-th/9901001"
    for raw in ("2104", "2104.1", "2104.12255 transformers", "cs.LG", "arxiv", "https://arxiv.org/abs/"):
        assert parse_query(raw).arxiv_id is None, raw
    assert parse_query("2104").terms == ("2104",)


def test_tantivy_query_is_built_from_tokens_only():
    index = FullTextIndex(None)  # in memory
    built = repr(build_query(index, parse_query('foo NEAR(x) "a b" author:"de vries" -bar -"c d"')))
    # Every word is a term (NEAR, brackets and quotes are no syntax), stemmed as the index is.
    for term in ('"foo"', '"near"', '"x"', '"bar"', '"vri"'):
        assert term in built, term
    assert "Must" in built and "MustNot" in built and "PhraseQuery" in built
    assert build_query(index, parse_query('"" -x')) is None  # nothing to find


# --- text_search ----------------------------------------------------------------------------------


def test_title_match_outranks_abstract_match(corpus):
    assert search(corpus, "transformers") == [1, 2]
    assert search(corpus, "transformer") == [1, 2]  # stemmed
    # "Generalizing", by its stem (SQLite's Porter stemmer also finds "generates" in paper 8's abstract)
    assert search(corpus, "generalization")[0] == 1
    assert set(search(corpus, "attention")) == {1, 2}  # in both abstracts only
    assert search(corpus, "diffusion video")[0] == 8


def test_free_words_are_or_ed_and_papers_matching_more_rank_first(corpus):
    found = search(corpus, "quantum video")
    assert sorted(found) == [5, 8]
    assert search(corpus, "latent diffusion video")[0] == 8
    assert set(search(corpus, "latent diffusion video")) == {3, 8}


def test_rare_words_weigh_more_than_common_ones(corpus):
    engine, _ = corpus
    if engine.dialect.name == "postgresql":  # idf comes from the planner's statistics
        with engine.begin() as conn:
            conn.execute(text("ANALYZE papers"))
    found = search(corpus, "models codes")  # "model" is in four papers, "code" in one
    assert found[0] == 5 and set(found) == {3, 4, 5, 6, 8}
    assert search(corpus, "transformers") == [1, 2]  # and the title still beats the abstract
    assert search(corpus, "lovelace") == [7, 1]
    assert search(corpus, "author:lovelace") == [1]
    assert search(corpus, "the transformers")[0] == 1


def test_author_search(corpus):
    assert search(corpus, "author:lovelace") == [1]  # not paper 7, whose title says Lovelace
    assert search(corpus, "author:Lovelace author:babbage") == [1]
    assert search(corpus, 'author:"jan de vries"') == [3]
    assert search(corpus, 'author:"vries jan"') == []
    assert search(corpus, "author:hopper transformers") == [2]
    assert search(corpus, "author:hopper quantum") == []
    assert search(corpus, "lovelace") == [7, 1]  # title above author names
    assert set(search(corpus, "author:ada")) == {1, 8}


def test_quoted_phrase_requires_adjacency(corpus):
    assert search(corpus, '"state space model"') == [3]
    assert set(search(corpus, "state space model")) >= {3, 4}
    assert search(corpus, '"model space state"') == []
    assert search(corpus, '"large language" models') == [6]


def test_excluded_words_and_phrases(corpus):
    assert 6 in search(corpus, "models")
    assert 6 not in search(corpus, "models -survey")
    assert 6 not in search(corpus, 'models -"large language"')
    assert 6 in search(corpus, 'models -"language large"')
    assert search(corpus, "models -survey -diffusion -predictive -reinforcement") == []
    assert search(corpus, "-survey") == []  # exclusions alone search nothing
    assert search(corpus, "-survey -models") == []


def test_categories_through_filters(corpus):
    q = parse_query("models cat:cs.cv")
    assert q.categories == ("cs.CV",)
    assert search(corpus, "models") and set(search(corpus, "models")) == {3, 4, 6, 8}
    assert search(corpus, "models", Filters(categories=q.categories)) == [8]
    assert set(search(corpus, "models", Filters(categories=("cs",)))) == {3, 6, 8}
    assert search(corpus, "models", Filters(categories=("math",))) == [4]
    assert search(corpus, "models", Filters(categories=("quant-ph",))) == []


def test_date_code_and_organization_filters(corpus):
    assert search(corpus, "transformers", Filters(since=date(2025, 1, 6))) == [2]
    assert search(corpus, "transformers", Filters(until=date(2025, 1, 5))) == [1]  # until is inclusive
    assert search(corpus, "transformers", Filters(until=date(2025, 1, 4))) == []
    assert set(search(corpus, "models", Filters(since=date(2025, 3, 1), until=date(2025, 3, 31)))) == {6, 8}
    assert search(corpus, "models", Filters(has_code=True)) == [8]
    assert set(search(corpus, "models", Filters(has_code=False))) == {3, 4, 6}
    assert search(corpus, "transformers", Filters(organization="deepmind")) == [1]
    assert search(corpus, "transformers", Filters(organization="nobody")) == []
    assert search(corpus, "quantum", Filters(organization="ibm")) == [5]


def test_limit_hidden_papers_and_scores(corpus):
    engine, pks = corpus
    assert len(search(corpus, "models", limit=2)) == 2
    assert search(corpus, "models", limit=0) == []
    # More than there are papers: all of them, no room made for the rest (it once aborted the process).
    assert len(search(corpus, "models", limit=10**12)) == len(search(corpus, "models", limit=len(CORPUS)))
    with engine.connect() as conn:
        hits = text_search(conn, parse_query("transformers"), Filters(), 10)
    assert [h.pk for h in hits] == [pks[1], pks[2]] and hits[0].score > hits[1].score > 0
    ingest(engine, [("gone", Deletion("2501.00001"))])
    assert search(corpus, "transformers") == [2]


def test_stop_words_do_not_break_the_query(corpus):
    assert search(corpus, "the transformers")[0] == 1
    assert search(corpus, '"the" quantum') in ([5], [])  # PostgreSQL drops "the"; SQLite keeps it
    assert isinstance(search(corpus, "the"), list)
    assert isinstance(search(corpus, "the of a -the"), list)
    assert 5 in search(corpus, "quantum -the") or search(corpus, "quantum -the") == []


HOSTILE = [
    '"', '""', '"unbalanced', 'a"b"c', "NOT", "AND OR NOT", "*", "title:x", "x:y:z", "(", ")", "NEAR(a b)",
    "^start", 'col:"x"', "'; DROP TABLE papers; --", "%", "_", "\\", "a\x00b", "😀 🔥 transformers", "👍",
    "x" * 10_000, "transformers " * 2_000, " ".join(f"word{i}" for i in range(500)), "שלום עולם مرحبا",
    "-", "--", '-"', "\ud800", "author:", 'author:"', "cat:", "cat:***", "-cat:cs.LG models", "models OR",
    "{title summary}: x", "title : transformers", "- -- ---", '"" "" -""', "c++ c# .net",
    "100% _under_ score", "naïve Ünïcödé ﬁ ligature", "NEAR(transformers attention, 2)", "transformers*",
    "\"transformers\" NOT quantum",
    "author:\"'; DROP TABLE papers; --\"", "%' OR '1'='1", "$1 :1 ?", "\u202etransformers", "a" * 3000 + " b",
    '"' + "ש" * 999 + '"', "author:" + "é" * 990, "models -" + "ж" * 990, "ж" * 990, "x" * 2100,
    '"' + "x" * 999,
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_queries_never_raise(raw):
    q = parse_query(raw)
    assert isinstance(q, Query) and len(q.raw) <= MAX_QUERY_CHARS
    highlight("Generalizing Transformers to Long Sequences", q, 20)


def test_hostile_queries_return_lists_on_both_databases(corpus):
    engine, pks = corpus
    for raw in HOSTILE:
        for filters in (Filters(), Filters(categories=parse_query(raw).categories)):
            with engine.connect() as conn:
                hits = text_search(conn, parse_query(raw), filters, 10)
            assert isinstance(hits, list), raw
            assert all(h.pk in pks.values() for h in hits), raw
    assert search(corpus, "'; DROP TABLE papers; --") == []
    assert search(corpus, "😀 🔥 transformers") == [1, 2]
    assert search(corpus, "\"transformers\" NOT quantum") == []  # "transformers" and any of "not", "quantum"
    assert set(search(corpus, "\"transformers\" NOT attention")) == {1, 2}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(papers)).scalar_one() == len(CORPUS)


def test_random_queries_never_raise(corpus):
    engine, _ = corpus
    rng = random.Random(20250101)
    alphabet = list('abcxyz019 "-:*^()[]{}\'%_\\.,;!?+~@#$&|<>=/')
    alphabet += ["\x00", "é", "ж", "ש", "😀", "\u200f", "author:", "cat:", "NEAR", "AND", "NOT"]
    with engine.connect() as conn:
        for _ in range(200):
            raw = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            q = parse_query(raw)
            assert isinstance(text_search(conn, q, Filters(categories=q.categories), 5), list), raw
            highlight(raw + " abc xyz " * 5, q, rng.choice([None, 5, 20]))
        assert conn.execute(select(func.count()).select_from(papers)).scalar_one() == len(CORPUS)


# --- highlight ------------------------------------------------------------------------------------


def test_highlight_escapes_and_marks():
    text = '<script>alert("x")</script> Generalizing TRANSFORMERS & generalization; gangs of GANs'
    out = highlight(text, parse_query("generalize transformer gan"))
    assert isinstance(out, Markup)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<mark>Generalizing</mark>" in out and "<mark>TRANSFORMERS</mark>" in out
    assert "<mark>generalization</mark>" in out and "<mark>GANs</mark>" in out
    assert "gangs" in out and "<mark>gangs" not in out  # short words match whole (or plural)
    assert "&amp;" in out
    assert highlight("", parse_query("x")) == Markup("")
    assert highlight("<b>no match</b>", parse_query("quantum")) == Markup("&lt;b&gt;no match&lt;/b&gt;")


def test_highlight_phrases_authors_and_stop_words():
    q = parse_query('"state space model" author:"jan de vries" the')
    out = highlight("The state space model of Jan de Vries; a model of space.", q)
    assert "<mark>state space model</mark>" in out and "<mark>Jan de Vries</mark>" in out
    assert "<mark>The</mark>" not in out  # a free stop word is not worth marking
    assert "<mark>model</mark>" not in out and "<mark>space</mark>" not in out  # not the phrase
    assert "<mark>" not in highlight("Hello world", parse_query("-hello"))  # exclusions are not marked
    assert "<mark>naïve</mark>" in highlight("a naïve method", parse_query("naive"))


def test_highlight_windows_long_text():
    text = " ".join(["filler"] * 200) + " the transformers generalize well, transformers rock " + " ".join(
        ["padding"] * 200)
    out = highlight(text, parse_query("transformers"), max_chars=120)
    assert out.startswith("…") and out.endswith("…")
    assert str(out).count("<mark>transformers</mark>") == 2
    plain = str(out).replace("<mark>", "").replace("</mark>", "")
    assert 60 <= len(plain) <= 125
    assert "fille…" not in plain and "…ller" not in plain  # cut at spaces

    start = highlight("transformers " + "x " * 300, parse_query("transformers"), max_chars=50)
    assert not start.startswith("…") and start.endswith("…") and "<mark>transformers</mark>" in start
    none = highlight("lorem ipsum " * 50, parse_query("quantum"), max_chars=40)
    assert not none.startswith("…") and none.endswith("…") and len(none) <= 41
    short = highlight("short <text>", parse_query("text"), max_chars=100)
    assert short == Markup("short &lt;<mark>text</mark>&gt;")


def test_highlight_fast_path_marks_what_the_word_rule_marks():
    from dailypapers.search import highlight as hl

    rng = random.Random(7)
    vocab = ["model", "models", "modeling", "gas", "gases", "gass", "policy", "policies", "polish", "net",
             "nets", "network", "net_work", "x2", "robot", "robotics", "the", "a", "Transformer", "GAS"]
    for _ in range(200):
        text = " ".join(rng.choice(vocab) + rng.choice(["", ",", ".", "-", " ("]) for _ in range(12))
        query = parse_query(" ".join(rng.sample(vocab, 3)))
        singles, _ = hl._singles(query)
        slow = [(s, e) for s, e, w in hl._folded_words(text) if any(hl._word_matches(w, t) for t in singles)]
        assert hl._spans(text, query) == hl._spans(text, query)  # cached pattern, same answer
        fast = hl._ascii_marks(hl._singles(query)[1], text) if hl._singles(query)[1] else []
        assert fast == slow, (text, query.terms)
