"""What the CLI's commands do: start a worker, manage the broker, talk to banter."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from schemas import Reply
from streams.broker import BrokerError, LocalKafka, port_open
from streams.cli import progress
from streams.client import connected, new_message
from streams.kafka import ensure_topics
from streams.settings import Settings


def require_broker(settings: Settings) -> None:
    """Fail with the fix when no broker answers."""
    if settings.uses_local_broker and not port_open(settings.local_kafka_port):
        raise BrokerError(
            f"no Kafka at {settings.bootstrap}: run `banter broker up`, or set BANTER_KAFKA_BOOTSTRAP to your cluster"
        )


def require_models(settings: Settings) -> None:
    from models import artifacts
    from streams.services import model_config

    problems = artifacts.check(model_config(settings))
    if problems:
        raise artifacts.ArtifactsError("; ".join(problems) + " — run `banter models build`")


def run_worker(settings: Settings) -> int:
    from streams.logs import logging_config

    require_models(settings)
    require_broker(settings)
    created = asyncio.run(ensure_topics(settings))
    if created:
        progress(f"created topics: {', '.join(created)}")
    from faust import Worker

    from streams.app import app

    worker = Worker(
        app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_text),
        quiet=True,
    )
    worker.execute_from_commandline()
    return 0


def broker(action: str, settings: Settings) -> int:
    if not settings.uses_local_broker:
        progress(f"BANTER_KAFKA_BOOTSTRAP={settings.bootstrap}: using that cluster, nothing to manage")
        if action == "up":
            created = asyncio.run(ensure_topics(settings))
            progress(f"topics ready ({len(created)} created)")
        return 0
    kafka = LocalKafka(settings, progress)
    if action == "up":
        kafka.up()
        created = asyncio.run(ensure_topics(settings))
        progress(f"topics ready: {len(created)} created, {settings.partitions} partitions each")
    elif action == "down":
        progress("Kafka stopped" if kafka.down() else "Kafka was not running")
    else:
        print(kafka.status())
    return 0


def describe(reply: Reply) -> str:
    fallback = f" | fallback: {reply.fallback_reason}" if reply.fallback_reason else ""
    why = f" | why: {reply.why}" if reply.why else ""
    return f"[{reply.source} | intent {reply.intent} | {reply.latency_ms:.0f} ms{fallback}{why}]"


def send(settings: Settings, text: str, conversation: str, user: str, platform: str, timeout_s: float) -> int:
    require_broker(settings)

    async def ask() -> Reply:
        async with connected(settings) as client:
            return await client.ask(new_message(text, conversation, user, platform), timeout_s)

    try:
        reply = asyncio.run(ask())
    except TimeoutError:
        progress(f"no reply within {timeout_s:.0f} s: is a worker running? (`banter worker`)")
        return 1
    print(reply.text)
    print(describe(reply))
    return 0


def chat(settings: Settings, conversation: str | None) -> int:
    require_broker(settings)
    conversation = conversation or f"chat-{uuid.uuid4().hex[:8]}"
    print(f"banter chat (conversation {conversation}); Ctrl-D to leave", file=sys.stderr)

    async def loop() -> None:
        async with connected(settings) as client:
            while True:
                text = await asyncio.to_thread(_read_line)
                if text is None:
                    return
                if not text.strip():
                    continue
                try:
                    reply = await client.ask(new_message(text, conversation, "chat-user", "cli"), 30.0)
                except TimeoutError:
                    print("(no reply within 30 s: is a worker running?)")
                    continue
                print(f"banter> {reply.text}  {describe(reply)}", flush=True)

    asyncio.run(loop())
    return 0


def _read_line() -> str | None:
    try:
        return input("you> ")
    except EOFError:
        return None


def models(action: str, settings: Settings, args: Any) -> int:
    from models import artifacts
    from models.build import artifacts as build
    from models.build import intent_eval
    from streams.services import model_config

    config = model_config(settings)
    if action == "build":
        started = time.monotonic()
        manifest = build.build_all(config, progress)
        progress(f"models ready in {time.monotonic() - started:.0f} s: {json.dumps(manifest)}")
    elif action == "check":
        problems = artifacts.check(config)
        print("\n".join(problems) if problems else "models ready")
        return 1 if problems else 0
    elif action == "finetune-generator":
        finetune_generator(config, Path(args.adapter_out) if args.adapter_out else None)
    elif action == "eval":
        data = args.data
        report = intent_eval.run(Path(data), config, progress) if data else intent_eval.run_project(config, progress)
        print(report)
    else:
        return dialogue_command(action, config, args)
    return 0


OFFLINE_GENERATOR_TIME_S = 120.0


def finetune_generator(config: Any, out: Path | None) -> None:
    """Train the generator's LoRA adapter on the persona dialogues over the configured base model
    (without any adapter), into ``out`` or the shipped adapter folder; the next build merges it."""
    import tempfile
    from dataclasses import replace

    from models import generator
    from models.build import generator_conversion, generator_finetune

    src = generator.source(replace(config, generator_adapter="none"))
    target = out or generator.ADAPTER_DIR
    with tempfile.TemporaryDirectory(prefix="banter-finetune-") as tmp:
        progress(f"generator fine-tune: reading {src.name}")
        model, tokenizer = generator_conversion.hf_model(src)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        del model
        meta = generator_finetune.train(
            Path(tmp),
            generator_finetune.conversations(),
            target,
            progress,
            threads=config.generator_train_threads,
            base_version=src.base_version(),
            data_digest=generator_finetune.data_digest(),
            base_name=src.name,
        )
    progress(f"generator fine-tune: adapter in {target} ({json.dumps(meta)}); `banter models build` merges it")


def dialogue_command(action: str, config: Any, args: Any) -> int:
    """eval-dialogue, selector-data and fit-selector: the reply selection's offline side."""
    from dataclasses import replace

    from models import registry, selector
    from models.build import dialogue_eval, selector_fitting

    config = replace(config, generator_max_time_s=OFFLINE_GENERATOR_TIME_S)  # offline, every reply is finished
    encoder = registry.encoder_for(config)
    if action == "fit-selector":
        path = Path(args.labels) if args.labels else selector_fitting.LABELS_FILE
        rated = json.loads(path.read_text())
        weights = selector_fitting.fit_selector(encoder, rated["items"] if isinstance(rated, dict) else rated)
        selector.WEIGHTS_FILE.write_text(json.dumps(weights, indent=1) + "\n")
        progress(f"selector: fitted on {weights['fitted_on']}, wrote {selector.WEIGHTS_FILE}")
        print(json.dumps(weights, indent=1))
        return 0
    scorer = selector.Selector(encoder, None if action == "eval-dialogue" else selector_fitting.NEUTRAL)
    generator = None if args.no_generator else registry.load_generator(config, scorer)
    bot = dialogue_eval.Bot(registry.load_understander(config, scorer), generator, scorer)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if action == "selector-data":
        items = selector_fitting.rating_items(bot, progress)
        path = out / "selector-candidates.json"
        path.write_text(json.dumps(items, indent=1, ensure_ascii=False))
        progress(f"selector data: {len(items)} candidates to rate in {path}")
        return 0
    conversations = dialogue_eval.eval_conversations()
    results = dialogue_eval.replay(bot, conversations[: args.limit] if args.limit else conversations, progress)
    rep = dialogue_eval.report(results, encoder)
    if args.ratings:
        rep["ssa"] = dialogue_eval.ssa(rep["turns"], json.loads(Path(args.ratings).read_text()))
    (out / "eval-dialogue.json").write_text(json.dumps(rep, indent=1, ensure_ascii=False))
    (out / "eval-dialogue.md").write_text(dialogue_eval.markdown(rep))
    print(dialogue_eval.markdown(rep))
    progress(f"eval-dialogue: report in {out / 'eval-dialogue.md'}")
    return 0
