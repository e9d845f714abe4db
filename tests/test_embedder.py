"""The embedders on the real model: the int8 ONNX path against plain sentence-transformers, the cache, errors.

No mocks: the bundled all-MiniLM-L6-v2 is exported once into a session temporary folder (a few seconds).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from dailypapers.search.embedder import Embedder, OnnxEmbedder, TorchEmbedder, load_embedder, paper_text
from dailypapers.search.model_files import bundled_model_path, model_fingerprint

QUERIES = [
    "dexterous robotic manipulation with diffusion policies",
    "reinforcement learning to improve reasoning of large language models",
    "agents that play video games",
    "reward models for preference alignment",
    "vision-language-action models",
    "glaucoma detection dataset",
]


@pytest.fixture(scope="module")
def abstracts(shared_data) -> list[str]:
    papers = json.loads((shared_data / "seed" / "seed_papers.json").read_text(encoding="utf-8"))["papers"]
    texts = [paper_text(p["title"], p["abstract"]) for p in papers[:50]]
    assert len(texts) == 50
    return texts


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_embedder(onnx_cache) -> OnnxEmbedder:
    embedder = OnnxEmbedder.build(bundled_model_path(), onnx_cache)
    yield embedder
    embedder.close()


@pytest.fixture(scope="module")
def torch_embedder() -> TorchEmbedder:
    return TorchEmbedder(device="cpu")


@pytest.fixture(scope="module")
def vectors(abstracts, onnx_embedder, torch_embedder) -> tuple[np.ndarray, np.ndarray]:
    return onnx_embedder.embed(abstracts), torch_embedder.embed(abstracts)


def test_paper_text():
    assert paper_text("Attention Is All You Need", "We propose a new network.") == (
        "Attention Is All You Need. We propose a new network.")
    assert paper_text("Why?", "Because.") == "Why? Because."
    assert paper_text("  A\n  title ", "") == "A title"
    assert paper_text("", "Only an abstract.") == "Only an abstract."


def test_both_are_embedders(onnx_embedder, torch_embedder):
    for embedder in (onnx_embedder, torch_embedder):
        assert isinstance(embedder, Embedder)
        assert embedder.dim == 384
        assert embedder.name == "all-MiniLM-L6-v2"
    assert onnx_embedder.max_seq_length == torch_embedder.max_seq_length == 256


def test_shape_dtype_and_unit_rows(vectors):
    for v in vectors:
        assert v.shape == (50, 384)
        assert v.dtype == np.float32
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_onnx_matches_sentence_transformers(vectors):
    ours, plain = vectors
    cosine = (ours * plain).sum(axis=1)
    assert cosine.min() >= 0.99, f"min cosine {cosine.min():.4f} (mean {cosine.mean():.4f})"


def test_same_top5_neighbours(vectors, onnx_embedder, torch_embedder):
    ours, plain = vectors
    q_ours, q_plain = onnx_embedder.embed(QUERIES), torch_embedder.embed(QUERIES)
    # A few queries are a small call: the float32 graph serves it, so the query vectors are exact.
    assert ((q_ours * q_plain).sum(axis=1) >= 0.9999).all()
    for i, query in enumerate(QUERIES):
        scores = plain @ q_plain[i]
        top_ours = np.argsort(-(ours @ q_ours[i]))[:5]
        top_plain = np.argsort(-scores)[:5]
        # int8 may swap a near-tie at the edge of the top 5, nothing more: whatever it lets in scores
        # (in float32) within 0.02 of the fifth paper, and at most one paper differs.
        swapped = set(top_ours) - set(top_plain)
        assert len(swapped) <= 1, query
        assert all(scores[j] >= scores[top_plain[-1]] - 0.02 for j in swapped), query


def test_order_preserved_with_length_sorted_batches(abstracts, onnx_embedder, torch_embedder):
    # Lengths from 3 to 256 tokens, shuffled, in sub-batches of 4: each row must be its own text's vector.
    texts = [t[: 40 * (i + 1)] for i, t in enumerate(abstracts[:20])] + ["graph neural networks", "robots"]
    texts = [texts[i] for i in np.random.default_rng(7).permutation(len(texts))]
    batched = onnx_embedder.embed(texts, batch_size=4)
    one_by_one = np.vstack([onnx_embedder.embed([t]) for t in texts])
    plain = torch_embedder.embed(texts)
    assert (one_by_one * plain).sum(axis=1).min() >= 0.9999  # small calls: float32, exact
    for reference in (one_by_one, plain):
        similarity = batched @ reference.T  # the batched call is big enough for int8
        assert (similarity.argmax(axis=1) == np.arange(len(texts))).all()
        assert np.diag(similarity).min() >= 0.99


def test_sub_batches_sorted_and_bounded(onnx_embedder):
    lengths = np.random.default_rng(3).integers(3, 257, size=300)
    batches = onnx_embedder._plan(lengths, batch_size=32)
    assert sorted(np.concatenate(batches)) == list(range(300))  # every text exactly once
    longest = [lengths[b].max() for b in batches]
    assert longest == sorted(longest, reverse=True)  # longest first: padding only to similar lengths
    for b in batches:
        assert 1 <= len(b) <= 32
        assert len(b) * lengths[b].max() <= max(onnx_embedder.batch_tokens, lengths[b].max())


def test_empty_input(onnx_embedder, torch_embedder):
    for embedder in (onnx_embedder, torch_embedder):
        empty = embedder.embed([])
        assert empty.shape == (0, 384)
        assert empty.dtype == np.float32


def test_cache_is_reused(onnx_embedder, onnx_cache):
    assert onnx_embedder.exported and onnx_embedder.export_seconds > 0  # the module fixture made them
    files = sorted(onnx_cache.iterdir())  # no temporary leftovers
    assert files == sorted([onnx_embedder.path, onnx_embedder.fp32_path])
    assert onnx_embedder.path.name.endswith(".int8.onnx")
    stamps = [f.stat().st_mtime_ns for f in files]
    again = load_embedder(cache_dir=onnx_cache)
    assert isinstance(again, OnnxEmbedder)
    assert not again.exported and again.export_seconds is None
    assert again.path == onnx_embedder.path
    assert sorted(onnx_cache.iterdir()) == files
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert np.allclose(again.embed(["hybrid search"]), onnx_embedder.embed(["hybrid search"]), atol=1e-6)


def test_cache_key_follows_the_model_files(tmp_path):
    source = bundled_model_path()
    copy = tmp_path / "model"
    copy.mkdir()
    for item in source.iterdir():
        (copy / item.name).symlink_to(item)
    assert model_fingerprint(copy) == model_fingerprint(source)
    (copy / "config.json").unlink()
    config = json.loads((source / "config.json").read_text())
    config["layer_norm_eps"] = 1e-6
    (copy / "config.json").write_text(json.dumps(config))
    assert model_fingerprint(copy) != model_fingerprint(source)


def test_load_embedder_runtimes(torch_embedder, onnx_cache):
    assert isinstance(load_embedder(runtime="torch"), TorchEmbedder)
    assert isinstance(load_embedder(runtime="onnx", cache_dir=onnx_cache), OnnxEmbedder)


def test_bad_runtime():
    with pytest.raises(ValueError, match="unknown embedding runtime 'tensorflow'"):
        load_embedder(runtime="tensorflow")


def test_bad_model_path(tmp_path):
    with pytest.raises(ValueError, match="embedding model not found"):
        load_embedder(model=str(tmp_path / "no-such-model"), cache_dir=tmp_path)
    with pytest.raises(ValueError, match="embedding model not found"):
        load_embedder(model="nobody/no-such-model", runtime="torch")
    with pytest.raises(ValueError, match="embedding model folder not found"):
        OnnxEmbedder.build(tmp_path / "missing", tmp_path)


def test_folder_without_tokenizer_json(tmp_path):
    copy = tmp_path / "model"
    skip = shutil.ignore_patterns("tokenizer.json", "*.safetensors")
    shutil.copytree(bundled_model_path(), copy, ignore=skip)
    with pytest.raises(ValueError, match="tokenizer.json"):
        OnnxEmbedder.build(copy, tmp_path / "cache")
