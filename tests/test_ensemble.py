"""Output ensembles of classifiers (`CharLMForTokenClassification.from_members`,
`CharLMForSequenceClassification.from_members`, scripts/build_ensemble.py, `benchmarks/recipes.py --ensemble`): the
mean of the members' scores (one Viterbi path under the mean CRF; a text's mean logits), saved and loaded (Auto
classes, pipelines, remote code) like a single model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, pipeline

from hf_charlm import CharLMForCausalLM, CharLMForMaskedLM, CharLMForSequenceClassification, CharLMForTokenClassification
from hf_charlm.modeling_charlm import CharLMCRF
from tests.conftest import run_script_in_process, tiny_config

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build_ensemble.py"
BMES = ["B", "M", "E", "S"]
TEXTS = ["人民日报新年", "北京天安门广场"]


def _member(tokenizer, seed: int, use_crf: bool = True, **overrides) -> CharLMForTokenClassification:
    config = tiny_config("transformer", vocab_size=len(tokenizer), num_labels=4, id2label=dict(enumerate(BMES)),
                         label2id={n: i for i, n in enumerate(BMES)}, use_crf=use_crf, **overrides)
    torch.manual_seed(seed)
    model = CharLMForTokenClassification(config)
    if use_crf:  # transitions that differ between the members (they start at zero)
        with torch.no_grad():
            for p in model.crf.parameters():
                p.copy_(torch.randn(p.shape))
    return model.eval()


def _emissions(model: CharLMForTokenClassification, enc) -> torch.Tensor:
    hidden = model.model(**enc, is_causal=False).last_hidden_state
    return model.classifier(hidden)


def test_ensemble_scores_are_the_mean_and_its_path_the_viterbi_path_of_the_mean_crf(tokenizer):
    members = [_member(tokenizer, seed) for seed in (1, 2, 3)]
    ensemble = CharLMForTokenClassification.from_members(members)
    assert ensemble.config.ensemble_size == 3 and not ensemble.training
    assert members[0].config.ensemble_size == 1  # the members' configs are left alone
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    mask = enc["attention_mask"].bool()
    with torch.no_grad():
        mean = torch.stack([_emissions(m, enc) for m in members]).mean(0)
        crf = CharLMCRF(ensemble.config)
        for name, p in crf.named_parameters():
            p.copy_(torch.stack([dict(m.crf.named_parameters())[name] for m in members]).mean(0))
        paths = crf.decode(mean, mask)
        got = ensemble(**enc).logits.argmax(-1)
        assert [row[m].tolist() for row, m in zip(got, mask)] == paths
        # the members disagree somewhere, so the ensemble is not one of them in disguise
        alone = [[row[m].tolist() for row, m in zip(x(**enc).logits.argmax(-1), mask)] for x in members]
        assert len({json.dumps(a) for a in alone}) > 1
        # the loss is the mean CRF's negative log-likelihood of the gold path, on the mean scores
        labels = torch.full(enc["input_ids"].shape, -100)
        labels[0, 1:7] = torch.tensor([0, 1, 1, 2, 3, 3])
        labels[1, 1:8] = torch.tensor([0, 2, 0, 1, 2, 0, 2])
        count = (labels != -100).sum()
        expected = -crf.log_likelihood(mean, labels, mask).sum() / count
        torch.testing.assert_close(ensemble(**enc, labels=labels).loss, expected)
        # a training-mode call with labels returns the mean emissions (what the Trainer's step reads)
        ensemble.train()
        torch.testing.assert_close(ensemble(**enc, labels=labels).logits, mean)


def test_ensemble_without_crf_averages_the_logits(tokenizer):
    members = [_member(tokenizer, seed, use_crf=False) for seed in (4, 5)]
    ensemble = CharLMForTokenClassification.from_members(members)
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = (members[0](**enc).logits + members[1](**enc).logits) / 2
        torch.testing.assert_close(ensemble(**enc).logits, expected)


def _saved(folder: Path, model, tokenizer, results: dict | None = None) -> str:
    """`folder` as a fine-tuning run leaves it: model, tokenizer and (given) its all_results.json."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if results is not None:
        (folder / "all_results.json").write_text(json.dumps(results))
    return str(folder)


