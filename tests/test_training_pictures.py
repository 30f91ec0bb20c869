"""Training curves and experiment trackers, on short real runs of the scripts: the picture drawn from
trainer_state.json into the output folder and the model card, `scripts/plot_training.py`, and `--report_to
tensorboard` / `--report_to trackio` (offline: trackio writes to its local folder) recording the same numbers."""

from __future__ import annotations

import importlib.util
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_script_in_process

ROOT = Path(__file__).resolve().parents[1]
TINY = "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64,max_position_embeddings=64"
CARD_LINE = "![Loss and metrics during training](training_curves.png)"

matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[plots]')")


def run(script: str, args: list[str], **env_changes: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), **env_changes}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def logged(out: Path, key: str) -> list[tuple[int, float]]:
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return [(e["step"], e[key]) for e in history if key in e]


def check_picture(out: Path) -> None:
    from matplotlib.image import imread

    pixels = imread(out / "training_curves.png")
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # lines and text, not a blank canvas
    assert CARD_LINE in (out / "README.md").read_text(encoding="utf-8")


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard is not installed")
def test_finetune_writes_curves_and_tensorboard_events(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hf_charlm.plotting import training_curves

    out = tmp_path / "sentiment"
    run("finetune_sequence_classification.py", [
        "--config_overrides", TINY, "--output_dir", str(out), "--max_train_samples", "96", "--max_eval_samples", "32",
        "--max_test_samples", "16", "--per_device_train_batch_size", "16", "--num_train_epochs", "2",
        "--logging_steps", "2", "--disable_tqdm", "true", "--learning_rate", "5e-3", "--report_to", "tensorboard"])
    check_picture(out)
    state = json.loads((out / "trainer_state.json").read_text())
    series = training_curves(state["log_history"])
    assert series["loss"] == logged(out, "loss") and len(series["loss"]) == 6  # 12 steps, one point every 2
    assert [s for s, _ in series["eval_accuracy"]] == [6, 12, 12]  # each epoch, then the final evaluation
    # TensorBoard got the same training losses, under runs/ (which push_folder leaves out)
    (events,) = {p.parent for p in (out / "runs").rglob("events.out.tfevents.*")}
    board = EventAccumulator(str(events))
    board.Reload()
    assert [(e.step, round(e.value, 5)) for e in board.Scalars("train/loss")] == [
        (s, round(v, 5)) for s, v in logged(out, "loss")]
    assert "eval/accuracy" in board.Tags()["scalars"]


@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="trackio is not installed")
def test_pretrain_writes_curves_and_trackio_logs_offline(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("\n".join(f"第{i}句话：今天天气很好，我们去公园散步。" for i in range(120)) + "\n", encoding="utf-8")
    out, trackio_dir = tmp_path / "lm", tmp_path / "trackio"
    run("pretrain.py", [
        "--train_file", str(train), "--output_dir", str(out), "--config_overrides", TINY, "--block_size", "32",
        "--per_device_train_batch_size", "8", "--max_steps", "8", "--eval_steps", "4", "--save_steps", "8",
        "--logging_steps", "2", "--warmup_steps", "1", "--sample_max_new_tokens", "4", "--disable_tqdm", "true",
        "--report_to", "trackio", "--project", "charlm-test", "--run_name", "tiny"],
        TRACKIO_DIR=str(trackio_dir), HF_HUB_DISABLE_TELEMETRY="1")
    check_picture(out)
    assert [s for s, _ in logged(out, "eval_loss")] == [4, 8]
    # trackio kept everything on this machine: one SQLite database for the project, with the logged losses
    (database,) = list(trackio_dir.glob("charlm-test*.db"))
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        assert "metrics" in tables
        rows = [json.loads(m) for (m,) in db.execute("select metrics from metrics order by step")]
    tracked = [(r["train/global_step"], round(r["train/loss"], 5)) for r in rows if "train/loss" in r]
    assert tracked == [(s, round(v, 5)) for s, v in logged(out, "loss")] and len(tracked) == 4


def test_plot_training_script(tmp_path, capsys):
    script = ROOT / "scripts" / "plot_training.py"
    # a run stopped after its first checkpoint: the checkpoint's state is drawn
    checkpoint = tmp_path / "run" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    history = [{"step": 2, "loss": 3.0, "learning_rate": 1e-3}, {"step": 4, "loss": 2.5, "learning_rate": 5e-4},
               {"step": 4, "eval_loss": 2.7, "eval_f1": 0.4, "eval_runtime": 1.0}]
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 4, "log_history": history}))
    code, _ = run_script_in_process(script, [str(tmp_path / "run")], capsys)
    assert code == 0 and (tmp_path / "run" / "training_curves.png").is_file()
    from hf_charlm.plotting import training_curves

    assert training_curves(history) == {"loss": [(2, 3.0), (4, 2.5)], "learning_rate": [(2, 1e-3), (4, 5e-4)],
                                        "eval_loss": [(4, 2.7)], "eval_f1": [(4, 0.4)]}
    # nothing to draw, or no state at all: exit 2 and one line saying why, nothing written
    (tmp_path / "empty").mkdir()
    code, err = run_script_in_process(script, [str(tmp_path / "empty")], capsys)
    assert code == 2 and "no trainer_state.json" in err and not (tmp_path / "empty" / "training_curves.png").exists()
    (tmp_path / "quiet").mkdir()
    (tmp_path / "quiet" / "trainer_state.json").write_text(json.dumps({"global_step": 1, "log_history": [{"step": 1}]}))
    code, err = run_script_in_process(script, [str(tmp_path / "quiet")], capsys)
    assert code == 2 and "logged no loss or metric" in err
