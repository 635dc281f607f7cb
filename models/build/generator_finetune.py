"""Fine-tuning the generator on banter's persona dialogues: a LoRA adapter, trained once by
``banter models finetune-generator`` and shipped in ``models/data/generator_adapter/``, that the
build (``models.build.generator_conversion``) merges into the base model before converting it.

Training reads ``models/data/generator_dialogues.json``: project-written conversations in the
persona's tone (never the selector's fitting dialogues nor the held-out evaluation ones, which
a test checks). Each conversation is one sequence in the chat format the generator is served
with (``models.persona.chat_messages``: the persona prompt, the few-shot turns, then the
conversation); the loss counts only the bot's turns of the conversation, so the model learns
to answer, not to imitate users.

LoRA (peft) on every linear projection, rank 8: about 2.4M trainable parameters of 135M; the
adapter is saved in float16 (4.9 MB). On the 2-core machine the shipped one (two epochs over
380 conversations, 20 kept out) took 27 minutes: too long for ``banter models build``, which
merges the shipped adapter in seconds. ``banter_adapter.json`` records its losses.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models import persona
from models.dataset import DATA_DIR, read_json
from models.generator import ADAPTER_DIR as ADAPTER_DIR
from models.hashing import digest_files
from models.types import Utterance

Progress = Callable[[str], None]

DIALOGUES_FILE = DATA_DIR / "generator_dialogues.json"
ADAPTER_META = "banter_adapter.json"
"""Next to peft's own files: the base model and data the adapter was trained on, and the recipe."""
IGNORE = -100
"""The label of a token the loss does not count (transformers' convention)."""


@dataclass(frozen=True, slots=True)
class Recipe:
    """How the adapter is trained; saved with it."""

    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    epochs: float = 2.0
    learning_rate: float = 5e-4
    warmup: float = 0.05
    batch_tokens: int = 1024
    """Tokens per optimiser step (padding included); conversations are batched by length."""
    max_tokens: int = 768
    """A longer conversation keeps its latest turns."""
    seed: int = 0
    validation: float = 0.05
    """Share of the conversations kept out of training, to report the loss on before and after."""


def conversations(path: Path = DIALOGUES_FILE) -> list[list[Utterance]]:
    """The training conversations: user and bot turns, alternating, starting with the user."""
    data = read_json(path)
    return [[Utterance(t["speaker"], t["text"]) for t in c["turns"]] for c in data["conversations"]]


def example(tokenizer: Any, turns: Sequence[Utterance], max_tokens: int) -> tuple[list[int], list[int]] | None:
    """(input ids, labels) of one conversation in the served chat format; labels are ``IGNORE``
    except on the bot's turns (their text and end-of-turn token). Earlier turns are dropped,
    two at a time, until it fits in ``max_tokens``; None if even the last exchange does not."""
    turns = list(turns)
    while turns:
        ids, labels = _labelled(tokenizer, turns)
        if len(ids) <= max_tokens:
            return (ids, labels) if any(label != IGNORE for label in labels) else None
        turns = turns[2:]
    return None


def _labelled(tokenizer: Any, turns: Sequence[Utterance]) -> tuple[list[int], list[int]]:
    ids: list[int] = []
    labels: list[int] = []
    for end in range(1, len(turns) + 1):
        bot = turns[end - 1].speaker == "bot"
        messages = persona.chat_messages(turns[:end])
        if bot:
            prompt = _template(tokenizer, persona.chat_messages(turns[: end - 1]), generation_prompt=True)
            if prompt[: len(ids)] != ids:
                raise ValueError("the chat template does not extend a conversation's earlier turns")
            labels += [IGNORE] * (len(prompt) - len(ids))
            ids = prompt
        full = _template(tokenizer, messages, generation_prompt=False)
        if full[: len(ids)] != ids:
            raise ValueError("the chat template does not extend a conversation's earlier turns")
        new = full[len(ids) :]
        labels += _answer_labels(tokenizer, new) if bot else [IGNORE] * len(new)
        ids = full
    return ids, labels


def _answer_labels(tokenizer: Any, new: list[int]) -> list[int]:
    """Labels of a bot turn's tokens: all of them up to its end-of-turn token (what follows it, a
    newline in ChatML, is template layout, not the answer)."""
    end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end is None:
        end = tokenizer.eos_token_id
    cut = new.index(end) + 1 if end in new else len(new)
    return new[:cut] + [IGNORE] * (len(new) - cut)


def _template(tokenizer: Any, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "input_ids"):
        out = out["input_ids"]
    return list(out)


