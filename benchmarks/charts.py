"""Draw the benchmark results as charts: PNGs next to the JSON files they come from.

    python benchmarks/charts.py                      # reads benchmarks/results/*.json, writes benchmarks/results/*.png

Reads whatever results exist and draws what it recognises, by the shape of the rows, not the file name:
- task rows (`system`, `metrics`, `main_metric`, `cpu_seconds`; chinese_tasks.json, and seq2seq_tasks.json /
  correction.json when they exist): the main score against CPU seconds, one panel per task (log CPU axis);
- variant rows (`variant`, `validation_*`; masking_schemes.json): the validation score per variant, with its
  pretraining and fine-tuning CPU seconds;
- rows with a `ratio` (pretrain_throughput*.json, *_speed.json): the ratio per row, 1.0 marked, with the two
  throughputs when the rows name them.
A file of another shape is listed as skipped. Nothing is measured here: the numbers are the JSON's.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SKIP_FILES = {"charlm_rows.json"}  # rows already merged into chinese_tasks.json by its --extra_results


def _rows(data) -> list[dict]:
    """The list of row dicts in a result file: the file itself, or its first list-of-dicts value."""
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    if isinstance(data, dict):
        for value in data.values():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                return value
    return []


def _short(system: str, width: int = 46) -> str:
    name = system.split(" (")[0].split(", ")[0].strip()
    detail = system[len(name):].strip(" ,")
    if "hf_charlm" in name and detail.startswith("("):  # keep what tells the hf_charlm rows apart
        name += " " + detail.split(",")[0] + ")"
    return name if len(name) <= width else name[: width - 1] + "…"


def _cpu(row: dict) -> float | None:
    seconds = row.get("cpu_seconds")
    if isinstance(seconds, (int, float)):
        return float(seconds)
    if isinstance(seconds, dict):
        values = [v for v in seconds.values() if isinstance(v, (int, float))]
        return float(sum(values)) if values else None
    return None


def chart_tasks(rows: list[dict], title: str, out: Path) -> Path | None:
    """Main score against CPU seconds (load + train + test, as recorded), one panel per task and dataset."""
    groups: dict[str, list[tuple[float, float, str]]] = {}
    metric_of: dict[str, str] = {}
    for row in rows:
        metric = row.get("main_metric")
        score = (row.get("metrics") or {}).get(metric)
        cpu = _cpu(row)
        if not isinstance(score, (int, float)) or cpu is None or cpu <= 0:
            continue
        key = f"{row.get('task', '?')}: {row.get('dataset', '')} {row.get('split', '')}".strip()
        groups.setdefault(key, []).append((cpu, float(score), _short(str(row.get("system", "?")))))
        metric_of[key] = metric
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.4), squeeze=False)
    for ax, (key, points) in zip(axes.flat, groups.items()):
        for k, (cpu, score, name) in enumerate(sorted(points)):
            ours = "hf_charlm" in name
            ax.scatter(cpu, score, s=40, marker="o" if ours else "s", color="C0" if ours else "C1", zorder=3)
            ax.annotate(name, (cpu, score), textcoords="offset points", xytext=(6, 5 if k % 2 else -11), fontsize=7)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # labels on the decades only
        ax.set_xlabel("CPU seconds (as recorded: train + test)")
        ax.set_ylabel(metric_of[key])
        ax.set_title(key, fontsize=10)
        ax.grid(alpha=0.3, which="both")
        low = min(p[1] for p in points)
        ax.set_ylim(max(0.0, low - 0.05), min(1.0, max(p[1] for p in points) + 0.03) if low <= 1 else None)
        xs = [p[0] for p in points]
        ax.set_xlim(min(xs) / 2, max(xs) * 12)  # room for the labels on the right
    fig.suptitle(f"{title}: score against CPU seconds (■ baselines, ● hf_charlm)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def chart_variants(rows: list[dict], title: str, out: Path) -> Path | None:
    """The validation score of each variant, beside its CPU seconds (pretraining and fine-tuning)."""
    rows = [r for r in rows if "variant" in r]
    scores = sorted({k for r in rows for k in r if k.startswith("validation_") and isinstance(r[k], (int, float))})
    main = "validation_f1" if "validation_f1" in scores else (scores[0] if scores else None)
    if not rows or main is None:
        return None
    names = [str(r["variant"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    values = [r.get(main, math.nan) for r in rows]
    bars = left.bar(names, values, color="C0")
    left.bar_label(bars, fmt="%.4f", fontsize=8)
    left.set_ylim(max(0.0, min(values) - 0.05), min(1.0, max(values) + 0.02))
    left.set_ylabel(main.replace("_", " "))
    left.set_title(f"{rows[0].get('task', '')} {main.replace('_', ' ')}".strip(), fontsize=10)
    cpu_keys = [k for k in ("pretrain_cpu_s", "finetune_cpu_s") if any(k in r for r in rows)]
    bottom = [0.0] * len(rows)
    for k, key in enumerate(cpu_keys):
        part = [float(r.get(key) or 0) for r in rows]
        right.bar(names, part, bottom=bottom, color=f"C{k + 1}", label=key.replace("_cpu_s", ""))
        bottom = [b + p for b, p in zip(bottom, part)]
    right.set_ylabel("CPU seconds")
    right.set_title("CPU seconds (as recorded; the machine was shared)", fontsize=10)
    if cpu_keys:
        right.legend(fontsize=8)
    return _save_bar_figure(fig, (left, right), title, out)


def _save_bar_figure(fig, axes, title: str, out: Path) -> Path:
    """The common end of the bar charts: light y grid, small x labels, the title, saved as PNG and closed."""
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def chart_ratios(rows: list[dict], title: str, out: Path) -> Path | None:
    """Each row's `ratio` as a bar (1.0 marked), and the two throughputs it divides when the row names them."""
    rows = [r for r in rows if isinstance(r.get("ratio"), (int, float))]
    if not rows:
        return None

    def label(row: dict) -> str:
        parts = [str(v) for k, v in row.items() if isinstance(v, str) and k not in ("command", "notes")][:2]
        return " ".join(parts) or "?"

    rates = [k for k in rows[0] if k.endswith("_per_s") and all(isinstance(r.get(k), (int, float)) for r in rows)]
    fig, axes = plt.subplots(1, 2 if rates else 1, figsize=(10 if rates else 5.5, 4), squeeze=False)
    names = [label(r) for r in rows]
    bars = axes[0, 0].bar(names, [r["ratio"] for r in rows], color=["C2" if r["ratio"] >= 1 else "C3" for r in rows])
    axes[0, 0].bar_label(bars, fmt="%.2fx", fontsize=8)
    axes[0, 0].axhline(1.0, color="black", linewidth=0.8)
    axes[0, 0].set_ylabel("ratio")
    axes[0, 0].set_title("ratio" + (f" = {rates[0]} / {rates[1]}" if len(rates) == 2 else ""), fontsize=9)
    if rates:
        ax = axes[0, 1]
        width = 0.8 / len(rates)
        for k, key in enumerate(rates):
            xs = [i + (k - (len(rates) - 1) / 2) * width for i in range(len(rows))]
            ax.bar(xs, [r[key] for r in rows], width=width, label=key.replace("_", " "))
        ax.set_xticks(range(len(rows)), names)
        ax.set_ylabel("per second")
        ax.legend(fontsize=8)
        ax.set_title("throughput", fontsize=9)
    return _save_bar_figure(fig, axes.flat, title, out)


