"""python -m stripe_sandbox --port 12111 --webhook-url URL --webhook-secret whsec_..."""

import argparse
import logging
import sys
from dataclasses import fields

from aiohttp import web

from stripe_sandbox.app import create_app
from stripe_sandbox.config import Config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stripe_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        help="endpoint to deliver events to (repeatable)",
    )
    parser.add_argument(
        "--webhook-secret",
        default=None,
        help="whsec_... secret that signs deliveries to every --webhook-url",
    )
    for spec in fields(Config):
        flag = "--" + spec.name.replace("_", "-")
        if spec.type is bool:
            parser.add_argument(flag, action="store_true", default=None)
        else:
            parser.add_argument(flag, default=None, metavar=spec.name.upper())
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="stripe-sandbox %(levelname)s %(message)s")
    config = Config()
    try:
        config.update(
            {
                f.name: getattr(args, f.name)
                for f in fields(Config)
                if getattr(args, f.name) is not None
            }
        )
    except ValueError as exc:
        print(f"stripe_sandbox: {exc}", file=sys.stderr)
        return 2
    if args.webhook_url and not (args.webhook_secret or "").startswith("whsec_"):
        print("stripe_sandbox: --webhook-url needs --webhook-secret whsec_...", file=sys.stderr)
        return 2
    endpoints = [(url, args.webhook_secret) for url in args.webhook_url]
    app = create_app(config, endpoints)
    print(f"Stripe sandbox listening on http://{args.host}:{args.port}", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
