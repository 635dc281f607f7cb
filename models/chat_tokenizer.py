"""A chat model's tokenizer for serving, without transformers: the Hugging Face ``tokenizers`` runtime
and the model's chat template rendered with jinja2, as transformers renders it.

Importing transformers pulls in torch: about 4 s of CPU on this machine (10 s when it is busy), spent
on a worker's event loop thread's time while it restarts, and some 300 MB of memory that serving never
uses. The build (``models/build/``) still uses transformers; a worker needs only this.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer


class ChatTokenizer:
    """What the generator needs of a tokenizer, read from a Hugging Face model folder."""

    def __init__(self, folder: Path) -> None:
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        template_file = folder / "chat_template.jinja"
        template = template_file.read_text() if template_file.is_file() else config.get("chat_template")
        if not isinstance(template, str) or not template:
            raise ValueError(f"{folder} has no chat template (chat_template.jinja or tokenizer_config.json)")
        self.eos_token = _token(config.get("eos_token"))
        self.bos_token = _token(config.get("bos_token"))
        self._template = _environment().from_string(template)

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool) -> list[int]:
        """The token ids of ``messages`` in the model's chat format."""
        text = self._template.render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )
        return self.encode(text)

    def encode(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._tokenizer.id_to_token(i) or "" for i in ids]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))

    def get_vocab(self) -> dict[str, int]:
        return dict(self._tokenizer.get_vocab(with_added_tokens=True))


def _token(value: Any) -> str | None:
    """A special token as tokenizer_config.json names it: a string, or an object with its ``content``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _environment() -> ImmutableSandboxedEnvironment:
    """The jinja2 environment transformers renders chat templates in (its settings, filters and globals)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None) -> str:
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators)

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env
