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


def test_runs_that_differ_in_seed_see_the_same_examples(tmp_path):
    """The validation carve-out and the --max_train_samples sample use a fixed data seed, not --seed: an ensemble's
    members (other seeds) must not validate on each other's training texts. --seed still sets the initialisation."""
    # every text its own characters, so that another sample or carve-out gives another tokenizer
    rows = [{"text": chr(0x4E00 + 3 * i) + chr(0x4E01 + 3 * i) + chr(0x4E02 + 3 * i), "label": ["neg", "pos"][i % 2]}
            for i in range(80)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    outs = []
    for seed in (1, 2):
        out = tmp_path / f"seed{seed}"
        run(SEQ_SCRIPT, ["--train_file", str(tmp_path / "train.jsonl"), "--max_train_samples", "40", "--seed", str(seed),
                         "--config_overrides", TINY, "--output_dir", str(out), *QUICK, "--max_steps", "2",
                         "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false"])
        outs.append(out)
    first, second = (json.loads((o / "tokenizer.json").read_text())["model"]["vocab"] for o in outs)
    assert first == second and len(first) < 7 + 256 + 3 * 80  # the same 40 of the 72 training texts (8 validation)
    assert (outs[0] / "model.safetensors").read_bytes() != (outs[1] / "model.safetensors").read_bytes()


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
     "train.jsonl line 2: 1 tokens in 'tokens' but 2 tags in 'ner_tags'"),
    (TOKEN_SCRIPT, [{"tokens": ["a"], "ner_tags": ["O"]}, {"tokens": ["b"], "ner_tags": ["B-XYZ"]}], ["--label_list", "O,B-PER,I-PER"],
     "train.jsonl line 2: tag 'B-XYZ' in 'ner_tags' is not in the label set"),
    (TOKEN_SCRIPT, [{"words": ["a"], "ner_tags": ["O"]}], [], "--tokens_column='tokens'"),
    (SEQ_SCRIPT, [{"text": "好", "label": "pos"}, {"text": "坏", "label": "meh"}], ["--label_list", "neg,pos"],
     "train.jsonl line 2: label 'meh' in 'label' is outside the label set"),
    (SEQ_SCRIPT, [{"text": "好", "label": "pos"}, {"text": "  ", "label": "neg"}], [], "train.jsonl line 2: the text in 'text' is empty"),
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


# ---- data as it comes: CoNLL / char-per-line / segmented / TSV files; rows named by file and line ------------------

PEOPLE = [["Peter", "Blackburn"], ["John", "Smith"], ["Mary", "Jones"]]
PLACES = ["London", "Paris", "Berlin"]
ORGS = [["European", "Commission"], ["United", "Nations"]]


def english_sentence(k: int) -> tuple[list[str], list[str]]:
    person, place, org = PEOPLE[k % 3], PLACES[k % 2], ORGS[k % 2]
    tokens = person + ["said", "in", place, "that", "the"] + org + ["will", "meet", "."]
    return tokens, ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O", "B-ORG", "I-ORG", "O", "O", "O"]


def write_conll(path: Path, sentences: list[tuple[list[str], list[str]]], tagged: bool = True) -> list[int]:
    """CoNLL-2003 layout (word POS chunk tag, -DOCSTART-, blank lines); returns the line of each sentence."""
    lines, starts = ["-DOCSTART- -X- -X- O", ""], []
    for tokens, tags in sentences:
        starts.append(len(lines) + 1)
        lines += [f"{t} NNP B-NP {g}" if tagged else t for t, g in zip(tokens, tags)] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return starts


