"""Saved folders load with `trust_remote_code=True` in a process where hf_charlm cannot be imported, give the
same outputs as the in-package models, and run in the three pipelines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import pipeline

from hf_charlm import (
    CharLMForCausalLM,
    CharLMForConditionalGeneration,
    CharLMForSequenceClassification,
    CharLMForTokenClassification,
    train_char_tokenizer,
)
from tests.conftest import CORPUS, tiny_config

TEXT = "江泽民在北京 met Obama 😀 in 2024!"
SHIPPED = {"config.json", "configuration_charlm.py", "modeling_charlm.py", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
AUTO_CLASSES = {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForMaskedLM", "AutoModelForTokenClassification",
                "AutoModelForSequenceClassification", "AutoModelForSeq2SeqLM"}


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def folders(request, tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = train_char_tokenizer(CORPUS)
    root = tmp_path_factory.mktemp(f"remote_{request.param}")
    config = tiny_config(request.param, vocab_size=len(tokenizer), max_position_embeddings=128, num_labels=2)
    lm = CharLMForCausalLM(config).eval()
    lm.save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    labels = {"id2label": {0: "O", 1: "B-PER", 2: "I-PER"}, "label2id": {"O": 0, "B-PER": 1, "I-PER": 2}}
    # the token classifier also reads hashed bigram and n-gram features, and the sequence classifier n-gram features,
    # made non-zero so that the remote copy must compute them
    tc = CharLMForTokenClassification.from_pretrained(
        root / "lm", num_labels=3, bigram_buckets=97, bigram_embedding_size=8, feature_buckets=101, **labels
    ).eval()
    with torch.no_grad():
        tc.model.embed_bigrams.proj.weight.normal_(0.0, 0.5)
        tc.features.weight.weight.normal_(0.0, 0.5)
    tc.save_pretrained(root / "tc")
    tokenizer.save_pretrained(root / "tc")
    sc = CharLMForSequenceClassification.from_pretrained(
        root / "lm", num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
        feature_buckets=103,
    ).eval()
    with torch.no_grad():
        sc.features.weight.weight.normal_(0.0, 0.5)
    sc.save_pretrained(root / "sc")
    tokenizer.save_pretrained(root / "sc")
    return root, {"lm": lm, "tc": tc, "sc": sc}


def test_saved_folder_is_hub_ready(folders):
    root, _ = folders
    for name in ("lm", "tc", "sc"):
        files = {p.name for p in (root / name).iterdir()}
        expected = SHIPPED | ({"generation_config.json"} if name == "lm" else set())
        assert expected <= files, expected - files
        assert not [f for f in files if f.endswith((".bin", ".pt", ".pkl"))]
        config = json.loads((root / name / "config.json").read_text())
        assert set(config["auto_map"]) == AUTO_CLASSES
        assert config["model_type"] == "charlm"
        shipped = (root / name / "modeling_charlm.py").read_text()
        assert "import hf_charlm" not in shipped and "from hf_charlm" not in shipped


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_charlm"] = None  # as on a machine without the package
    try:
        import hf_charlm  # noqa
        raise SystemExit("hf_charlm importable")
    except ImportError:
        pass
    import torch
    from safetensors.torch import save_file
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                              AutoModelForTokenClassification, AutoTokenizer, pipeline)

    root, text, out = sys.argv[1], sys.argv[2], sys.argv[3]
    tok = AutoTokenizer.from_pretrained(f"{root}/lm", trust_remote_code=False)
    enc = tok([text, text[:9]], padding=True, return_tensors="pt")
    results, report = {}, {"tokenizer_class": type(tok).__name__}
    for name, auto in (("lm", AutoModelForCausalLM), ("tc", AutoModelForTokenClassification),
                       ("sc", AutoModelForSequenceClassification)):
        model = auto.from_pretrained(f"{root}/{name}", trust_remote_code=True).eval()
        report[name] = type(model).__module__
        with torch.no_grad():
            results[name] = model(**enc).logits.contiguous()
    lm = AutoModelForCausalLM.from_pretrained(f"{root}/lm", trust_remote_code=True).eval()
    results["generated"] = lm.generate(**tok([text[:5]], return_tensors="pt"), max_new_tokens=8, do_sample=False)
    gen = pipeline("text-generation", model=f"{root}/lm", trust_remote_code=True)
    report["text_generation"] = gen(text[:5], max_new_tokens=4, do_sample=False)[0]["generated_text"]
    ner = pipeline("token-classification", model=f"{root}/tc", trust_remote_code=True, aggregation_strategy="simple")
    report["ner"] = [{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in ner(text)]
    clf = pipeline("text-classification", model=f"{root}/sc", trust_remote_code=True)
    report["clf"] = [{"label": r["label"], "score": float(r["score"])} for r in clf([text, "好"])]
    save_file(results, out + ".safetensors")
    json.dump(report, open(out + ".json", "w"), ensure_ascii=False)
    """
)


