"""The ``banter`` command: worker, broker, send, chat, demo, models, settings."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from streams.settings import Settings


def progress(line: str) -> None:
    print(f"banter: {line}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args, Settings.from_env()) or 0)
    except KeyboardInterrupt:
        return 130
    except _FRIENDLY_ERRORS() as exc:
        progress(f"error: {exc}")
        return 1


def _FRIENDLY_ERRORS() -> tuple[type[BaseException], ...]:
    from models.store import ArtifactsError
    from streams.broker import BrokerError

    return (ArtifactsError, BrokerError, ConnectionError, TimeoutError)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="banter", description="banter: sassy replies at streaming scale")
    sub = parser.add_subparsers(metavar="command")
    _add(sub, "worker", "run the pipeline's agents (all, or BANTER_ROLES)", _worker)
    broker = _add(sub, "broker", "the local Apache Kafka broker", _broker)
    broker.add_argument("action", choices=["up", "down", "status"])
    send = _add(sub, "send", "send one message and print its reply", _send)
    send.add_argument("text")
    send.add_argument("--conversation", default="cli")
    send.add_argument("--user", default="cli-user")
    send.add_argument("--platform", default="cli")
    send.add_argument("--timeout", type=float, default=30.0)
    chat = _add(sub, "chat", "chat with banter in the terminal, through Kafka", _chat)
    chat.add_argument("--conversation", default=None)
    _add(sub, "demo", "set everything up, run a worker and a scripted conversation", _demo)
    models = _add(sub, "models", "build, check and evaluate the models", _models)
    models.add_argument(
        "action",
        choices=["build", "check", "eval", "eval-dialogue", "selector-data", "fit-selector", "finetune-generator"],
    )
    models.add_argument("--data", help="CLINC150-format JSON for `eval` (default: banter's own held-out split)")
    models.add_argument("--out", default="reports", help="folder for eval-dialogue's report (default: reports/)")
    models.add_argument("--no-generator", action="store_true", help="eval-dialogue without the generator (baseline)")
    models.add_argument("--limit", type=int, default=0, help="eval-dialogue: only the first N conversations")
    models.add_argument("--ratings", help="eval-dialogue: turn ratings (sensible/specific) to report SSA from")
    models.add_argument(
        "--adapter-out",
        help="finetune-generator: folder for the LoRA adapter (default: the shipped models/data/generator_adapter)",
    )
    models.add_argument("--labels", help="rated candidates for fit-selector (default: the shipped labels)")
    _add(sub, "settings", "print every setting, its variable and value", _settings)
    analytics = _add(sub, "analytics", "windowed analytics over every partition (last hour, last week)", _analytics)
    analytics.add_argument("--json", action="store_true", help="the whole report as JSON, with every window")
    _add(sub, "gateway", "the HTTP gateway for platforms, and the web chat at /chat", _gateway)
    contract = _add(
        sub, "contract", "write the wire contract (JSON Schemas, AsyncAPI, OpenAPI) under schemas/", _contract
    )
    contract.add_argument("--check", action="store_true", help="only check that the files are up to date")
    # `banter bench --help` lists its options: they belong to benchmarks.bench, so this parser takes them all as is
    bench = sub.add_parser(
        "bench", help="the pipeline under load: reports/bench.{md,json,png}", add_help=False, prefix_chars="+"
    )
    bench.add_argument("options", nargs="*")
    bench.set_defaults(run=_bench)
    return parser


def _add(
    sub: argparse._SubParsersAction, name: str, help_: str, run: Callable[[argparse.Namespace, Settings], int | None]
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_, description=help_)
    parser.set_defaults(run=run)
    return parser


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams import commands

    return commands.run_worker(settings)


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    from streams import commands

    return commands.broker(args.action, settings)


def _send(args: argparse.Namespace, settings: Settings) -> int:
    from streams import commands

    return commands.send(settings, args.text, args.conversation, args.user, args.platform, args.timeout)


def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from streams import commands

    return commands.chat(settings, args.conversation)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams import demo

    return demo.run(settings)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    from streams import commands

    return commands.models(args.action, settings, args)


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    from streams.process import ROOT

    sys.path.append(str(ROOT))  # benchmarks/ lives in the checkout, not in the installed package
    from benchmarks.bench import main

    return main(args.options)


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    from streams import gateway

    return gateway.run(settings, progress)


def _contract(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from schemas import contract

    root = Path(contract.__file__).parent
    stale = contract.stale(root) if args.check else contract.write(root)
    for path in stale:
        progress(f"{'out of date' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


def _analytics(args: argparse.Namespace, settings: Settings) -> int:
    from streams import analytics

    return analytics.run(settings, args.json)


def _settings(args: argparse.Namespace, settings: Settings) -> int:
    for env, value, doc in settings.describe():
        print(f"{env:34} {value:24} {doc}")
    return 0
