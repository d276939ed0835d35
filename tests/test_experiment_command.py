"""`python -m cnnviz experiment NAME --seeds ... [--json]`: what it calls and what it prints."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from cnnviz import __main__ as cli
from cnnviz import verdicts
from cnnviz.verdicts import ExperimentReport, VariantResult


def _report(seeds):
    a = VariantResult("A", tuple(seeds), (0.80, 0.82, 0.81), updates=360, test_images=1_000)
    b = VariantResult("B", tuple(seeds), (0.60, 0.62, 0.61), updates=360, test_images=1_000)
    verdict = verdicts.compare("optimizer", "A", a.test_accuracy, "B", b.test_accuracy, test_images=1_000)
    return ExperimentReport("demo", (a, b), (verdict,))


@pytest.fixture
def calls(monkeypatch):
    seen = []

    def run_default_experiment(seeds, *, on_progress=None):
        seen.append(tuple(seeds))
        print("Downloading data from somewhere")  # A library talking on stdout must not spoil --json.
        return _report(seeds)

    monkeypatch.setitem(cli.EXPERIMENTS, "lenet-vs-relu", SimpleNamespace(
        __name__="fake", run_default_experiment=run_default_experiment))
    return seen


def test_json_prints_the_report_of_the_chosen_seeds(calls, capsys):
    assert cli.main(["experiment", "lenet-vs-relu", "--seeds", "3,4,5", "--json"]) == 0
    assert calls == [(3, 4, 5)]
    printed = json.loads(capsys.readouterr().out)
    assert printed["variants"][0]["seeds"] == [3, 4, 5]
    assert printed["variants"][0]["test_accuracy"] == [0.80, 0.82, 0.81]
    assert [(v["factor"], v["kind"]) for v in printed["verdicts"]] == [("optimizer", "better")]


def test_without_json_it_prints_the_table_and_the_verdicts(calls, capsys):
    assert cli.main(["experiment", "lenet-vs-relu"]) == 0
    assert calls == [(0, 1, 2)]
    out = capsys.readouterr().out
    assert "80.0 82.0 81.0" in out and "[optimizer] better: A beats B" in out


def test_an_experiment_without_run_default_experiment_is_not_available(monkeypatch, capsys):
    monkeypatch.setitem(cli.EXPERIMENTS, "transfer", SimpleNamespace(__name__="cnnviz.lessons.transfer"))
    assert cli.main(["experiment", "transfer", "--seeds", "0,1,2"]) == 2
    assert "not available" in capsys.readouterr().err


def test_bad_seeds_and_names_are_refused(capsys):
    for argv in (["experiment", "lenet-vs-relu", "--seeds", "0,0"], ["experiment", "lenet-vs-relu", "--seeds", "a"],
                 ["experiment", "alexnet"]):
        with pytest.raises(SystemExit) as stopped:
            cli.main(argv)
        assert stopped.value.code == 2
    assert "seeds must be distinct whole numbers" in capsys.readouterr().err


def test_every_experiment_name_is_a_lesson_with_its_default_experiment():
    assert set(cli.EXPERIMENTS) == {"lenet-vs-relu", "transfer", "augmentation"}
    assert callable(cli.EXPERIMENTS["lenet-vs-relu"].run_default_experiment)
