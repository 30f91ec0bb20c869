"""Training curves as a picture: the loss and metric curves of a Trainer run, read from its `trainer_state.json`
(the Trainer's `log_history`), drawn with matplotlib into a PNG. The training scripts call this at the end of a run
(`training.save_training_curves`) and the model card shows the picture; `scripts/plot_training.py` draws it for any
output folder.

May import the package, `matplotlib` (the `plots` extra) and `numpy`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display, and no GUI toolkit to find
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

CURVES_FILE = "training_curves.png"
# logged numbers that are not curves worth a panel: bookkeeping of each log line, and one-off end-of-run totals
SKIP = {"epoch", "step", "total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
        "train_loss", "grad_norm", "num_input_tokens_seen", "eval_runtime", "eval_samples_per_second",
        "eval_steps_per_second", "eval_samples", "eval_model_preparation_time", "eval_jit_compilation_time"}


def find_trainer_state(output_dir: str | Path) -> Path:
    """`output_dir/trainer_state.json`, else that of its newest checkpoint (a run stopped before its end)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        raise ValueError(f"{output_dir}: no such folder.")
    if (folder / "trainer_state.json").is_file():
        return folder / "trainer_state.json"
    checkpoints = sorted((p for p in folder.glob("checkpoint-*/trainer_state.json") if p.parent.name[11:].isdigit()),
                         key=lambda p: int(p.parent.name[11:]))
    if not checkpoints:
        raise ValueError(f"{output_dir}: no trainer_state.json (in the folder or a checkpoint-*/ in it); it is written "
                         "by the training scripts at the end of a run and in every checkpoint.")
    return checkpoints[-1]


def training_curves(log_history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """`{name: [(step, value), ...]}` for every finite number the run logged: "loss" (training), "eval_loss",
    each "eval_<metric>", "learning_rate"; the bookkeeping keys in `SKIP` are left out."""
    series: dict[str, list[tuple[int, float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        for key, value in entry.items():
            if key in SKIP or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            series.setdefault(key, []).append((int(step), float(value)))
    return series


def plot_training(output_dir: str | Path, output: str | Path | None = None) -> Path:
    """Draws the curves of the run in `output_dir` into `output` (default `output_dir/training_curves.png`): the
    training and validation loss in the first panel, then one panel per validation metric, then the learning rate.
    Raises `ValueError` when there is no trainer state or it logged nothing to draw."""
    state_path = find_trainer_state(output_dir)
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{state_path}: not JSON ({err}).") from err
    series = training_curves(state.get("log_history") or [])
    losses = [k for k in ("loss", "eval_loss") if k in series]
    metrics = sorted(k for k in series if k.startswith("eval_") and k != "eval_loss")
    panels = ([losses] if losses else []) + [[k] for k in metrics] + ([["learning_rate"]] if "learning_rate" in series else [])
    if not losses and not metrics:
        raise ValueError(f"{state_path}: the run logged no loss or metric to draw (raise --logging_steps' frequency?).")
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    names = {"loss": "training loss", "eval_loss": "validation loss", "learning_rate": "learning rate"}
    for ax, keys in zip(axes.flat, panels):
        for key in keys:
            steps, values = zip(*series[key])
            ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3,
                    label=names.get(key, key.removeprefix("eval_").replace("_", " ")))
        ax.set_xlabel("step")
        ax.set_title(" / ".join(names.get(k, "validation " + k.removeprefix("eval_").replace("_", " ")) for k in keys),
                     fontsize=10)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    title = Path(output_dir).resolve().name
    fig.suptitle(f"{title}: {state.get('global_step', '?')} steps", fontsize=11)
    fig.tight_layout()
    out = Path(output) if output else Path(output_dir) / CURVES_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


__all__ = ["CURVES_FILE", "find_trainer_state", "plot_training", "training_curves"]