def batches(lengths: Sequence[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Indices grouped so that each batch's padded size (rows x longest) stays within
    ``batch_tokens``: sorted by length so that little is padding, then shuffled by batch."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > batch_tokens:
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    rng.shuffle(out)
    return out


def learning_rate(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` share of steps, then cosine decay to zero."""
    warm = max(1, int(total * warmup))
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def train(
    base: Path,
    dialogues: Sequence[Sequence[Utterance]],
    out: Path,
    progress: Progress,
    recipe: Recipe = Recipe(),
    threads: int = 2,
    base_version: str = "",
    data_digest: str = "",
    base_name: str = "",
) -> dict[str, Any]:
    """Train a LoRA adapter on ``dialogues`` over the Hugging Face model in ``base``; writes
    peft's adapter files and ``ADAPTER_META`` to ``out``; returns the meta."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(max(1, threads))
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    found = [example(tokenizer, turns, recipe.max_tokens) for turns in dialogues]
    usable = [e for e in found if e is not None]
    if not usable:
        raise ValueError("no training conversation fits; check the dialogues file")
    random.Random(recipe.seed).shuffle(usable)
    kept_out = int(len(usable) * recipe.validation)
    held, examples = usable[:kept_out], usable[kept_out:]
    base_model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    lora = LoraConfig(
        r=recipe.rank,
        lora_alpha=recipe.alpha,
        lora_dropout=recipe.dropout,
        target_modules=list(recipe.targets),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base_model, lora)
    before = _mean_loss(model, held, pad)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=recipe.learning_rate, weight_decay=0.0)
    rng = random.Random(recipe.seed)
    lengths = [len(ids) for ids, _ in examples]
    per_epoch = len(batches(lengths, recipe.batch_tokens, random.Random(0)))
    total = max(1, int(per_epoch * recipe.epochs))
    answer_tokens = sum(sum(1 for label in labels if label != IGNORE) for _, labels in examples)
    progress(
        f"generator fine-tune: {len(examples)} conversations ({sum(lengths)} tokens, {answer_tokens} of them "
        f"the bot's), {total} steps, {sum(p.numel() for p in trainable) / 1e6:.1f}M trainable parameters"
    )
    step = 0
    losses: list[float] = []
    while step < total:
        for batch in batches(lengths, recipe.batch_tokens, rng):
            if step >= total:
                break
            ids, labels, mask = _padded([examples[i] for i in batch], pad)
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step, total, recipe.learning_rate, recipe.warmup)
            loss = _loss(model, ids, labels, mask)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            if step % 10 == 0 or step == total:
                elapsed = time.monotonic() - started
                recent = sum(losses[-10:]) / len(losses[-10:])
                progress(
                    f"generator fine-tune: step {step}/{total}, loss {recent:.3f}, "
                    f"{elapsed / 60:.1f} min, about {elapsed / step * (total - step) / 60:.1f} min left"
                )
    model.eval()
    after = _mean_loss(model, held, pad)
    if held:
        progress(f"generator fine-tune: loss on {len(held)} held-out conversations {before:.3f} -> {after:.3f}")
    for p in trainable:
        p.data = p.data.half()  # a 5 MB adapter; merged back in float32
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    (out / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    settings = json.loads((out / "adapter_config.json").read_text())
    settings["base_model_name_or_path"] = base_name or None  # not the temporary folder it was trained from
    (out / "adapter_config.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    meta = {
        "base": base_version,
        "data": data_digest,
        "recipe": asdict(recipe),
        "conversations": len(examples),
        "held_out_conversations": len(held),
        "held_out_loss_before": round(before, 4),
        "held_out_loss_after": round(after, 4),
        "tokens": sum(lengths),
        "steps": total,
        "first_loss": round(sum(losses[:10]) / len(losses[:10]), 4),
        "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    (out / ADAPTER_META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _mean_loss(model: Any, rows: Sequence[tuple[list[int], list[int]]], pad: int) -> float:
    """The mean loss per counted token over ``rows`` (0.0 for none), without training."""
    import torch

    total = counted = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for row in rows:
            ids, labels, mask = _padded([row], pad)
            n = sum(1 for label in labels[0][1:] if label != IGNORE)  # the first label is never predicted
            total += float(_loss(model, ids, labels, mask)) * n
            counted += n
    model.train(was_training)
    return total / counted if counted else 0.0


def _loss(model: Any, ids: list[list[int]], labels: list[list[int]], mask: list[list[int]]) -> Any:
    import torch

    return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), labels=torch.tensor(labels)).loss


def _padded(rows: Sequence[tuple[list[int], list[int]]], pad: int) -> tuple[list[list[int]], ...]:
    """Right-padded ids, labels (``IGNORE`` on padding) and attention mask."""
    width = max(len(ids) for ids, _ in rows)
    ids = [r[0] + [pad] * (width - len(r[0])) for r in rows]
    labels = [r[1] + [IGNORE] * (width - len(r[1])) for r in rows]
    mask = [[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows]
    return ids, labels, mask


def data_digest(path: Path = DIALOGUES_FILE) -> str:
    return digest_files([path])


def merge(model: Any, folder: Path) -> Any:
    """``model`` with the LoRA adapter in ``folder`` merged into its weights (float32)."""
    import torch
    from peft import PeftModel

    merged = PeftModel.from_pretrained(model, str(folder), torch_dtype=torch.float32).merge_and_unload()
    return merged.float().eval()
