"""Sequence to sequence: the metrics on hand-computed cases, the labels the script trains on, short real runs of
scripts/finetune_seq2seq.py on the three built-in tasks (transformer from scratch), on run_translation-style local
files (LSTM with additive attention), warm-started from a causal LM and predicting without training; bad input
(exit 2, one `error:` line, nothing written); and the text2text-generation / translation pipelines against
`model.generate`."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, pipeline

from hf_charlm import CharLMConfig, CharLMForCausalLM, CharLMForConditionalGeneration, train_char_tokenizer
from hf_charlm.data import load_builtin
from hf_charlm.metrics import (
    bleu_tokenize_for,
    character_accuracy,
    character_error_rate,
    edit_distance,
    exact_match,
    seq2seq_compute_metrics,
    seq2seq_scores,
)
from hf_charlm.training import encode_seq2seq

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "finetune_seq2seq.py"
TINY = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,max_position_embeddings=128"
QUICK = ["--max_train_samples", "64", "--max_eval_samples", "16", "--max_test_samples", "16", "--max_steps", "4",
         "--predict_with_generate", "--max_target_length", "32", "--per_device_train_batch_size", "16",
         "--per_device_eval_batch_size", "16", "--eval_strategy", "no", "--disable_tqdm", "true", "--learning_rate", "5e-3"]
METRICS = ("bleu", "chrf", "cer", "exact_match")


def run(argv: list[str]) -> tuple[int, str, str]:
    """Runs the script's `__main__` in this process (no new interpreter); returns exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.argv
    sys.argv = [str(SCRIPT), *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(SCRIPT), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


def check_scores(results: dict, prefix: str, char_accuracy: bool) -> None:
    for key in METRICS:
        assert f"{prefix}_{key}" in results, (key, sorted(results))
    assert 0 <= results[f"{prefix}_bleu"] <= 100 and 0 <= results[f"{prefix}_chrf"] <= 100
    assert results[f"{prefix}_cer"] >= 0 and 0 <= results[f"{prefix}_exact_match"] <= 1
    assert (f"{prefix}_char_accuracy" in results) == char_accuracy
    if char_accuracy:
        assert 0 <= results[f"{prefix}_char_accuracy"] <= 1


def check_card(folder: Path, pipeline_tag: str = "text2text-generation") -> None:
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == pipeline_tag
    found = {(r.dataset_split, r.metric_type) for r in card.data.eval_results}
    for key in ("bleu", "chrf", "cer", "exact_match"):
        assert ("validation", key) in found and ("test", key) in found, (key, found)


# ---- metrics on hand-computed cases -------------------------------------------------------------------------


def test_edit_distance_and_character_error_rate():
    assert edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3 and edit_distance("abc", "abc") == 0
    assert edit_distance("中文字", "文字") == 1 and edit_distance("ab", "ba") == 2
    # corpus CER: (1 + 2) edits over 3 + 2 reference characters
    assert character_error_rate(["abc", "de"], ["abd", ""]) == pytest.approx(3 / 5)
    # a prediction longer than its reference: above 1
    assert character_error_rate(["a"], ["bcd"]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="2 references but 1 predictions"):
        character_error_rate(["a", "b"], ["a"])


def test_character_accuracy_and_exact_match():
    # 今=今, 天≠大, 好=好 (the extra 好 not counted); "ab" vs "b": a≠b, b missing -> 2 of 5
    assert character_accuracy(["今天好", "ab"], ["今大好好", "b"]) == pytest.approx(2 / 5)
    assert character_accuracy(["你好"], ["你好"]) == 1.0
    assert exact_match(["a ", "b"], ["a", "c"]) == 0.5


def test_bleu_chrf_and_the_tokenizer_choice():
    assert bleu_tokenize_for(["今天天气很好。"]) == "zh" and bleu_tokenize_for(["The cat sat."]) == "13a"
    same = seq2seq_scores(["今天天气很好。"], ["今天天气很好。"], char_accuracy=True)
    assert same["bleu"] == pytest.approx(100) and same["chrf"] == pytest.approx(100)
    assert same["cer"] == 0 and same["exact_match"] == 1 and same["char_accuracy"] == 1 and same["gen_len"] == 7
    # "zh" splits Chinese into characters: one wrong character of 6 still shares 1- to 3-grams; "13a" sees one
    # word and scores 0
    ref, hyp = ["今天天气很好"], ["今天天气很坏"]
    assert seq2seq_scores(ref, hyp)["bleu"] > 50
    assert seq2seq_scores(ref, hyp, tokenize="13a")["bleu"] == 0
    disjoint = seq2seq_scores(["abc"], ["xyz"])
    assert disjoint["bleu"] == 0 and disjoint["chrf"] == 0 and disjoint["cer"] == 1 and "char_accuracy" not in disjoint


def test_compute_metrics_decodes_generated_ids_with_padding():
    tok = train_char_tokenizer(["你好世界"])
    ids = tok(["你好", "世界"], add_special_tokens=False)["input_ids"]
    generated = np.array([[2, *ids[0], 3], [2, *ids[1][:1], -100, -100]])  # <s> ... </s>, -100 between batches
    scores = seq2seq_compute_metrics(tok, ["你好", "世界"], char_accuracy=True)((generated, None))
    assert scores["exact_match"] == 0.5 and scores["char_accuracy"] == pytest.approx(3 / 4)
    assert scores["cer"] == pytest.approx(1 / 4)


def test_labels_are_target_characters_then_eos_padded_with_minus_100():
    tok = train_char_tokenizer(["ni hao 你好吗"])
    enc = encode_seq2seq({"source": ["ni hao", "ni"], "target": ["你好吗", "你"]}, tok, 5, 3)
    assert tok.convert_ids_to_tokens(enc["input_ids"][0]) == ["<s>", "n", "i", " ", "h"]  # cut to 5, <s> counted
    assert tok.convert_ids_to_tokens(enc["labels"][0]) == ["你", "好", "</s>"]  # cut to 3, </s> kept, no <s>
    assert tok.convert_ids_to_tokens(enc["labels"][1]) == ["你", "</s>"]
    model = CharLMForConditionalGeneration(CharLMConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=32))
    batch = DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100)(
        [{k: v[i] for k, v in enc.items()} for i in range(2)])
    assert batch["labels"][1].tolist() == [enc["labels"][1][0], tok.eos_token_id, -100]
    assert batch["decoder_input_ids"][1].tolist() == [tok.bos_token_id, enc["labels"][1][0], tok.eos_token_id]


