"""`robot-rl chaos --config FILE --out runs/NAME`: train in the twin under a seeded schedule of
faults and report what survived (robot_rl.loop.chaos)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chaos",
        help="train in the twin while killing, stopping, starving and poisoning it; audit the data",
    )
    parser.add_argument(
        "--config", default=None, help="run config YAML (default: built-in defaults)"
    )
    parser.add_argument(
        "--out", required=True, help="folder for chaos/, baseline/ and chaos_report.json"
    )
    parser.add_argument("--faults", type=int, default=24, help="faults in the schedule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault schedule")
    parser.add_argument(
        "--gap", type=float, default=4.0, help="seconds between one fault's end and the next"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        help="seconds to run after the last fault (default: until the run's step budget)",
    )
    parser.add_argument(
        "--poison-messages", type=int, default=200, help="poisoned messages per poison fault"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the undisturbed run for comparison"
    )
    parser.add_argument(
        "--actors", type=int, default=None, help="number of actor processes (overrides num_actors)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from controllers.config import ConfigError
    from robot_rl.loop.chaos import ChaosConfig, run_chaos
    from robot_rl.loop.run_config import load_run_config

    try:
        cfg = load_run_config(args.config, {"num_actors": args.actors} if args.actors else None)
        chaos = ChaosConfig(
            faults=args.faults,
            seed=args.seed,
            gap_s=args.gap,
            settle_s=args.settle,
            poison_messages=args.poison_messages,
            baseline=not args.no_baseline,
        )
    except ConfigError as exc:
        raise SystemExit(f"robot-rl chaos: {exc}") from None
    try:
        report = run_chaos(cfg, chaos, args.out)
    except (FileExistsError, FileNotFoundError) as exc:
        raise SystemExit(f"robot-rl chaos: {exc}") from None
    print(json.dumps(report, indent=1))
    failed = report["messages"]["lost"] or report["messages"]["duplicated"]
    return 1 if failed or report["rows"]["duplicated"] or report["poison"]["rows_in_buffers"] else 0