def test_english_conll_long_test_sentences_scored_whole(tmp_path):
    """CoNLL files with -DOCSTART-; test sentences longer than max_position_embeddings=128 characters: every gold
    entity is scored (windows), predictions are written per word, the sample shows whole words, and no
    early-stopping warning follows the test evaluation."""
    write_conll(tmp_path / "train.conll", [english_sentence(k) for k in range(40)])
    write_conll(tmp_path / "dev.conll", [english_sentence(k) for k in range(8)])
    long = []
    for k in range(6):
        parts = [english_sentence(k + j) for j in range(5)]
        long.append(([t for p in parts for t in p[0]], [g for p in parts for g in p[1]]))
    starts = write_conll(tmp_path / "test.conll", long)
    out = tmp_path / "out"
    proc = run(TOKEN_SCRIPT, ["--train_file", str(tmp_path / "train.conll"), "--validation_file", str(tmp_path / "dev.conll"),
                              "--test_file", str(tmp_path / "test.conll"), "--config_overrides", TINY, "--output_dir", str(out),
                              *QUICK, "--per_device_train_batch_size", "8", "--num_train_epochs", "8"])
    log = proc.stdout + proc.stderr
    results = json.loads((out / "all_results.json").read_text())
    # 6 sentences x 5 clauses x (PER, LOC, ORG): all 90 gold entities scored, though each sentence is ~330 characters
    assert (results["test_PER_number"], results["test_LOC_number"], results["test_ORG_number"]) == (30, 30, 30)
    assert "6 of 6 test examples are longer than 128 tokens: read in overlapping windows" in log
    assert "early stopping required metric_for_best_model" not in log
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["label2id"]) == ["B-LOC", "B-ORG", "B-PER", "I-ORG", "I-PER", "O"]
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [f"test.conll line {n}" for n in starts]
    assert [r["tokens"] for r in records] == [t for t, _ in long]
    assert all(len(r["tags"]) == len(r["tokens"]) for r in records)
    txt = (out / "predictions.txt").read_text().splitlines()
    assert [line.split() for line in txt] == [r["tags"] for r in records]
    # the sample: entities made of whole words of the sentence (not character fragments such as "PER J")
    lines = proc.stdout.splitlines()
    at = lines.index(" ".join(long[0][0])[:200])  # the sentence, as far as the printout shows it
    entity_lines = [line.split(None, 2) for line in lines[at + 1 :] if not line.startswith("{")]
    assert entity_lines, "the trained model finds entities in the sample"
    words = long[0][0]
    for entity_type, span, text in entity_lines:
        start, end = (int(x) for x in span.split("-"))
        assert entity_type in ("PER", "LOC", "ORG") and text == " ".join(words[start:end])


