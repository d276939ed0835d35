"""Command line: `python -m cnnviz warmup [--only PAGE] [--tiny] [--list]`.

`warmup` pre-trains the default run of every training page into the disk cache
(`$CNNVIZ_CACHE_DIR`, default `~/.cache/cnnviz`), printing progress and the time per model,
so that opening those pages in a lecture shows the results at once. Run it once before class,
or as a deployment step.
"""

from __future__ import annotations

import argparse
import os
import sys

from cnnviz import training
from cnnviz.training import warmup


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cnnviz", description="cnnviz maintenance commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    warm = commands.add_parser(
        "warmup", help="pre-train every training page's default models into the disk cache",
        description="Pre-train the default configuration of every training page into the disk cache, "
                    "so that those pages show their results at once.")
    warm.add_argument("--only", action="append", choices=warmup.PAGES, metavar="PAGE",
                      help=f"only this page (repeatable): {', '.join(warmup.PAGES)}")
    warm.add_argument("--tiny", action="store_true",
                      help="tiny sizes (a few hundred images, one epoch): a smoke test for CI")
    warm.add_argument("--list", action="store_true", help="list the models and whether each is cached; train nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    try:
        plan = warmup.warmup_plan(args.only, tiny=args.tiny)
    except Exception as error:  # noqa: BLE001 - e.g. the dataset is unavailable: say so, no traceback.
        print(f"Cannot list the default models: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(f"Disk cache: {training.cache_dir()}")
    if args.list:
        for item in plan:
            cached = training.is_cached(item.config)
            print(f"{'cached ' if cached else 'missing'}  {warmup.PAGE_TITLES[item.page]}: {item.label} "
                  f"(config {item.config.key()[:8]})")
        return 0
    records = warmup.run_warmup(plan)
    print(warmup.summary(records))
    return 0 if all(record.ok for record in records) else 1


if __name__ == "__main__":
    sys.exit(main())
