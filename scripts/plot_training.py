"""Draw the loss and metric curves of a training run (from its trainer_state.json) as a PNG.

    python scripts/plot_training.py outputs/charlm-ner

writes `outputs/charlm-ner/training_curves.png` (or `--output PATH`). The folder's own trainer_state.json is read,
else that of its newest checkpoint. The training scripts draw the same picture at the end of a run and show it in the
model card. Exit status: 0 drawn; 2 no trainer state, nothing logged to draw, or matplotlib missing.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="a training run's --output_dir (or a checkpoint)")
    parser.add_argument("--output", help="where to write the PNG (default: OUTPUT_DIR/training_curves.png)")
    args = parser.parse_args(argv)
    try:
        from hf_charlm.plotting import plot_training
    except ImportError as err:
        print(f"plot_training: {err}: pip install -e '.[plots]'", file=sys.stderr)
        return 2
    try:
        path = plot_training(args.output_dir, args.output)
    except ValueError as err:
        print(f"plot_training: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
