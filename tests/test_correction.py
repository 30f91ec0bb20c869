"""Text correction: the SIGHAN-style metrics on hand-computed cases, the built-in correction sets (determinism,
error share, substitutions really from the confusion sets, no sentence in two splits), the same-length and
zero-shot correctors and the `text-correction` pipeline on a hand-built model whose answer is known, and
`scripts/finetune_correction.py` (bad input: exit status 2, nothing written; a short real run)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from hf_charlm import CharLMConfig, CharLMForMaskedLM, train_char_tokenizer
from hf_charlm.metrics import correction_scores, text_edits, word_accuracy

from .conftest import run_script_in_process

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "finetune_correction.py"
needs_pycorrector = pytest.mark.skipif(
    importlib.util.find_spec("pycorrector") is None or importlib.util.find_spec("pypinyin") is None,
    reason='the correction sets read pycorrector\'s data files: pip install "hf_charlm[correction]"',
)


# ------------------------------------------------------------------------------------------------------------
# metrics, by hand


def test_correction_scores_hand_computed():
    sources = ["我们去学效", "他很高心", "今天很好", "天气不错", "吃反了"]
    targets = ["我们去学校", "他很高兴", "今天很好", "天气不错", "吃饭了"]
    predictions = [
        "我们去学校",  # right
        "她很高兴",  # the error fixed, but a correct character changed too: neither detected nor corrected
        "今天很号",  # a false alarm on a correct sentence
        "天气不错",  # left alone, correctly
        "吃范了",  # the right position, the wrong character: detected, not corrected
    ]
    s = correction_scores(sources, targets, predictions)
    # 3 sentences with errors, 4 changed; detected: 1st and 5th; corrected: 1st
    assert s["erroneous_sentences"] == 3 and s["changed_sentences"] == 4
    assert s["sentence_detection_precision"] == pytest.approx(2 / 4)
    assert s["sentence_detection_recall"] == pytest.approx(2 / 3)
    assert s["sentence_detection_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert s["sentence_correction_precision"] == pytest.approx(1 / 4)
    assert s["sentence_correction_recall"] == pytest.approx(1 / 3)
    assert s["sentence_correction_f1"] == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    # characters: 3 gold edits, 5 predicted; all 3 gold positions found, 2 with the right character
    assert s["char_detection_precision"] == pytest.approx(3 / 5)
    assert s["char_detection_recall"] == pytest.approx(1.0)
    assert s["char_correction_precision"] == pytest.approx(2 / 5)
    assert s["char_correction_recall"] == pytest.approx(2 / 3)
    assert s["false_positive_rate"] == pytest.approx(1 / 2)
    assert s["sentence_accuracy"] == pytest.approx(2 / 5)


def test_correction_scores_no_op_and_perfect():
    sources, targets = ["错字了", "没错"], ["错字了", "没有"]
    none = correction_scores(["abc", "xbc"], ["abc", "abc"], ["abc", "xbc"])
    assert none["sentence_correction_f1"] == 0.0 and none["false_positive_rate"] == 0.0
    perfect = correction_scores(sources, targets, targets)
    assert perfect["sentence_correction_f1"] == 1.0 and perfect["char_correction_f1"] == 1.0
    with pytest.raises(ValueError, match="one of each"):
        correction_scores(sources, targets, targets[:1])


def test_text_edits_and_word_accuracy():
    assert text_edits("abcd", "abxd") == [(2, 3, "x")]
    assert text_edits("abcd", "abxcd") == [(2, 2, "x")]
    assert text_edits("Helo wrld", "Hello world") == [(2, 2, "l"), (6, 6, "o")]  # "Hel|lo" or "He|llo": the same text
    assert text_edits("abcd", "acd") == [(1, 2, "")]
    # lengths differ: a replaced span of the same length is split per character
    assert text_edits("abcdef!", "abXYef") == [(2, 3, "X"), (3, 4, "Y"), (6, 7, "")]
    from hf_charlm.correction import apply_edits

    for source, output in (("teh cat!", "the cat"), ("Helo wrld", "Hello world"), ("", "ab"), ("ab", "")):
        edits = [{"start": s, "end": e, "replacement": r} for s, e, r in text_edits(source, output)]
        assert apply_edits(source, edits) == output
    assert word_accuracy(["I am here"], ["I am hre"]) == pytest.approx(2 / 3)
    assert word_accuracy(["I am here"], ["I am am here"]) == pytest.approx(1.0)
    assert word_accuracy(["a b", "c d e f"], ["a b", "c x e f"]) == pytest.approx(5 / 6)


# ------------------------------------------------------------------------------------------------------------
# the built-in sets


@needs_pycorrector
def test_chinese_errors_are_deterministic_and_from_the_confusion_sets():
    from hf_charlm.correction_data import add_chinese_errors, candidates, confusion_sets

    text = "我们要更好地坚持解放思想、实事求是的思想路线。"
    outcomes = [add_chinese_errors(text, str(k)) for k in range(200)]
    assert outcomes == [add_chinese_errors(text, str(k)) for k in range(200)]  # seeded by the key alone
    with_errors = [o for o in outcomes if o[1]]
    assert 0.35 < len(with_errors) / len(outcomes) < 0.65
    assert {len(o[1]) for o in with_errors} == {1, 2, 3}
    sets = confusion_sets()
    for source, positions, kinds in outcomes:
        assert len(source) == len(text)
        assert [i for i, (a, b) in enumerate(zip(source, text)) if a != b] == positions
        for i, kind in zip(positions, kinds):
            assert source[i] in sets[text[i]][kind], (text[i], source[i], kind)
            assert source[i] in candidates(text[i])
    # a line of same_pinyin.txt ("乙 已 亿艺忆"), a group of same_stroke.txt ("齐 济 挤 剂 跻"), pypinyin's xue
    assert "亿" in sets["乙"]["pinyin"]
    assert sets["齐"]["shape"] == {"济", "跻", "挤", "剂"}
    assert "雪" in sets["学"]["pinyin"] and "学" not in candidates("学")


@needs_pycorrector
def test_fresh_errors_are_new_draws_from_the_confusion_sets():
    from hf_charlm.correction_data import add_chinese_errors, candidates, fresh_errors

    texts = ["我们要更好地坚持解放思想、实事求是的思想路线。", "今天的会议在北京举行，代表们讨论了经济发展问题。", "ABC 123"]
    drawn = fresh_errors(texts, 40)
    assert drawn == fresh_errors(texts, 40)  # the same call, the same copies
    assert [i for i, _ in drawn] == [0, 1, 2] * 40  # copy by copy, in the order of the texts
    assert all(source == "ABC 123" for i, source in drawn if i == 2)  # nothing confusable: never changed
    for i, source in drawn:
        assert len(source) == len(texts[i])
        assert all(a in candidates(b) for a, b in zip(source, texts[i]) if a != b)
    first = [source for i, source in drawn if i == 0]
    changed = [s for s in first if s != texts[0]]
    assert 0.3 < len(changed) / len(first) < 0.7  # the built-in set's share of sentences with errors
    assert len(set(changed)) > len(changed) // 2  # copies differ from each other
    assert first != [add_chinese_errors(texts[0], str(k))[0] for k in range(40)]  # not the built-in set's draws
    assert fresh_errors(texts, 0) == []
    with pytest.raises(ValueError, match="copies=-1"):
        fresh_errors(texts, -1)


@needs_pycorrector
def test_peoples_daily_csc_splits_and_share():
    from hf_charlm.data import load_builtin

    csc = load_builtin("peoples_daily_csc")
    ner = load_builtin("peoples_daily_ner")
    assert {split: csc[split]["id"] for split in csc} == {split: ner[split]["id"] for split in ner}  # same separation
    test = csc["test"]
    assert test.column_names == ["id", "source", "target", "positions", "kinds"]
    share = sum(bool(p) for p in test["positions"]) / test.num_rows
    assert 0.45 < share < 0.55
    assert ["".join(t) for t in ner["test"]["tokens"][:50]] == test["target"][:50]
    for source, target, positions in zip(test["source"][:500], test["target"][:500], test["positions"][:500]):
        assert [i for i, (a, b) in enumerate(zip(source, target)) if a != b] == positions


@needs_pycorrector
def test_sighan_is_test_only():
    from hf_charlm.correction_data import EVALUATION_ONLY
    from hf_charlm.data import dataset_statistics, load_builtin

    sighan = load_builtin("sighan2015_test")
    assert list(sighan) == ["test"] and "sighan2015_test" in EVALUATION_ONLY
    assert sighan["test"].num_rows == 697
    assert dataset_statistics("sighan2015_test")["source"] == {"source_lines": 707, "different_length_dropped": 10}
    assert "never train" in sighan["test"].info.description
    with pytest.raises(ValueError, match="pinyin_to_hanzi, peoples_daily_csc, english_typos, sighan2015_test"):
        load_builtin("peoples_daily_csk")


def test_typos_are_deterministic_and_keyboard_adjacent():
    from hf_charlm.correction_data import add_typos, keyboard_neighbours
    from hf_charlm.metrics import edit_distance

    near = keyboard_neighbours()
    assert set(near["s"]) == set("adwezx") and set(near["p"]) == set("ol")
    text = "The quick brown fox jumps over the lazy dog."
    outcomes = [add_typos(text, str(k)) for k in range(300)]
    assert outcomes == [add_typos(text, str(k)) for k in range(300)]
    changed = [o for o in outcomes if o[1]]
    assert 0.35 < len(changed) / len(outcomes) < 0.65
    for source, kinds in changed:
        # a transposition is two substitutions to Levenshtein, any other typo one edit
        assert 1 <= edit_distance(source, text) <= len(kinds) + kinds.count("transposition")
        if kinds == ["substitution"]:
            (i, _, new), = text_edits(text, source)
            assert new.lower() in near[text[i].lower()]
    assert {k for _, kinds in changed for k in kinds} == {"substitution", "insertion", "deletion", "transposition"}


def test_english_typos_split_by_sentence():
    from hf_charlm.data import _sentence_key, load_builtin

    typos = load_builtin("english_typos")
    keys = {split: {_sentence_key(t) for t in typos[split]["target"]} for split in typos}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["validation"] and not keys["validation"] & keys["test"]
    origins = {o.split(":")[0] for o in typos["train"]["origin"]}
    assert origins == {"tatoeba", "tinyshakespeare"}
    share = sum(s != t for s, t in zip(typos["test"]["source"], typos["test"]["target"])) / typos["test"].num_rows
    assert 0.4 < share < 0.6


# ------------------------------------------------------------------------------------------------------------
# correctors and the pipeline, on a model built by hand


def swap_model(tmp_path: Path, swaps: dict[str, str], max_positions: int = 32, corrector: bool = False) -> tuple[Path, object]:
    """A masked char LM whose answer is known: one-hot character embeddings, blocks that add nothing, and an
    output layer that maps each character to itself, except `swaps` (wrong -> right), and the mask to the right
    characters. Saved with its tokenizer in `tmp_path` (`corrector`: recorded as a text corrector, as the
    correction script saves one)."""
    tokenizer = train_char_tokenizer(["我们去学校效上课。今天天气很好，abc"])
    vocab = len(tokenizer)
    hidden = vocab + vocab % 2  # rotary embeddings need an even width
    config = CharLMConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=1, num_attention_heads=1,
                          intermediate_size=8, max_position_embeddings=max_positions, tie_word_embeddings=False,
                          finetuning_task="text-correction" if corrector else None)
    model = CharLMForMaskedLM(config)
    with torch.no_grad():
        eye = torch.eye(vocab, hidden)
        model.model.embed_tokens.weight.copy_(eye)
        for layer in model.model.layers:  # the residual stream passes through unchanged
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        head = eye.clone()
        for wrong, right in swaps.items():
            w, r = tokenizer.convert_tokens_to_ids(wrong), tokenizer.convert_tokens_to_ids(right)
            head[r, w] = 2.0  # reading `wrong`, the model prefers `right`
            head[r, tokenizer.mask_token_id] = 2.0  # and at a mask, `right`
        model.lm_head.weight.copy_(head)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path, tokenizer


def test_pipeline_edits_offsets_batches_and_long_texts(tmp_path):
    import hf_charlm  # noqa: F401  (registers the pipeline)
    from transformers import pipeline

    folder, _ = swap_model(tmp_path, {"效": "校"})
    correct = pipeline("text-correction", model=str(folder))
    out = correct("我们去学效上课")
    assert out["corrected_text"] == "我们去学校上课"
    (edit,) = out["edits"]
    assert (edit["start"], edit["end"], edit["original"], edit["replacement"]) == (4, 5, "效", "校")
    assert edit["score"] > 0.9
    # a text far longer than the model's 32 positions: windows, and the offsets still into the whole text
    long = "今天天气很好。" * 20 + "学效" + "今天天气很好。" * 20 + "效"
    batch = correct([long, "abc", "我们去学校"])
    assert [e["start"] for e in batch[0]["edits"]] == [141, len(long) - 1]
    assert batch[0]["corrected_text"] == long.replace("效", "校")
    assert batch[1] == {"corrected_text": "abc", "edits": []}
    assert batch[2]["edits"] == []
    # a character outside the vocabulary (byte tokens) is left as it is
    assert correct("学效😀效")["corrected_text"] == "学校😀校"
    assert correct("学效", min_score=1.01)["edits"] == []  # no probability reaches it


def test_zero_shot_corrector_and_margin_tuning(tmp_path):
    from hf_charlm.correction import ZeroShotCorrector, apply_edits

    folder, tokenizer = swap_model(tmp_path, {"效": "校"})
    model = CharLMForMaskedLM.from_pretrained(folder)
    confusions = {"校": frozenset("效"), "效": frozenset("校")}
    corrector = ZeroShotCorrector(model, tokenizer, candidates=lambda ch: confusions.get(ch, frozenset()), margin=1.0)
    ((proposal,),) = corrector.proposals(["学效"])  # one character with candidates, one proposal
    assert proposal["replacement"] == "校" and proposal["score"] > 1.0
    edits = corrector.correct(["学效了", "学校"])
    assert [apply_edits(t, e) for t, e in zip(["学效了", "学校"], edits)] == ["学校了", "学校"]
    # called, it answers as the text-correction pipeline does
    assert corrector(["学效了", "学校"]) == [{"corrected_text": "学校了", "edits": edits[0]}, {"corrected_text": "学校", "edits": []}]
    assert corrector("学效了") == {"corrected_text": "学校了", "edits": edits[0]}
    with pytest.raises(TypeError, match="a text or a list of texts"):
        corrector([1])
    results = corrector.tune(["学效", "学校"], ["学校", "学校"], margins=(0.0, 100.0))
    assert results[0.0] == 1.0 and results[100.0] == 0.0 and corrector.margin == 0.0


@pytest.mark.parametrize("first", ["hf_charlm.pipeline_charlm", "hf_charlm.correction", "hf_charlm"])
def test_the_pipeline_is_registered_whatever_is_imported_first(first):
    """Importing the shipped pipeline file first imports transformers.pipelines, which brings hf_charlm.pipelines in
    while that file is still half done: the pipeline must be registered all the same, once."""
    import subprocess

    code = (f"import importlib, logging; importlib.import_module({first!r})\n"
            "from transformers.pipelines import PIPELINE_REGISTRY\n"
            "import hf_charlm.pipelines as p, hf_charlm.pipeline_charlm as f\n"
            "print(PIPELINE_REGISTRY.supported_tasks['text-correction']['impl'] is f.CharLMTextCorrectionPipeline,"
            " p.CharLMTextCorrectionPipeline is f.CharLMTextCorrectionPipeline)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "True"]
    assert "already registered" not in proc.stderr


def test_confusion_set_corrector_writes_only_candidates(tmp_path):
    """The fine-tuned corrector held to the confusion sets: its gain is the log-probability of the best candidate
    minus the character's own, read once from the unmasked text (windows for a long one); a choice of the model
    outside the candidates is never written, where the free argmax (`predict_same_length`) writes it."""
    from hf_charlm.correction import ConfusionSetCorrector, apply_edits, predict_same_length

    folder, tokenizer = swap_model(tmp_path, {"效": "校", "天": "气"}, max_positions=16)
    model = CharLMForMaskedLM.from_pretrained(folder)
    confusions = {"校": frozenset("效"), "效": frozenset("校")}  # 天 has no candidates
    corrector = ConfusionSetCorrector(model, tokenizer, candidates=lambda ch: confusions.get(ch, frozenset()), margin=0.5)
    text = "今天学效"
    ((proposal,),) = corrector.proposals([text])
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = model(input_ids=ids).logits.log_softmax(-1)[0, 4]  # <s> 今 天 学 效: position 4
    gain = logp[tokenizer.convert_tokens_to_ids("校")] - logp[tokenizer.convert_tokens_to_ids("效")]
    assert (proposal["start"], proposal["replacement"]) == (3, "校") and proposal["score"] == pytest.approx(float(gain), abs=1e-5)
    assert apply_edits(text, corrector.correct([text])[0]) == "今天学校"
    assert apply_edits(text, predict_same_length(model, tokenizer, [text])[0]) == "今气学校"  # the free choice
    long = "今天学效，学校。" * 6  # 48 characters in windows of 16 positions
    edits = corrector.correct([long])[0]
    assert apply_edits(long, edits) == "今天学校，学校。" * 6 and all(e["score"] == pytest.approx(proposal["score"], abs=1e-5) for e in edits)
    results = corrector.tune([text, "学校"], ["今天学校", "学校"], margins=(0.0, 100.0))
    assert results[0.0] == 1.0 and results[100.0] == 0.0 and corrector.margin == 0.0


def test_zero_shot_masked_logits_equal_the_full_forward(tokenizer):
    """The zero-shot corrector runs the output layer at the masked position only: the same logits as the model's
    own forward (bidirectional attention, padding masked)."""
    from hf_charlm.correction import ZeroShotCorrector

    from .conftest import tiny_config

    torch.manual_seed(0)
    model = CharLMForMaskedLM(tiny_config(vocab_size=len(tokenizer))).eval()
    corrector = ZeroShotCorrector(model, tokenizer, candidates=lambda ch: frozenset())
    enc = tokenizer(["人民日报一九九八年", "新世纪"], padding=True, return_tensors="pt")
    ks = torch.tensor([3, 2])
    with torch.no_grad():
        full = model(**enc).logits[torch.arange(2), ks]
        assert torch.allclose(corrector._masked_logits(enc["input_ids"], enc["attention_mask"], ks), full, atol=1e-5)


def test_pipeline_with_an_encoder_decoder(tmp_path, tokenizer):
    """An encoder-decoder goes through generate: the edits are the alignment of input and output, with offsets into
    the input, and applying them gives the corrected text; a long text is rewritten in pieces."""
    import hf_charlm  # noqa: F401
    from transformers import pipeline

    from hf_charlm import CharLMForConditionalGeneration
    from hf_charlm.correction import apply_edits

    from .conftest import tiny_config

    torch.manual_seed(0)
    CharLMForConditionalGeneration(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=32)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    correct = pipeline("text-correction", model=str(tmp_path))
    assert type(correct.model).__name__ == "CharLMForConditionalGeneration"
    long = "hello world, this is a tiny corpus. " * 4
    for text, out in zip(["hello wrld", long], correct(["hello wrld", long], max_new_tokens=12)):
        assert set(out) == {"corrected_text", "edits"}
        assert apply_edits(text, out["edits"]) == out["corrected_text"]
        assert all(0 <= e["start"] <= e["end"] <= len(text) and text[e["start"]:e["end"]] == e["original"] for e in out["edits"])
        assert all(0.0 <= e["score"] <= 1.0 for e in out["edits"])
    # 144 characters in pieces of at most 30 tokens (32 positions, <s> and </s>): several generate calls
    from hf_charlm.pipeline_charlm import _pieces

    assert len(_pieces(correct.tokenizer, long, 32)) >= 5 and "".join(_pieces(correct.tokenizer, long, 32)) == long


REMOTE_PIPELINE = """
import json, sys
sys.modules["hf_charlm"] = None  # as on a machine without the package
from transformers import pipeline
folder, texts, kwargs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
correct = pipeline(model=folder, trust_remote_code=True)  # the task comes from config.json's custom_pipelines
print(json.dumps({"module": type(correct).__module__, "model": type(correct.model).__module__,
                  "outputs": correct(texts, **kwargs)}, ensure_ascii=False))
