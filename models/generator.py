"""The generator: a causal language model that writes a reply from the conversation history.

The default checkpoint is a small GPT-2 style model trained from scratch by the project on
its own dialogue corpus (``models.corpus``) and saved as a Hugging Face folder under
``cache_dir/generator/<version>/``; any causal LM named by a Hugging Face id or a local path
in ``ModelConfig.generator`` (a DialoGPT checkpoint, for example) replaces it. Prompts follow
DialoGPT's convention: the latest turns, each followed by the tokenizer's end-of-sequence
token. Replies are sampled token by token with the key/value cache, seeded per dialogue,
under caps on new tokens and on wall time.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.artifacts import FIX, ArtifactsError
from models.config import ModelConfig
from models.generator_training import (
    MARKER,
    TrainConfig,
    context_window,
    current_version,
    encode_dialogue,
    evaluate_perplexity,
    load_corpus,
    model_dir,
    train_and_save,
)
from models.hashing import digest_files
from models.types import Candidate, Dialogue, Utterance

log = logging.getLogger(__name__)

NAME = "generator"
Progress = Callable[[str], None]

_WEIGHT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model")
_SKIPPED_PREFIXES = ("tf_", "flax_", "training_args")


@dataclass(frozen=True, slots=True)
class Sampling:
    """How one reply is sampled."""

    max_new_tokens: int
    temperature: float
    top_k: int


class Generator:
    """A loaded causal LM answering ``Dialogue``s with one generated ``Candidate`` each."""

    name = NAME

    def __init__(self, model: Any, tokenizer: Any, version: str, config: ModelConfig) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.version = version
        self._config = config
        self._eos = tokenizer.eos_token_id
        self._window = context_window(model)

    def predict(self, batch: Sequence[Dialogue]) -> list[Candidate]:
        """One reply per dialogue; each is sampled alone, so batch-mates never change it.

        ``generator_max_time_s`` bounds the whole call: dialogues reached after the
        deadline get what was sampled before it (possibly nothing).
        """
        deadline = time.monotonic() + self._config.generator_max_time_s
        return [self.reply(d, deadline) for d in batch]

    def reply(self, dialogue: Dialogue, deadline: float) -> Candidate:
        """A reply to ``dialogue``; score = mean log-prob of the sampled tokens.

        The end-of-sequence draw counts as a token; with no draw at all (a zero token cap,
        or the batch's deadline already past) the text is empty and the score 0.0.
        """
        tokens, logprobs = self.sample_tokens(dialogue, deadline)
        score = sum(logprobs) / len(logprobs) if logprobs else 0.0
        return Candidate(text=self.clean(tokens), score=float(score))

    def sample_tokens(self, dialogue: Dialogue, deadline: float) -> tuple[list[int], list[float]]:
        """The reply's token ids (end-of-sequence excluded) and the log-prob of each draw.

        Sampling is seeded by ``dialogue.seed`` alone, through its own ``torch.Generator``.
        """
        sampling = self._sampling(dialogue)
        prompt = self.prompt_ids(dialogue.history, sampling.max_new_tokens)
        rng = torch.Generator().manual_seed(int(dialogue.seed))
        return self._sample(prompt, sampling, rng, deadline)

    def prompt_ids(self, history: Sequence[Utterance], max_new_tokens: int) -> list[int]:
        """The latest turns, each ended by end-of-sequence, cut to fit the context window."""
        turns = history[-self._config.generator_history_turns :]
        ids = encode_dialogue(self.tokenizer, turns, self._eos)[0]
        room = max(1, self._window - max_new_tokens)
        return ids[-room:] if ids else [self._eos]

    def clean(self, tokens: Sequence[int]) -> str:
        """Decoded text without special tokens, with whitespace tidied."""
        text = self.tokenizer.decode(list(tokens), skip_special_tokens=True)
        return re.sub(r"\s+", " ", text).strip()

    def _sampling(self, dialogue: Dialogue) -> Sampling:
        cap = dialogue.options.get("max_new_tokens", self._config.generator_max_new_tokens)
        return Sampling(
            max_new_tokens=max(0, int(cap)),
            temperature=self._config.generator_temperature,
            top_k=self._config.generator_top_k,
        )

    @torch.inference_mode()
    def _sample(
        self, prompt: list[int], sampling: Sampling, rng: torch.Generator, deadline: float
    ) -> tuple[list[int], list[float]]:
        tokens: list[int] = []
        logprobs: list[float] = []
        if sampling.max_new_tokens == 0 or time.monotonic() > deadline:
            return tokens, logprobs
        ids = torch.tensor([prompt])
        out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        while True:
            logits = out.logits[0, -1].float()
            token = _draw(logits, sampling, rng)
            logprobs.append(float(torch.log_softmax(logits, dim=-1)[token]))
            if token == self._eos:
                break
            tokens.append(token)
            if len(tokens) >= sampling.max_new_tokens or time.monotonic() > deadline:
                break
            out = self.model(
                input_ids=torch.tensor([[token]]),
                past_key_values=out.past_key_values,
                use_cache=True,
            )
        return tokens, logprobs

    @torch.inference_mode()
    def perplexity(self, dialogues: Sequence[Sequence[Utterance]]) -> dict[str, float]:
        """Held-out perplexity of ``dialogues`` (see ``evaluate_perplexity``)."""
        return evaluate_perplexity(self.model, self.tokenizer, dialogues, self._window)


def _draw(logits: torch.Tensor, sampling: Sampling, rng: torch.Generator) -> int:
    """Top-k sampling at the given temperature; temperature 0 means greedy."""
    if sampling.temperature <= 0:
        return int(torch.argmax(logits))
    k = min(sampling.top_k, logits.shape[-1]) if sampling.top_k > 0 else logits.shape[-1]
    values, indices = torch.topk(logits / sampling.temperature, k)
    choice = torch.multinomial(torch.softmax(values, dim=-1), 1, generator=rng)
    return int(indices[choice])


def load(config: ModelConfig, train_config: TrainConfig | None = None) -> Generator:
    """The configured generator: a HF id or local path, else banter's trained default."""
    torch.set_num_threads(max(1, config.generator_threads))
    if config.generator is not None:
        return load_pretrained(config.generator, config)
    version = current_version(train_config or TrainConfig())
    path = model_dir(config, version)
    if not (path / MARKER).is_file():
        raise ArtifactsError(f"generator artifacts missing ({version} not built): {FIX}")
    model, tokenizer = _load_hf(str(path))
    return Generator(model, tokenizer, version, config)


def load_pretrained(name_or_path: str, config: ModelConfig) -> Generator:
    """Any causal LM by Hugging Face id or local folder (AutoModelForCausalLM)."""
    if looks_local(name_or_path):
        name_or_path = str(Path(name_or_path).expanduser())
    model, tokenizer = _load_hf(name_or_path)
    return Generator(model, tokenizer, pretrained_version(name_or_path, model), config)


def _load_hf(name_or_path: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading causal LM %s", name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)
    return model, tokenizer


def pretrained_version(name_or_path: str, model: Any) -> str:
    """Content hash of a local folder's model files, or the hub commit of an id."""
    path = Path(name_or_path)
    if path.is_dir():
        return digest_files(p for p in path.iterdir() if _is_model_file(p))
    commit = getattr(model.config, "_commit_hash", None) or "unknown"
    return f"{name_or_path.rsplit('/', 1)[-1]}@{commit[:12]}"


def _is_model_file(path: Path) -> bool:
    return (
        path.is_file()
        and path.suffix in _WEIGHT_SUFFIXES
        and not path.name.startswith(_SKIPPED_PREFIXES)
    )


def check(config: ModelConfig, train_config: TrainConfig | None = None) -> list[str]:
    """Problems that keep the generator from loading (empty = ready).

    A Hugging Face id is not looked up here (that may need the network); a local path
    must hold a model folder.
    """
    if config.generator is not None:
        local = Path(config.generator).expanduser()
        if looks_local(config.generator) and not (local / "config.json").is_file():
            return [f"generator: no Hugging Face model folder at {local} (generator setting)"]
        return []
    version = current_version(train_config or TrainConfig())
    if not (model_dir(config, version) / MARKER).is_file():
        return [f"generator artifacts missing ({version} not built): {FIX}"]
    return []


def looks_local(name_or_path: str) -> bool:
    """Whether the setting names a folder rather than a Hugging Face id."""
    path = Path(name_or_path).expanduser()
    return path.exists() or path.is_absolute() or name_or_path.startswith((".", "~"))


def build(config: ModelConfig, progress: Progress, train_config: TrainConfig | None = None) -> str:
    """Train the default generator unless its current version is already built; its version."""
    train_config = train_config or TrainConfig()
    version = current_version(train_config)
    if (model_dir(config, version) / MARKER).is_file():
        progress(f"generator {version}: already built")
        return version
    return str(train(config, progress, train_config=train_config)["version"])


def train(
    config: ModelConfig,
    progress: Progress,
    steps: int | None = None,
    train_config: TrainConfig | None = None,
) -> dict[str, Any]:
    """Train the default generator on the project's corpus; returns its metrics.

    ``steps`` overrides the training config's step count (and so the version).
    """
    train_config = train_config or TrainConfig()
    if steps is not None:
        train_config = train_config.with_steps(steps)
    previous = torch.get_num_threads()
    try:
        return train_and_save(config, train_config, progress)
    finally:
        torch.set_num_threads(previous)


def evaluate(
    config: ModelConfig, progress: Progress, train_config: TrainConfig | None = None
) -> dict[str, Any]:
    """Held-out perplexity of the configured generator (default or any causal LM) on the
    held-out split of the project's corpus: over bot replies given their history, and over
    all tokens."""
    train_config = train_config or TrainConfig()
    model = load(config, train_config)
    heldout = load_corpus(train_config.n_dialogues, train_config.corpus_seed).heldout
    progress(f"generator {model.version}: scoring {len(heldout)} held-out dialogues")
    scores = model.perplexity(heldout)
    return {
        "model": config.generator or "default",
        "version": model.version,
        "heldout_dialogues": len(heldout),
        "heldout_perplexity": round(scores["reply_perplexity"], 3),
        "heldout_all_token_perplexity": round(scores["all_perplexity"], 3),
    }
