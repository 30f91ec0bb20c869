"""Fine-tuning: label alignment (byte fallback included), short real runs of both scripts end to end, pipelines
on the results, and clear errors for bad data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import pipeline

from hf_charlm import CharLMForCausalLM, train_char_tokenizer
from hf_charlm.data import check_token_examples, continuation_labels, tokenize_and_align_labels
from tests.conftest import run_script_in_process, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TOKEN_SCRIPT = ROOT / "scripts" / "finetune_token_classification.py"
SEQ_SCRIPT = ROOT / "scripts" / "finetune_sequence_classification.py"
NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
TINY = "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64,max_position_embeddings=128"
QUICK = ["--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "32", "--num_train_epochs", "1",
         "--logging_steps", "5", "--disable_tqdm", "true", "--learning_rate", "5e-3"]


def align(tokenizer, tokens, tags, names, separator, label_all=True, max_length=64):
    out = tokenize_and_align_labels(
        {"tokens": [tokens], "tags": [tags]}, tokenizer, "tokens", "tags", names, max_length, separator, label_all
    )
    return tokenizer.convert_ids_to_tokens(out["input_ids"][0]), out["labels"][0]


def test_continuation_labels():
    assert continuation_labels(NER) == {0: 0, 1: 2, 2: 2, 3: 4, 4: 4, 5: 6, 6: 6}
    assert continuation_labels(["B", "M", "E", "S"]) == {}


def test_alignment_character_level_with_byte_fallback():
    tok = train_char_tokenizer(["江泽民在北京"])
    tokens = ["江", "泽", "民", "訪", "北", "京"]  # 訪 is outside the vocabulary: 3 byte tokens
    tags = [1, 2, 2, 0, 3, 4]
    pieces, labels = align(tok, tokens, tags, NER, "")
    assert pieces[0] == "<s>" and pieces[4:7] == ["<0xE8>", "<0xA8>", "<0xAA>"]
    assert labels == [-100, 1, 2, 2, 0, 0, 0, 3, 4]
    # a B- character split into bytes: the later bytes continue the entity
    pieces, labels = align(tok, ["訪", "民"], [1, 2], NER, "")
    assert labels == [-100, 1, 2, 2, 2]
    # evaluation: one label per character, byte continuations ignored
    _, labels = align(tok, ["訪", "民"], [1, 2], NER, "", label_all=False)
    assert labels == [-100, 1, -100, -100, 2]
    # B/M/E/S has no continuation: later bytes are ignored even in training
    pieces, labels = align(tok, ["訪", "民"], [0, 2], ["B", "M", "E", "S"], "")
    assert labels == [-100, 0, -100, -100, 2]


def test_alignment_word_level_conll_style():
    tok = train_char_tokenizer(["EU rejects German call to boycott British lamb . New York"])
    names = ["O", "B-ORG", "I-ORG", "B-MISC", "I-MISC", "B-LOC", "I-LOC"]
    pieces, labels = align(tok, ["EU", "rejects", "German", "New", "York"], [1, 0, 3, 5, 6], names, " ")
    assert "".join(pieces[1:]) == "EU rejects German New York"
    expected = [-100, 1, 2, 0] + [0] * 7 + [0] + [3, 4, 4, 4, 4, 4] + [0] + [5, 6, 6] + [6] + [6, 6, 6, 6]
    assert labels == expected
    _, labels = align(tok, ["EU", "rejects"], [1, 0], names, " ", label_all=False)
    assert labels == [-100, 1, -100, -100, 0] + [-100] * 6


def test_alignment_truncates():
    tok = train_char_tokenizer(["abcdef"])
    _, labels = align(tok, list("abcdef"), [0] * 6, NER, "", max_length=4)
    assert labels == [-100, 0, 0, 0]


@pytest.mark.parametrize("tokens,tags,needle", [
    (["a", "b"], [0], "example 1: 2 tokens in 'tokens' but 1 tags in 'tags'"),
    (["a"], [9], "example 1: tag 9 in 'tags' is outside the label set"),
    ([], [], "example 1: column 'tokens' is empty"),
    (["a", ""], [0, 0], "example 1: token 1 of 'tokens' is empty"),
])
def test_check_token_examples_errors(tokens, tags, needle):
    import datasets

    ds = datasets.Dataset.from_dict({"tokens": [["x"], tokens], "tags": [[0], tags]})
    with pytest.raises(ValueError, match=needle):
        check_token_examples(ds, "tokens", "tags", 7, "train")


# ---- end-to-end runs --------------------------------------------------------------------------------------------


def run(script: Path, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory) -> Path:
    """A tiny causal LM + tokenizer saved as the pretraining script would (weights untrained: the tests check
    plumbing and that the backbone is loaded, the benchmark checks quality)."""
    from hf_charlm.data import load_builtin

    d = tmp_path_factory.mktemp("lm")
    texts = load_builtin("peoples_daily_text")["train"]["text"][:2000] + load_builtin("reviews_text")["train"]["text"][:2000]
    tok = train_char_tokenizer(texts)
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=len(tok), max_position_embeddings=128))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_token_classification_ner_end_to_end(pretrained_dir, tmp_path):
    out = tmp_path / "ner"
    proc = run(TOKEN_SCRIPT, ["--model_name_or_path", str(pretrained_dir), "--task_name", "peoples_daily_ner",
                              "--output_dir", str(out), "--max_train_samples", "300", "--max_eval_samples", "60",
                              "--max_test_samples", "60", *QUICK])
    results = json.loads((out / "all_results.json").read_text())
    for key in ("eval_f1", "eval_precision", "eval_recall", "test_f1", "test_PER_f1", "test_LOC_f1", "test_ORG_f1"):
        assert key in results and 0.0 <= results[key] <= 1.0, key
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): n for i, n in enumerate(NER)}
    card = (out / "README.md").read_text()
    assert "pipeline_tag: token-classification" in card and "character-level" in card
    text = "江泽民主席在北京会见了美国总统克林顿。"
    tagger = pipeline("token-classification", model=str(out), aggregation_strategy="simple")
    for entity in tagger(text):
        assert entity["entity_group"] in ("PER", "LOC", "ORG")
        assert 0 <= entity["start"] < entity["end"] <= len(text)
        assert text[entity["start"] : entity["end"]] == entity["word"].replace(" ", "")
    # the script ends by printing its overall scores, the same numbers as all_results.json
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert printed["test_f1"] == round(results["test_f1"], 4)


def test_token_classification_cws_from_scratch(tmp_path):
    out = tmp_path / "cws"
    run(TOKEN_SCRIPT, ["--task_name", "peoples_daily_cws", "--config_overrides", TINY, "--output_dir", str(out),
                       "--max_train_samples", "300", "--max_eval_samples", "60", "--max_test_samples", "60", *QUICK])
    results = json.loads((out / "all_results.json").read_text())
    assert 0 < results["test_f1"] <= 1 and 0 < results["eval_accuracy"] <= 1
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "B", "1": "M", "2": "E", "3": "S"}


def test_token_classification_word_level_files(tmp_path):
    rows = [{"tokens": ["EU", "rejects", "German", "call"], "ner_tags": ["B-ORG", "O", "B-MISC", "O"]},
            {"tokens": ["Peter", "Blackburn", "in", "New", "York"], "ner_tags": ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]}] * 20
    for name in ("train", "dev"):
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "conll"
    run(TOKEN_SCRIPT, ["--train_file", str(tmp_path / "train.jsonl"), "--validation_file", str(tmp_path / "dev.jsonl"),
                       "--config_overrides", TINY, "--output_dir", str(out), *QUICK, "--num_train_epochs", "3"])
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["label2id"]) == sorted(["B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-PER", "O"])
    assert "eval_f1" in json.loads((out / "all_results.json").read_text())


def test_sequence_classification_sentiment_end_to_end(pretrained_dir, tmp_path):
    out = tmp_path / "sent"
    run(SEQ_SCRIPT, ["--model_name_or_path", str(pretrained_dir), "--output_dir", str(out), "--max_train_samples", "300",
                     "--max_eval_samples", "80", "--max_test_samples", "80", *QUICK])
    results = json.loads((out / "all_results.json").read_text())
    assert 0 <= results["test_accuracy"] <= 1 and 0 <= results["test_macro_f1"] <= 1
    clf = pipeline("text-classification", model=str(out))
    got = clf(["这本书写得非常好，推荐！", "质量太差，很失望"])
    assert {g["label"] for g in got} <= {"negative", "positive"}
    assert "pipeline_tag: text-classification" in (out / "README.md").read_text()


@pytest.mark.parametrize("problem,label,metric", [
    ("multi_label_classification", lambda i: ["sports", "news"][: 1 + i % 2], "eval_macro_f1"),
    ("regression", lambda i: float(i % 5) / 4, "eval_mse"),
])
def test_sequence_classification_multilabel_and_regression(problem, label, metric, tmp_path):
    rows = [{"text": f"第{i}条评论，内容{'很好' if i % 2 else '一般'}", "score": label(i)} for i in range(60)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    out = tmp_path / problem
    run(SEQ_SCRIPT, ["--train_file", str(tmp_path / "train.jsonl"), "--label_column", "score", "--problem_type", problem,
                     "--config_overrides", TINY, "--output_dir", str(out), *QUICK])
    assert metric in json.loads((out / "all_results.json").read_text())
    assert json.loads((out / "config.json").read_text())["problem_type"] == problem


# ---- bad input: exit status 2, a message naming the column or example, nothing written ---------------------------


@pytest.mark.parametrize("script,rows,extra,needle", [
    (TOKEN_SCRIPT, [{"tokens": ["a", "b"], "ner_tags": ["O", "B-PER"]}, {"tokens": ["c"], "ner_tags": ["O", "O"]}], [],
     "train example 1: 1 tokens in 'tokens' but 2 tags in 'ner_tags'"),
    (TOKEN_SCRIPT, [{"tokens": ["a"], "ner_tags": ["O"]}, {"tokens": ["b"], "ner_tags": ["B-XYZ"]}], ["--label_list", "O,B-PER,I-PER"],
     "train example 1: tag 'B-XYZ' in 'ner_tags' is not in the label set"),
    (TOKEN_SCRIPT, [{"words": ["a"], "ner_tags": ["O"]}], [], "--tokens_column='tokens'"),
    (SEQ_SCRIPT, [{"text": "好", "label": "pos"}, {"text": "坏", "label": "meh"}], ["--label_list", "neg,pos"],
     "train example 1: label 'meh' in 'label' is outside the label set"),
    (SEQ_SCRIPT, [{"text": "好", "label": "pos"}, {"text": "  ", "label": "neg"}], [], "train example 1: the text in 'text' is empty"),
    (SEQ_SCRIPT, [{"text": "好", "stars": 1}], [], "--label_column='label'"),
])
def test_bad_data_exit_2_nothing_written(script, rows, extra, needle, tmp_path, capsys):
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows * 10))
    out = tmp_path / "out"
    code, last = run_script_in_process(script, ["--train_file", str(tmp_path / "train.jsonl"), "--validation_file",
                                         str(tmp_path / "train.jsonl"), "--output_dir", str(out), "--config_overrides", TINY,
                                         *QUICK, *extra], capsys)
    assert code == 2
    assert needle in last and last.startswith("error: ")
    assert not out.exists()