"""


def test_a_saved_corrector_ships_its_pipeline_for_remote_code(tmp_path, tokenizer):
    """A corrector's folder declares the pipeline in config.json and carries its file: on a machine without
    hf_charlm, `pipeline(model=dir, trust_remote_code=True)` gives what `pipeline("text-correction")` gives with
    it, for a same-length corrector (windows over a long text) and for an encoder-decoder."""
    import subprocess

    import hf_charlm  # noqa: F401
    from transformers import pipeline

    from hf_charlm import CharLMForConditionalGeneration

    from .conftest import tiny_config

    plain, _ = swap_model(tmp_path / "plain", {"效": "校"})
    assert "custom_pipelines" not in json.loads((plain / "config.json").read_text())
    assert not (plain / "pipeline_charlm.py").exists()  # a masked LM that is no corrector ships no pipeline

    masked, _ = swap_model(tmp_path / "masked", {"效": "校"}, max_positions=16, corrector=True)
    torch.manual_seed(0)
    seq2seq = tmp_path / "seq2seq"
    CharLMForConditionalGeneration(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=32,
                                               finetuning_task="text-correction")).save_pretrained(seq2seq)
    tokenizer.save_pretrained(seq2seq)
    cases = [(masked, ["我们去学效上课", "我们去学效上课。" * 5], {}, "AutoModelForMaskedLM"),
             (seq2seq, ["hello wrld", "hello world, this is a tiny corpus. " * 2], {"max_new_tokens": 12}, "AutoModelForSeq2SeqLM")]
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_PIPELINE)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    for folder, texts, kwargs, auto in cases:
        config = json.loads((folder / "config.json").read_text())
        assert config["custom_pipelines"] == {"charlm-text-correction": {
            "impl": "pipeline_charlm.CharLMTextCorrectionPipeline", "pt": [auto], "type": "text"}}
        for name in ("pipeline_charlm.py", "spans_charlm.py"):
            shipped = (folder / name).read_text()
            assert not re.search(r"^\s*(from|import) hf_charlm", shipped, re.M)  # no import of the package
        local = pipeline("text-correction", model=str(folder))(texts, **kwargs)
        proc = subprocess.run([sys.executable, str(script), str(folder), json.dumps(texts), json.dumps(kwargs)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        remote = json.loads(proc.stdout.strip().splitlines()[-1])
        assert remote["module"].startswith("transformers_modules.") and remote["module"].endswith(".pipeline_charlm")
        assert remote["model"].startswith("transformers_modules.")
        assert len(remote["outputs"]) == len(local) == 2
        for got, want in zip(remote["outputs"], local):
            assert got["corrected_text"] == want["corrected_text"]
            assert [{k: v for k, v in e.items() if k != "score"} for e in got["edits"]] == \
                [{k: v for k, v in e.items() if k != "score"} for e in want["edits"]]
            assert [e["score"] for e in got["edits"]] == pytest.approx([e["score"] for e in want["edits"]], abs=1e-5)
    # the swap model fixes every 效 of the long text too, read in windows of 16 positions
    masked_local = pipeline("text-correction", model=str(masked))("我们去学效上课。" * 5)
    assert masked_local["corrected_text"] == "我们去学校上课。" * 5 and len(masked_local["edits"]) == 5


def test_encode_correction_examples_labels(tokenizer):
    from hf_charlm.correction import encode_correction_examples

    columns, plan = encode_correction_examples(tokenizer, ["人民报日🐍"], ["人民日报🐍"], max_length=64)
    ids, labels = columns["input_ids"][0], columns["labels"][0]
    assert labels[0] == -100  # <s>
    assert labels[1:3] == ids[1:3]  # unchanged characters predict themselves
    assert labels[3:5] == tokenizer.convert_tokens_to_ids(["日", "报"])
    assert len(ids) >= 9 and set(labels[5:9]) == {-100}  # the emoji is 4 byte tokens: not a character to correct
    assert plan[0][1][:9] == [-1, 0, 1, 2, 3, -1, -1, -1, -1]
    with pytest.raises(ValueError, match="same-length"):
        encode_correction_examples(tokenizer, ["人民"], ["人民日"], max_length=64)


# ------------------------------------------------------------------------------------------------------------
# scripts/finetune_correction.py


PAIRS = [("我们去学效上课。", "我们去学校上课。"), ("今天天气很好。", "今天天气很好。"), ("他很高心。", "他很高兴。")] * 12


def write_jsonl(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"source": s, "target": t}, ensure_ascii=False) + "\n" for s, t in pairs), encoding="utf-8")
    return path


def test_script_bad_input_exit_2_nothing_written(tmp_path, capsys):
    out = tmp_path / "out"
    bad = write_jsonl(tmp_path / "bad.jsonl", [("我们去学效", "我们去学校"), ("他很高心", "他很高兴了")])
    code, message = run_script_in_process(SCRIPT, ["--train_file", str(bad), "--preset", "tiny", "--output_dir", str(out)], capsys)
    assert code == 2 and "bad.jsonl line 2" in message and "4 characters but the target 5" in message
    assert not out.exists()
    code, message = run_script_in_process(SCRIPT, ["--task_name", "english_typos", "--output_dir", str(out)], capsys)
    assert code == 2 and "finetune_seq2seq.py" in message
    assert not out.exists()
    code, message = run_script_in_process(SCRIPT, ["--error_copies", "-1", "--preset", "tiny", "--output_dir", str(out)], capsys)
    assert code == 2 and "--error_copies=-1 must be 0 or more" in message
    code, message = run_script_in_process(SCRIPT, ["--skip_train_samples", "-1", "--output_dir", str(out)], capsys)
    assert code == 2 and "--skip_train_samples=-1 must be 0 or more" in message
    good = write_jsonl(tmp_path / "good.jsonl", [("我们去学效", "我们去学校"), ("他很高心", "他很高兴")])
    code, message = run_script_in_process(SCRIPT, ["--train_file", str(good), "--validation_file", str(good), "--preset",
                                                   "tiny", "--skip_train_samples", "2", "--output_dir", str(out)], capsys)
    assert code == 2 and "--skip_train_samples=2 leaves none of the 2 training examples" in message
    assert not out.exists()


def test_fresh_typos_are_new_keyboard_typos():
    from hf_charlm.correction_data import add_typos, fresh_errors, keyboard_neighbours

    texts = ["She sells sea shells by the sea shore.", "The quick brown fox jumps over the lazy dog.", "!? ** ##"]
    drawn = fresh_errors(texts, 40, language="en")
    assert drawn == fresh_errors(texts, 40, language="en")
    assert [i for i, _ in drawn] == [0, 1, 2] * 40
    assert all(source == "!? ** ##" for i, source in drawn if i == 2)  # no key with neighbours: never changed
    near = keyboard_neighbours()
    first = [source for i, source in drawn if i == 0]
    changed = [s for s in first if s != texts[0]]
    assert 0.3 < len(changed) / len(first) < 0.7
    for source in changed:
        assert abs(len(source) - len(texts[0])) <= 3
        # every new letter is the original's letter or a key next to one of them
        assert set(source.lower()) <= set(texts[0].lower()) | {k for ch in texts[0].lower() for k in near.get(ch, "")}
    assert len(set(changed)) > len(changed) // 2
    assert first != [add_typos(texts[0], str(k))[0] for k in range(40)]
    with pytest.raises(ValueError, match="language='fr'"):
        fresh_errors(texts, 1, language="fr")


def test_english_dictionary_baselines_fix_typos_and_keep_known_words():
    """benchmarks/correction.py's two English baselines, word by word: known words (contractions, capitals,
    punctuation) stay, an unknown word becomes the dictionary's best candidate with its capital."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from correction import spellchecker_outputs, symspell_outputs
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    texts = ["Teh quick brwn fox didn't jmup.", "Mary said: \"It's fine, I'm here.\""]
    for outputs in (symspell_outputs(texts), spellchecker_outputs(texts)):
        assert outputs[1] == texts[1]
        assert outputs[0] == "The quick brown fox didn't jump."