# ---- the script on the built-in tasks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pinyin_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s2s") / "pinyin"
    code, stdout, stderr = run(["--task_name", "pinyin_to_hanzi", "--config_overrides", TINY, "--output_dir", str(out), *QUICK])
    assert code == 0, stderr[-2000:]
    return out


def test_pinyin_to_hanzi_from_scratch(pinyin_dir):
    results = json.loads((pinyin_dir / "all_results.json").read_text())
    check_scores(results, "eval", char_accuracy=True)
    check_scores(results, "test", char_accuracy=True)
    assert results["train_steps"] == 4  # --max_steps
    lines = (pinyin_dir / "generated_predictions.txt").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 17 and lines[-1] == ""  # one line per test example
    records = [json.loads(line) for line in (pinyin_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    test = load_builtin("pinyin_to_hanzi")["test"]
    assert [r["reference"] for r in records] == test["target"][:16]
    assert records[0]["source_row"] == "pinyin_to_hanzi test[0]"
    check_card(pinyin_dir)
    config = json.loads((pinyin_dir / "config.json").read_text())
    assert config["is_encoder_decoder"] and config["architectures"] == ["CharLMForConditionalGeneration"]
    generation = json.loads((pinyin_dir / "generation_config.json").read_text())
    assert generation["max_length"] == 33 and generation["decoder_start_token_id"] == 2


# pinyin_to_hanzi (the fixture above) and tatoeba_en_zh run by default; the other direction is the same code path
@pytest.mark.parametrize("task", ["tatoeba_en_zh", pytest.param("tatoeba_zh_en", marks=pytest.mark.slow)])
def test_tatoeba_from_scratch(task, tmp_path, caplog):
    out = tmp_path / task
    with caplog.at_level(logging.WARNING, logger="finetune_seq2seq"):
        code, stdout, stderr = run(["--task_name", task, "--config_overrides", TINY, "--output_dir", str(out),
                                    *QUICK, "--max_source_length", "5", "--max_target_length", "16"])
    assert code == 0, stderr[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    check_scores(results, "eval", char_accuracy=False)
    check_scores(results, "test", char_accuracy=False)
    assert len((out / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()) == 16
    check_card(out)
    # a cut is announced with its count, computed here independently
    train = load_builtin(task)["train"].select(range(64))
    longer = sum(len(s) + 1 > 5 for s in train["source"])
    assert longer > 0
    assert f"{longer} of 64 train sources are longer than 5 tokens" in caplog.text
    # the sample printout: source / reference / prediction
    assert "source:" in stdout and "reference:" in stdout and "prediction:" in stdout


def test_max_train_minutes_ends_training_early(tmp_path, caplog):
    out = tmp_path / "budget"
    with caplog.at_level(logging.WARNING, logger="finetune_seq2seq"):
        # a budget of 6 ms runs out during the first step: training ends after it, not after 50
        code, _, stderr = run(["--task_name", "tatoeba_zh_en", "--config_overrides", TINY, "--output_dir", str(out), *QUICK,
                               "--max_steps", "50", "--max_train_minutes", "0.0001", "--do_train", "--max_target_length", "16"])
    assert code == 0, stderr[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_steps"] == 1
    assert "--max_train_minutes=0.0001: training stops after step 1 of 50" in caplog.text
    assert (out / "model.safetensors").is_file()


# ---- local files, LSTM with additive attention -----------------------------------------------------------------


def test_lstm_additive_on_translation_files(tmp_path):
    data = load_builtin("tatoeba_en_zh")
    for split, n in (("train", 48), ("validation", 8), ("test", 8)):
        with open(tmp_path / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in data[split].select(range(n)):
                f.write(json.dumps({"translation": row["translation"]}, ensure_ascii=False) + "\n")
    out = tmp_path / "lstm"
    code, stdout, stderr = run([
        "--train_file", str(tmp_path / "train.jsonl"), "--validation_file", str(tmp_path / "validation.jsonl"),
        "--test_file", str(tmp_path / "test.jsonl"), "--source_lang", "zh", "--target_lang", "en",
        "--backbone", "lstm", "--config_overrides", "hidden_size=32,num_hidden_layers=1,attention_type=additive",
        "--output_dir", str(out), *QUICK,
    ])
    assert code == 0, stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "lstm" and config["attention_type"] == "additive" and config["is_encoder_decoder"]
    results = json.loads((out / "all_results.json").read_text())
    check_scores(results, "test", char_accuracy=False)
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["reference"] for r in records] == [t["en"] for t in data["test"].select(range(8))["translation"]]
    assert records[2]["source_row"] == "test.jsonl line 3"
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "attention_type" in card and "- zh\n- en" in card


# ---- warm start from a causal LM; evaluation and prediction without training ------------------------------------


def test_warm_start_from_a_causal_lm_reports_the_new_tensors(tmp_path, caplog):
    tok = train_char_tokenizer(list(load_builtin("tatoeba_en_zh")["train"].select(range(200))["source"]))
    causal = CharLMForCausalLM(CharLMConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=64, max_position_embeddings=128, pad_token_id=0, bos_token_id=2, eos_token_id=3))
    causal.save_pretrained(tmp_path / "causal")
    tok.save_pretrained(tmp_path / "causal")
    out = tmp_path / "warm"
    with caplog.at_level(logging.INFO, logger="finetune_seq2seq"):
        code, _, stderr = run(["--task_name", "tatoeba_en_zh", "--model_name_or_path", str(tmp_path / "causal"),
                               "--output_dir", str(out), *QUICK, "--do_train", "--max_steps", "1"])
    assert code == 0, stderr[-2000:]
    report = next(r.getMessage() for r in caplog.records if "warm start" in r.getMessage())
    new = report.split(": ", 2)[-1].split(", ")
    # one decoder layer: its cross-attention (norm, q, k, v, o) is all that is new
    assert len(new) == 5 and all(name.startswith("model.decoder.layers.0.cross_attn") for name in new), new
    assert "model.decoder.layers.0.self_attn.q_proj.weight" not in new  # copied from the causal LM
    assert json.loads((out / "config.json").read_text())["is_encoder_decoder"]
    assert "warm start from a causal LM" in (out / "README.md").read_text(encoding="utf-8")
    assert not (out / "generated_predictions.txt").exists()  # --do_train alone: no prediction


def test_predict_without_training_from_the_saved_model(pinyin_dir, tmp_path):
    out = tmp_path / "predict"
    code, _, stderr = run(["--model_name_or_path", str(pinyin_dir), "--task_name", "pinyin_to_hanzi", "--do_predict",
                           "--max_test_samples", "4", "--num_beams", "2", "--max_target_length", "32",
                           "--output_dir", str(out), "--disable_tqdm", "true"])
    assert code == 0, stderr[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    check_scores(results, "test", char_accuracy=True)
    assert not any(k.startswith("eval_") for k in results) and not (out / "config.json").exists()
    assert len((out / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()) == 4


def test_predict_a_test_file_without_targets(pinyin_dir, tmp_path):
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"source": s}) + "\n" for s in ("ni hao", "zhong guo", "bei jing")), encoding="utf-8")
    out = tmp_path / "predict"
    code, stdout, stderr = run(["--model_name_or_path", str(pinyin_dir), "--test_file", str(test), "--do_predict",
                                "--max_target_length", "8", "--output_dir", str(out), "--disable_tqdm", "true"])
    assert code == 0, stderr[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    assert not any(k.endswith(("_bleu", "_cer", "_loss")) for k in results)
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in records] == ["ni hao", "zhong guo", "bei jing"] and "reference" not in records[0]
    assert [r["source_row"] for r in records] == ["test.jsonl line 1", "test.jsonl line 2", "test.jsonl line 3"]
    assert "reference:" not in stdout and stdout.count("prediction:") == 3


# ---- bad input: exit 2, one error line, nothing written -----------------------------------------------------------


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"src": f"ni hao {i}", "tgt": f"你好{i}"}, ensure_ascii=False) + "\n" for i in range(20)),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize("extra,needle", [
    (["--source_column", "nope", "--target_column", "tgt"], "--source_column='nope': the train split has no such column; its columns are"),
    (["--source_column", "src", "--target_column", "tgt", "--num_beams", "0"], "--num_beams=0 must be >= 1"),
    (["--source_column", "src", "--target_column", "tgt", "--validation_file", "missing.jsonl"], "missing.jsonl: no such file"),
    (["--source_column", "src", "--target_column", "tgt", "--max_target_length", "500"],
     "--max_target_length=500 is larger than the model's max_position_embeddings=128"),
    (["--source_lang", "en"], "--source_lang and --target_lang go together"),
    (["--source_column", "src", "--target_column", "tgt", "--max_train_minutes", "0"], "--max_train_minutes=0.0 must be > 0"),
    (["--source_lang", "en", "--target_lang", "zh"], "read a 'translation' column"),
    (["--source_column", "src", "--target_column", "tgt", "--error_copies", "-1"], "--error_copies=-1 must be 0 or more"),
])
def test_bad_input_exits_2_and_writes_nothing(extra, needle, pairs_file, tmp_path):
    out = tmp_path / "out"
    code, _, stderr = run(["--train_file", str(pairs_file), "--config_overrides", TINY, "--output_dir", str(out), *QUICK, *extra])
    last = stderr.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and needle in last, stderr[-1000:]
    assert not out.exists()


