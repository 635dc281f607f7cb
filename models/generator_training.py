"""Training the default generator: a small GPT-2 style causal LM learnt from scratch.

The corpus is the project's own (``models.corpus``); the tokenizer is a byte-level BPE
trained on it with the ``tokenizers`` library; both model and tokenizer are saved with
``save_pretrained`` so any ``AutoModelForCausalLM``/``AutoTokenizer`` code can load them.
The version is a content hash of the corpus and of the training configuration.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch

from models import corpus as corpus_module
from models.config import ModelConfig
from models.hashing import digest_value
from models.types import Utterance

log = logging.getLogger(__name__)

EOS = "<|endoftext|>"
MARKER = "banter_generator.json"
FORMAT = 1
Progress = Callable[[str], None]
Example = tuple[list[int], list[bool]]
_PROBE_STEPS = 6


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained checkpoint (hashed into its version)."""

    n_dialogues: int = 2400
    corpus_seed: int = 0
    vocab_size: int = 2000
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 192
    n_positions: int = 256
    steps: int = 800
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    dropout: float = 0.0
    """No dropout: a few hundred steps is far from over-fitting this corpus."""
    seed: int = 0
    max_seconds: float = 600.0
    """Safety cap on the optimisation loop's wall time (the metrics record the steps done; the
    learning-rate decay follows it). The steps decide on a 2-core machine: 800 take about 7
    minutes there, and a 225 s cap once stopped a build at step 438 (held-out perplexity 2.11)."""

    def with_steps(self, steps: int) -> TrainConfig:
        """The same configuration with another step count."""
        return replace(self, steps=steps)


@cache
def load_corpus(n_dialogues: int, seed: int) -> corpus_module.Corpus:
    """The corpus for a training configuration (generated once per process)."""
    return corpus_module.generate(n_dialogues=n_dialogues, seed=seed)


def current_version(train_config: TrainConfig) -> str:
    """Content hash of the corpus and the training configuration."""
    corpus = load_corpus(train_config.n_dialogues, train_config.corpus_seed)
    return digest_value(
        {"format": FORMAT, "corpus": corpus_module.digest(corpus), "train": asdict(train_config)}
    )


def model_dir(config: ModelConfig, version: str) -> Path:
    """Where the default checkpoint of ``version`` lives."""
    return Path(config.cache_dir).expanduser() / "generator" / version


def encode_dialogue(
    tokenizer: Any, turns: Sequence[Utterance], eos_id: int | None
) -> tuple[list[int], list[bool]]:
    """DialoGPT-style token ids (each turn then end-of-sequence) and a bot-token mask."""
    ids: list[int] = []
    bot: list[bool] = []
    for turn in turns:
        turn_ids = tokenizer.encode(turn.text, add_special_tokens=False)
        turn_ids += [eos_id] if eos_id is not None else []
        ids += turn_ids
        bot += [turn.speaker == "bot"] * len(turn_ids)
    return ids, bot


def context_window(model: Any) -> int:
    """How many positions the model attends to."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


def evaluate_perplexity(
    model: Any,
    tokenizer: Any,
    dialogues: Sequence[Sequence[Utterance]],
    window: int | None = None,
) -> dict[str, float]:
    """Perplexity over all tokens, and over the bot replies only given their history.

    Each dialogue is encoded DialoGPT-style and scored in one forward pass; a dialogue
    longer than the context window keeps its latest tokens.
    """
    window = window or context_window(model)
    sums = {"all": [0.0, 0.0], "reply": [0.0, 0.0]}
    with torch.inference_mode():
        for dialogue in dialogues:
            ids, bot = encode_dialogue(tokenizer, dialogue, tokenizer.eos_token_id)
            nll = token_nll(model, ids[-window:])
            mask = torch.tensor(bot[-window:][1:], dtype=torch.bool)
            sums["all"][0] += float(nll.sum())
            sums["all"][1] += nll.numel()
            sums["reply"][0] += float(nll[mask].sum())
            sums["reply"][1] += float(mask.sum())
    return {f"{k}_perplexity": math.exp(s / max(n, 1.0)) for k, (s, n) in sums.items()}


def token_nll(model: Any, ids: list[int]) -> torch.Tensor:
    """Negative log-likelihood of each token after the first."""
    input_ids = torch.tensor([ids])
    mask = torch.ones_like(input_ids)
    logits = model(input_ids=input_ids, attention_mask=mask).logits[0, :-1].float()
    return torch.nn.functional.cross_entropy(logits, input_ids[0, 1:], reduction="none")


def train_tokenizer(texts: Sequence[str], vocab_size: int, max_length: int) -> Any:
    """A byte-level BPE tokenizer learnt on ``texts``, wrapped for ``save_pretrained``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast  # type: ignore[attr-defined]  # v5: an alias

    tokenizer = Tokenizer(models.BPE())
    # a leading space on every turn: a name opening a reply is the same token as mid-sentence
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return GPT2TokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
        model_max_length=max_length,
        add_prefix_space=True,
    )