def test_noisy_channel_weight_grid():
    """The weights the benchmark and scripts/build_corrector.py try: every combination for the models given, the
    n-gram's and the channel's always, the neural ones only when their model is given."""
    from hf_charlm.correction import weight_grid

    alone = weight_grid(set())
    assert alone == [{"ngram": n, "channel": c} for n in (0.5, 1.0) for c in (0.0, 1.0, 2.0)]
    grid = weight_grid({"forward", "backward", "masked"})
    assert len(grid) == 2 * 4 * 4 * 3 * 3 and len({tuple(sorted(w.items())) for w in grid}) == len(grid)
    assert {"ngram": 1.0, "forward": 0.0, "backward": 0.5, "masked": 0.0, "channel": 2.0} in grid
    assert all(set(w) == {"ngram", "backward", "channel"} for w in weight_grid(["backward"]))


def test_benchmark_reads_the_ngram_alone_without_the_masked_lms_proposals():
    """The benchmark's n-gram-alone rows keep the n-gram's and channel's gains only and drop the masked LM's own
    proposals (`masked_only`), counting each text's edits again; with the masked gain kept everything stays. The
    same for the fine-tuned corrector's proposals (`corrector_only`)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from correction import with_gains
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def edit(start, masked_only):
        return {"start": start, "gains": {"ngram": 1.0, "channel": -2.0, "masked": 3.0},
                "context": {"edits_in_text": 3.0, "masked_only": masked_only}}

    features = [[edit(0, 0.0), edit(4, 1.0), edit(7, 0.0)], [edit(2, 1.0)]]
    alone = with_gains(features, {"ngram", "channel"})
    assert [[e["start"] for e in row] for row in alone] == [[0, 7], []]
    assert all(e["gains"] == {"ngram": 1.0, "channel": -2.0} and e["context"]["edits_in_text"] == 2.0 for e in alone[0])
    everything = with_gains(features, {"ngram", "channel", "masked"})
    assert [[e["start"] for e in row] for row in everything] == [[0, 4, 7], [2]]
    assert everything[0][1]["context"] == {"edits_in_text": 3.0, "masked_only": 1.0}
    assert features[0][0]["context"]["edits_in_text"] == 3.0  # the features read are left as they were
    # the fine-tuned corrector's own proposals (`corrector_only`) likewise, whatever else is kept
    judged = [[{**edit(0, 0.0), "context": {"edits_in_text": 2.0, "masked_only": 0.0, "corrector_only": 1.0}},
               {**edit(5, 1.0), "context": {"edits_in_text": 2.0, "masked_only": 1.0, "corrector_only": 0.0}}]]
    assert [e["start"] for e in with_gains(judged, {"ngram", "channel", "masked"})[0]] == [5]
    assert [e["start"] for e in with_gains(judged, {"ngram", "channel", "corrector"})[0]] == [0]
    assert [e["start"] for e in with_gains(judged, {"ngram", "channel", "masked", "corrector"})[0]] == [0, 5]
    judged[0][0]["gains"]["corrector"] = 2.5  # its proposal beats 2 but not 3: a reading at 3 would not have it
    assert [e["start"] for e in with_gains(judged, {"ngram", "channel", "masked", "corrector"}, 2.0)[0]] == [0, 5]
    (row,) = with_gains(judged, {"ngram", "channel", "masked", "corrector"}, 3.0)
    assert [e["start"] for e in row] == [5] and row[0]["context"]["edits_in_text"] == 1.0

@needs_pycorrector
def test_script_refuses_training_on_sighan(tmp_path, capsys):
    out = tmp_path / "out"
    code, message = run_script_in_process(SCRIPT, ["--task_name", "sighan2015_test", "--preset", "tiny", "--output_dir", str(out)], capsys)
    assert code == 2 and "evaluation only" in message
    assert not out.exists()


def test_script_trains_predicts_and_the_pipeline_loads_it(tmp_path, capsys):
    import hf_charlm  # noqa: F401
    from transformers import pipeline

    train = write_jsonl(tmp_path / "train.jsonl", PAIRS)
    dev = write_jsonl(tmp_path / "dev.jsonl", PAIRS[:3])
    test = write_jsonl(tmp_path / "test.jsonl", PAIRS[:3])
    out = tmp_path / "out"
    argv = ["--train_file", str(train), "--validation_file", str(dev), "--test_file", str(test), "--preset", "tiny",
            "--config_overrides", "hidden_size=32,num_hidden_layers=1,num_attention_heads=2", "--max_steps", "3",
            "--eval_strategy", "no", "--output_dir", str(out), "--disable_tqdm", "true", "--report_to", "none",
            "--error_copies", "2"]
    code, _ = run_script_in_process(SCRIPT, argv, capsys)
    assert code == 0
    results = json.loads((out / "all_results.json").read_text())
    assert results["train_samples"] == 3 * len(PAIRS)  # the pairs and two fresh copies of each
    for key in ("eval_sentence_correction_f1", "test_sentence_correction_f1", "test_char_detection_precision", "test_false_positive_rate"):
        assert 0.0 <= results[key] <= 1.0 and math.isfinite(results[key])
    lines = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["source"] for line in lines] == [s for s, _ in PAIRS[:3]]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "pipeline_tag: text2text-generation" in card and "Sentence Correction F1".lower() in card.lower().replace("_", " ")
    correct = pipeline("text-correction", model=str(out))
    assert len(correct("我们去学效上课。")["corrected_text"]) == len("我们去学效上课。")
    # the saved config says it is a corrector: the demo app gives it the correction tab
    assert json.loads((out / "config.json").read_text())["finetuning_task"] == "text-correction"
    sys.path.insert(0, str(ROOT))
    import app

    assert app.capabilities_of(correct.model.config) == ["correction"]


@pytest.mark.slow
@needs_pycorrector
def test_script_builtin_csc_and_seq2seq_typos(tmp_path, capsys):
    """The built-in tasks end to end at a tiny budget: the same-length corrector on peoples_daily_csc, and the
    encoder-decoder on english_typos through scripts/finetune_seq2seq.py, read back by the pipeline."""
    import hf_charlm  # noqa: F401
    from transformers import pipeline

    small = ["--preset", "tiny", "--config_overrides", "hidden_size=32,num_hidden_layers=1,num_attention_heads=2",
             "--max_steps", "5", "--eval_strategy", "no", "--disable_tqdm", "true", "--max_train_samples", "64",
             "--max_eval_samples", "16", "--max_test_samples", "16"]
    code, _ = run_script_in_process(SCRIPT, ["--task_name", "peoples_daily_csc", "--output_dir", str(tmp_path / "csc"), *small], capsys)
    assert code == 0 and "test_sentence_correction_f1" in json.loads((tmp_path / "csc" / "all_results.json").read_text())
    s2s = ROOT / "scripts" / "finetune_seq2seq.py"
    code, _ = run_script_in_process(s2s, ["--task_name", "english_typos", "--max_target_length", "64",
                                          "--output_dir", str(tmp_path / "typos"), *small], capsys)
    assert code == 0 and "test_cer" in json.loads((tmp_path / "typos" / "all_results.json").read_text())
    out = pipeline("text-correction", model=str(tmp_path / "typos"))("I wnt home.", max_new_tokens=16)
    assert set(out) == {"corrected_text", "edits"}


def test_pipeline_refuses_a_recurrent_masked_lm(tmp_path, tokenizer):
    import hf_charlm  # noqa: F401
    from transformers import pipeline

    from .conftest import tiny_config

    CharLMForMaskedLM(tiny_config("lstm", vocab_size=len(tokenizer), bidirectional=True)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="never reads the character it predicts"):
        pipeline("text-correction", model=str(tmp_path))("人民日报")


# ------------------------------------------------------------------------------------------------------------
# the optional detection head (MacBERT4CSC)


def test_detection_head_loss_default_labels_and_load_report(tmp_path, caplog):
    import torch.nn.functional as F
    from transformers import AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging

    torch.manual_seed(0)
    config = CharLMConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          max_position_embeddings=16)
    plain = CharLMForMaskedLM(config)
    plain.save_pretrained(tmp_path / "mlm")
    hf_logging.set_verbosity_warning()
    hf_logging.enable_propagation()
    with caplog.at_level("WARNING"):
        model = AutoModelForMaskedLM.from_pretrained(tmp_path / "mlm", detection_loss_weight=0.3)
    hf_logging.disable_propagation()
    report = caplog.text
    assert "detector.weight" in report and "detector.bias" in report  # new: only the head
    assert "embed_tokens" not in report and "lm_head" not in report and "layers.0" not in report
    for name, weight in plain.state_dict().items():  # every backbone weight kept
        assert torch.equal(model.state_dict()[name], weight)

    ids = torch.randint(7, 40, (2, 6))
    labels = ids.clone()
    labels[0, 2] = (ids[0, 2] + 1 - 7) % 33 + 7  # one wrong character in the input
    labels[1, 0] = -100
    out = model(input_ids=ids, labels=labels)
    assert out.detection_logits.shape == (2, 6)
    correction = F.cross_entropy(out.logits.reshape(-1, 40), labels.reshape(-1), ignore_index=-100)
    wrong = (labels != ids).float()
    keep = labels != -100
    detection = F.binary_cross_entropy_with_logits(out.detection_logits[keep], wrong[keep])
    torch.testing.assert_close(out.loss, 0.7 * correction + 0.3 * detection)
    # explicit detection labels win over the default
    explicit = torch.ones_like(ids)
    out2 = model(input_ids=ids, labels=labels, detection_labels=explicit)
    torch.testing.assert_close(out2.loss, 0.7 * correction + 0.3 * F.binary_cross_entropy_with_logits(
        out2.detection_logits, explicit.float()))
    # saved and reloaded with its head; a bad weight or a recurrent backbone is refused by name
    model.save_pretrained(tmp_path / "det")
    again = CharLMForMaskedLM.from_pretrained(tmp_path / "det")
    assert again.config.detection_loss_weight == 0.3 and torch.equal(again.detector.weight, model.detector.weight)
    with pytest.raises(ValueError, match="detection_loss_weight"):
        CharLMConfig(detection_loss_weight=1.5)
    with pytest.raises(ValueError, match="transformer backbone"):
        CharLMForMaskedLM(CharLMConfig(backbone="lstm", vocab_size=40, hidden_size=16, num_hidden_layers=1,
                                       detection_loss_weight=0.3))


def test_detection_head_gates_the_pipeline_edits(tmp_path):
    import hf_charlm  # noqa: F401
    from transformers import pipeline

    from hf_charlm.correction import gate_by_detection, predict_same_length

    folder, tokenizer = swap_model(tmp_path / "plain", {"效": "校"})
    assert torch.equal(gate_by_detection(torch.tensor([[5, 6]]), torch.tensor([[-1.0, 1.0]])), torch.tensor([[-1, 6]]))
    for bias, expected in ((-20.0, "我们去学效上课"), (20.0, "我们去学校上课")):
        model = CharLMForMaskedLM.from_pretrained(folder, detection_loss_weight=0.3)
        with torch.no_grad():  # a detector that finds every character right, then every character wrong
            model.detector.weight.zero_()
            model.detector.bias.fill_(bias)
        model.save_pretrained(tmp_path / f"det{bias}")
        tokenizer.save_pretrained(tmp_path / f"det{bias}")
        correct = pipeline("text-correction", model=str(tmp_path / f"det{bias}"))
        assert correct("我们去学效上课")["corrected_text"] == expected
        edits = predict_same_length(model, tokenizer, ["我们去学效上课"])[0]
        assert [e["replacement"] for e in edits] == ([] if bias < 0 else ["校"])


def test_script_trains_a_detection_head(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", PAIRS)
    dev = write_jsonl(tmp_path / "dev.jsonl", PAIRS[:3])
    out = tmp_path / "out"
    argv = ["--train_file", str(train), "--validation_file", str(dev), "--preset", "tiny", "--detection_loss_weight", "0.3",
            "--config_overrides", "hidden_size=32,num_hidden_layers=1,num_attention_heads=2", "--max_steps", "3",
            "--eval_strategy", "no", "--output_dir", str(out), "--disable_tqdm", "true", "--report_to", "none"]
    code, _ = run_script_in_process(SCRIPT, argv, capsys)
    assert code == 0
    assert json.loads((out / "config.json").read_text())["detection_loss_weight"] == 0.3
    model = CharLMForMaskedLM.from_pretrained(out)
    assert model.detector.weight.shape == (1, 32)
    results = json.loads((out / "all_results.json").read_text())
    assert 0.0 <= results["eval_sentence_correction_f1"] <= 1.0
    code, message = run_script_in_process(SCRIPT, argv[:-8] + ["--detection_loss_weight", "2", "--output_dir", str(tmp_path / "bad")], capsys)
    assert code == 2 and "--detection_loss_weight=2.0 must be in (0, 1)" in message and not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------------------------------------------
# the zero-shot noisy-channel corrector (n-gram proposals, language models both ways)

NC_CORPUS = ["我们去学校上课。", "学校很大。", "他在学校。", "今天天气很好。", "我们去上课。"] * 3
NC_CONFUSIONS = {"校": "效", "效": "校", "课": "棵", "棵": "课", "天": "添", "添": "天"}


def nc_candidates(ch: str) -> frozenset[str]:
    return frozenset(NC_CONFUSIONS.get(ch, ""))


def kn_logprob(lm, text: str) -> float:
    """log P of the whole text under the n-gram, its end included, term by term (the reference)."""
    from hf_charlm.ngram import EOS

    return sum(math.log(lm.prob(text[:j], text[j])) for j in range(len(text))) + math.log(lm.prob(text, EOS))


def test_channel_log_prob_is_the_draw_of_the_errors():
    """By hand from the confusion sets: a sound-alike with probability 0.7 (uniform over the intended character's
    sound set), a shape-alike with 0.3; both when the observed character is in both sets; -inf when neither."""
    pytest.importorskip("pycorrector")
    pytest.importorskip("pypinyin")
    from hf_charlm.correction_data import PINYIN_SHARE, channel_log_prob, confusion_sets

    sets = confusion_sets()
    intended = next(c for c in sorted(sets) if sets[c]["pinyin"] and sets[c]["shape"] and sets[c]["pinyin"] - sets[c]["shape"])
    sound, shape = sets[intended]["pinyin"], sets[intended]["shape"]
    only_sound = sorted(sound - shape)[0]
    assert channel_log_prob(only_sound, intended) == pytest.approx(math.log(PINYIN_SHARE / len(sound)))
    for observed in shape:
        expected = (1 - PINYIN_SHARE) / len(shape) + (PINYIN_SHARE / len(sound) if observed in sound else 0.0)
        assert channel_log_prob(observed, intended) == pytest.approx(math.log(expected))
    assert channel_log_prob("a", intended) == -math.inf and channel_log_prob(intended, "a") == -math.inf


def test_noisy_channel_corrector_with_an_ngram():
    """The n-gram's best path with a proposal cost fixes the confusable character and leaves a correct text
    alone; changes closer than the n-gram order form one group, whose gain is the whole text's log-probability
    difference (checked against the term-by-term sum) per changed character; `tune` picks weights and margin."""
    from hf_charlm.correction import LanguageModelCorrector, apply_edits
    from hf_charlm.ngram import KneserNeyLM

    lm = KneserNeyLM(NC_CORPUS, order=3)
    corrector = LanguageModelCorrector(lm, candidates=nc_candidates, proposal_penalty=1.0, margin=0.0)
    assert corrector.channel is None and corrector.weights == {"ngram": 1.0}
    assert corrector.best_path("我们去学效上课。") == "我们去学校上课。"
    assert corrector.best_path("我们去学校上课。") == "我们去学校上课。"
    text = "我们去学效上棵。"  # two changes 2 apart: one group at order 3
    assert corrector.clusters(text) == [[(4, "校"), (6, "课")]]
    assert corrector.clusters("学效很大。我们去上棵。") == [[(1, "校")], [(9, "课")]]
    (features,) = corrector.features([text])
    gain = (kn_logprob(lm, "我们去学校上课。") - kn_logprob(lm, text)) / 2
    assert [(e["start"], e["replacement"]) for e in features] == [(4, "校"), (6, "课")]
    assert all(e["gains"] == {"ngram": pytest.approx(gain, abs=1e-9)} for e in features) and gain > 0
    edits = corrector.correct([text, "我们去学校上课。"])
    assert [apply_edits(t, e) for t, e in zip([text, "我们去学校上课。"], edits)] == ["我们去学校上课。"] * 2
    result = corrector.tune([text, "学校很大。"], ["我们去学校上课。", "学校很大。"], margins=(0.0, 1e6),
                            weights=[{"ngram": 0.0}, {"ngram": 1.0}])
    assert result["best"] == {"weights": {"ngram": 1.0}, "margin": 0.0, "f1": 1.0}
    assert len(result["records"]) == 4 and corrector.weights == {"ngram": 1.0} and corrector.margin == 0.0
    with pytest.raises(ValueError, match="unknown weight"):
        LanguageModelCorrector(lm, candidates=nc_candidates, weights={"ngrams": 1.0})
    with pytest.raises(TypeError, match="list of texts"):
        corrector.features("我们")


def test_edit_reranker_is_scikit_learns_logistic_regression():
    """The reranker's fit is L2-penalised logistic regression on standardised features: the same coefficients,
    intercept and log-odds as scikit-learn's (C = 1 / l2, unpenalised intercept) on the same matrix; a feature an
    edit lacks reads 0; one-class labels and an unfitted reranker are refused with a message."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    from hf_charlm.correction import EditReranker

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(300, 3, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.2], dtype=torch.float64)
    labels = (torch.rand(300, generator=generator, dtype=torch.float64) < torch.sigmoid(x[:, 0] - 0.3 * x[:, 1])).long().tolist()
    edits = [{"gains": {"ngram": float(a), "channel": float(b)}, "context": {"at_edge": float(c)}} for a, b, c in x.tolist()]
    reranker = EditReranker(["ngram", "channel", "at_edge"], l2=2.0).fit(edits, labels)
    standardised = ((x - reranker.mean) / reranker.scale).numpy()
    reference = sklearn.LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(standardised, labels)
    assert reranker.weight.tolist() == pytest.approx(reference.coef_[0].tolist(), abs=1e-4)
    assert reranker.bias == pytest.approx(float(reference.intercept_[0]), abs=1e-4)
    assert reranker.log_odds(edits[:5]) == pytest.approx(reference.decision_function(standardised[:5]).tolist(), abs=1e-4)
    assert reranker.weight[0] > 0 > reranker.weight[1]  # the features that drew the labels, with their signs
    missing = reranker.log_odds([{"gains": {"ngram": 1.0, "channel": 0.0}}])  # no context: at_edge reads 0
    assert missing == pytest.approx(reranker.log_odds([{"gains": {"ngram": 1.0, "channel": 0.0}, "context": {"at_edge": 0.0}}]))
    with pytest.raises(ValueError, match="both kinds"):
        EditReranker(["ngram"]).fit(edits[:3], [1, 1, 1])
    with pytest.raises(ValueError, match="not fitted"):
        EditReranker(["ngram"]).log_odds(edits[:1])


