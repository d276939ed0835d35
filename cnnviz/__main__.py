"""Command line: `python -m cnnviz warmup [--only PAGE] [--tiny] [--list]` and
`python -m cnnviz experiment NAME [--seeds 0,1,2] [--json]` and `python -m cnnviz worker [--burst]`.

`warmup` pre-trains the default run of every training page into the disk cache
(`$CNNVIZ_CACHE_DIR`, default `~/.cache/cnnviz`), printing progress and the time per model,
so that opening those pages in a lecture shows the results at once. Run it once before class,
or as a deployment step.

`experiment` runs one page's default experiment with the given seeds (its lesson module's
`run_default_experiment`) and prints its table and verdicts, or with `--json` the report's
`to_json()`: `{"variants": [{"name", "seeds", "test_accuracy", ...}], "verdicts": [{"factor",
"kind", "text", ...}]}`. An experiment whose module has no `run_default_experiment` yet is
reported as not available (exit status 2).

`worker` is an RQ worker for the classroom leaderboard (`cnnviz.classroom.workers.run_worker`) on
the Redis at `CNNVIZ_REDIS_URL`; without a usable Redis it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from types import ModuleType

from cnnviz import memory, settings, training
from cnnviz.classroom import workers
from cnnviz.errors import CnnvizError
from cnnviz.lessons import augmentation, lenet_vs_relu, transfer
from cnnviz.training import cache, warmup

# Experiment names on the command line -> the lesson module whose default experiment they run.
EXPERIMENTS: dict[str, ModuleType] = {"lenet-vs-relu": lenet_vs_relu, "transfer": transfer,
                                      "augmentation": augmentation}


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return training.seed_list([int(part) for part in text.split(",") if part.strip()])
    except (ValueError, CnnvizError) as error:
        raise argparse.ArgumentTypeError(f"seeds must be distinct whole numbers such as 0,1,2 ({error})") from None


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
    experiment = commands.add_parser(
        "experiment", help="run a page's default experiment with several seeds and print its verdicts",
        description="Train a page's default experiment once per seed (cached) and print every variant's "
                    "per-seed results and the verdicts computed from them.")
    experiment.add_argument("name", choices=sorted(EXPERIMENTS), metavar="NAME",
                            help=f"the experiment: {', '.join(EXPERIMENTS)}")
    experiment.add_argument("--seeds", type=_seeds, default=training.DEFAULT_SEEDS,
                            help="comma-separated seeds (default 0,1,2)")
    experiment.add_argument("--json", action="store_true", help="print the report as JSON")
    worker = commands.add_parser(
        "worker", help="train the classroom leaderboard's entries from the Redis queue (CNNVIZ_REDIS_URL)",
        description="An RQ worker for the leaderboard's trainings: takes jobs from the queue in the Redis "
                    "at CNNVIZ_REDIS_URL (the one the cnnviz servers share) and trains them here.")
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    return parser


def run_experiment(name: str, seeds: tuple[int, ...], *, as_json: bool) -> int:
    """Run the experiment `name` and print its report; 2 when it is not available or cannot run."""
    module = EXPERIMENTS[name]
    run = getattr(module, "run_default_experiment", None)
    if run is None:
        print(f"The {name} experiment is not available yet (no run_default_experiment in "
              f"{module.__name__}).", file=sys.stderr)
        return 2

    def progress(*_args: object) -> bool:
        return True

    try:
        # Libraries print to stdout (Keras' download messages): keep stdout for the report alone.
        with contextlib.redirect_stdout(sys.stderr):
            report = run(seeds, on_progress=progress)
    except CnnvizError as error:
        print(f"The {name} experiment cannot run: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2) if as_json else report.table_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    memory.before_tensorflow()  # As in app.py: the warm-up, experiments and workers train.
    if bad_settings := settings.problems():
        print("Invalid environment settings (fix them and run again):", *bad_settings, sep="\n  ", file=sys.stderr)
        return 2
    if args.command == "experiment":
        return run_experiment(args.name, args.seeds, as_json=args.json)
    if args.command == "worker":
        return workers.run_worker(settings.redis_url(), burst=args.burst)

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
    if reason := cache.unwritable_reason():
        print(f"Cannot store the warm-up's models: {reason}. Set CNNVIZ_CACHE_DIR to a folder this user "
              "can write; nothing was trained.", file=sys.stderr)
        return 2
    records = warmup.run_warmup(plan)
    print(warmup.summary(records))
    if failed := [record for record in records if not record.ok]:
        print(f"{len(failed)} of {len(records)} models are NOT ready:", *(f"{r.item.label}: {r.error or r.stopped_reason}"
              for r in failed), sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
