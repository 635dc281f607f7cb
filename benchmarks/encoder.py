"""Encoder benchmark: sentence-transformers ``encode`` against our onnxruntime export,
fp32 and dynamic int8, at batch 1 and batch 32, on the same inputs in the same run;
intent accuracy fp32 vs int8 on the held-out split; label stability under different
batch-mates. Writes ``reports/encoder-bench.md``.

    python -m benchmarks.encoder [--cache-dir DIR] [--threads N] [--out FILE]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models import dataset, intent
from models.artifacts import require
from models.config import ModelConfig
from models.encoder import OnnxEncoder, resolve_source
from models.evaluate import ready_encoder

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str], int], np.ndarray]
SAMPLE = 128
REPEATS = 3
MATES_TRIALS = 3


def timed_ms_per_message(embed: Embed, texts: Sequence[str], batch: int) -> float:
    """Median over repeats of milliseconds per message, calling ``embed`` per batch."""
    runs = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        for start in range(0, len(texts), batch):
            embed(texts[start:start + batch], batch)
        runs.append((time.perf_counter() - began) * 1000.0 / len(texts))
    return statistics.median(runs)


def sentence_transformers_embed(threads: int) -> Embed:
    """sentence-transformers' own ``encode`` over the same source model."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(resolve_source(None)), device="cpu")

    def embed(texts: Sequence[str], batch: int) -> np.ndarray:
        return np.asarray(model.encode(list(texts), batch_size=batch, normalize_embeddings=True,
                                       show_progress_bar=False))

    return embed


def speed_table(embedders: dict[str, Embed], texts: Sequence[str]) -> list[str]:
    """Markdown rows: ms per message at batch 1 and 32, and speed-up over ST."""
    times = {name: {b: timed_ms_per_message(f, texts, b) for b in (1, 32)}
             for name, f in embedders.items()}
    base = times["sentence-transformers"]
    rows = ["| encoder | batch 1 ms/msg | batch 32 ms/msg | speed-up vs ST b1 | b32 |",
            "| --- | ---: | ---: | ---: | ---: |"]
    for name, t in times.items():
        rows.append(f"| {name} | {t[1]:.2f} | {t[32]:.2f} | {base[1] / t[1]:.2f}x "
                    f"| {base[32] / t[32]:.2f}x |")
    return rows


def accuracy_rows(encoders: dict[str, OnnxEncoder]) -> list[str]:
    """Held-out intent metrics with a head trained on each precision's embeddings."""
    split = dataset.project_split()
    rows = ["| precision | in-scope acc | OOS recall | OOS precision | OOS AUROC | threshold |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, enc in encoders.items():
        x, labels = intent.examples_xy(enc, split.train + split.oos_train)
        head, _ = intent.train(x, labels)
        x_test, test_labels = intent.examples_xy(enc, split.test + split.oos_test)
        m = intent.evaluate(head, x_test, test_labels)
        rows.append(f"| {name} | {m['in_scope_accuracy']:.2%} | {m['oos_recall']:.2%} | "
                    f"{m['oos_precision']:.2%} | {m['oos_auroc']:.4f} | {m['threshold']:.3f} |")
    return rows


def stability(enc: OnnxEncoder, head: intent.Head, texts: Sequence[str],
              batch: int) -> tuple[float, int, int]:
    """Min cosine alone-vs-batched, and labels (incl. OOS decision) changed, over trials."""
    alone = enc.embed(texts, 1)
    base = [r.label for r in intent.decide(head, alone, head.threshold)]
    min_cos, changed, total = 1.0, 0, 0
    for trial in range(MATES_TRIALS):
        order = list(range(len(texts)))
        random.Random(trial).shuffle(order)
        mixed = enc.embed([texts[i] for i in order], batch)
        back = np.empty_like(mixed)
        back[order] = mixed
        min_cos = min(min_cos, float((back * alone).sum(axis=1).min()))
        labels = [r.label for r in intent.decide(head, back, head.threshold)]
        changed += sum(a != b for a, b in zip(base, labels, strict=True))
        total += len(texts)
    return min_cos, changed, total


def stability_rows(encoders: dict[str, OnnxEncoder]) -> list[str]:
    """Markdown rows of label stability under batch-mates for each precision."""
    split = dataset.project_split()
    texts = [t for t, _ in split.test + split.oos_test]
    rows = ["| precision | batching | max 1 - cosine, alone vs batched | labels changed |",
            "| --- | --- | ---: | ---: |"]
    for name, enc in encoders.items():
        x, labels = intent.examples_xy(enc, split.train + split.oos_train)
        head, _ = intent.train(x, labels)
        for batch, how in ((32, "batch 32, shuffled mates"), (enc.safe_batch_size, "encode()")):
            cos, changed, total = stability(enc, head, texts, batch)
            rows.append(f"| {name} | {how} (b={batch}) | {1.0 - cos:.1e} | {changed}/{total} |")
    return rows


def fidelity_rows(encoders: dict[str, OnnxEncoder], st: Embed, texts: Sequence[str]) -> list[str]:
    """Cosine of each export to sentence-transformers' embeddings on the same texts."""
    ref = st(texts, 32)
    rows = ["| precision | mean cosine to ST | min cosine to ST | max abs diff |",
            "| --- | ---: | ---: | ---: |"]
    for name, enc in encoders.items():
        mine = enc.encode(texts)
        cos = (mine * ref).sum(axis=1)
        rows.append(f"| {name} | {cos.mean():.6f} | {cos.min():.6f} | "
                    f"{np.abs(mine - ref).max():.1e} |")
    return rows


def run(config: ModelConfig, out: Path) -> str:
    """Run every measurement and write the markdown report to ``out``."""
    ready_encoder(config, log.info)
    directory, version = require(config, "encoder")
    encoders = {p: OnnxEncoder(directory, p, config.ort_threads) for p in ("fp32", "int8")}
    split = dataset.project_split()
    texts = [t for t, _ in split.test + split.oos_test][:SAMPLE]
    st = sentence_transformers_embed(config.ort_threads)
    embedders: dict[str, Embed] = {"sentence-transformers": st,
                                   **{f"onnx {p}": e.embed for p, e in encoders.items()}}
    log.info("timing")
    speed = speed_table(embedders, texts)
    log.info("accuracy and stability")
    body = [
        "# Encoder benchmark", "",
        f"all-MiniLM-L6-v2 (export {version}), {config.ort_threads} thread(s) for onnxruntime "
        f"and torch, {len(texts)} held-out utterances, median of {REPEATS} runs.", "",
        "## Speed", "", *speed, "",
        "## Fidelity to sentence-transformers", "", *fidelity_rows(encoders, st, texts), "",
        "## Intent accuracy on the held-out split (head trained per precision)", "",
        *accuracy_rows(encoders), "",
        f"## Label stability under batch-mates ({MATES_TRIALS} shuffles of the held-out split)",
        "", *stability_rows(encoders), "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(body))
    return "\n".join(body)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/banter/models"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("reports/encoder-bench.md"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = ModelConfig(cache_dir=args.cache_dir.expanduser(), ort_threads=args.threads)
    log.info("%s", run(config, args.out))


if __name__ == "__main__":
    main()
