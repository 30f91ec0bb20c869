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


def test_fusion_weights_read_per_component():
    assert seq2seq_tasks.fusion_weights("ngram=1;backward=0,0.5") == {"ngram": (1.0,), "backward": (0.0, 0.5)}
    assert seq2seq_tasks.fusion_weights("") == {}


def test_syllable_spans_and_pieces():
    source = "zai １ ９ nian ， wo"
    assert seq2seq_tasks.syllable_spans(source) == [(0, 3), (4, 5), (6, 7), (8, 12), (13, 14), (15, 17)]
    assert seq2seq_tasks.syllable_spans(" a  bc ") == [(1, 2), (4, 6)]
    # cut at spaces, each piece within the limit, nothing lost; a token longer than the limit stays whole
    pieces = seq2seq_tasks.syllable_pieces(source, 8)
    assert pieces == ["zai １ ９", "nian ，", "wo"] and " ".join(pieces) == source
    assert seq2seq_tasks.syllable_pieces("zhuang a", 3) == ["zhuang", "a"]


def test_tagger_reads_each_syllable_by_its_summed_log_probabilities_also_in_pieces():
    import torch

    from hf_charlm import CharLMConfig, CharLMForTokenClassification
    from hf_charlm.tokenization_charlm import train_char_tokenizer

    tokenizer = train_char_tokenizer(["abcdefghijklmnopqrstuvwxyz ，"])
    names = dict(enumerate("我们爱北京，"))
    config = CharLMConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=13, num_labels=len(names),
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = CharLMForTokenClassification(config).eval()
    short = "wo men ai"
    enc = tokenizer(short, return_tensors="pt")
    with torch.no_grad():
        logp = model(**enc).logits.log_softmax(-1)[0]
    # <s> at 0: "wo" is tokens 1-2, "men" 4-6, "ai" 8-9
    expected = "".join(names[int(logp[list(span)].sum(0).argmax())] for span in (range(1, 3), range(4, 7), range(8, 10)))
    assert seq2seq_tasks.tag_pinyin(model, tokenizer, [short], names, batch_size=2) == [expected]
    # longer than the 11 characters the positions leave: read in pieces, one character per syllable, and the
    # first piece is the short source alone
    long = "wo men ai bei jing ， wo men ai bei jing"
    pieces = seq2seq_tasks.syllable_pieces(long, 11)
    assert len(pieces) > 2 and pieces[0] == short
    tagged = seq2seq_tasks.tag_pinyin(model, tokenizer, [long, short], names, batch_size=3)
    assert len(tagged[0]) == 11 and tagged[0].startswith(expected) and tagged[1] == expected


@pytest.mark.parametrize("argv,needle", [
    (["--tasks", "pinyin"], "--tasks: unknown pinyin"),
    (["--systems", "gpt"], "--systems: unknown gpt"),
    (["--systems", "warm"], "--systems warm needs --warm_start"),
    (["--systems", "lm"], "--systems lm needs --lm"),
    (["--fuse", "ngram,kenlm"], "--fuse: unknown kenlm; choose from ngram, backward, tagger"),
    (["--fuse", "backward"], "--fuse backward needs --backward"),
    (["--decoder_beams", "0"], "--decoder_beams must be >= 1"),
    (["--fusion_weights", "kenlm=1"], "--fusion_weights: 'kenlm=1': expected COMPONENT=W[,W...]"),
    (["--fusion_weights", "ngram=one"], "--fusion_weights: 'ngram=one': the weights must be numbers"),
    (["--max_steps", "0"], "--max_steps must be >= 1"),
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--jobs", "4097"], "--jobs 4097: this process may run on"),
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
    proc = bench(["--tasks", "pinyin_to_hanzi,tatoeba_en_zh", "--systems", "transformer,lstm,marian,pinyin2hanzi,tagger,ngram",
                  "--max_steps", "3", "--batch_size", "4", "--max_train_samples", "64", "--max_test_samples", "4",
                  "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--intermediate_size", "64",
                  "--max_source_length", "64", "--max_target_length", "16"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "seq2seq_tasks.json").read_text())
    systems = [(r["task"], r["system"]) for r in report["results"]]
    # the n-gram row names the order it picked on validation
    assert systems[5][1] in {f"character {n}-gram (Kneser-Ney) + syllable table, beam {b}"
                             for n in (2, 3, 4) for b in (16, 32, 64, 128)}
    assert systems == [
        ("pinyin_to_hanzi", "hf_charlm transformer"), ("pinyin_to_hanzi", "hf_charlm LSTM + additive attention"),
        ("pinyin_to_hanzi", "transformers MarianMTModel (scratch)"), ("pinyin_to_hanzi", "Pinyin2Hanzi DAG (path_num=1)"),
        ("pinyin_to_hanzi", "hf_charlm transformer, one character per syllable (token classification)"),
        ("pinyin_to_hanzi", systems[5][1]),
        ("tatoeba_en_zh", "hf_charlm transformer"), ("tatoeba_en_zh", "hf_charlm LSTM + additive attention"),
        ("tatoeba_en_zh", "transformers MarianMTModel (scratch)"),
    ]
    for r in report["results"]:
        assert r["num_examples"] == 4 and set(r["metrics"]) >= {"bleu", "chrf", "cer", "exact_match"}
        assert ("char_accuracy" in r["metrics"]) == (r["task"] == "pinyin_to_hanzi")
        if "Pinyin2Hanzi" not in r["system"] and "gram" not in r["system"]:
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
    # the tagger writes exactly one character per pinyin token
    tagged = report["results"][4]["samples"]
    assert [len(t["prediction"]) for t in tagged] == [len(t["reference"]) for t in tagged]
    table = (tmp_path / "out" / "seq2seq_tasks.md").read_text()
    assert "## pinyin_to_hanzi (test, first 4)" in table and "python benchmarks/seq2seq_tasks.py" in table


@pytest.mark.slow
def test_jobs_run_each_row_on_its_own_core_and_merge_them_in_order(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores")
    proc = bench(["--tasks", "tatoeba_en_zh", "--systems", "transformer,marian,lstm", "--jobs", "2",
                  "--max_steps", "3", "--batch_size", "4", "--max_train_samples", "64", "--max_test_samples", "4",
                  "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--intermediate_size", "64",
                  "--max_source_length", "64", "--max_target_length", "16", "--tag", "par"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "seq2seq_tasks_par.json").read_text())
    assert [r["system"] for r in report["results"]] == [
        "hf_charlm transformer", "transformers MarianMTModel (scratch)", "hf_charlm LSTM + additive attention"]
    assert all(r["train_steps"] == 3 and r["num_examples"] == 4 for r in report["results"])
    placement = report["placement"]["core_of_row"]
    cores = sorted(os.sched_getaffinity(0))[:2]
    # the first two rows started at once on the two cores; the third took the core that came free
    assert placement["tatoeba_en_zh-transformer"] != placement["tatoeba_en_zh-marian"]
    assert set(placement.values()) <= set(cores) and len(placement) == 3
    # each row's own report (one task, one system, --jobs 1) is the row that was merged
    for key, merged in zip(placement, report["results"]):
        part = json.loads((tmp_path / "out" / "seq2seq_tasks_par_parts" / f"seq2seq_tasks_{key}.json").read_text())
        assert part["settings"]["jobs"] == 1 and part["results"] == [merged]
    table = (tmp_path / "out" / "seq2seq_tasks_par.md").read_text()
    assert "Rows ran 2 at a time" in table and "tatoeba_en_zh-marian on core" in table