def test_segmented_text_steps_strategy_then_predict_and_eval_without_training(tmp_path):
    """Space-segmented training text (SIGHAN style) with --eval_strategy steps alone (no --save_strategy); then the
    saved model evaluates and predicts without training (--do_eval / --do_predict)."""
    from hf_charlm.data import load_builtin
    from hf_charlm.metrics import bmes_to_spans

    cws = load_builtin("peoples_daily_cws")

    def segmented(split: str, n: int) -> list[str]:
        lines = []
        for tokens, tags in zip(cws[split]["tokens"][:n], cws[split]["tags"][:n]):
            names = [["B", "M", "E", "S"][t] for t in tags]
            lines.append("  ".join("".join(tokens[s:e]) for s, e in bmes_to_spans(names)))
        return lines

    (tmp_path / "train.utf8").write_text("\n".join(segmented("train", 200)) + "\n", encoding="utf-8")
    test_lines = segmented("test", 30)
    (tmp_path / "test.utf8").write_text("\n".join(test_lines) + "\n", encoding="utf-8")
    out = tmp_path / "cws"
    proc = run(TOKEN_SCRIPT, ["--train_file", str(tmp_path / "train.utf8"), "--config_overrides", TINY, "--output_dir", str(out),
                              *QUICK, "--eval_strategy", "steps", "--eval_steps", "4"])
    state = json.loads(next(out.glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["eval_steps"] == 4 and [h["step"] for h in state["log_history"] if "eval_f1" in h][:2] == [4, 8]
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "B", "1": "E", "2": "M", "3": "S"}
    # the sample is shown as segmented words that join back to the sentence
    lines = proc.stdout.splitlines()
    shown = next(line for line in lines if line.startswith("  words: "))[len("  words: "):].split(" ")
    assert "".join(shown) == lines[lines.index(next(line for line in lines if line.startswith("  words: "))) - 1]

    pred = tmp_path / "pred"
    run(TOKEN_SCRIPT, ["--model_name_or_path", str(out), "--do_eval", "--do_predict", "--validation_file", str(tmp_path / "test.utf8"),
                       "--test_file", str(tmp_path / "test.utf8"), "--output_dir", str(pred), "--per_device_eval_batch_size", "8"])
    assert not (pred / "model.safetensors").exists()  # nothing trained, nothing saved
    results = json.loads((pred / "all_results.json").read_text())
    assert "train_runtime" not in results and results["eval_f1"] == results["test_f1"] > 0
    predicted = (pred / "predictions.txt").read_text().splitlines()
    assert len(predicted) == len(test_lines)
    assert all("".join(p.split()) == "".join(g.split()) for p, g in zip(predicted, test_lines))
    records = [json.loads(line) for line in (pred / "predictions.jsonl").read_text().splitlines()]
    assert records[3]["source"] == "test.utf8 line 4" and records[3]["words"] == predicted[3].split()


def test_predict_untagged_conll_with_saved_ner_model(pretrained_dir, tmp_path):
    """A one-column (untagged) test file, predicted with a fine-tuned model: predictions, no scores."""
    out = tmp_path / "ner"
    run(TOKEN_SCRIPT, ["--model_name_or_path", str(pretrained_dir), "--task_name", "peoples_daily_ner", "--output_dir", str(out),
                       "--max_train_samples", "100", "--max_eval_samples", "20", "--max_test_samples", "20", *QUICK])
    sentences = [(list("江泽民在北京"), ["O"] * 6), (list("克林顿访问上海"), ["O"] * 7)]
    write_conll(tmp_path / "raw.txt", sentences, tagged=False)
    pred = tmp_path / "pred"
    run(TOKEN_SCRIPT, ["--model_name_or_path", str(out), "--do_predict", "--test_file", str(tmp_path / "raw.txt"),
                       "--file_format", "conll", "--output_dir", str(pred)])
    records = [json.loads(line) for line in (pred / "predictions.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in records] == [s for s, _ in sentences]
    assert all(set(r["tags"]) <= set(NER) for r in records)
    assert not any(k.startswith("test_f1") for k in json.loads((pred / "all_results.json").read_text()))


def test_sequence_classification_tsv_long_texts_then_predict_without_training(tmp_path):
    header = "label\ttext_a\n"
    rows = [f"{i % 2}\t{'很好，推荐' if i % 2 else '太差，失望'}{'啊' * (150 if i % 10 == 0 else 0)}第{i}条" for i in range(60)]
    (tmp_path / "train.tsv").write_text(header + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "test.tsv").write_text("text_a\n" + "\n".join(r.split("\t")[1] for r in rows[:7]) + "\n", encoding="utf-8")
    out = tmp_path / "sent"
    proc = run(SEQ_SCRIPT, ["--train_file", str(tmp_path / "train.tsv"), "--text_column", "text_a", "--config_overrides", TINY,
                            "--output_dir", str(out), *QUICK, "--num_train_epochs", "2"])
    log = proc.stdout + proc.stderr
    assert "texts are longer than 128 tokens: the model reads their first 128 tokens" in log
    assert "early stopping required metric_for_best_model" not in log
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "0", "1": "1"}
    pred = tmp_path / "pred"
    run(SEQ_SCRIPT, ["--model_name_or_path", str(out), "--do_eval", "--do_predict", "--validation_file", str(tmp_path / "train.tsv"),
                     "--test_file", str(tmp_path / "test.tsv"), "--text_column", "text_a", "--output_dir", str(pred)])
    results = json.loads((pred / "all_results.json").read_text())
    assert 0 <= results["eval_accuracy"] <= 1 and "test_accuracy" not in results and "train_runtime" not in results
    records = [json.loads(line) for line in (pred / "predictions.jsonl").read_text().splitlines()]
    assert [r["source"] for r in records] == [f"test.tsv line {n}" for n in range(2, 9)]
    assert all(r["label"] in ("0", "1") and 0.5 <= r["score"] <= 1 for r in records)
    txt = (pred / "predictions.txt").read_text().splitlines()
    assert txt[0] == "index\tprediction" and txt[1:] == [f"{i}\t{r['label']}" for i, r in enumerate(records)]
    assert not (pred / "model.safetensors").exists()


# ---- bad input names the user's row; contradictory strategies exit 2 with the fix ------------------------------------


def test_error_names_file_line_after_carve_out_and_shuffle(tmp_path, capsys):
    """Train file only: the validation split is carved out and shuffled, yet the error names line 27 of the file."""
    rows = [{"tokens": ["a", "b"], "ner_tags": ["O", "B-PER"]}] * 40
    rows[26] = {"tokens": ["a", "b"], "ner_tags": ["O", "B-XYZ"]}
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    code, last = run_script_in_process(TOKEN_SCRIPT, ["--train_file", str(tmp_path / "train.jsonl"), "--label_list", "O,B-PER,I-PER",
                                                      "--output_dir", str(tmp_path / "out"), *QUICK], capsys)
    assert code == 2 and last.startswith("error: train.jsonl line 27: tag 'B-XYZ'")
    sentences = [english_sentence(k) for k in range(12)]
    sentences[9] = (sentences[9][0], sentences[9][1][:-1] + ["B-XYZ"])
    starts = write_conll(tmp_path / "train.conll", sentences)
    code, last = run_script_in_process(TOKEN_SCRIPT, ["--train_file", str(tmp_path / "train.conll"), "--label_list",
                                                      "O,B-PER,I-PER,B-LOC,B-ORG,I-ORG", "--output_dir", str(tmp_path / "out"), *QUICK], capsys)
    assert code == 2 and last.startswith(f"error: train.conll line {starts[9]}: tag 'B-XYZ'")
    (tmp_path / "train.tsv").write_text("text\tlabel\n" + "".join(f"第{i}条\t{'pos' if i != 30 else 'meh'}\n" for i in range(40)))
    code, last = run_script_in_process(SEQ_SCRIPT, ["--train_file", str(tmp_path / "train.tsv"), "--label_list", "neg,pos",
                                                    "--output_dir", str(tmp_path / "out"), *QUICK], capsys)
    assert code == 2 and last.startswith("error: train.tsv line 32: label 'meh'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", [TOKEN_SCRIPT, SEQ_SCRIPT])
def test_contradictory_save_and_eval_strategies_exit_2(script, tmp_path, capsys):
    code, last = run_script_in_process(script, ["--eval_strategy", "steps", "--save_strategy", "epoch", "--output_dir",
                                                str(tmp_path / "out"), *QUICK], capsys)
    assert code == 2
    assert "--load_best_model_at_end requires the save and eval strategy to match" in last
    assert "Pass the same --save_strategy" in last
    assert not (tmp_path / "out").exists()


def test_do_eval_without_model_exits_2(tmp_path, capsys):
    code, last = run_script_in_process(TOKEN_SCRIPT, ["--task_name", "peoples_daily_cws", "--do_eval", "--output_dir",
                                                      str(tmp_path / "out")], capsys)
    assert code == 2 and "needs a fine-tuned model: pass --model_name_or_path" in last


def test_char_per_line_bmes_entity_tags_scored_strictly(tmp_path):
    """Character-per-line NER with BMES entity tags (B-/M-/E-/S-): detected as IOBES and scored in strict mode,
    which the test metrics recomputed from predictions.jsonl confirm."""
    from hf_charlm.data import NER_LABELS, load_builtin
    from hf_charlm.metrics import entity_scores

    ner = load_builtin("peoples_daily_ner")

    def bmes_lines(split: str, n: int) -> tuple[str, list[list[str]]]:
        lines, gold = [], []
        for tokens, ids in zip(ner[split]["tokens"][:n], ner[split]["ner_tags"][:n]):
            bio = [NER_LABELS[i] for i in ids] + ["O"]
            tags = []
            for k, tag in enumerate(bio[:-1]):
                last = not bio[k + 1].startswith("I-")
                tags.append(tag if tag == "O" else f"{('S' if last else 'B') if tag[0] == 'B' else ('E' if last else 'M')}-{tag[2:]}")
            gold.append(tags)
            lines += [f"{t}\t{g}" for t, g in zip(tokens, tags)] + [""]
        return "\n".join(lines), gold

    train_text, _ = bmes_lines("train", 150)
    test_text, gold = bmes_lines("test", 20)
    (tmp_path / "train.bmes").write_text(train_text, encoding="utf-8")
    (tmp_path / "test.bmes").write_text(test_text, encoding="utf-8")
    out = tmp_path / "out"
    run(TOKEN_SCRIPT, ["--train_file", str(tmp_path / "train.bmes"), "--test_file", str(tmp_path / "test.bmes"),
                       "--config_overrides", TINY, "--output_dir", str(out), *QUICK, "--num_train_epochs", "2"])
    labels = set(json.loads((out / "config.json").read_text())["label2id"])
    assert {"O", "B-PER", "E-PER", "B-ORG", "M-ORG", "E-ORG"} <= labels and not any(t.startswith("I-") for t in labels)
    assert "| scheme | iobes |" in (out / "README.md").read_text()
    predicted = [json.loads(line)["tags"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    strict = entity_scores([[t.replace("M-", "I-") for t in g] for g in gold], [[t.replace("M-", "I-") for t in p] for p in predicted],
                           scheme="IOBES", mode="strict")
    results = json.loads((out / "all_results.json").read_text())
    assert results["test_f1"] == pytest.approx(strict["overall_f1"]) and results["test_recall"] == pytest.approx(strict["overall_recall"])


def test_crf_cws_predictions_are_viterbi_paths_and_agree_with_the_pipeline(tmp_path):
    """--use_crf (with the n-gram features of `feature_buckets`): the script's predictions never take a forbidden
    B/M/E/S step, and the token-classification pipeline on the saved model returns exactly the script's tags."""
    from safetensors.torch import load_file

    from hf_charlm.modeling_charlm import allowed_transitions

    out = tmp_path / "cws-crf"
    run(TOKEN_SCRIPT, ["--task_name", "peoples_daily_cws", "--use_crf", "--config_overrides", f"{TINY},feature_buckets=4099",
                       "--output_dir", str(out), "--max_train_samples", "300", "--max_eval_samples", "40",
                       "--max_test_samples", "40", "--train_sampling_strategy", "group_by_length", *QUICK])
    config = json.loads((out / "config.json").read_text())
    assert config["use_crf"] is True and config["feature_buckets"] == 4099
    assert load_file(out / "model.safetensors")["features.weight.weight"].abs().sum() > 0  # trained
    results = json.loads((out / "all_results.json").read_text())
    assert 0 < results["test_f1"] <= 1
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 40
    names = ["B", "M", "E", "S"]
    allowed, start, end = allowed_transitions(names)
    tagger = pipeline("token-classification", model=str(out))
    compared = 0
    vocab = tagger.tokenizer.get_vocab()
    for record in records:
        text = "".join(record["tokens"])
        if len(text) + 1 > config["max_position_embeddings"]:
            continue  # read in overlapping windows: each window is a Viterbi path, their seams need not be
        tags = [names.index(t) for t in record["tags"]]
        # characters outside the vocabulary (several byte tokens) are one node of the chain too
        assert start[tags[0]] and end[tags[-1]]
        assert all(allowed[a, b] for a, b in zip(tags, tags[1:]))
        # one token per character (no byte fallback): the pipeline's tokens are the script's characters
        if all(c in vocab for c in text):
            compared += 1
            assert [e["entity"] for e in tagger(text)] == record["tags"]
    assert compared >= 5


def test_crf_model_trains_without_test_split_and_predicts_untagged_text(tmp_path):
    """With a CRF the placeholder labels of unlabelled windows must stay out of the model (they would be read as a
    gold path B -> B -> ...): training without --do_predict (the end-of-run sample) and predicting an untagged file
    both work, and the predicted words put back together give the input."""
    from hf_charlm.modeling_charlm import allowed_transitions

    out = tmp_path / "cws-crf"
    run(TOKEN_SCRIPT, ["--task_name", "peoples_daily_cws", "--use_crf", "--config_overrides", TINY, "--output_dir", str(out),
                       "--max_train_samples", "200", "--max_eval_samples", "20", "--do_predict", "false", *QUICK])
    assert not any(k.startswith("test_") for k in json.loads((out / "all_results.json").read_text()))
    sentences = [(list("江泽民在北京会见了克林顿"), ["S"] * 12), (list("上海市人民政府"), ["S"] * 7)]
    write_conll(tmp_path / "raw.txt", sentences, tagged=False)
    pred = tmp_path / "pred"
    run(TOKEN_SCRIPT, ["--model_name_or_path", str(out), "--do_predict", "--test_file", str(tmp_path / "raw.txt"),
                       "--file_format", "conll", "--output_dir", str(pred)])
    records = [json.loads(line) for line in (pred / "predictions.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in records] == [s for s, _ in sentences]
    names = ["B", "M", "E", "S"]
    allowed, start, end = allowed_transitions(names)
    for record in records:
        tags = [names.index(t) for t in record["tags"]]
        assert start[tags[0]] and end[tags[-1]] and all(allowed[a, b] for a, b in zip(tags, tags[1:]))
    assert not any(k.startswith("test_loss") for k in json.loads((pred / "all_results.json").read_text()))


def test_hyperparameter_search_on_validation_then_the_best_run(tmp_path):
    # optuna through Trainer.hyperparameter_search: every trial scored on validation, the final run trains with the best
    out = tmp_path / "cws-search"
    run(TOKEN_SCRIPT, ["--task_name", "peoples_daily_cws", "--config_overrides", TINY, "--output_dir", str(out),
                       "--max_train_samples", "120", "--max_eval_samples", "40", "--max_test_samples", "40", *QUICK,
                       "--hp_search_trials", "3", "--eval_strategy", "no", "--seed", "7"])
    search = json.loads((out / "hp_search.json").read_text())
    assert search["metric"] == "eval_f1" and len(search["trials"]) == 3
    values = [t["value"] for t in search["trials"]]
    assert all(0 <= v <= 1 for v in values) and search["best_objective"] == max(values)
    best = search["best_hyperparameters"]
    assert set(best) == {"learning_rate", "per_device_train_batch_size", "weight_decay", "classifier_dropout"}
    assert 1e-4 <= best["learning_rate"] <= 3e-3
    # the final model and run use the best values, not the command line's --learning_rate 5e-3
    assert json.loads((out / "config.json").read_text())["classifier_dropout"] == best["classifier_dropout"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"| learning_rate | {best['learning_rate']:.6g} |" in card
    assert f"| per_device_train_batch_size | {best['per_device_train_batch_size']} |" in card
    results = json.loads((out / "all_results.json").read_text())
    assert results["hp_search_trials"] == 3 and results["hp_search_best_eval_f1"] == search["best_objective"]
    assert 0 < results["test_f1"] <= 1
    assert not (out / "hp_search").exists()  # trials save nothing


@pytest.mark.parametrize("extra, needle", [
    (["--hp_search_trials", "-1"], "--hp_search_trials=-1 must be 0 or more"),
    (["--hp_search_trials", "2", "--hp_search_minutes", "0"], "--hp_search_minutes=0.0 must be > 0"),
])
def test_hyperparameter_search_bad_flags_exit_2(extra, needle, tmp_path, capsys):
    out = tmp_path / "out"
    code, message = run_script_in_process(SEQ_SCRIPT, ["--task_name", "review_sentiment", "--output_dir", str(out), *extra], capsys)
    assert code == 2 and needle in message and not out.exists()
