"""The former name of `scripts/build_ensemble.py` (token classification only then), kept so that the commands recorded
in `benchmarks/results/` still run: the same arguments, the same folder."""

import os
import runpy
from pathlib import Path

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    runpy.run_path(str(Path(__file__).with_name("build_ensemble.py")), run_name="__main__")