def test_noisy_channel_reranker_learns_from_pairs_read_by_a_held_out_ngram():
    """`features` gives each edit its n-gram context (by hand below); `fit_reranker` labels a proposal right when
    the target has its replacement, reads the pairs with the n-gram it is given (the corrector's own one restored
    after), and from then on the edits' scores are the reranker's log-odds; `tune` then picks among the log-odds
    margins."""
    from hf_charlm.correction import CONTEXT_FEATURES, RERANKER_MARGINS, LanguageModelCorrector
    from hf_charlm.ngram import KneserNeyLM

    lm = KneserNeyLM(NC_CORPUS, order=3)
    corrector = LanguageModelCorrector(lm, candidates=nc_candidates, proposal_penalty=0.0, margin=0.0)
    ((edit,),) = corrector.features(["我们去学效上课。"])
    # 3-grams over position 4 with 校: 去学校 学校上 校上课, all in the corpus; with 效 none. Bigrams: 学校 校上 / none.
    # 校 follows one distinct character in the corpus (学), 效 none: continuation counts 1 and 0.
    assert edit["context"] == {"seen_top_new": 3, "seen_top_old": 0, "seen_bigram_new": 2, "seen_bigram_old": 0,
                               "log_count_new": pytest.approx(math.log(2)), "log_count_old": 0.0, "at_edge": 0.0,
                               "edits_in_text": 1.0, "masked_only": 0.0, "corrector_only": 0.0}
    sources = ["我们去学效上课。", "学效很大。", "他在学效。", "我们去学效上课。"]
    targets = ["我们去学校上课。", "学校很大。", "他在学效。", "我们去学校上课。"]  # the third keeps its 效: a wrong proposal
    other = KneserNeyLM(NC_CORPUS[:3] * 2, order=3)
    counts = corrector.fit_reranker(sources, targets, ngram=other)
    assert counts == {"edits": 4, "right": 3} and corrector.ngram is lm
    with pytest.raises(RuntimeError), corrector.with_ngram(other):
        assert corrector.ngram is other
        raise RuntimeError  # the corrector's own n-gram comes back whatever ends the block
    assert corrector.ngram is lm
    fitted = corrector.reranker
    assert fitted.names == ("ngram", *CONTEXT_FEATURES)  # the gains the edits carry (no channel here), then the context
    by_hand = LanguageModelCorrector(other, candidates=nc_candidates, proposal_penalty=0.0)
    corrector.fit_reranker(sources, targets, features=by_hand.features(sources))  # the same reading, given
    assert corrector.reranker.weight.tolist() == pytest.approx(fitted.weight.tolist(), abs=1e-6)
    features = corrector.features(["学效很大。", "学校很大。"])
    scored = corrector.score_features(features)
    assert [e["score"] for e in scored[0]] == pytest.approx(corrector.reranker.log_odds(features[0]))
    assert all("context" not in e and "gains" not in e for e in scored[0])
    result = corrector.tune(["学效很大。", "学校很大。"], ["学校很大。", "学校很大。"])
    assert [r["margin"] for r in result["records"]] == list(RERANKER_MARGINS)


