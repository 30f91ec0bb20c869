"""benchmarks/recipes.py: the validation curve read from trainer_state.json, and the table of a recipe run (the
recipes themselves are run with `python benchmarks/recipes.py --budget ...`; their results are in
benchmarks/results/recipes_<budget>.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def recipes(monkeypatch):
    # benchmarks/ is a folder of scripts, not a package: import its module the way the scripts do
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import recipes

    return recipes


def test_curve_maps_steps_to_training_seconds(recipes, tmp_path):
    history = [{"loss": 1.0, "step": 50}, {"eval_f1": 0.5, "step": 100}, {"eval_f1": 0.7, "step": 200},
               {"train_runtime": 40.0, "step": 200}]
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 200, "log_history": history}))
    # 40 s for 200 steps: an evaluation at step 100 is at 20 s of training
    assert recipes.curve(tmp_path, "f1") == [(20.0, 0.5), (40.0, 0.7)]
    assert recipes.curve(tmp_path, "accuracy") == []


def test_every_recipe_names_known_tasks_and_a_budget(recipes):
    for budget, recipe in recipes.RECIPES.items():
        assert recipe["pretrain_seconds"] > 0 and recipe["finetune_seconds"] > 0, budget
        for system, (tasks, args) in recipe["systems"].items():
            assert set(tasks) <= set(recipes.BUILTIN), system
            # a pretrained system starts from the shared run; a scratch one names its size
            assert (recipes.PRETRAINED in args) != ("--preset" in args), system


def test_table_puts_the_classical_rows_first_and_matches_runs(recipes, tmp_path):
    reference = tmp_path / "chinese_tasks.json"
    reference.write_text(json.dumps([
        {"task": "cws", "system": "CRF", "metrics": {"f1": 0.968}, "cpu_seconds": {"train": 192.0}, "model_size_bytes": 34_200_000},
    ]))
    row = {"task": "cws", "system": "hf_charlm tiny (2 CPU cores recipe)", "metrics": {"f1": 0.95},
           "validation_metrics": {"f1": 0.94}, "model_size_bytes": 5_600_000,
           "command": "python scripts/finetune_token_classification.py --output_dir w/cws--tiny --overwrite_output_dir true"}
    report = {"where": "2 CPU cores", "started": "s", "finished": "f", "command": "c", "cpu_count": 2,
              "load_average_start": [0.5, 0.5, 0.5], "rows": [row], "runs": {"cws--tiny": {"steps": 10, "wall_s": 60.0, "cpu_s": 100.0}}}
    recipes.write_table(report, tmp_path / "t.md", reference)
    lines = [line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("| cws")]
    assert lines == ["| cws | CRF | f1 0.9680 | - | - | - | 192 (train) | 34.2 MB |",
                     "| cws | hf_charlm tiny (2 CPU cores recipe) | f1 0.9500 | 0.9400 | 10 | 60 | 100 | 5.6 MB |"]


def test_table_shows_early_stopped_steps_and_unrecorded_cpu_time(recipes, tmp_path):
    row = {"task": "sentiment", "system": "hf_charlm tiny, merged run", "metrics": {"accuracy": 0.84},
           "validation_metrics": {"accuracy": 0.86}, "model_size_bytes": 39_600_000,
           "command": "python x.py --output_dir outputs/s13/sent --overwrite_output_dir true"}
    report = {"where": "w", "started": "s", "finished": "f", "command": "c", "cpu_count": 2,
              "load_average_start": [0.5, 0.5, 0.5], "rows": [row],
              "runs": {"s13/sent": {"steps": 860, "trained_steps": 642, "wall_s": 1211.0, "cpu_s": None}}}
    recipes.write_table(report, tmp_path / "t.md", tmp_path / "none.json")
    lines = [line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("| sentiment")]
    assert lines == ["| sentiment | hf_charlm tiny, merged run | accuracy 0.8400 | 0.8600 | 642 of 860 | 1211 | - | 39.6 MB |"]
    # a row whose run is keyed by another folder: a message naming the row, not a bare StopIteration
    report["runs"] = {"sent": report["runs"]["s13/sent"]}
    report["rows"][0]["command"] = "python x.py --output_dir outputs/s14/other --overwrite_output_dir true"
    with pytest.raises(SystemExit, match="hf_charlm tiny, merged run"):
        recipes.write_table(report, tmp_path / "t.md", tmp_path / "none.json")


def run_recipes(*args: str, cwd: Path) -> "subprocess.CompletedProcess[str]":
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(BENCHMARKS / "recipes.py"), *args], cwd=cwd, capture_output=True, text=True)


def test_pretrain_only_refuses_a_pretrained_folder(tmp_path):
    proc = run_recipes("--budget", "cpu", "--pretrain_only", "--pretrained", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "--pretrain_only runs the pretraining: it cannot start from --pretrained" in proc.stderr


@pytest.mark.slow
def test_pretrain_only_runs_the_shared_pretraining_and_no_fine_tuning(tmp_path):
    proc = run_recipes("--budget", "cpu", "--pretrain_only", "--scale", "0.003", "--max_samples", "64", "--probe_steps", "4",
                       "--workdir", str(tmp_path / "work"), "--output_dir", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "recipes_cpu.json").read_text())
    pretrained = tmp_path / "work" / "cpu" / "pretrain"
    assert report["rows"] == [] and report["runs"] == {}
    assert report["pretrain"]["steps"] >= 4 and f"--max_steps {report['pretrain']['steps']}" in report["pretrain"]["command"]
    assert json.loads((pretrained / "config.json").read_text())["architectures"] == ["CharLMForMaskedLM"]
    assert (pretrained / "model.safetensors").is_file()
    assert not [p for p in (tmp_path / "work" / "cpu").iterdir() if p.name not in ("pretrain", "pretrain.log", "probe")]


def test_best_rows_choose_on_validation_not_test(recipes):
    def row(task, validation, test, curve=((10.0, 0.5),)):
        metric = recipes.MAIN[task]
        return {"task": task, "system": f"s{validation}", "metrics": {metric: test},
                "validation_metrics": {metric: validation}, "curve": list(curve)}

    rows = [row("cws", 0.96, 0.97), row("cws", 0.962, 0.968), row("cws", 0.99, 0.99, curve=()),
            row("sentiment", 0.86, 0.84), row("ner", 0.95, 0.96) | {"validation_metrics": None}]
    best = recipes.best_rows({"rows": rows})
    # the higher validation wins over the higher test; a row without a curve or a validation score is not drawn
    assert {task: r["system"] for task, r in best.items()} == {"cws": "s0.962", "sentiment": "s0.86"}
    # an ensemble has no curve of its own: drawn by its members' curves, chosen by its own validation score
    ensemble = row("cws", 0.965, 0.971, curve=()) | {"member_curves": [[(10.0, 0.5)], [(12.0, 0.6)]]}
    assert recipes.best_rows({"rows": rows + [ensemble]})["cws"] is ensemble


def test_runs_side_by_side_are_each_timed_at_their_own_end(recipes, tmp_path):
    import sys

    # the long run is launched first: a run that ends before it must not be timed at its end
    cmds = {"long": [sys.executable, "-c", "import time; time.sleep(2.0)"],
            "short": [sys.executable, "-c", "import time; time.sleep(0.1)"]}
    costs = recipes.run_all(cmds, tmp_path, True, {})
    assert list(costs) == ["long", "short"]
    assert costs["long"]["wall_s"] >= 2.0 and costs["short"]["wall_s"] < 1.5
    with pytest.raises(SystemExit, match="failed \\(3\\):\nbroken"):
        recipes.run_all({"fails": [sys.executable, "-c", "import sys; print('broken'); sys.exit(3)"]}, tmp_path, True, {})