def run_remote(root: Path, tmp_path: Path) -> tuple[dict, dict]:
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    out = tmp_path / "remote_out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(script), str(root), TEXT, str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return load_file(f"{out}.safetensors"), json.loads(Path(f"{out}.json").read_text())


def test_remote_code_outputs_identical_and_pipelines_run(folders, tokenizer, tmp_path):
    root, models = folders
    remote, report = run_remote(root, tmp_path)
    # the classes came from the copied files, not from this package
    for name in ("lm", "tc", "sc"):
        assert "hf_charlm" not in report[name] and "modeling_charlm" in report[name]
    assert report["tokenizer_class"] in ("TokenizersBackend", "PreTrainedTokenizerFast")
    enc = tokenizer([TEXT, TEXT[:9]], padding=True, return_tensors="pt")
    with torch.no_grad():
        # bit-identical for the transformer; a packed recurrent batch (rows of different lengths) may differ in the
        # last float32 bit between two processes (BLAS picks kernels by memory alignment), so it gets 1e-6
        exact = models["lm"].config.backbone == "transformer"
        for name in ("lm", "tc", "sc"):
            torch.testing.assert_close(
                remote[name], models[name](**enc).logits, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6, msg=name
            )
        local_gen = models["lm"].generate(**tokenizer([TEXT[:5]], return_tensors="pt"), max_new_tokens=8, do_sample=False)
    assert torch.equal(remote["generated"], local_gen)
    assert report["text_generation"].startswith(TEXT[:5])
    assert {r["label"] for r in report["clf"]} <= {"negative", "positive"}
    for entity in report["ner"]:
        assert entity["entity_group"] in ("PER", "O")
        assert 0 <= entity["start"] < entity["end"] <= len(TEXT)
        # an untrained head may split the byte tokens of one unseen character between two groups: the span is
        # still that character, the decoded word is then a replacement character
        if "\ufffd" not in entity["word"]:
            assert TEXT[entity["start"] : entity["end"]].strip() == entity["word"].strip()


def _force_labels(model: CharLMForTokenClassification, label: int) -> None:
    """Make the head predict `label` everywhere (zero weights, one large bias)."""
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(-5.0)
        model.classifier.bias[label] = 5.0


def test_token_classification_pipeline_character_spans(folders, tokenizer):
    root, models = folders
    tc = CharLMForTokenClassification.from_pretrained(root / "tc").eval()
    ner = pipeline("token-classification", model=tc, tokenizer=tokenizer, aggregation_strategy="simple")
    _force_labels(tc, 2)  # I-PER everywhere: one entity spanning the whole text, in Python characters
    entities = ner(TEXT)
    assert [(e["entity_group"], e["start"], e["end"]) for e in entities] == [("PER", 0, len(TEXT))]
    _force_labels(tc, 1)  # B-PER everywhere: one entity per character, emoji and unseen CJK included
    entities = ner(TEXT)
    # the byte tokens of an unseen character each start an entity here, all with that character's span
    spans = list(dict.fromkeys((e["start"], e["end"]) for e in entities))
    expected = [(i, i + 1) for i, ch in enumerate(TEXT) if not ch.isspace()]
    assert [s for s in spans if not TEXT[s[0] : s[1]].isspace()] == expected
    emoji = TEXT.index("😀")
    assert (emoji, emoji + 1) in spans and len(tokenizer("😀", add_special_tokens=False).input_ids) >= 1