def with_late_starts(
    dialogues: Sequence[Sequence[Utterance]], seed: int
) -> list[Sequence[Utterance]]:
    """Each dialogue, plus a copy starting at a later user turn (when it has one).

    Prompts hold only the latest turns, so the model must also see conversations that
    start in the middle, not only ones that open with a greeting.
    """
    rng = random.Random(seed)
    late = [d[2 * rng.randint(1, len(d) // 2 - 1) :] for d in dialogues if len(d) >= 4]
    return [*dialogues, *late]


def truncate(example: Example, length: int) -> Example:
    """The first ``length`` tokens of an encoded dialogue."""
    ids, bot = example
    return ids[:length], bot[:length]


def build_model(train_config: TrainConfig, tokenizer: Any) -> Any:
    """A freshly initialised GPT-2 style LM sized by ``train_config``."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(train_config.seed)
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=train_config.n_positions,
        n_embd=train_config.n_embd,
        n_layer=train_config.n_layer,
        n_head=train_config.n_head,
        resid_pdrop=train_config.dropout,
        embd_pdrop=train_config.dropout,
        attn_pdrop=train_config.dropout,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # transformers 5 warns when GPT-2 leaves it unset
    return model


def make_batch(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded inputs and attention mask; labels only on the bot's reply tokens."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    target = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, (ids, bot) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        target[row, : len(ids)] = torch.tensor(bot)
    labels = input_ids.masked_fill(~target, -100)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def learning_rate(train_config: TrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak.

    The decay follows whichever runs out first, the steps or the time cap, so a run cut
    short on a busy machine still ends annealed rather than at a high learning rate.
    """
    peak, warmup = train_config.learning_rate, max(1, train_config.warmup_steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    by_steps = (step - warmup) / max(1, train_config.steps - warmup)
    progress = min(1.0, max(by_steps, elapsed / train_config.max_seconds))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: torch.Generator
) -> Iterator[list[int]]:
    """Endless random batches of example indices, grouped by similar length to save padding."""
    pool = batch_size * 16
    while True:
        order = torch.randperm(len(lengths), generator=rng).tolist()
        batches: list[list[int]] = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start : start + pool], key=lengths.__getitem__)
            batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        for b in torch.randperm(len(batches), generator=rng).tolist():
            yield batches[b]


def pick_threads(step: int, max_threads: int, timings: dict[int, list[float]]) -> int:
    """Torch threads for ``step``: a few steps at ``max_threads``, a few at one, then the
    faster per token (each trial's first step left out as warm-up).

    Two threads on two cores train about twice as fast as one on an idle machine, but
    several times slower when another process holds a core (the threads wait on each
    other), so the choice is measured, not assumed.
    """
    if max_threads <= 1:
        return 1
    if step <= _PROBE_STEPS:
        return max_threads
    if step <= 2 * _PROBE_STEPS:
        return 1
    return min((max_threads, 1), key=lambda t: statistics.median(timings[t][1:]))


def optimise(
    model: Any,
    examples: Sequence[Example],
    train_config: TrainConfig,
    pad_id: int,
    progress: Progress,
    max_threads: int = 1,
) -> dict[str, Any]:
    """The training loop: mini-batches of whole dialogues, AdamW, clipped gradients.

    Only the bot's turns are learnt (the user's turns are context), so the model spends
    its small capacity on replies and, after an end-of-sequence, always writes as the bot.
    """
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_config.learning_rate, weight_decay=train_config.weight_decay
    )
    rng = torch.Generator().manual_seed(train_config.seed)
    batches = length_batches([len(ids) for ids, _ in examples], train_config.batch_size, rng)
    timings: dict[int, list[float]] = {}
    model.train()
    start, losses, step, threads = time.monotonic(), [], 0, 0
    for step in range(1, train_config.steps + 1):
        if (wanted := pick_threads(step, max_threads, timings)) != threads:
            threads = wanted
            torch.set_num_threads(threads)
        began = time.monotonic()
        batch = make_batch([examples[i] for i in next(batches)], pad_id)
        rate = learning_rate(train_config, step - 1, began - start)
        losses.append(train_step(model, optimizer, batch, rate))
        per_token = (time.monotonic() - began) / batch["input_ids"].numel()
        timings.setdefault(threads, []).append(per_token)
        if step % max(1, train_config.steps // 10) == 0:
            progress(f"generator: step {step}/{train_config.steps} loss {losses[-1]:.3f}")
        if time.monotonic() - start > train_config.max_seconds:
            progress(f"generator: stopping at step {step}, time cap reached")
            break
    model.eval()
    tail = losses[-20:]
    return {"steps_done": step, "train_loss": round(sum(tail) / max(1, len(tail)), 4),
            "train_threads": threads}


def train_step(
    model: Any, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor], rate: float
) -> float:
    """One optimiser step at learning rate ``rate``; returns the batch loss."""
    for group in optimizer.param_groups:
        group["lr"] = rate
    loss = model(**batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.item())