def test_error_copies_add_fresh_typos_to_correction_data_only(tmp_path):
    from hf_charlm.correction_data import add_typos

    texts = [f"We walked to the station number {i} before breakfast." for i in range(24)]
    path = tmp_path / "typos.jsonl"
    path.write_text("".join(json.dumps({"source": add_typos(t, str(i))[0], "target": t}) + "\n" for i, t in enumerate(texts)),
                    encoding="utf-8")
    out = tmp_path / "out"
    code, _, stderr = run(["--train_file", str(path), "--validation_file", str(path), "--config_overrides", TINY,
                           "--output_dir", str(out), *QUICK, "--error_copies", "2", "--do_train"])
    assert code == 0, stderr[-2000:]
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_samples"] == 3 * 24  # the pairs and two typed copies of each
    assert "error_copies" in (out / "README.md").read_text(encoding="utf-8")
    # a translation task has no typed targets to draw: refused before anything is written
    other = tmp_path / "other"
    code, _, stderr = run(["--task_name", "tatoeba_zh_en", "--config_overrides", TINY, "--output_dir", str(other), *QUICK,
                           "--error_copies", "2"])
    assert code == 2 and "--task_name tatoeba_zh_en is not" in stderr.strip().splitlines()[-1]
    assert not other.exists()