def _logits_without_the_package(folder: Path, auto_class: str, texts: list[str]) -> torch.Tensor:
    """The logits of the saved model in `folder` for `texts`, loaded with `trust_remote_code=True` in a process that
    cannot import hf_charlm (it fails if the model class came from the package)."""
    script = folder / "remote.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys, torch
        from transformers import {auto_class}, PreTrainedTokenizerFast
        root = sys.argv[1]
        tok = PreTrainedTokenizerFast.from_pretrained(root)
        model = {auto_class}.from_pretrained(root, trust_remote_code=True).eval()
        enc = tok({texts!r}, return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**enc).logits
        print(json.dumps({{"module": type(model).__module__, "logits": logits.tolist()}}))
    """))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run([sys.executable, str(script), str(folder)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "hf_charlm" not in report["module"]
    return torch.tensor(report["logits"])


def test_ensemble_saves_loads_and_runs_in_the_pipeline(tokenizer, tmp_path):
    ensemble = CharLMForTokenClassification.from_members([_member(tokenizer, 1), _member(tokenizer, 2)])
    ensemble.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    # the first member under a single model's names, the second under ensemble.0., q / k / v kept apart in the file
    assert "model.layers.0.self_attn.q_proj.weight" in keys and "ensemble.0.model.layers.0.self_attn.q_proj.weight" in keys
    assert "classifier.weight" in keys and "ensemble.0.classifier.weight" in keys and "crf.transitions" in keys
    assert not any("qkv_proj" in k or k.startswith("ensemble.0.crf") for k in keys)
    assert json.loads((tmp_path / "config.json").read_text())["ensemble_size"] == 2
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = ensemble(**enc).logits
        torch.testing.assert_close(loaded(**enc).logits, logits, rtol=0, atol=0)
    tagger = pipeline("token-classification", model=loaded, tokenizer=tokenizer)
    assert [r["entity"] for r in tagger(TEXTS[0])] == [BMES[i] for i in logits[0, 1:7].argmax(-1).tolist()]

    # without the package: the shipped modeling file builds the same ensemble
    torch.testing.assert_close(_logits_without_the_package(tmp_path, "AutoModelForTokenClassification", TEXTS), logits)


def test_members_must_share_architecture_and_labels(tokenizer):
    first = _member(tokenizer, 1)
    with pytest.raises(ValueError, match="at least two members, got 1"):
        CharLMForTokenClassification.from_members([first])
    with pytest.raises(ValueError, match="differs from the first member in hidden_size, intermediate_size"):
        CharLMForTokenClassification.from_members([first, _member(tokenizer, 2, hidden_size=48, intermediate_size=96)])
    other_labels = _member(tokenizer, 2)
    other_labels.config.id2label = {0: "S", 1: "M", 2: "E", 3: "B"}
    with pytest.raises(ValueError, match="differs from the first member in id2label"):
        CharLMForTokenClassification.from_members([first, other_labels])
    ensemble = CharLMForTokenClassification.from_members([first, _member(tokenizer, 2)])
    with pytest.raises(ValueError, match="already an ensemble of 2: pass its members instead"):
        CharLMForTokenClassification.from_members([ensemble, first])
    # dropout rates may differ (training-only)
    assert CharLMForTokenClassification.from_members([first, _member(tokenizer, 2, hidden_dropout_prob=0.1)]).config.ensemble_size == 2
    # the other heads are single models
    for head in (CharLMForCausalLM, CharLMForMaskedLM):
        with pytest.raises(ValueError, match=f"ensemble_size=2: ensembles are of token and sequence classifiers .* {head.__name__} is one model"):
            head(tiny_config("transformer", ensemble_size=2))
    with pytest.raises(ValueError, match="ensemble_size=0 is invalid: must be an integer >= 1"):
        tiny_config("transformer", ensemble_size=0)


LABELS = ["negative", "positive"]
REVIEWS = ["这本书很好看，推荐", "房间太小了，服务也差", "还行"]


def _sentiment_member(tokenizer, seed: int, **overrides) -> CharLMForSequenceClassification:
    config = tiny_config("transformer", vocab_size=len(tokenizer), num_labels=2, id2label=dict(enumerate(LABELS)),
                         label2id={n: i for i, n in enumerate(LABELS)}, pad_token_id=tokenizer.pad_token_id, **overrides)
    torch.manual_seed(seed)
    return CharLMForSequenceClassification(config).eval()


@pytest.mark.parametrize("feature_buckets", [0, 64])
def test_sequence_ensemble_averages_the_logits_and_loads_like_one_model(tokenizer, tmp_path, feature_buckets):
    members = [_sentiment_member(tokenizer, seed, feature_buckets=feature_buckets) for seed in (6, 7, 8)]
    if feature_buckets:  # n-gram weights start at zero: give the members their own
        for m in members:
            with torch.no_grad():
                m.features.weight.weight.normal_()
    ensemble = CharLMForSequenceClassification.from_members(members)
    assert ensemble.config.ensemble_size == 3 and not ensemble.training
    enc = tokenizer(REVIEWS, return_tensors="pt", padding=True)
    labels = torch.tensor([1, 0, 1])
    with torch.no_grad():
        alone = torch.stack([m(**enc).logits for m in members])
        mean = alone.mean(0)
        out = ensemble(**enc, labels=labels)
        torch.testing.assert_close(out.logits, mean)
        torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(mean, labels))
        assert not torch.allclose(alone[0], alone[1])  # the members differ: the mean is not one of them
        # without an attention mask the padding is found from the pad id, as for a single model
        torch.testing.assert_close(ensemble(input_ids=enc["input_ids"]).logits, mean)
    ensemble.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "classifier.weight" in keys and "ensemble.1.classifier.weight" in keys and "ensemble.1.model.norm.weight" in keys and "ensemble.2.classifier.weight" not in keys
    assert ("ensemble.1.features.weight.weight" in keys) == bool(feature_buckets)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(**enc).logits, mean, rtol=0, atol=0)
    classify = pipeline("text-classification", model=loaded, tokenizer=tokenizer, top_k=None)
    for text, scores, row in zip(REVIEWS, classify(REVIEWS), mean.softmax(-1)):
        assert {s["label"]: round(s["score"], 5) for s in scores} == {LABELS[i]: round(float(p), 5) for i, p in enumerate(row)}, text
    if feature_buckets:
        return
    # without the package: the shipped modeling file builds the same ensemble
    torch.testing.assert_close(_logits_without_the_package(tmp_path, "AutoModelForSequenceClassification", REVIEWS), mean)


def test_sequence_ensemble_members_must_agree(tokenizer):
    first = _sentiment_member(tokenizer, 1)
    with pytest.raises(ValueError, match="differs from the first member in classifier_pooling"):
        CharLMForSequenceClassification.from_members([first, _sentiment_member(tokenizer, 2, classifier_pooling="last")])
    ensemble = CharLMForSequenceClassification.from_members([first, _sentiment_member(tokenizer, 2)])
    with pytest.raises(ValueError, match="already an ensemble of 2: pass its members instead"):
        CharLMForSequenceClassification.from_members([first, ensemble])
    # resizing would touch the first member only: refused, and the ensemble is left as it was
    before = {k: v.clone() for k, v in ensemble.state_dict().items()}
    with pytest.raises(ValueError, match="would resize its first member only: resize each member"):
        ensemble.resize_token_embeddings(len(tokenizer) + 8)
    assert all(torch.equal(before[k], v) for k, v in ensemble.state_dict().items())
    # a single model resizes as usual
    assert first.resize_token_embeddings(len(tokenizer) + 8).weight.shape[0] == len(tokenizer) + 8


def test_ensemble_script_builds_a_sequence_classifier_and_refuses_mixed_heads(tokenizer, tmp_path, capsys):
    folders = [_saved(tmp_path / f"sentiment{seed}", _sentiment_member(tokenizer, seed), tokenizer,
                      {"eval_accuracy": 0.8 + seed / 100, "test_accuracy": 0.75, "eval_loss": 0.4}) for seed in (1, 2)]
    out = tmp_path / "ensemble"
    # the former name of the script runs the same code
    code, _ = run_script_in_process(ROOT / "scripts" / "ensemble_token_classification.py",
                                    ["--members", *folders, "--output_dir", str(out)], capsys)
    assert code == 0
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert type(loaded) is CharLMForSequenceClassification and loaded.config.ensemble_size == 2
    card = (out / "README.md").read_text()
    assert f'member 1 | {folders[1]} {{"eval_accuracy": 0.82, "test_accuracy": 0.75}}' in card
    assert "pipeline_tag: text-classification" in card and "mean of their logits" in card
    token = _saved(tmp_path / "token", _member(tokenizer, 3), tokenizer)
    code, message = run_script_in_process(SCRIPT, ["--members", folders[0], token, "--output_dir", str(tmp_path / "x")], capsys)
    assert code == 2 and "a CharLMForTokenClassification, while" in message and "runs of one recipe" in message
    lm = tmp_path / "lm"
    CharLMForCausalLM(tiny_config("transformer", vocab_size=len(tokenizer))).save_pretrained(lm)
    code, message = run_script_in_process(SCRIPT, ["--members", str(lm), folders[0], "--output_dir", str(tmp_path / "x")], capsys)
    assert code == 2 and "it holds CharLMForCausalLM; ensembles are of" in message
    assert not (tmp_path / "x").exists()


def test_ensemble_script_builds_a_folder_and_refuses_bad_members(tokenizer, tmp_path, capsys):
    folders = [_saved(tmp_path / f"member{seed}", _member(tokenizer, seed), tokenizer,
                      {"eval_f1": 0.5 + seed / 10, "test_f1": 0.25}) for seed in (1, 2)]
    out = tmp_path / "ensemble"
    code, _ = run_script_in_process(SCRIPT, ["--members", *folders, "--output_dir", str(out)], capsys)
    assert code == 0
    loaded = AutoModelForTokenClassification.from_pretrained(out)
    assert loaded.config.ensemble_size == 2 and (out / "tokenizer.json").is_file()
    card = (out / "README.md").read_text()
    assert f'member 1 | {folders[1]} {{"eval_f1": 0.7, "test_f1": 0.25}}' in card
    saved = (out / "model.safetensors").read_bytes()

    def error(*argv: str) -> str:
        code, message = run_script_in_process(SCRIPT, list(argv), capsys)
        assert code == 2
        return message

    assert "an ensemble needs at least two models, got 1" in error("--members", folders[0], "--output_dir", str(tmp_path / "x"))
    assert "no model folder there (no config.json)" in error("--members", folders[0], str(tmp_path / "nope"), "--output_dir", str(tmp_path / "x"))
    assert "is one of the --members" in error("--members", *folders, "--output_dir", folders[1])
    assert "already holds a model" in error("--members", *folders, "--output_dir", str(out))
    assert (out / "model.safetensors").read_bytes() == saved  # the refused run left the folder as it was
    # a member of another tokenizer (same size, other characters): the ids would mean other characters
    from hf_charlm import train_char_tokenizer

    odd = tmp_path / "odd"
    _member(tokenizer, 3).save_pretrained(odd)
    train_char_tokenizer(["一二三四五六七八九十" * 3, "abcdefghijklmnopqrstuvwxyz"]).save_pretrained(odd)
    assert "its tokenizer differs from that of" in error("--members", folders[0], str(odd), "--output_dir", str(tmp_path / "y"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_recipes_ensemble_arguments(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipes.py"), "--budget", "cpu", *args],
                              cwd=tmp_path, capture_output=True, text=True)

    proc = run("--ensemble", "0")
    assert proc.returncode == 2 and "--ensemble=0 must be >= 1" in proc.stderr
    proc = run("--ensemble", "2", "--tasks", "sentiment", "--systems", "BiLSTM-CRF, scratch", "--pretrained", str(tmp_path))
    assert proc.returncode == 2 and "--ensemble: no system of the recipe runs on --tasks sentiment" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("system, task, metric", [
    ("BiLSTM-CRF, scratch", "ner", "f1"),
    ("BiLSTM, bigrams, n-gram features, scratch", "sentiment", "accuracy"),
])
def test_recipes_ensemble_trains_members_side_by_side_and_scores_their_ensemble(tmp_path, system, task, metric):
    """End to end from scratch (BiLSTM systems: no pretraining), cut to 64 examples and a few steps."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "recipes.py"), "--budget", "cpu", "--systems", system,
         "--tasks", task, "--ensemble", "2", "--scale", "0.01", "--max_samples", "64", "--probe_steps", "4", "--plot", "false",
         "--workdir", str(tmp_path / "work"), "--output_dir", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "recipes_cpu.json").read_text())
    systems = [row["system"].split(" (")[0] for row in report["rows"]]
    assert systems == [f"hf_charlm {system}, seed 42", f"hf_charlm {system}, seed 43", f"hf_charlm {system}, ensemble of 2"]
    assert report["rows"][2]["system"].startswith(f"hf_charlm {system}, ensemble of 2 (seeds 42, 43) (")
    members, ensemble = report["rows"][:2], report["rows"][2]
    assert ensemble["member_curves"] == [m["curve"] for m in members] and ensemble["curve"] == []
    name = f"{task}--{system.replace(', ', '--').replace(' ', '_')}"
    folder = tmp_path / "work" / "cpu" / f"{name}--ensemble_of_2-model"
    config = json.loads((folder / "config.json").read_text())
    assert config["ensemble_size"] == 2
    assert config["architectures"] == ["CharLMForTokenClassification" if task == "ner" else "CharLMForSequenceClassification"]
    scores = json.loads((tmp_path / "work" / "cpu" / f"{name}--ensemble_of_2" / "all_results.json").read_text())
    assert ensemble["metrics"][metric] == scores[f"test_{metric}"]
    assert ensemble["validation_metrics"][metric] == scores[f"eval_{metric}"]
    run = report["runs"][f"{name}--ensemble_of_2"]
    # the members ran side by side: the ensemble's wall time is the slowest member's plus building and scoring
    walls = [report["runs"][f"{name}--seed_{s}"]["wall_s"] for s in (42, 43)]
    assert max(walls) < run["wall_s"] < sum(walls) + 300
    assert f"| {task} | hf_charlm {system}, ensemble of 2 (seeds 42, 43)" in (tmp_path / "out" / "recipes_cpu.md").read_text()