def draw(path: Path, out_dir: Path) -> tuple[Path | None, str]:
    """Draws the chart of one result file; returns (the PNG or None, what was done)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        return None, f"skipped {path.name}: not readable JSON ({err})"
    rows = _rows(data)
    title = path.stem.replace("_", " ")
    command = data.get("command") if isinstance(data, dict) else None
    if command:
        title += f"\n{command[:110]}"
    out = out_dir / f"{path.stem}.png"
    for kind, chart in (("task scores against CPU seconds", chart_tasks), ("variant scores", chart_variants),
                        ("ratios", chart_ratios)):
        drawn = chart(rows, title, out)
        if drawn is not None:
            return drawn, f"{path.name} -> {drawn.name} ({kind}, {len(rows)} rows)"
    return None, f"skipped {path.name}: no chart for rows of this shape"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON files")
    parser.add_argument("--output_dir", type=Path, default=None, help="where the PNGs go (default: --results)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: {args.results}: no such folder", file=sys.stderr)
        return 2
    out_dir = args.output_dir or args.results
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [p for p in sorted(args.results.glob("*.json")) if p.name not in SKIP_FILES]
    if not files:
        print(f"error: {args.results} has no *.json results", file=sys.stderr)
        return 2
    for path in files:
        print(draw(path, out_dir)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