def test_empty_target_names_the_file_and_line(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("source,target\nni hao,你好\nxie xie,\n" + "".join(f"a{i},b{i}\n" for i in range(10)), encoding="utf-8")
    out = tmp_path / "out"
    code, _, stderr = run(["--train_file", str(path), "--output_dir", str(out), *QUICK])
    last = stderr.strip().splitlines()[-1]
    assert code == 2 and "pairs.csv line 3: the target ('target') is missing" in last, last
    assert not out.exists()


# ---- pipelines -------------------------------------------------------------------------------------------------


def test_pipelines_give_what_generate_gives(pinyin_dir):
    import hf_charlm.pipelines  # noqa: F401  (registered on `import hf_charlm` too)
    from hf_charlm.training import load_char_tokenizer

    tok = load_char_tokenizer(str(pinyin_dir))
    model = AutoModelForSeq2SeqLM.from_pretrained(pinyin_dir)
    sources = ["ni hao", "zhong guo ren min"]
    kwargs = dict(max_new_tokens=6, min_new_tokens=4, num_beams=2)  # min_new_tokens: a non-empty text to compare
    expected = []
    for source in sources:
        enc = tok([source], return_tensors="pt", split_special_tokens=True, return_token_type_ids=False)
        with torch.no_grad():
            expected.append(tok.decode(model.generate(**enc, **kwargs)[0], skip_special_tokens=True))
    assert all(len(text) >= 1 for text in expected)
    text2text = pipeline("text2text-generation", model=str(pinyin_dir))
    assert text2text(sources[0], **kwargs) == [{"generated_text": expected[0]}]
    assert text2text(sources, batch_size=2, **kwargs) == [{"generated_text": e} for e in expected]
    translate = pipeline("translation", model=str(pinyin_dir), **kwargs)  # generation settings at construction
    assert translate(sources) == [{"translation_text": e} for e in expected]
    assert pipeline("charlm-translation", model=str(pinyin_dir))(sources[1], **kwargs) == [{"translation_text": expected[1]}]
    two = text2text(sources[0], num_return_sequences=2, **kwargs)
    assert len(two) == 2 and two[0] == {"generated_text": expected[0]}


def test_scripts_trainers_predict_in_dataset_order_with_grouped_training(tmp_path, tokenizer):
    """transformers groups evaluation batches by length too when `train_sampling_strategy="group_by_length"`, so its
    `predict()` returns rows out of order; the scripts' trainers keep evaluation in dataset order (the scripts pair
    predictions with their sources, windows and references) while training stays grouped."""
    import datasets
    from transformers import DataCollatorWithPadding, Seq2SeqTrainingArguments, Trainer

    from hf_charlm import CharLMForSequenceClassification
    from hf_charlm.trainers import CharLMSeq2SeqTrainer, CharLMTrainer

    from .conftest import tiny_config

    texts = [("the cat sat " * (1 + (i * 7) % 9))[: 5 + (i * 13) % 55] for i in range(40)]
    rows = datasets.Dataset.from_dict(dict(tokenizer(texts)))
    torch.manual_seed(0)
    model = CharLMForSequenceClassification(tiny_config(vocab_size=len(tokenizer), num_labels=3)).eval()

    def predictions(trainer_class, strategy: str) -> np.ndarray:
        args = Seq2SeqTrainingArguments(output_dir=str(tmp_path / strategy), per_device_eval_batch_size=4,
                                        train_sampling_strategy=strategy, report_to="none", use_cpu=True)
        trainer = trainer_class(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer))
        return trainer.predict(rows).predictions

    in_order = predictions(Trainer, "random")
    assert not np.allclose(predictions(Trainer, "group_by_length"), in_order)  # transformers' own: another order
    np.testing.assert_allclose(predictions(CharLMTrainer, "group_by_length"), in_order, atol=1e-5)
    np.testing.assert_allclose(predictions(CharLMSeq2SeqTrainer, "group_by_length"), in_order, atol=1e-5)
    args = Seq2SeqTrainingArguments(output_dir=str(tmp_path / "train"), train_sampling_strategy="group_by_length", report_to="none")
    trainer = CharLMTrainer(model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer))
    assert type(trainer._get_train_sampler()).__name__ == "LengthGroupedSampler"  # training is still grouped