def test_lexicon_cover_features_and_files(tmp_path):
    """`Lexicon.cover` finds, of the words (two characters or more, up to max_length) around a character, the most
    frequent's log(1 + count) and the longest's length (checked by hand); `features` reads them with and without a
    change; files of `word count` lines load (a word twice: the larger count), `save` / `load` round-trip, and a
    bad file is refused with a message naming it."""
    from hf_charlm.correction import LEXICON_FEATURES, Lexicon

    lexicon = Lexicon.from_words(["学校", "学校", "上课", "我们", "学", "学校上课了吗"], max_length=4)
    assert lexicon.counts == {"学校": 2, "上课": 1, "我们": 1} and len(lexicon) == 3  # one character, six: left out
    assert lexicon.cover("我们去学校上课", 4) == (pytest.approx(math.log(3)), 2)  # 学校 covers 校
    assert lexicon.cover("我们去学效上课", 4) == (0.0, 0)
    assert lexicon.cover("我们去学效上课", 0) == (pytest.approx(math.log(2)), 2)
    features = lexicon.features("我们去学效上课", 4, "校")
    assert list(features) == list(LEXICON_FEATURES)
    assert features == {"word_new": pytest.approx(math.log(3)), "word_old": 0.0, "word_length_new": 2.0,
                        "word_length_old": 0.0}
    longer = Lexicon({"学校": 2, "去学校上": 9, "我们去学校上课": 1}, max_length=4)  # the seven-character word: too long
    assert longer.cover("我们去学校上课", 4) == (pytest.approx(math.log(10)), 4)
    assert longer.cover("我们去学校上课", 2) == (pytest.approx(math.log(10)), 4)
    assert longer.cover("我们去学校上课", 1) == (0.0, 0)
    source = tmp_path / "words.txt"
    source.write_text("学校 5 n\n上课 2\n\n学校 7 n\n我们\n", encoding="utf-8")
    assert Lexicon.from_file(source).counts == {"学校": 7, "上课": 2, "我们": 1}
    assert longer.merged(Lexicon.from_file(source)).counts == {"学校": 7, "去学校上": 9, "上课": 2, "我们": 1}
    saved = tmp_path / "lexicon.txt.gz"
    longer.save(saved)
    again = Lexicon.load(saved)
    assert again.counts == longer.counts and again.max_length == 4
    source.write_text("学校 many\n", encoding="utf-8")
    with pytest.raises(ValueError, match="words.txt.*line 1.*not a whole number"):
        Lexicon.from_file(source)
    with pytest.raises(FileNotFoundError, match="no lexicon file"):
        Lexicon.from_file(tmp_path / "nowhere.txt")
    with pytest.raises(ValueError, match="not a lexicon written by Lexicon.save"):
        Lexicon.load(source)  # not gzip
    import gzip

    with gzip.open(saved, "wt", encoding="utf-8") as f:
        f.write("# hf_charlm.Lexicon max_length=4\n学校 2\n")  # a space, not a tab
    with pytest.raises(ValueError, match="lexicon.txt.gz.*not a lexicon written by Lexicon.save"):
        Lexicon.load(saved)
    with pytest.raises(ValueError, match="two characters or more"):
        Lexicon({}, max_length=1)


def test_peoples_daily_lexicon_counts_the_segmentation_train_words():
    """The People's Daily lexicon is the `peoples_daily_cws` train split's words (from its BMES tags), and
    `exclude` leaves out the words of the sentences given."""
    from hf_charlm.correction_data import peoples_daily_lexicon
    from hf_charlm.data import load_builtin

    cws = load_builtin("peoples_daily_cws")
    first = cws["train"][0]
    words, word = [], ""
    for token, tag in zip(first["tokens"], first["tags"]):
        word += token
        if tag in (2, 3):  # E, S
            words.append(word)
            word = ""
    assert "".join(words) == "".join(first["tokens"])
    lexicon = peoples_daily_lexicon()
    assert all(w in lexicon for w in words if len(w) >= 2) and lexicon.counts["新年"] >= 1
    kept = peoples_daily_lexicon(exclude={"".join(first["tokens"])})
    assert all(kept.counts.get(w, 0) == lexicon.counts[w] - words.count(w) for w in words if len(w) >= 2)
    assert sum(lexicon.counts.values()) > sum(kept.counts.values())


