"""benchmarks/charts.py: draws what the result files hold, by their rows' shape, and skips what it does not know."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_script_in_process

pytest.importorskip("matplotlib", reason="matplotlib is not installed (pip install -e '.[plots]')")
ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "charts.py"


def test_charts_from_current_and_future_results(tmp_path, capsys):
    from matplotlib.image import imread

    results = tmp_path / "results"
    results.mkdir()
    for name in ("chinese_tasks.json", "masking_schemes.json", "pretrain_throughput.json"):
        shutil.copy(ROOT / "benchmarks" / "results" / name, results / name)
    # files later benchmarks will write: task rows (correction.json), ratio rows (*_speed.json), and one of no known shape
    (results / "correction.json").write_text(json.dumps([
        {"task": "csc", "dataset": "sighan2015", "split": "test", "system": "no-op baseline", "main_metric": "f1",
         "metrics": {"f1": 0.0}, "cpu_seconds": {"test": 0.1}},
        {"task": "csc", "dataset": "sighan2015", "split": "test", "system": "hf_charlm masked LM (fine-tuned)",
         "main_metric": "f1", "metrics": {"f1": 0.31}, "cpu_seconds": {"train": 900.0, "test": 12.0}}]))
    (results / "tokenizer_speed.json").write_text(json.dumps(
        {"command": "python benchmarks/tokenizer_speed.py", "rows": [{"case": "batch", "ratio": 3.2}, {"case": "one", "ratio": 0.9}]}))
    (results / "notes.json").write_text(json.dumps({"hello": "world"}))
    code, _ = run_script_in_process(SCRIPT, ["--results", str(results)], capsys)
    assert code == 0
    drawn = sorted(p.name for p in results.glob("*.png"))
    assert drawn == ["chinese_tasks.png", "correction.png", "masking_schemes.png", "pretrain_throughput.png",
                     "tokenizer_speed.png"]
    for name in drawn:
        pixels = imread(results / name)
        assert pixels.shape[1] > 400 and pixels[..., :3].std() > 0.05, name


def test_charts_lists_what_it_skips_and_needs_results(tmp_path, capsys):
    import runpy
    import sys

    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "odd.json").write_text("[1, 2]")
    old = sys.argv
    sys.argv = [str(SCRIPT), "--results", str(tmp_path)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(SCRIPT), run_name="__main__")
    finally:
        sys.argv = old
    out = capsys.readouterr().out.splitlines()
    assert exit_info.value.code == 0 and not list(tmp_path.glob("*.png"))
    assert out[0].startswith("skipped bad.json: not readable JSON") and out[1] == "skipped odd.json: no chart for rows of this shape"
    (tmp_path / "empty").mkdir()
    code, err = run_script_in_process(SCRIPT, ["--results", str(tmp_path / "empty")], capsys)
    assert code == 2 and err == f"error: {tmp_path / 'empty'} has no *.json results"
