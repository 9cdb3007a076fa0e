"""`robot-rl keys generate --out DIR`: CURVE certificates for the learner and its actors."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="manage CURVE keys for encrypted, authenticated transport")
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    gen = actions.add_parser("generate", help="create learner and actor key pairs")
    gen.add_argument("--out", default="keys", help="folder for the key files (default: keys)")
    gen.add_argument("--force", action="store_true", help="replace existing keys")
    gen.set_defaults(func=generate)


def generate(args: argparse.Namespace) -> int:
    from robot_rl.transport import keys

    try:
        paths = keys.generate(args.out, force=args.force)
    except FileExistsError as exc:
        raise SystemExit(f"robot-rl keys: {exc}") from None
    print(f"learner secret key: {paths['learner_secret']}  (keep on the learner machine)")
    print(f"actor secret key:   {paths['actor_secret']}  (copy to each actor machine)")
    print(f"learner public key: {paths['learner_public']}  (copy to each actor machine)")
    print(f"admitted actors:    {paths['authorized']}/  (public keys the learner accepts)")
    print(f"use: --keys {args.out} on both `robot-rl learner` and `robot-rl actor`")
    return 0