def test_noisy_channel_reranker_reads_a_lexicon_saves_and_loads_it(tmp_path):
    """With a lexicon, each edit's context carries its features (what `Lexicon.features` gives), the reranker
    weighs them, a held-out lexicon reads the training pairs (the corrector's own restored after); saved, the folder
    holds the lexicon and loads back reading every text as before; a reranker of lexicon features in a folder
    without one, and features read without the lexicon, are refused with a message."""
    from hf_charlm.correction import CONTEXT_FEATURES, LEXICON_FEATURES, LanguageModelCorrector, Lexicon
    from hf_charlm.ngram import KneserNeyLM

    pytest.importorskip("pycorrector")  # saving writes the default confusion sets' corrector
    from hf_charlm.correction_data import candidates

    lexicon = Lexicon.from_words(["学校", "学校", "上课", "我们", "天气", "今天"])
    corrector = LanguageModelCorrector(KneserNeyLM(NC_CORPUS, order=3), candidates=candidates, channel=None,
                                       proposal_penalty=0.0, margin=0.0, lexicon=lexicon)
    ((edit,),) = corrector.features(["我们去学效上课。"])
    assert (edit["start"], edit["replacement"]) == (4, "校")
    assert {k: edit["context"][k] for k in LEXICON_FEATURES} == lexicon.features("我们去学效上课。", 4, "校")
    assert edit["context"]["word_new"] == pytest.approx(math.log(3)) and edit["context"]["word_old"] == 0.0
    sources = ["我们去学效上课。", "学效很大。", "他在学效。", "我们去学效上课。"]
    targets = ["我们去学校上课。", "学校很大。", "他在学效。", "我们去学校上课。"]
    held_out = Lexicon.from_words(["上课", "学校"])  # 学校 once: other word features than the corrector's own
    counts = corrector.fit_reranker(sources, targets, lexicon=held_out)
    assert counts == {"edits": 4, "right": 3} and corrector.lexicon is lexicon
    assert corrector.reranker.names == ("ngram", *CONTEXT_FEATURES, *LEXICON_FEATURES)
    by_hand = LanguageModelCorrector(corrector.ngram, candidates=candidates, channel=None, proposal_penalty=0.0,
                                     lexicon=held_out)
    assert by_hand.features(sources) != corrector.features(sources)
    fitted = corrector.reranker.weight.tolist()
    corrector.fit_reranker(sources, targets, features=by_hand.features(sources))  # the held-out reading, given
    assert corrector.reranker.weight.tolist() == pytest.approx(fitted, abs=1e-6)
    with pytest.raises(ValueError, match="read without one"):
        corrector.fit_reranker(sources, targets, features=LanguageModelCorrector(
            corrector.ngram, candidates=candidates, channel=None, proposal_penalty=0.0).features(sources))
    folder = tmp_path / "with-lexicon"
    corrector.save_pretrained(folder)
    config = json.loads((folder / "noisy_channel.json").read_text())
    assert config["lexicon"] == "lexicon.txt.gz" and (folder / "lexicon.txt.gz").is_file()
    again = LanguageModelCorrector.from_pretrained(folder)
    assert again.lexicon.counts == lexicon.counts
    texts = ["我们去学效上课。", "学效很大。", "今添天气很好。"]
    assert again.features(texts) == corrector.features(texts) and again(texts) == corrector(texts)
    config["lexicon"] = None
    (folder / "noisy_channel.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weighs lexicon features but the folder holds no lexicon"):
        LanguageModelCorrector.from_pretrained(folder)
    config["lexicon"] = "../elsewhere.txt.gz"
    (folder / "noisy_channel.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="save_pretrained does not write"):
        LanguageModelCorrector.from_pretrained(folder)


def test_noisy_channel_gains_of_the_neural_models(tokenizer):
    """The forward, backward and masked gains of an edit are what the models give when run on the whole texts:
    log P(text with the edit) - log P(text) read left to right, the same of the reversed texts, and the masked
    character's log-probability of the replacement minus the original's; the channel's gain is its value."""
    from hf_charlm import CharLMForCausalLM
    from hf_charlm.correction import LanguageModelCorrector
    from hf_charlm.ngram import KneserNeyLM

    from .conftest import tiny_config

    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer))
    forward, backward, masked = CharLMForCausalLM(config).eval(), CharLMForCausalLM(config).eval(), CharLMForMaskedLM(config).eval()
    confusions = {"日": "天", "天": "日"}  # both characters of the vocabulary
    lm = KneserNeyLM(["人民天报一九九八年"] * 3, order=3)  # the n-gram wants 天: the proposal
    corrector = LanguageModelCorrector(lm, forward=(forward, tokenizer), backward=(backward, tokenizer),
                                       masked=(masked, tokenizer), candidates=lambda ch: frozenset(confusions.get(ch, "")),
                                       channel=lambda observed, intended: -1.5, proposal_penalty=0.0)
    text, changed = "人民日报一九九八年", "人民天报一九九八年"
    ((edit,),) = corrector.features([text])
    assert (edit["start"], edit["replacement"]) == (2, "天")

    def logprob(model, s):
        ids = tokenizer(s, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logp = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
        return float(logp.gather(1, ids[0, 1:, None]).sum())

    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    ids[0, 3] = tokenizer.mask_token_id  # <s> 人 民 [日]
    with torch.no_grad():
        logp = masked(input_ids=ids).logits[0, 3].log_softmax(-1)
    gains = edit["gains"]
    assert gains["forward"] == pytest.approx(logprob(forward, changed) - logprob(forward, text), abs=1e-4)
    assert gains["backward"] == pytest.approx(logprob(backward, changed[::-1]) - logprob(backward, text[::-1]), abs=1e-4)
    assert gains["masked"] == pytest.approx(float(logp[tokenizer.convert_tokens_to_ids("天")] - logp[tokenizer.convert_tokens_to_ids("日")]), abs=1e-4)
    assert gains["channel"] == -1.5 and gains["ngram"] > 0
    corrector.weights = {"ngram": 0.0, "forward": 1.0, "backward": 0.5, "masked": 0.0, "channel": 2.0}
    ((scored,),) = corrector.proposals([text])
    assert scored["score"] == pytest.approx(gains["forward"] + 0.5 * gains["backward"] - 3.0, abs=1e-4)
    assert "gains" not in scored


def test_noisy_channel_takes_the_masked_lms_proposals_off_the_best_path(tokenizer):
    """With `masked_proposals`, the characters the n-gram's best path leaves alone are proposed too where the masked
    LM's best confusable candidate (the zero-shot corrector's reading) beats them by more than that many nats: one
    edit each, marked `masked_only`, with every gain of an edit; the path's own edits are unchanged."""
    from hf_charlm.correction import LanguageModelCorrector, ZeroShotCorrector
    from hf_charlm.ngram import KneserNeyLM

    from .conftest import tiny_config

    torch.manual_seed(0)
    masked = CharLMForMaskedLM(tiny_config(vocab_size=len(tokenizer))).eval()
    confusions = {"日": "天", "天": "日", "九": "八", "八": "九"}
    candidates = lambda ch: frozenset(confusions.get(ch, ""))  # noqa: E731
    lm = KneserNeyLM(["人民天报一九九八年"] * 3, order=3)
    text = "人民日报一九九八年"
    reading = ZeroShotCorrector(masked, tokenizer, candidates, context=32).proposals([text])[0]
    off_path = {e["start"]: e for e in reading if e["start"] != 2}
    assert sorted(off_path) == [5, 6, 7]
    threshold = min(e["score"] for e in off_path.values())  # the two best beat it

    def corrector(limit):
        return LanguageModelCorrector(lm, masked=(masked, tokenizer), candidates=candidates, proposal_penalty=0.0,
                                      masked_proposals=limit)

    (plain,) = corrector(None).features([text])
    assert [(e["start"], e["replacement"], e["context"]["masked_only"]) for e in plain] == [(2, "天", 0.0)]
    (everything,) = corrector(-1e9).features([text])
    assert [(e["start"], e["replacement"]) for e in everything] == [(2, "天")] + [
        (p, off_path[p]["replacement"]) for p in sorted(off_path)]
    assert [e["context"]["masked_only"] for e in everything] == [0.0] + [1.0] * 3
    assert all(e["context"]["edits_in_text"] == 4.0 for e in everything)
    assert everything[0]["gains"] == pytest.approx(plain[0]["gains"])  # the path's edit is read as before
    for edit in everything[1:]:
        assert edit["gains"]["masked"] == pytest.approx(off_path[edit["start"]]["score"], abs=1e-4)
        assert set(edit["gains"]) == {"ngram", "masked"}
    (some,) = corrector(threshold).features([text])
    best = sorted(off_path, key=lambda p: -off_path[p]["score"])[:2]
    assert [e["start"] for e in some] == [2, *sorted(best)]
    blocked = LanguageModelCorrector(lm, masked=(masked, tokenizer), candidates=candidates, proposal_penalty=0.0,
                                     masked_proposals=-1e9, channel=lambda seen, meant: -math.inf if meant == "九" else -1.0)
    (edits,) = blocked.features([text])  # 八 -> 九 is no error the channel makes: not proposed, as on the path
    assert [e["start"] for e in edits] == [2, 5, 6] and all(e["gains"]["channel"] == -1.0 for e in edits)
    with pytest.raises(ValueError, match="masked_proposals"):
        LanguageModelCorrector(lm, candidates=candidates, masked_proposals=2.0)


def test_noisy_channel_reads_a_fine_tuned_corrector(tokenizer, tmp_path):
    """With `corrector`, every edit carries the fine-tuned corrector's gain: log P(replacement) - log P(character)
    at that position with the text read as it is, unmasked (what `ConfusionSetCorrector` reads, and what the model
    gives on the whole text), per changed character of a group; with `corrector_proposals` it proposes, one change
    each and marked `corrector_only`, the characters not yet proposed whose best candidate beats them by more than
    that. Saved and loaded back (in `corrector/`), it reads the same."""
    from hf_charlm.correction import ConfusionSetCorrector, LanguageModelCorrector
    from hf_charlm.ngram import KneserNeyLM

    from .conftest import tiny_config

    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer))
    fine_tuned, masked = CharLMForMaskedLM(config).eval(), CharLMForMaskedLM(config).eval()
    confusions = {"日": "天", "天": "日", "九": "八", "八": "九"}
    candidates = lambda ch: frozenset(confusions.get(ch, ""))  # noqa: E731
    lm = KneserNeyLM(["人民天报一九九八年"] * 3, order=3)  # the path: 日 -> 天 at 2
    text = "人民日报一九九八年"
    ids = tokenizer(text, return_tensors="pt")["input_ids"]  # <s> text </s>: character p at token p + 1
    with torch.no_grad():
        logp = fine_tuned(input_ids=ids).logits[0].log_softmax(-1)

    def gain(p, new):
        return float(logp[p + 1, tokenizer.convert_tokens_to_ids(new)] - logp[p + 1, tokenizer.convert_tokens_to_ids(text[p])])

    def corrector(limit, **kwargs):
        return LanguageModelCorrector(lm, corrector=(fine_tuned, tokenizer), candidates=candidates,
                                      proposal_penalty=0.0, corrector_proposals=limit, **kwargs)

    (plain,) = corrector(None).features([text])
    assert [(e["start"], e["replacement"], e["context"]["corrector_only"]) for e in plain] == [(2, "天", 0.0)]
    assert plain[0]["gains"]["corrector"] == pytest.approx(gain(2, "天"), abs=1e-4)
    reading = ConfusionSetCorrector(fine_tuned, tokenizer, candidates).candidate_log_probs([text])[0]
    assert list(reading) == [2, 5, 6, 7] and list(reading[5]) == ["九", "八"]
    assert reading[5]["八"] == pytest.approx(float(logp[6, tokenizer.convert_tokens_to_ids("八")]), abs=1e-5)
    (everything,) = corrector(-1e9).features([text])
    assert [(e["start"], e["replacement"], e["context"]["corrector_only"]) for e in everything] == [
        (2, "天", 0.0), (5, "八", 1.0), (6, "八", 1.0), (7, "九", 1.0)]
    for edit in everything:
        assert edit["gains"]["corrector"] == pytest.approx(gain(edit["start"], edit["replacement"]), abs=1e-4)
        assert edit["context"]["edits_in_text"] == 4.0 and edit["context"]["masked_only"] == 0.0
    threshold = sorted(gain(p, c) for p, c in ((5, "八"), (6, "八"), (7, "九")))[1]
    (some,) = corrector(threshold).features([text])  # only the best of the three beats the second best
    assert len(some) == 2 and some[1]["gains"]["corrector"] > threshold
    # beside the masked LM's proposals: a character proposed once, by the first that proposes it
    (both,) = corrector(-1e9, masked=(masked, tokenizer), masked_proposals=-1e9).features([text])
    assert [(e["context"]["masked_only"], e["context"]["corrector_only"]) for e in both] == [(0.0, 0.0)] + [(1.0, 0.0)] * 3
    with pytest.raises(ValueError, match="corrector_proposals"):
        LanguageModelCorrector(lm, candidates=candidates, corrector_proposals=2.0)


