"""benchmarks/seq2seq_tasks.py: the Pinyin2Hanzi reading and the shared scoring on hand-computed cases (skipped
without the Pinyin2Hanzi package), bad arguments, and (slow) a whole run at a tiny budget with every system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "seq2seq_tasks.py"
sys.path.insert(0, str(ROOT / "benchmarks"))
import seq2seq_tasks  # noqa: E402


def bench(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(BENCH), *argv, "--workdir", str(tmp_path / "work"),
                           "--output_dir", str(tmp_path / "out")], cwd=ROOT, env=env, capture_output=True, text=True)


def test_scores_of_a_hand_computed_case():
    # 3 of the 4 reference characters right at their positions; one wrong character: CER 1/4
    result = seq2seq_tasks.scores("pinyin_to_hanzi", ["你好世界"], ["你好事界"])
    assert result["char_accuracy"] == 0.75 and result["cer"] == 0.25 and result["exact_match"] == 0.0
    # the English direction has no char_accuracy, and BLEU is tokenized 13a there
    assert "char_accuracy" not in seq2seq_tasks.scores("tatoeba_zh_en", ["I see."], ["I see."])
    assert seq2seq_tasks.scores("tatoeba_zh_en", ["I see the cat now."], ["I see the cat now."])["bleu"] == 100.0
    assert seq2seq_tasks.ceiling(["一二三四", "五六"], 3) == pytest.approx((2 + 2) / 6)


def test_pinyin2hanzi_reading_and_its_score():
    pytest.importorskip("Pinyin2Hanzi")
    # the DAG's best paths, read off the package (0.1.1): 你好 / 世界 are phrases of its dictionary
    assert seq2seq_tasks.pinyin2hanzi_convert("ni hao ， shi jie ！") == "你好，世界！"
    # digits and Latin letters are kept as they are; they split the syllables into two DAG runs
    assert seq2seq_tasks.pinyin2hanzi_convert("１ ９ ９ ８ nian") == "１９９８年"
    # pypinyin writes 学 as "xue", the package's table as "xve": without simplify_pinyin the syllable would be kept
    # as the three letters x u e and shift every later character of the sentence
    assert seq2seq_tasks.pinyin2hanzi_convert("xue xi") == "学习"
    assert seq2seq_tasks.pinyin2hanzi_convert("lve nv") == "略女"
    # scored by hand: 你好，世界！ against 你好，是界！ -> 5 of 6 positions, one substitution
    references = ["你好，世界！"]
    predictions = ["你好，是界！"]
    result = seq2seq_tasks.scores("pinyin_to_hanzi", references, predictions)
    assert result["char_accuracy"] == pytest.approx(5 / 6, abs=1e-4) and result["cer"] == pytest.approx(1 / 6, abs=1e-4)


@pytest.mark.parametrize("argv,needle", [
    (["--tasks", "pinyin"], "--tasks: unknown pinyin"),
    (["--systems", "gpt"], "--systems: unknown gpt"),
    (["--systems", "warm"], "--systems warm needs --warm_start"),
    (["--max_steps", "0"], "--max_steps must be >= 1"),
])
def test_bad_arguments_exit_2_and_write_nothing(argv, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(BENCH), *argv, "--output_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        seq2seq_tasks.main()
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in stderr, stderr[-1000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tiny_run_of_every_system(tmp_path):
    pytest.importorskip("Pinyin2Hanzi")
    proc = bench(["--tasks", "pinyin_to_hanzi,tatoeba_en_zh", "--systems", "transformer,lstm,marian,pinyin2hanzi",
                  "--max_steps", "3", "--batch_size", "4", "--max_train_samples", "64", "--max_test_samples", "4",
                  "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--intermediate_size", "64",
                  "--max_source_length", "64", "--max_target_length", "16"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "seq2seq_tasks.json").read_text())
    systems = [(r["task"], r["system"]) for r in report["results"]]
    assert systems == [
        ("pinyin_to_hanzi", "hf_charlm transformer"), ("pinyin_to_hanzi", "hf_charlm LSTM + additive attention"),
        ("pinyin_to_hanzi", "transformers MarianMTModel (scratch)"), ("pinyin_to_hanzi", "Pinyin2Hanzi DAG (path_num=1)"),
        ("tatoeba_en_zh", "hf_charlm transformer"), ("tatoeba_en_zh", "hf_charlm LSTM + additive attention"),
        ("tatoeba_en_zh", "transformers MarianMTModel (scratch)"),
    ]
    for r in report["results"]:
        assert r["num_examples"] == 4 and set(r["metrics"]) >= {"bleu", "chrf", "cer", "exact_match"}
        assert ("char_accuracy" in r["metrics"]) == (r["task"] == "pinyin_to_hanzi")
        if "Pinyin2Hanzi" not in r["system"]:
            assert r["train_steps"] == 3 and r["parameters"] > 0
    # the same size: Marian and the hf_charlm transformer within 10% of each other in parameters
    charlm, marian = report["results"][0]["parameters"], report["results"][2]["parameters"]
    assert abs(charlm - marian) / charlm < 0.1, (charlm, marian)
    # Pinyin2Hanzi's row is the conversion of the first 4 test sources, scored here again
    from hf_charlm.data import load_builtin

    test = load_builtin("pinyin_to_hanzi")["test"].select(range(4))
    expected = seq2seq_tasks.scores("pinyin_to_hanzi", test["target"],
                                    [seq2seq_tasks.pinyin2hanzi_convert(s) for s in test["source"]])
    assert report["results"][3]["metrics"] == expected
    table = (tmp_path / "out" / "seq2seq_tasks.md").read_text()
    assert "## pinyin_to_hanzi (test, first 4)" in table and "python benchmarks/seq2seq_tasks.py" in table