def test_text_generation_pipeline_in_process(folders, tokenizer):
    root, models = folders
    gen = pipeline("text-generation", model=models["lm"], tokenizer=tokenizer)
    out = gen("北京", max_new_tokens=6, do_sample=False)[0]["generated_text"]
    ids = models["lm"].generate(**tokenizer(["北京"], return_tensors="pt"), max_new_tokens=6, do_sample=False)
    assert out == tokenizer.decode(ids[0], skip_special_tokens=True)


# ------------------------------------------------------------------------------------------------ encoder-decoder

SEQ2SEQ_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_charlm"] = None  # as on a machine without the package
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder, text, out = sys.argv[1], sys.argv[2], sys.argv[3]
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=False)
    tok.padding_side = "left"
    enc = tok([text, text[:9]], padding=True, return_tensors="pt")
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    decoder_input_ids = torch.tensor([[2, 40, 41, 42], [2, 50, 51, 52]])
    with torch.no_grad():
        results = {
            "logits": model(**enc, decoder_input_ids=decoder_input_ids).logits.contiguous(),
            "greedy": model.generate(**enc, max_new_tokens=8, do_sample=False),
            "beams": model.generate(**enc, max_new_tokens=8, num_beams=3, num_return_sequences=2),
        }
    save_file(results, out + ".safetensors")
    report = {"module": type(model).__module__, "encoder_module": type(model.get_encoder()).__module__,
              "text": tok.batch_decode(results["greedy"], skip_special_tokens=True)}
    json.dump(report, open(out + ".json", "w"), ensure_ascii=False)
    """
)


@pytest.fixture(scope="module", params=["transformer", "gru"])
def seq2seq_folder(request, tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = train_char_tokenizer(CORPUS)
    folder = tmp_path_factory.mktemp(f"remote_s2s_{request.param}")
    # a wide initialisation, so that greedy output depends on the source
    config = tiny_config(request.param, vocab_size=len(tokenizer), max_position_embeddings=128, initializer_range=0.3)
    model = CharLMForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def test_seq2seq_remote_code_identical(seq2seq_folder, tokenizer, tmp_path):
    folder, model = seq2seq_folder
    files = {p.name for p in folder.iterdir()}
    # save_pretrained copied the seq2seq module and the module it imports with a single dot
    assert SHIPPED | {"modeling_charlm_seq2seq.py", "generation_config.json"} <= files
    config = json.loads((folder / "config.json").read_text())
    # the full map of every head (see test_saved_folder_is_hub_ready), the seq2seq entry pointing at the shipped file
    assert set(config["auto_map"]) == AUTO_CLASSES and config["is_encoder_decoder"] is True
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_charlm_seq2seq.CharLMForConditionalGeneration"
    assert config["architectures"] == ["CharLMForConditionalGeneration"]
    for name in ("modeling_charlm_seq2seq.py", "modeling_charlm.py"):
        shipped = (folder / name).read_text()
        assert "import hf_charlm" not in shipped and "from hf_charlm" not in shipped

    script = tmp_path / "remote_s2s.py"
    script.write_text(SEQ2SEQ_SCRIPT)
    out = tmp_path / "remote_s2s_out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, str(script), str(folder), TEXT, str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote, report = load_file(f"{out}.safetensors"), json.loads(Path(f"{out}.json").read_text())
    assert "hf_charlm" not in report["module"] and report["module"].endswith("modeling_charlm_seq2seq")
    assert report["encoder_module"].endswith("modeling_charlm_seq2seq")

    tokenizer.padding_side = "left"
    enc = tokenizer([TEXT, TEXT[:9]], padding=True, return_tensors="pt")
    exact = model.config.backbone == "transformer"
    with torch.no_grad():
        logits = model(**enc, decoder_input_ids=torch.tensor([[2, 40, 41, 42], [2, 50, 51, 52]])).logits
        greedy = model.generate(**enc, max_new_tokens=8, do_sample=False)
        beams = model.generate(**enc, max_new_tokens=8, num_beams=3, num_return_sequences=2)
    torch.testing.assert_close(remote["logits"], logits, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)
    assert torch.equal(remote["greedy"], greedy) and torch.equal(remote["beams"], beams)
    assert len(set(map(tuple, greedy.tolist()))) == 2  # the two sources give different outputs
    assert report["text"] == tokenizer.batch_decode(greedy, skip_special_tokens=True)