def test_kneser_ney_model_saves_and_loads_with_identical_probabilities(tmp_path):
    """`KneserNeyLM.save` / `load`: the same counts at every order and the same probability for every context and
    character (the top order's counts are all it writes); a file that is not one is refused with a message and a
    failed load leaves nothing half-built."""
    from hf_charlm.ngram import BOS, EOS, KneserNeyLM

    lm = KneserNeyLM(NC_CORPUS + ["<s>和\t制表符", "</s>"], order=3, discount=0.6)  # marker look-alikes are text
    lm.save(tmp_path / "lm.json.gz")
    again = KneserNeyLM.load(tmp_path / "lm.json.gz")
    assert again.order == 3 and again.discount == 0.6 and again.counts == lm.counts and again.contexts == lm.contexts
    assert again.vocabulary == lm.vocabulary and ("<",) in again.counts[1]
    for context in ["", "我", "我们", "学校", "<s", "制表"]:
        for char in [*lm.vocabulary, EOS, "未"]:
            assert again.prob(context, char) == lm.prob(context, char)
    assert BOS not in again.vocabulary and not list(tmp_path.glob("*.tmp"))
    (tmp_path / "plain.json").write_text("{}")
    with pytest.raises(ValueError, match="not an n-gram model written by KneserNeyLM.save"):
        KneserNeyLM.load(tmp_path / "plain.json")
    with pytest.raises(FileNotFoundError, match="no n-gram model at"):
        KneserNeyLM.load(tmp_path / "missing.json.gz")


def _tuned_noisy_channel():
    """A noisy-channel corrector with the default confusion sets and channel, a masked and a causal tiny model, a
    reranker learned from four pairs and a margin: (corrector, texts to read)."""
    pytest.importorskip("pycorrector")
    pytest.importorskip("pypinyin")
    from hf_charlm import CharLMForCausalLM
    from hf_charlm.correction import LanguageModelCorrector
    from hf_charlm.ngram import KneserNeyLM

    from .conftest import tiny_config

    torch.manual_seed(0)
    tokenizer = train_char_tokenizer(NC_CORPUS + ["人民日报一九九八年"])
    config = tiny_config(vocab_size=len(tokenizer))
    masked, forward = CharLMForMaskedLM(config).eval(), CharLMForCausalLM(config).eval()
    corrector = LanguageModelCorrector(KneserNeyLM(NC_CORPUS, order=3), masked=(masked, tokenizer),
                                       forward=(forward, tokenizer), proposal_penalty=0.0, masked_proposals=-1e9)
    sources = ["我们去学效上课。", "学效很大。", "他在学效。", "我们去学效上课。"]
    targets = ["我们去学校上课。", "学校很大。", "他在学效。", "我们去学校上课。"]
    assert corrector.fit_reranker(sources, targets)["right"] >= 2  # the default confusion sets propose 效 -> 校
    corrector.margin = -1.0
    return corrector, ["我们去学效上课。", "学效很大。", "今天天气很好。"]


def test_noisy_channel_with_a_fine_tuned_corrector_saves_and_loads(tmp_path):
    """A corrector with a fine-tuned same-length model as judge and proposer, its reranker learned: saved, the model
    goes to `corrector/` (the masked LM stays in the folder itself), `corrector_proposals` is kept, and loaded back
    it reads every text as before; a folder saved before the setting existed loads with none."""
    from hf_charlm.correction import LanguageModelCorrector
    from hf_charlm.ngram import KneserNeyLM

    from .conftest import tiny_config

    corrector, texts = _tuned_noisy_channel()
    masked, tokenizer = corrector.models["masked"]
    torch.manual_seed(1)
    fine_tuned = CharLMForMaskedLM(tiny_config(vocab_size=len(tokenizer))).eval()
    judged = LanguageModelCorrector(KneserNeyLM(NC_CORPUS, order=3), masked=(masked, tokenizer),
                                    corrector=(fine_tuned, tokenizer), proposal_penalty=0.0, masked_proposals=-1e9,
                                    corrector_proposals=-1e9, margin=-1.0)
    sources = ["我们去学效上课。", "学效很大。", "他在学效。", "我们去学效上课。"]
    targets = ["我们去学校上课。", "学校很大。", "他在学效。", "我们去学校上课。"]
    judged.fit_reranker(sources, targets)
    assert "corrector" in judged.reranker.names and "corrector_only" in judged.reranker.names
    folder = tmp_path / "judged"
    judged.save_pretrained(folder)
    saved = json.loads((folder / "noisy_channel.json").read_text())
    assert saved["models"] == {"masked": ".", "corrector": "corrector"} and saved["corrector_proposals"] == -1e9
    assert (folder / "corrector" / "model.safetensors").is_file()
    again = LanguageModelCorrector.from_pretrained(folder)
    assert set(again.models) == {"masked", "corrector"} and again.corrector_proposals == -1e9
    assert again.features(texts) == judged.features(texts) and again(texts) == judged(texts)
    # the proposal threshold chosen on validation from one reading at the lowest: each gets its own reranker
    train_features = judged.features(sources)
    fitted = judged.fit_reranker_and_tune(sources, targets, train_features, texts[:2], ["我们去学校上课。", "学校很大。"],
                                          judged.features(texts[:2]), corrector_proposals=[1e9, -1e9])
    assert set(fitted["by_threshold"]) == {-1e9, 1e9} and fitted["best"]["f1"] == max(fitted["by_threshold"].values())
    assert judged.corrector_proposals == fitted["corrector_proposals"] and judged.margin == fitted["best"]["margin"]
    again = LanguageModelCorrector(KneserNeyLM(NC_CORPUS, order=3), masked=(masked, tokenizer),
                                   corrector=(fine_tuned, tokenizer), proposal_penalty=0.0, masked_proposals=-1e9,
                                   corrector_proposals=judged.corrector_proposals)
    again.fit_reranker(sources, targets)  # read at the chosen threshold: the same reranker
    assert again.reranker.weight.tolist() == pytest.approx(judged.reranker.weight.tolist(), abs=1e-6)
    del saved["corrector_proposals"], saved["models"]["corrector"]  # as written before the setting existed
    (folder / "noisy_channel.json").write_text(json.dumps(saved))
    older = LanguageModelCorrector.from_pretrained(folder)
    assert older.corrector_proposals is None and set(older.models) == {"masked"}


def test_noisy_channel_corrector_saves_loads_and_runs_in_the_pipeline(tmp_path):
    """A tuned noisy-channel corrector with its reranker, saved: the folder holds the settings, the n-gram and the
    models (the masked LM in the folder itself, the causal one in `forward/`); loaded back it reads every text
    exactly as before, `pipeline("text-correction", model=folder)` answers what the corrector answers for each text
    alone, settings can be overridden at load, and what cannot be saved or loaded is refused with a message before
    anything is written."""
    from transformers import AutoModelForMaskedLM, pipeline

    from hf_charlm.correction import LanguageModelCorrector
    from hf_charlm.ngram import KneserNeyLM

    corrector, texts = _tuned_noisy_channel()
    tokenizer = corrector.models["masked"][1]
    answers = corrector(texts)
    assert [a["corrected_text"] for a in answers[:2]] == ["我们去学校上课。", "学校很大。"]
    assert answers[0] == corrector(texts[0]) and answers[0]["edits"][0]["original"] == "效"

    folder = tmp_path / "corrector"
    corrector.save_pretrained(folder)
    saved = json.loads((folder / "noisy_channel.json").read_text())
    assert saved["models"] == {"masked": ".", "forward": "forward"} and saved["margin"] == -1.0
    assert saved["reranker"]["weight"] == corrector.reranker.weight.tolist() and saved["masked_proposals"] == -1e9
    assert (folder / "config.json").is_file() and (folder / "forward" / "model.safetensors").is_file()
    again = LanguageModelCorrector.from_pretrained(folder)
    assert set(again.models) == {"masked", "forward"} and again.channel is corrector.channel
    assert again.features(texts) == corrector.features(texts)
    assert again(texts) == answers and again.weights == corrector.weights
    assert all(a["edits"] == [] for a in LanguageModelCorrector.from_pretrained(folder, margin=1e9)(texts))
    moved = LanguageModelCorrector.from_pretrained(folder).to("meta")  # every model, not only the first
    assert {model.device.type for model, _ in moved.models.values()} == {"meta"}

    pipe = pipeline("text-correction", model=str(folder))
    assert pipe.model.noisy_channel.reranker.bias == corrector.reranker.bias
    if torch.cuda.is_available():  # device= moves every model of the corrector, not only the one loaded
        on_gpu = pipeline("text-correction", model=str(folder), device=0)
        assert {str(m.device) for m, _ in on_gpu.model.noisy_channel.models.values()} == {"cuda:0"}
    assert pipe(texts) == again(texts) and pipe(texts[1]) == again(texts[1])  # read together, as the corrector does
    assert pipe(texts, batch_size=2) == again(texts)
    assert list(pipe(t for t in texts)) == [again(t) for t in texts]  # a stream (generator): one text at a time
    with pytest.raises(TypeError, match="same-length corrector's"):
        pipe(texts, min_score=0.9)
    alone = pipeline("text-correction", model=AutoModelForMaskedLM.from_pretrained(folder), tokenizer=tokenizer)
    with pytest.raises(ValueError, match="saved noisy-channel corrector"):
        alone(texts[0])  # its masked LM alone is no corrector: refused, not a silent same-length reading

    with pytest.raises(ValueError, match="unknown setting"):
        LanguageModelCorrector.from_pretrained(folder, beams=4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "noisy_channel.json").write_text(json.dumps({**saved, "models": {"masked": str(folder)}}))
    with pytest.raises(ValueError, match="that save_pretrained does not write"):
        LanguageModelCorrector.from_pretrained(elsewhere)
    with pytest.raises(ValueError, match="brings its own models"):
        LanguageModelCorrector.from_pretrained(folder, masked=str(folder))
    with pytest.raises(FileNotFoundError, match="no noisy_channel.json"):
        LanguageModelCorrector.from_pretrained(tmp_path)
    own = LanguageModelCorrector(KneserNeyLM(NC_CORPUS, order=3), candidates=nc_candidates)
    with pytest.raises(ValueError, match="candidates of its own"):
        own.save_pretrained(tmp_path / "own")
    assert not (tmp_path / "own").exists()
    before = (folder / "noisy_channel.json").read_text()
    with pytest.raises(ValueError, match="channel of its own"):
        LanguageModelCorrector(KneserNeyLM(NC_CORPUS, order=3), channel=lambda seen, meant: -1.0).save_pretrained(folder)
    assert (folder / "noisy_channel.json").read_text() == before


