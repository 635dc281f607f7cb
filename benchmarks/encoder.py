"""Encoder benchmark: fp32, dynamic int8 and static int8 exports of all-MiniLM-L6-v2, with
and without length bucketing, against sentence-transformers, on one mix of chat messages in
one run. Writes ``reports/encoder-bench.md``.

    python -m benchmarks.encoder [--cache-dir DIR] [--threads N] [--rounds N] [--out FILE]

Both int8 variants are quantised here from the built fp32 export, static int8 with the
build's own calibration sample. Timings interleave batch by batch (see ``interleaved``), so
that load from other processes on a shared box falls on all variants alike; the report
gives medians over rounds, and ratios of medians.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from models import dataset, encoder, intent
from models.artifacts import calibration_texts, require
from models.build import encoder_export, intent_training
from models.build.intent_eval import ready_encoder
from models.config import ModelConfig
from models.encoder import OnnxEncoder, open_session, resolve_source

log = logging.getLogger(__name__)

Embed = Callable[[Sequence[str]], object]
Timing = tuple[float, float]
"""Wall seconds and process CPU seconds (all threads) of one timed pass."""
BATCHES = (1, 8, 16, 32)
MIX_SIZE = 256
MIX_SHAPE = ((1, 1, 0.60), (2, 3, 0.25), (4, 14, 0.15))
"""(fewest, most held-out utterances joined into one message, share of messages): mostly
one-liners, a tail of multi-sentence messages up to ~100 tokens."""
TUNING_BATCH = 16
MATES_BATCH = 32
MATES_TRIALS = 3
CALLS = 5
"""Session calls per timed pass when measuring the cost of one call."""
CALIBRATION_SEEDS = 5
"""Calibration samples tried for static int8 (seed 0 is the build's own)."""
"""Calibration samples tried for static int8 (seed 0 is the build's own)."""
"""Session calls per timed pass when measuring the cost of one call."""


def message_mix(texts: Sequence[str], size: int = MIX_SIZE, seed: int = 0) -> list[str]:
    """``size`` chat messages of ``MIX_SHAPE``'s lengths, in random order."""
    rng = random.Random(seed)
    shape = [(lo, hi) for lo, hi, share in MIX_SHAPE for _ in range(round(share * size))]
    rng.shuffle(shape)
    return [" ".join(rng.sample(list(texts), rng.randint(lo, hi))) for lo, hi in shape]


def model_files(config: ModelConfig, work: Path) -> dict[str, Path]:
    """The built fp32 export, and dynamic and static int8 quantised from it into ``work``."""
    directory, _ = require(config, "encoder")
    fp32 = directory / encoder.FP32_FILE
    files = {"fp32": fp32, "int8 dynamic": work / "dynamic.onnx", "int8 static": work / "static.onnx"}
    encoder_export.quantize_dynamic_int8(fp32, files["int8 dynamic"])
    tokenizer = encoder.load_tokenizer(directory, encoder.read_meta(directory).max_length)
    inputs = encoder.read_meta(directory).inputs
    feeds = encoder_export.calibration_feeds(tokenizer, inputs, calibration_texts())
    encoder_export.quantize_static_int8(fp32, files["int8 static"], feeds)
    return files


def load(config: ModelConfig, model: Path, threads: int = 1, spinning: bool = False, level: str = "all") -> OnnxEncoder:
    """An encoder over the built export's tokenizer and the ONNX model ``model``."""
    directory, _ = require(config, "encoder")
    return OnnxEncoder(directory, session=open_session(model, threads, spinning, level))


def timed(embed: Embed, batches: Sequence[Sequence[str]]) -> Timing:
    """Wall and CPU seconds to embed every batch in turn."""
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        embed(batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(cells: dict[str, tuple[Embed, Sequence[Sequence[str]]]], rounds: int) -> dict[str, list[Timing]]:
    """One timing per cell per round. Within a round every cell embeds its i-th batch, the
    cells in a shuffled order, before any moves on to batch i + 1, so that load from other
    processes falls alike on the cells that are compared (those with the same batches)."""
    results: dict[str, list[Timing]] = {name: [] for name in cells}
    for r in range(rounds):
        rng = random.Random(r)
        totals = dict.fromkeys(cells, (0.0, 0.0))
        for i in range(max(len(batches) for _, batches in cells.values())):
            order = [name for name in cells if i < len(cells[name][1])]
            rng.shuffle(order)
            for name in order:
                embed, batches = cells[name]
                wall, cpu = timed(embed, batches[i : i + 1])
                totals[name] = (totals[name][0] + wall, totals[name][1] + cpu)
        for name, timing in totals.items():
            results[name].append(timing)
    return results


def chunks(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    """Consecutive micro-batches of ``size`` messages, as a worker would take them."""
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def rate(timings: list[Timing], messages: int) -> float:
    """Messages per second: messages over the median wall time."""
    return messages / statistics.median(t[0] for t in timings)


def sentence_transformers_embed(threads: int) -> Callable[[Sequence[str], int], np.ndarray]:
    """sentence-transformers' own ``encode`` over the same source model."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(resolve_source(None)), device="cpu")

    def embed(texts: Sequence[str], batch: int) -> np.ndarray:
        return np.asarray(
            model.encode(list(texts), batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
        )

    return embed


def st_batched(st: Callable[[Sequence[str], int], np.ndarray], batch: int) -> Embed:
    """sentence-transformers' ``encode`` at batch size ``batch``."""
    return lambda texts: st(texts, batch)


def throughput_cells(
    variants: dict[str, OnnxEncoder], st: Callable[[Sequence[str], int], np.ndarray], mix: Sequence[str]
) -> dict[str, tuple[Embed, Sequence[Sequence[str]]]]:
    """One cell per (encoder, bucketing, batch size); at batch 1 bucketing changes nothing."""
    cells: dict[str, tuple[Embed, Sequence[Sequence[str]]]] = {}
    for b in BATCHES:
        cells[f"sentence-transformers|own|{b}"] = (st_batched(st, b), chunks(mix, b))
        for name, enc in variants.items():
            for how, padding in (("padded", math.inf), ("bucketed", encoder.PADDING_RATIO)):
                if b > 1 or how == "padded":
                    embed = partial(enc.embed, batch_size=b, max_padding=padding)
                    cells[f"{name}|{how}|{b}"] = (embed, chunks(mix, b))
    return cells


def throughput_rows(results: dict[str, list[Timing]], messages: int) -> list[str]:
    """Markdown: messages/s per encoder and batch size, then the ratios that decide."""
    rates = {k: rate(v, messages) for k, v in results.items()}
    rows = [
        "| encoder | batching | " + " | ".join(f"b={b} msg/s" for b in BATCHES) + " |",
        "| --- | --- |" + " ---: |" * len(BATCHES),
    ]
    for key in dict.fromkeys(k.rsplit("|", 1)[0] for k in rates):
        name, how = key.split("|")
        cells = [rates.get(f"{key}|{b}", rates.get(f"{name}|padded|{b}", math.nan)) for b in BATCHES]
        rows.append(f"| {name} | {how} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
    ratios = [
        ("bucketed / padded, fp32", "fp32|bucketed", "fp32|padded"),
        ("bucketed / padded, int8 static", "int8 static|bucketed", "int8 static|padded"),
        ("int8 static / fp32, both bucketed", "int8 static|bucketed", "fp32|bucketed"),
        ("int8 dynamic / fp32, both bucketed", "int8 dynamic|bucketed", "fp32|bucketed"),
        (
            "int8 static bucketed / int8 dynamic at b=1 (its batch-independent size)",
            "int8 static|bucketed",
            "int8 dynamic|padded|1",
        ),
        ("fp32 bucketed / sentence-transformers", "fp32|bucketed", "sentence-transformers|own"),
    ]
    rows += [
        "",
        "| ratio of medians | " + " | ".join(f"b={b}" for b in BATCHES) + " |",
        "| --- |" + " ---: |" * len(BATCHES),
    ]
    for label, top, bottom in ratios:
        rows.append(f"| {label} | " + " | ".join(ratio(rates, top, bottom, b) for b in BATCHES) + " |")
    return rows


def ratio(rates: dict[str, float], top: str, bottom: str, batch: int) -> str:
    """``top`` over ``bottom`` at ``batch`` (a key with its own batch size keeps it)."""

    def at(key: str) -> float:
        if key.count("|") == 2:
            return rates[key]
        return rates.get(f"{key}|{batch}", rates.get(f"{key.split('|')[0]}|padded|{batch}", math.nan))

    return f"{at(top) / at(bottom):.2f}x"


def tuning_rows(config: ModelConfig, files: dict[str, Path], mix: Sequence[str], rounds: int) -> list[str]:
    """Markdown: session settings (graph optimisation, threads, spinning) at batch 16, bucketed."""
    settings = [("all", 1, False), ("extended", 1, False), ("basic", 1, False), ("all", 2, True), ("all", 2, False)]
    cells: dict[str, tuple[Embed, Sequence[Sequence[str]]]] = {}
    for name in ("fp32", "int8 static"):
        for level, threads, spin in settings:
            enc = load(config, files[name], threads, spin, level)
            embed = partial(enc.embed, batch_size=TUNING_BATCH)
            cells[f"{name}|{level}|{threads}|{spin}"] = (embed, chunks(mix, TUNING_BATCH))
    results = interleaved(cells, rounds)
    rows = [
        "| encoder | graph optimisation | threads | spinning | msg/s | CPU ms/msg |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for key, timings in results.items():
        name, level, count, spinning = key.split("|")
        cpu = statistics.median(t[1] for t in timings) * 1000.0 / len(mix)
        rows.append(
            f"| {name} | {level} | {count} | {'on' if spinning == 'True' else 'off'} | "
            f"{rate(timings, len(mix)):.0f} | {cpu:.2f} |"
        )
    return rows


def one_call(enc: OnnxEncoder, ids: list[list[int]]) -> Embed:
    """Ignores its texts and runs the session once on the token ids ``ids``."""
    return lambda _: enc._run(ids)


def call_cost_rows(variants: dict[str, OnnxEncoder], rounds: int) -> list[str]:
    """Markdown: one session call's fixed cost and cost per padded token (least squares on
    relative error over n x length grids), which sets ``encoder.PADDING_SLACK``."""
    grid = [(n, length) for n in (1, 2, 4, 8, 16) for length in (4, 8, 16, 32)]
    cells: dict[str, tuple[Embed, Sequence[Sequence[str]]]] = {}
    for name in ("fp32", "int8 static"):
        for n, length in grid:
            ids = [[101] + [2000] * (length - 2) + [102]] * n
            cells[f"{name}|{n}|{length}"] = (one_call(variants[name], ids), [[]] * CALLS)
    results = interleaved(cells, rounds)
    rows = [
        "| encoder | fixed ms per call | µs per padded token | fixed cost in tokens |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in ("fp32", "int8 static"):
        y = np.array([statistics.median(t[0] for t in results[f"{name}|{n}|{m}"]) / CALLS for n, m in grid])
        x = np.array([[1.0, n * m] for n, m in grid])
        (fixed, per_token), *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
        rows.append(f"| {name} | {fixed * 1e3:.2f} | {per_token * 1e6:.0f} | {fixed / per_token:.0f} |")
    return rows


def decisions(head: intent.Head, x: np.ndarray) -> list[str]:
    """Intent decisions (label, or out of scope) for embeddings ``x``."""
    return [r.label for r in intent.decide(head, x, head.threshold)]


def agreement(a: Sequence[str], b: Sequence[str]) -> float:
    """Share of positions where two lists of decisions agree."""
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)]))


def fidelity_rows(variants: dict[str, OnnxEncoder], heads: dict[str, intent.Head], mix: Sequence[str]) -> list[str]:
    """Markdown: each int8 variant against fp32, messages embedded alone (b=1) and in batches
    of 32 (bucketed): cosine, and intent decisions on the held-out split, with the head
    trained on fp32 embeddings and with one trained on the variant's own."""
    split = dataset.project_split()
    test = [t for t, _ in split.test + split.oos_test]
    fp32 = variants["fp32"]
    ref_test, ref_mix = fp32.embed(test, 1), fp32.embed(mix, 1)
    base = decisions(heads["fp32"], ref_test)
    rows = [
        "| int8 variant | batch | cos to fp32, held-out mean | min | mix mean | min "
        "| intents agree, fp32 head | own head |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in ("int8 dynamic", "int8 static"):
        for batch in (1, MATES_BATCH):
            x_test, x_mix = variants[name].embed(test, batch), variants[name].embed(mix, batch)
            ct, cm = (x_test * ref_test).sum(axis=1), (x_mix * ref_mix).sum(axis=1)
            same = agreement(decisions(heads["fp32"], x_test), base)
            own = agreement(decisions(heads[name], x_test), base)
            rows.append(
                f"| {name} | {batch} | {ct.mean():.4f} | {ct.min():.4f} | {cm.mean():.4f} | "
                f"{cm.min():.4f} | {same:.2%} | {own:.2%} |"
            )
    return rows


def mates_rows(variants: dict[str, OnnxEncoder], head: intent.Head, mix: Sequence[str]) -> list[str]:
    """Markdown: each message alone against among shuffled batch-mates (batch 32, bucketed)."""
    rows = [
        "| encoder | max abs diff, alone vs batched | min cosine | intent decisions changed |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, enc in variants.items():
        alone = enc.embed(mix, 1)
        diff, cos, changed = 0.0, 1.0, 0
        for trial in range(MATES_TRIALS):
            order = list(range(len(mix)))
            random.Random(trial).shuffle(order)
            back = np.empty_like(alone)
            back[order] = enc.embed([mix[i] for i in order], MATES_BATCH)
            diff = max(diff, float(np.abs(back - alone).max()))
            cos = min(cos, float((back * alone).sum(axis=1).min()))
            labels, alone_labels = decisions(head, back), decisions(head, alone)
            changed += sum(a != b for a, b in zip(labels, alone_labels, strict=True))
        rows.append(f"| {name} | {diff:.1e} | {cos:.6f} | {changed}/{MATES_TRIALS * len(mix)} |")
    return rows


def calibration_rows(config: ModelConfig, variants: dict[str, OnnxEncoder], head: intent.Head, work: Path) -> list[str]:
    """Markdown: static int8 calibrated on other samples of the training split, against fp32."""
    directory, _ = require(config, "encoder")
    split = dataset.project_split()
    test = [t for t, _ in split.test + split.oos_test]
    pool = sorted(t for t, _ in split.train + split.oos_train)
    ref = variants["fp32"].embed(test, 1)
    base = decisions(head, ref)
    rows = [
        "| calibration sample | cos to fp32, held-out mean | min | intents agree, fp32 head |",
        "| --- | ---: | ---: | ---: |",
    ]
    for seed in range(CALIBRATION_SEEDS):
        texts = random.Random(seed).sample(pool, min(encoder.CALIBRATION_SIZE, len(pool)))
        feeds = encoder_export.calibration_feeds(variants["fp32"].tokenizer, variants["fp32"].meta.inputs, texts)
        encoder_export.quantize_static_int8(directory / encoder.FP32_FILE, work / "seed.onnx", feeds)
        x = load(config, work / "seed.onnx").embed(test, MATES_BATCH)
        cos = (x * ref).sum(axis=1)
        label = "seed 0 (the build's)" if seed == 0 else f"seed {seed}"
        rows.append(f"| {label} | {cos.mean():.4f} | {cos.min():.4f} | {agreement(decisions(head, x), base):.2%} |")
    return rows


def served(name: str, enc: OnnxEncoder, texts: Sequence[str]) -> np.ndarray:
    """Embeddings as each variant is served: dynamic int8 one message at a time (its only
    batch-independent size), the others in bucketed batches."""
    return enc.embed(texts, 1 if name == "int8 dynamic" else encoder.DEFAULT_BATCH)


def train_heads(variants: dict[str, OnnxEncoder]) -> dict[str, intent.Head]:
    """An intent head trained on each variant's (served) embeddings of the training split."""
    split = dataset.project_split()
    examples = split.train + split.oos_train
    return {
        name: intent_training.train(served(name, enc, [t for t, _ in examples]), [y for _, y in examples])[0]
        for name, enc in variants.items()
    }


def accuracy_rows(variants: dict[str, OnnxEncoder], heads: dict[str, intent.Head]) -> list[str]:
    """Held-out intent metrics with a head trained on each variant's embeddings."""
    split = dataset.project_split()
    rows = [
        "| encoder | in-scope acc | OOS recall | OOS precision | OOS AUROC | threshold |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, enc in variants.items():
        test = split.test + split.oos_test
        m = intent_training.evaluate(heads[name], served(name, enc, [t for t, _ in test]), [y for _, y in test])
        rows.append(
            f"| {name} | {m['in_scope_accuracy']:.2%} | {m['oos_recall']:.2%} | "
            f"{m['oos_precision']:.2%} | {m['oos_auroc']:.4f} | {m['threshold']:.3f} |"
        )
    return rows


def st_fidelity_rows(
    variants: dict[str, OnnxEncoder], st: Callable[[Sequence[str], int], np.ndarray], texts: Sequence[str]
) -> list[str]:
    """Cosine of each variant's served embeddings to sentence-transformers' embeddings."""
    ref = st(texts, 32)
    rows = ["| encoder | mean cosine to ST | min cosine to ST | max abs diff |", "| --- | ---: | ---: | ---: |"]
    for name, enc in variants.items():
        mine = served(name, enc, texts)
        cos = (mine * ref).sum(axis=1)
        rows.append(f"| {name} | {cos.mean():.6f} | {cos.min():.6f} | {np.abs(mine - ref).max():.1e} |")
    return rows


def mix_summary(enc: OnnxEncoder, mix: Sequence[str]) -> str:
    """One line on the mix's token lengths."""
    lengths = np.array([len(e.ids) for e in enc.tokenizer.encode_batch(list(mix))])
    p = np.percentile(lengths, [50, 90, 100]).astype(int)
    most = max(hi for _, hi, _ in MIX_SHAPE)
    return (
        f"{len(mix)} messages joined from 1 to {most} held-out utterances; tokens median {p[0]}, "
        f"p90 {p[1]}, max {p[2]}, mean {lengths.mean():.1f}"
    )


def run(config: ModelConfig, out: Path, rounds: int) -> str:
    """Run every measurement and write the markdown report to ``out``."""
    ready_encoder(config, log.info)
    _, version = require(config, "encoder")
    split = dataset.project_split()
    mix = message_mix([t for t, _ in split.test + split.oos_test])
    with tempfile.TemporaryDirectory() as work:
        log.info("quantising the int8 variants")
        files = model_files(config, Path(work))
        variants = {name: load(config, path, config.ort_threads) for name, path in files.items()}
        st = sentence_transformers_embed(config.ort_threads)
        log.info("throughput (%d rounds)", rounds)
        speed = throughput_rows(interleaved(throughput_cells(variants, st, mix), rounds), len(mix))
        log.info("session settings")
        tuning = tuning_rows(config, files, mix, rounds)
        log.info("cost per call")
        cost = call_cost_rows(variants, rounds)
        log.info("fidelity, batch-mates, accuracy, calibration samples")
        heads = train_heads(variants)
        calibration = calibration_rows(config, variants, heads["fp32"], Path(work))
    body = [
        "# Encoder benchmark",
        "",
        f"all-MiniLM-L6-v2 (export {version}), {config.ort_threads} onnxruntime/torch thread(s) "
        f"unless a table says otherwise; {mix_summary(variants['fp32'], mix)}. Medians of "
        f"{rounds} interleaved rounds. Padded: each micro-batch padded to its longest message; "
        f"bucketed: split by `plan_buckets` (padding <= {encoder.PADDING_RATIO}x real tokens "
        f"or <= {encoder.PADDING_SLACK} tokens over). Dynamic int8 at b>1 is shown for speed "
        "only: its embeddings depend on batch-mates.",
        "",
        "## Throughput on the message mix",
        "",
        *speed,
        "",
        f"## Session settings (batch {TUNING_BATCH}, bucketed)",
        "",
        *tuning,
        "",
        "## Cost of one session call (sets the bucketing slack)",
        "",
        *cost,
        "",
        "## int8 against fp32 (held-out split; intents include the out-of-scope decision)",
        "",
        *fidelity_rows(variants, heads, mix),
        "",
        f"## Batch-mates ({MATES_TRIALS} shuffles of the mix, batch {MATES_BATCH}, bucketed)",
        "",
        *mates_rows(variants, heads["fp32"], mix),
        "",
        "## Intent accuracy on the held-out split (head trained per encoder, as served)",
        "",
        *accuracy_rows(variants, heads),
        "",
        f"## Static int8 over {CALIBRATION_SEEDS} calibration samples of {encoder.CALIBRATION_SIZE} "
        "training utterances (held-out split)",
        "",
        *calibration,
        "",
        "## Fidelity to sentence-transformers (held-out split, as served)",
        "",
        *st_fidelity_rows(variants, st, [t for t, _ in split.test + split.oos_test]),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(body))
    return "\n".join(body)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/banter/models"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/encoder-bench.md"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = ModelConfig(cache_dir=args.cache_dir.expanduser(), ort_threads=args.threads)
    log.info("%s", run(config, args.out, args.rounds))


if __name__ == "__main__":
    main()