def train_and_save(
    config: ModelConfig, train_config: TrainConfig, progress: Progress
) -> dict[str, Any]:
    """Generate the corpus, train tokenizer and model, score the held-out split, save."""
    started = time.monotonic()
    version = current_version(train_config)
    corpus = load_corpus(train_config.n_dialogues, train_config.corpus_seed)
    progress(f"generator {version}: corpus of {corpus.exchanges} exchanges")
    texts = [corpus_module.to_text(d, EOS) for d in corpus.train]
    tokenizer = train_tokenizer(texts, train_config.vocab_size, train_config.n_positions)
    examples = [
        truncate(encode_dialogue(tokenizer, d, tokenizer.eos_token_id), train_config.n_positions)
        for d in with_late_starts(corpus.train, train_config.seed)
    ]
    model = build_model(train_config, tokenizer)
    progress(f"generator {version}: training {model.num_parameters():,} parameters")
    fit = optimise(model, examples, train_config, tokenizer.eos_token_id, progress,
                   max_threads=config.generator_train_threads)
    train_seconds = time.monotonic() - started
    scores = evaluate_perplexity(model, tokenizer, corpus.heldout, train_config.n_positions)
    metrics = {
        "version": version,
        "exchanges": corpus.exchanges,
        "train_dialogues": len(corpus.train),
        "heldout_dialogues": len(corpus.heldout),
        "parameters": model.num_parameters(),
        **fit,
        "train_seconds": round(train_seconds, 1),
        "heldout_perplexity": round(scores["reply_perplexity"], 3),
    }
    meta = {**metrics, "train_config": asdict(train_config)}
    path = save(config, version, model, tokenizer, meta)
    progress(f"generator {version}: held-out perplexity {metrics['heldout_perplexity']}")
    return {**metrics, "path": str(path)}


def save(
    config: ModelConfig, version: str, model: Any, tokenizer: Any, meta: dict[str, Any]
) -> Path:
    """Write the Hugging Face folder next to its final place, then move it in."""
    final = model_dir(config, version)
    staging = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    log.info("saved generator %s to %s", version, final)
    return final
