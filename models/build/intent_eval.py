"""Intent evaluation on CLINC150-format JSON: train a head on the file's train (and val)
split, then report in-scope accuracy, out-of-scope recall and precision, OOS AUROC,
the threshold, and latency per message at batch 1 and batch 32.

``run_project`` evaluates the project's own fixed held-out split the same way.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from models import artifacts, dataset, intent
from models.build import clinc, intent_training
from models.build.artifacts import build_encoder, load_encoder
from models.config import ModelConfig
from models.encoder import OnnxEncoder

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
LATENCY_SAMPLE = 256


def ready_encoder(config: ModelConfig, progress: Progress) -> OnnxEncoder:
    """The configured encoder, exporting it first when it is not built."""
    version = artifacts.encoder_version(config)
    if not artifacts.is_built(config, "encoder", version):
        build_encoder(config, version, progress)
    return load_encoder(config)


def run(path: Path, config: ModelConfig, progress: Progress) -> str:
    """Evaluate on the CLINC150-format file at ``path``; returns the report text."""
    split = clinc.load_clinc(path)
    encoder = ready_encoder(config, progress)
    pool = split.train + split.val + split.oos_train + split.oos_val
    progress(f"eval: embedding {len(pool)} training utterances")
    x, labels = intent_training.examples_xy(encoder, pool)
    progress("eval: training head (5-fold out-of-fold calibration and threshold)")
    started = time.monotonic()
    head, stats = intent_training.train(x, labels)
    train_s = time.monotonic() - started
    test = split.test + split.oos_test
    progress(f"eval: scoring {len(test)} test utterances")
    x_test, test_labels = intent_training.examples_xy(encoder, test)
    metrics = intent_training.evaluate(head, x_test, test_labels, config.oos_threshold)
    no_reject = intent_training.evaluate(head, x_test, test_labels, 0.0)["in_scope_accuracy"]
    model = intent.IntentModel(encoder, head, "eval", config.oos_threshold)
    latency = measure_latency(model, [t for t, _ in test][:LATENCY_SAMPLE])
    return report(path, config, metrics, stats, no_reject, latency, len(pool), train_s)


def measure_latency(model: intent.IntentModel, texts: Sequence[str]) -> dict[int, float]:
    """Median milliseconds per message at batch sizes 1 and 32."""
    result = {}
    for size in (1, 32):
        per_message = []
        for start in range(0, len(texts) - size + 1, size):
            began = time.perf_counter()
            model.predict(texts[start : start + size])
            per_message.append((time.perf_counter() - began) * 1000.0 / size)
        result[size] = statistics.median(per_message) if per_message else float("nan")
    return result


def report(
    path: Path,
    config: ModelConfig,
    m: dict[str, float],
    stats: dict[str, float],
    no_reject: float,
    latency: dict[int, float],
    n_train: int,
    train_s: float,
) -> str:
    """The evaluation report text."""
    threshold_origin = "settings" if config.oos_threshold is not None else "chosen by 5-fold CV"
    lines = [
        f"intent evaluation: {path}",
        f"encoder: {config.encoder or 'packaged all-MiniLM-L6-v2'} ({config.precision}, "
        f"{config.ort_threads} onnxruntime thread(s))",
        f"trained on {n_train} utterances in {train_s:.1f} s; temperature "
        f"{stats['temperature']:.3f}; out-of-fold OOS AUROC {stats['cv_oos_auroc']:.4f}",
        f"test: {m['n_in_scope']} in-scope, {m['n_oos']} out-of-scope",
        f"in-scope accuracy:      {m['in_scope_accuracy']:.2%} (without OOS rejection: {no_reject:.2%})",
        f"out-of-scope recall:    {m['oos_recall']:.2%}",
        f"out-of-scope precision: {m['oos_precision']:.2%}",
        f"out-of-scope AUROC:     {m['oos_auroc']:.4f}",
        f"threshold:              {m['threshold']:.4f} ({threshold_origin})",
        f"latency per message:    batch 1 {latency[1]:.2f} ms, batch 32 {latency[32]:.2f} ms",
    ]
    return "\n".join(lines)


def run_project(config: ModelConfig, progress: Progress) -> str:
    """Evaluate on the project's own fixed held-out split."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "banter-intents.json"
        clinc.write_clinc(dataset.project_split(), path)
        return run(path, config, progress).replace(str(path), "banter held-out split")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m models.build.intent_eval [--data FILE] --cache-dir DIR``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="CLINC150-format JSON (default: ours)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/banter/models"))
    parser.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    args = parser.parse_args(argv)
    config = ModelConfig(cache_dir=args.cache_dir.expanduser(), precision=args.precision)
    progress = log.info
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    text = run(args.data, config, progress) if args.data else run_project(config, progress)
    log.info("%s", text)


if __name__ == "__main__":
    main()