def test_noisy_channel_corrector_from_the_hub(hub, tmp_path):
    """A saved corrector uploaded to a Hub repo (tests/hub_server.py on loopback) loads by its repo id, through
    `LanguageModelCorrector.from_pretrained` and the pipeline, and reads as the local one; a plain model repo
    still loads as a same-length corrector."""
    from huggingface_hub import HfApi
    from transformers import pipeline

    from hf_charlm.correction import LanguageModelCorrector, saved_corrector_folder

    corrector, texts = _tuned_noisy_channel()
    corrector.save_pretrained(tmp_path / "corrector")
    api = HfApi()
    api.create_repo("tester/csc-corrector")
    first = api.upload_folder(folder_path=str(tmp_path / "corrector"), repo_id="tester/csc-corrector").oid
    loaded = LanguageModelCorrector.from_pretrained("tester/csc-corrector")
    assert set(loaded.models) == {"masked", "forward"} and loaded(texts) == corrector(texts)
    assert pipeline("text-correction", model="tester/csc-corrector")(texts[1]) == corrector(texts[1])
    # a second commit that changes nothing but the margin; revision= still loads the first, as for any model
    corrector.margin = 1e9
    corrector.save_pretrained(tmp_path / "corrector")
    api.upload_folder(folder_path=str(tmp_path / "corrector"), repo_id="tester/csc-corrector")
    assert LanguageModelCorrector.from_pretrained("tester/csc-corrector").margin == 1e9
    pinned = LanguageModelCorrector.from_pretrained("tester/csc-corrector", revision=first, cache_dir=tmp_path / "cache")
    assert pinned.margin == -1.0 and pinned(texts) == loaded(texts) and any((tmp_path / "cache").iterdir())
    assert pipeline("text-correction", model="tester/csc-corrector", revision=first)(texts[1]) == loaded(texts[1])
    # the models of a corrector built by hand come from repos too, at the revision asked for
    built = LanguageModelCorrector.from_pretrained(loaded.ngram, masked="tester/csc-corrector", revision=first)
    mine, theirs = built.models["masked"][0].state_dict(), loaded.models["masked"][0].state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    with pytest.raises(Exception, match="(?i)revision"):  # the revision reaches the Hub: an unknown one is refused
        LanguageModelCorrector.from_pretrained(loaded.ngram, masked="tester/csc-corrector", revision="0" * 40)
    api.create_repo("tester/masked-only")
    api.upload_folder(folder_path=str(tmp_path / "corrector"), repo_id="tester/masked-only",
                      allow_patterns=["config.json", "model.safetensors", "tokenizer*", "*.py"])
    assert saved_corrector_folder("tester/masked-only") is None
    plain = pipeline("text-correction", model="tester/masked-only")
    assert getattr(plain.model, "noisy_channel", None) is None and "corrected_text" in plain(texts[0])


def test_build_corrector_script_bad_input_exit_2_nothing_written(tmp_path, capsys):
    script = ROOT / "scripts" / "build_corrector.py"
    out = tmp_path / "out"
    code, message = run_script_in_process(script, ["--mlm", str(tmp_path / "nowhere"), "--output_dir", str(out)], capsys)
    assert code == 2 and "--mlm" in message and "no model folder" in message
    code, message = run_script_in_process(script, ["--masked_proposals", "3", "--output_dir", str(out)], capsys)
    assert code == 2 and "give --mlm" in message
    code, message = run_script_in_process(script, ["--tune_examples", "0", "--output_dir", str(out)], capsys)
    assert code == 2 and "--tune_examples=0 must be >= 1" in message
    code, message = run_script_in_process(script, ["--corrector_proposals", "3", "--output_dir", str(out)], capsys)
    assert code == 2 and "give --corrector" in message
    code, message = run_script_in_process(script, ["--corrector", str(tmp_path), "--output_dir", str(out)], capsys)
    assert code == 2 and "--corrector" in message and "no model folder" in message
    (tmp_path / "config.json").write_text("{}")  # a folder that passes the check: the reranker is still missing
    code, message = run_script_in_process(script, ["--corrector", str(tmp_path), "--output_dir", str(out)], capsys)
    assert code == 2 and "give --reranker_examples" in message
    code, message = run_script_in_process(script, ["--lexicon", "pycorrector", "--output_dir", str(out)], capsys)
    assert code == 2 and "--lexicon is read by the learned reranker" in message
    code, message = run_script_in_process(script, ["--lexicon", str(tmp_path / "words.txt"), "--reranker_examples", "5",
                                                   "--output_dir", str(out)], capsys)
    assert code == 2 and "words.txt" in message and "'peoples_daily', 'pycorrector' or a file" in message
    assert not out.exists()


@pytest.mark.slow
def test_build_corrector_script_saves_what_the_pipeline_reads(tmp_path, capsys):
    """scripts/build_corrector.py end to end on the built-in data (counts the People's Daily 4-gram twice, ~1 min):
    a tiny masked LM (also standing in for the fine-tuned corrector, its proposal threshold chosen of two on
    validation), a reranker from 40 train pairs, the margin from 20 validation pairs; the folder it saves
    loads through the pipeline, which answers as the corrector loaded by hand, and its report's test scores are
    those of the pipeline's corrections."""
    pytest.importorskip("pycorrector")
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results
    from transformers import pipeline

    from hf_charlm.correction import RERANKER_MARGINS, LanguageModelCorrector
    from hf_charlm.correction_data import peoples_daily_lexicon
    from hf_charlm.data import load_builtin

    from .conftest import tiny_config

    texts = load_builtin("peoples_daily_csc")["train"]["target"][:200]
    tokenizer = train_char_tokenizer(texts)
    mlm = tmp_path / "mlm"
    CharLMForMaskedLM(tiny_config(vocab_size=len(tokenizer))).save_pretrained(mlm)
    tokenizer.save_pretrained(mlm)
    out = tmp_path / "corrector"
    code, _ = run_script_in_process(ROOT / "scripts" / "build_corrector.py", [
        "--mlm", str(mlm), "--masked_proposals", "3", "--corrector", str(mlm), "--corrector_proposals", "1000", "0.5",
        "--reranker_examples", "40", "--tune_examples", "20", "--evaluate_examples", "5", "--lexicon", "peoples_daily",
        "--output_dir", str(out)], capsys)
    assert code == 0
    report = json.loads((out / "build_report.json").read_text())
    assert report["reranker"]["edits"] > report["reranker"]["right"] > 0 and report["chosen"]["margin"] in RERANKER_MARGINS
    by_threshold = report["validation_f1_by_corrector_proposals"]
    assert set(by_threshold) == {"0.5", "1000.0"} and report["chosen"]["f1"] == max(by_threshold.values())
    corrector = LanguageModelCorrector.from_pretrained(out)
    assert corrector.reranker is not None and corrector.margin == report["chosen"]["margin"] and corrector.ngram.order == 4
    assert by_threshold[str(corrector.corrector_proposals)] == report["chosen"]["f1"] and "corrector" in corrector.models
    assert "corrector" in corrector.reranker.names and (out / "corrector" / "model.safetensors").is_file()
    assert "word_new" in corrector.reranker.names and corrector.lexicon.counts == peoples_daily_lexicon().counts
    sighan = load_builtin("sighan2015_test")["test"].select(range(5))
    answers = pipeline("text-correction", model=str(out))(list(sighan["source"]))
    assert answers == corrector(list(sighan["source"]))
    expected = correction_scores(sighan["source"], sighan["target"], [a["corrected_text"] for a in answers])
    assert report["test"]["sighan2015_test"]["sentence_correction_f1"] == expected["sentence_correction_f1"]
    assert report["test"]["sighan2015_test"]["changed_sentences"] == expected["changed_sentences"]
    # the model card: validation and test scores in the model index, SIGHAN's beside it, the build's settings
    card = ModelCard.load(out / "README.md")
    _, evals = model_index_to_eval_results(card.data.to_dict()["model-index"])
    got = {(e.dataset_split, e.metric_name): e.metric_value for e in evals}
    assert got[("validation", "Sentence correction F1")] == report["chosen"]["f1"]
    assert got[("test", "Sentence correction F1")] == report["test"]["peoples_daily_csc"]["sentence_correction_f1"]
    sighan_f1 = report["test"]["sighan2015_test"]["sentence_correction_f1"]
    assert f"sighan2015_test (5 sentences): sentence correction P / R / F1 | " in card.text and f"{sighan_f1:.4f} |" in card.text
    assert "| proposal_penalty | 1.5 |" in card.text and f"| margin | {report['chosen']['margin']:.6g} |" in card.text
    assert f"| lexicon | peoples_daily (the words of the peoples_daily_cws train split) ({len(corrector.lexicon):,} words) |" in card.text
    usage = card.text.split("## How to use")[1].split("## How it was built")[0]  # the package's pipeline, no remote code
    assert "trust_remote_code" not in usage and card.data.pipeline_tag == "text2text-generation"


@pytest.mark.slow
def test_build_corrector_script_ngram_alone(tmp_path, capsys):
    """scripts/build_corrector.py with no model (the n-gram and the channel, grid weights): the folder loads with
    `LanguageModelCorrector.from_pretrained`, its report's test scores are that corrector's, and no model card is
    written (the card shows the pipeline, which needs a model)."""
    pytest.importorskip("pycorrector")
    from hf_charlm.correction import LanguageModelCorrector
    from hf_charlm.data import load_builtin

    out = tmp_path / "ngram-corrector"
    code, _ = run_script_in_process(ROOT / "scripts" / "build_corrector.py", [
        "--tune_examples", "20", "--evaluate_examples", "5", "--output_dir", str(out)], capsys)
    assert code == 0 and not (out / "README.md").exists()
    report = json.loads((out / "build_report.json").read_text())
    corrector = LanguageModelCorrector.from_pretrained(out)
    assert corrector.models == {} and corrector.weights == report["chosen"]["weights"]
    test = load_builtin("peoples_daily_csc")["test"].select(range(5))
    outputs = [a["corrected_text"] for a in corrector(list(test["source"]))]
    expected = correction_scores(test["source"], test["target"], outputs)
    assert report["test"]["peoples_daily_csc"]["sentence_correction_f1"] == expected["sentence_correction_f1"]
    assert report["test"]["peoples_daily_csc"]["changed_sentences"] == expected["changed_sentences"]
