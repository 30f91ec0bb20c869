"""Lexicon features (`CharLMConfig.lexicon_max_length`): which positions a lexicon word marks, the training folds
(jackknifing), padding and packing, saving and loading with the lexicon, a backbone loaded without them starting
unchanged, ensembles, the heads that refuse them, and `scripts/finetune_token_classification.py --lexicon`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hf_charlm import CharLMConfig, CharLMForCausalLM, CharLMForMaskedLM, CharLMForTokenClassification
from hf_charlm.modeling_charlm import CharLMLexiconFeatures
from hf_charlm.tokenization_charlm import build_char_tokenizer
from tests.conftest import run_script_in_process, tiny_config

CHARS = "中国人民银行北京大学生在"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "finetune_token_classification.py"


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer(CHARS)


def _model(tok, words, max_length: int = 4, **overrides) -> CharLMForTokenClassification:
    torch.manual_seed(0)
    model = CharLMForTokenClassification(tiny_config(vocab_size=len(tok), num_labels=4, lexicon_max_length=max_length, **overrides))
    model.set_lexicon(words, tok)
    return model.eval()


def _marks(model, tok, text: str, fold: int | None = None) -> dict[str, list[int]]:
    """The positions (in characters, after <s>) each indicator marks, named like 'B2' (a 2-token word begins)."""
    enc = tok([text], return_tensors="pt")
    folds = None if fold is None else torch.tensor([fold])
    ind = model.model.embed_lexicon.indicators(enc["input_ids"], enc["attention_mask"], lexicon_fold=folds)[0]
    names = [f"{kind}{length}" for length in range(2, model.config.lexicon_max_length + 1) for kind in "BIE"]
    return {name: [int(t) - 1 for t in torch.nonzero(ind[:, i]).flatten()] for i, name in enumerate(names) if ind[:, i].any()}


def test_each_word_marks_where_it_begins_continues_and_ends(tok):
    model = _model(tok, ["中国", "人民", "银行", "北京大学", "大学生", "中国人民银行行"])
    # 中国人民银行 : 中国 0-1, 人民 2-3, 银行 4-5; the 7-character word is longer than lexicon_max_length
    assert _marks(model, tok, "中国人民银行") == {"B2": [0, 2, 4], "E2": [1, 3, 5]}
    # 北京大学生 : 北京大学 0-3 and 大学生 2-4 overlap; a 3-token word has one inside position, a 4-token word two
    assert _marks(model, tok, "北京大学生") == {"B3": [2], "I3": [3], "E3": [4], "B4": [0], "I4": [1, 2], "E4": [3]}
    assert _marks(model, tok, "在在在") == {}
    assert model.config.lexicon_size == 5  # the 7-character word is left out


def test_a_training_fold_does_not_see_its_own_words(tok):
    # bit k: the word was found in training fold k
    model = _model(tok, {"中国": 0b01, "人民": 0b10, "银行": 0b11, "大学生": 0b01, "北京大学": -1})
    assert _marks(model, tok, "中国人民银行", fold=0) == {"B2": [2, 4], "E2": [3, 5]}  # 中国 only in fold 0
    assert _marks(model, tok, "中国人民银行", fold=1) == {"B2": [0, 4], "E2": [1, 5]}  # 人民 only in fold 1
    assert _marks(model, tok, "中国人民银行", fold=-1) == _marks(model, tok, "中国人民银行")  # every word
    assert _marks(model, tok, "北京大学生", fold=0) == {"B4": [0], "I4": [1, 2], "E4": [3]}  # a plain word: every fold
    # the same word from several folds (given twice through a mapping that merges): the bitmasks are joined
    merged = _model(tok, {"中国": 0b01})
    merged.set_lexicon({**{"中国": 0b01}, **{"中国": 0b01 | 0b100}}, tok)
    assert _marks(merged, tok, "中国", fold=0) == {"B2": [0], "E2": [1]}


def test_no_window_crosses_padding_or_a_packed_sequences_start(tok):
    model = _model(tok, ["中国", "人民", "北京大学"])
    with torch.no_grad():
        model.model.embed_lexicon.proj.weight.normal_(0.0, 0.5)  # (starts at zero)
    lexicon = model.model.embed_lexicon
    ids = torch.tensor([tok("北京大学")["input_ids"]])  # <s> 北 京 大 学
    assert lexicon.indicators(ids)[0].sum() == 4  # B4, I4 twice, E4
    # the word's last two characters masked out (what padding is): it is no longer found
    masked = torch.tensor([[1, 1, 1, 0, 0]])
    assert lexicon.indicators(ids, masked)[0].sum() == 0
    # packed as two sequences 北京 | 大学 (positions restart): the word across the seam is not found either
    assert lexicon.indicators(ids, None, torch.tensor([[0, 1, 2, 0, 1]]))[0].sum() == 0
    # a row's outputs do not depend on its neighbours' padding, left or right
    alone = model(input_ids=torch.tensor([tok("中国人民")["input_ids"]])).logits[0]
    for side in ("left", "right"):
        tok.padding_side = side
        try:
            enc = tok(["中国人民", "北京"], padding=True, return_tensors="pt")
        finally:
            tok.padding_side = "right"
        short = tok("北京", return_tensors="pt")
        out = model(**enc).logits
        torch.testing.assert_close(out[0], alone, rtol=1e-5, atol=1e-5)
        real = enc["attention_mask"][1].bool()
        torch.testing.assert_close(out[1][real], model(**short).logits[0], rtol=1e-5, atol=1e-5)
    # packed rows give each sequence its outputs alone
    a, b = tok("中国人民")["input_ids"], tok("北京大学")["input_ids"]
    positions = torch.tensor([list(range(len(b))) + list(range(len(a)))])
    packed = model(input_ids=torch.tensor([b + a]), position_ids=positions).logits[0]
    torch.testing.assert_close(packed, torch.cat([model(input_ids=torch.tensor([b])).logits[0], alone]), rtol=1e-5, atol=1e-5)


def test_saved_with_its_lexicon_and_loaded_from_a_checkpoint_without_one(tok, tmp_path):
    from transformers import AutoModelForTokenClassification

    model = _model(tok, {"中国": 0b01, "北京大学": 0b10})
    with torch.no_grad():
        model.model.embed_lexicon.proj.weight.normal_(0.0, 0.5)
    model.save_pretrained(tmp_path / "ft")
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "ft").eval()
    assert loaded.config.lexicon_size == 2
    assert torch.equal(loaded.model.embed_lexicon.hashes, model.model.embed_lexicon.hashes)
    assert torch.equal(loaded.model.embed_lexicon.folds, model.model.embed_lexicon.folds)
    ids = torch.tensor([tok("中国北京大学")["input_ids"]])
    torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)
    # from a masked LM without lexicon features: the lexicon module is new, empty (nothing found), its projection
    # zero, so the model computes what it computed without them until it is trained
    torch.manual_seed(0)
    mlm = CharLMForMaskedLM(tiny_config(vocab_size=len(tok)))
    mlm.save_pretrained(tmp_path / "mlm")
    plain = CharLMForTokenClassification.from_pretrained(tmp_path / "mlm", num_labels=4).eval()
    fresh, info = CharLMForTokenClassification.from_pretrained(
        tmp_path / "mlm", num_labels=4, lexicon_max_length=3, output_loading_info=True
    )
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias", "model.embed_lexicon.proj.weight",
                                         "model.embed_lexicon.hashes", "model.embed_lexicon.folds"}
    lexicon = fresh.model.embed_lexicon
    assert lexicon.hashes.numel() == 0 and lexicon.proj.weight.abs().sum() == 0
    fresh.set_lexicon(["中国"], tok)
    assert lexicon.indicators(ids)[0].sum() == 2
    fresh.classifier.load_state_dict(plain.classifier.state_dict())
    torch.testing.assert_close(fresh.eval()(input_ids=ids).logits, plain(input_ids=ids).logits, rtol=0, atol=0)


def test_an_ensemble_keeps_each_members_lexicon(tok, tmp_path):
    members = []
    for seed in (1, 2):
        member = _model(tok, {"中国": 0b01, "人民": 0b10}, use_crf=True)
        with torch.no_grad():
            torch.manual_seed(seed)
            member.model.embed_lexicon.proj.weight.normal_(0.0, 0.5)
        members.append(member)
    ensemble = CharLMForTokenClassification.from_members(members)
    ensemble.save_pretrained(tmp_path)
    loaded = CharLMForTokenClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded.ensemble[0].model.embed_lexicon.hashes, members[1].model.embed_lexicon.hashes)
    enc = tok(["中国人民"], return_tensors="pt")
    emissions = [m._scores(m, enc["input_ids"], enc["attention_mask"], None, None, False, False)[0] for m in members]
    mean = loaded._scores(loaded, enc["input_ids"], enc["attention_mask"], None, None, False, False)[0]
    mean = (mean + loaded._scores(loaded.ensemble[0], enc["input_ids"], enc["attention_mask"], None, None, False, False)[0]) / 2
    torch.testing.assert_close(mean, (emissions[0] + emissions[1]) / 2, rtol=1e-5, atol=1e-5)


def test_lexicon_errors(tok):
    with pytest.raises(ValueError, match="lexicon_max_length=9 is invalid"):
        CharLMConfig(lexicon_max_length=9)
    with pytest.raises(ValueError, match="lexicon_max_length=1 is invalid"):
        CharLMConfig(lexicon_max_length=1)
    with pytest.raises(ValueError, match="lexicon features read the words around each position"):
        CharLMForCausalLM(tiny_config(lexicon_max_length=4))
    plain = CharLMForTokenClassification(tiny_config(vocab_size=len(tok), num_labels=4))
    with pytest.raises(ValueError, match="has no lexicon features: set config.lexicon_max_length"):
        plain.set_lexicon(["中国"], tok)
    ids = torch.tensor([tok("中国")["input_ids"]])
    with pytest.raises(ValueError, match="lexicon_fold was given, but this model has no lexicon features"):
        plain(input_ids=ids, lexicon_fold=torch.tensor([0]))
    model = _model(tok, ["中国"])
    with pytest.raises(ValueError, match="pass input_ids, not inputs_embeds"):
        model(inputs_embeds=torch.zeros(1, 3, model.config.hidden_size))
    with pytest.raises(TypeError, match="lexicon words are strings"):
        model.set_lexicon([("中", "国")], tok)
    with pytest.raises(ValueError, match="a lexicon word has 2 to 8 tokens"):
        CharLMLexiconFeatures.hash_ids([5])


def _write_cws(path: Path, sentences: list[list[str]]) -> None:
    path.write_text("".join(" ".join(words) + "\n" for words in sentences), encoding="utf-8")


def test_finetune_script_builds_the_train_lexicon_with_folds(tmp_path, capsys):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    words = [["北京", "大学", "生"], ["中国", "人民", "银行"], ["在", "北京"], ["人民", "在", "中国"]] * 6
    words[4] = ["学生", "在"]  # the only sentence with 学生: sentence 4, fold 4 mod 3 = 1
    _write_cws(tmp_path / "train.txt", words)
    _write_cws(tmp_path / "dev.txt", words[:4])
    out = tmp_path / "out"
    args = ["--train_file", str(tmp_path / "train.txt"), "--validation_file", str(tmp_path / "dev.txt"),
            "--file_format", "segmented", "--preset", "tiny", "--max_steps", "2", "--per_device_train_batch_size", "4",
            "--eval_strategy", "no", "--disable_tqdm", "true", "--report_to", "none", "--output_dir", str(out)]
    code, last = run_script_in_process(SCRIPT, [*args, "--lexicon", "train", "--lexicon_folds", "3", "--lexicon_max_length", "2"], capsys)
    assert code == 0, last
    model = AutoModelForTokenClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    # the 2-character words: 北京 大学 中国 人民 银行 学生 (生 and 在 are single characters)
    assert config["lexicon_max_length"] == 2 and config["lexicon_size"] == 6
    lexicon = model.model.embed_lexicon
    folds = dict(zip(lexicon.hashes.tolist(), lexicon.folds.tolist()))

    def mask(word: str) -> int:
        return folds[CharLMLexiconFeatures.hash_ids(tok(word, add_special_tokens=False)["input_ids"])]

    # sentence i is in fold i mod 3: 学生 only in fold 1; 大学 in sentences 0, 8, 12, 16, 20 (4 replaced): 0, 2, 0,
    # 1, 2, every fold; the model's lexicon features of a fold-1 sentence do not see 学生
    assert mask("学生") == 0b010 and mask("大学") == 0b111 and sorted(folds.values()).count(0b111) == 5
    ids = torch.tensor([tok("学生在")["input_ids"]])
    assert lexicon.indicators(ids)[0].sum() == 2
    assert lexicon.indicators(ids, lexicon_fold=torch.tensor([1]))[0].sum() == 0
    assert lexicon.indicators(ids, lexicon_fold=torch.tensor([0]))[0].sum() == 2
    # the Trainer hands each training batch's folds to the model (a column of the forward's signature)
    import inspect

    assert "lexicon_fold" in inspect.signature(type(model).forward).parameters
    # bad arguments are named
    code, last = run_script_in_process(SCRIPT, [*args, "--overwrite_output_dir", "true", "--lexicon", str(tmp_path / "none.txt")], capsys)
    assert code == 2 and "--lexicon" in last and "no such file" in last, last
    code, last = run_script_in_process(SCRIPT, [*args, "--overwrite_output_dir", "true", "--lexicon", "train", "--lexicon_max_length", "9"], capsys)
    assert code == 2 and "--lexicon_max_length=9 must be from 2 to 8" in last, last
    # a word list: one word per line
    (tmp_path / "words.txt").write_text("北京大学\n中国\n\n", encoding="utf-8")
    code, last = run_script_in_process(SCRIPT, [*args, "--overwrite_output_dir", "true", "--lexicon", str(tmp_path / "words.txt")], capsys)
    assert code == 0, last
    assert json.loads((out / "config.json").read_text())["lexicon_size"] == 2


def test_the_segmentation_train_words_have_distinct_hashes():
    from hf_charlm.data import load_builtin
    from hf_charlm.metrics import bmes_to_spans
    from hf_charlm.tokenization_charlm import train_char_tokenizer

    train = load_builtin("peoples_daily_cws")["train"]
    names = train.features["tags"].feature.names
    texts = ["".join(tokens) for tokens in train["tokens"]]
    tok = train_char_tokenizer(texts)
    words = {text[a:b] for text, tags in zip(texts, train["tags"]) for a, b in bmes_to_spans([names[t] for t in tags])}
    ids = {tuple(tok(w, add_special_tokens=False)["input_ids"]) for w in words}
    ids = {i for i in ids if 2 <= len(i) <= 8}
    assert len(ids) > 40_000  # 46,635 words of 2-8 characters
    assert len({CharLMLexiconFeatures.hash_ids(i) for i in ids}) == len(ids)  # no two share a hash
