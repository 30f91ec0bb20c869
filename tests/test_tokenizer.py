"""The char tokenizer: lossless round trip (property-based), offsets, word_ids, special tokens, save/load."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_charlm import build_char_tokenizer, train_char_tokenizer
from hf_charlm.tokenization_charlm import SPECIAL_TOKENS, _CharTable, encode_corpus
from tests.conftest import CORPUS, tiny_config

# any valid Unicode string: every code point except the surrogates (which cannot be encoded as UTF-8)
valid_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=80)


ROUND_TRIP_TOKENIZER = train_char_tokenizer(CORPUS)


@settings(max_examples=300, deadline=None)
@given(valid_text)
def test_round_trip_any_text(text):
    tok = ROUND_TRIP_TOKENIZER
    ids = tok(text, split_special_tokens=True).input_ids  # literal: a generated "<s>" stays three characters
    assert tok.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFC", text)


@pytest.mark.parametrize("text", [
    "👩‍👩‍👧‍👦 family (ZWJ sequence) 🇨🇳 flag",
    "𠀀𪚥 rare CJK (plane 2) 龘",
    "e\u0301 combining acute, a\u030a ring",
    "tab\there\r\nCRLF\rCR\nLF",
    "NUL\x00inside",
    "",
    "   leading and trailing spaces   ",
])
def test_round_trip_hard_cases(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFC", text)
    assert tokenizer.unk_token_id not in ids  # byte fallback: nothing is ever unknown


def test_special_tokens_in_text_like_builtin_models(tokenizer):
    """As in every built-in tokenizer, a special token written in the text is that token; `split_special_tokens=True`
    (per call) reads text literally, for text you do not control."""
    text = "<s> typed </s> <pad>"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", " ", "t", "y", "p", "e", "d", " ", "</s>", " ", "<pad>"]
    assert tokenizer.decode(ids) == text
    literal = tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
    assert len(literal) >= len(text) and not set(literal) & set(tokenizer.all_special_ids)
    assert tokenizer.decode(literal, skip_special_tokens=True) == text


CHAT = "<|user|>你好<|end|><|assistant|>hello<|end|>"


def _check_chat_markers(tok) -> None:
    enc = tok(CHAT, add_special_tokens=False, return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc.input_ids)
    markers = [t for t in tokens if t.startswith("<|")]
    assert markers == ["<|user|>", "<|end|>", "<|assistant|>", "<|end|>"]  # one token each, never split
    assert CHAT[slice(*enc.offset_mapping[0])] == "<|user|>"
    assert tok.decode(enc.input_ids) == CHAT  # round trip
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == "你好hello"  # special: skipped on request
    marker_ids = tok.convert_tokens_to_ids(["<|user|>", "<|assistant|>", "<|end|>"])
    assert len(set(marker_ids)) == 3 and tok.unk_token_id not in marker_ids
    assert tok("<plain> x", add_special_tokens=False).input_ids[0] == tok.convert_tokens_to_ids("<plain>")


def test_added_special_tokens_stay_single_tokens(tokenizer, tmp_path):
    vocab_size = len(tokenizer)
    assert tokenizer.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|assistant|>"]}) == 2
    assert tokenizer.add_tokens(["<|end|>"], special_tokens=True) == 1
    assert tokenizer.add_tokens(["<plain>"]) == 1
    assert len(tokenizer) == vocab_size + 4
    _check_chat_markers(tokenizer)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=False)
    _check_chat_markers(loaded)
    assert loaded(CHAT).input_ids == tokenizer(CHAT).input_ids
    # a special token added after reloading (the generic class, no hf_charlm code) behaves the same
    loaded.add_special_tokens({"additional_special_tokens": ["<|system|>"]}, replace_extra_special_tokens=False)
    ids = loaded("<|system|>hi", add_special_tokens=False).input_ids
    assert loaded.convert_ids_to_tokens(ids)[0] == "<|system|>" and loaded.decode(ids) == "<|system|>hi"


def test_normalisation_configurable():
    nfc = train_char_tokenizer(["abc"])
    raw = train_char_tokenizer(["abc"], normalization=None)
    text = "e\u0301"  # decomposed é
    assert nfc.decode(nfc(text).input_ids, skip_special_tokens=True) == "\u00e9"
    assert raw.decode(raw(text).input_ids, skip_special_tokens=True) == text
    with pytest.raises(ValueError, match="normalization"):
        train_char_tokenizer(["abc"], normalization="NFX")


def test_lone_surrogate_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match=r"^text is not valid Unicode: lone surrogate '\\ud800' at character 4"):
        tokenizer("bad \ud800 text")
    with pytest.raises(ValueError, match=r"^text\[1\] is not valid Unicode"):
        tokenizer(["fine", "bad \udfff"])
    with pytest.raises(ValueError, match=r"^text_pair\[0\] is not valid Unicode"):
        tokenizer(["ab", "cd"], ["x\ud800", "y"])
    with pytest.raises(ValueError, match=r"not valid Unicode"):
        tokenizer(["a", "\udc80"], is_split_into_words=True)


def test_one_token_per_character_and_byte_fallback(tokenizer):
    text = "hello 人民"
    enc = tokenizer(text, add_special_tokens=False)
    assert len(enc.input_ids) == len(text)
    assert tokenizer.convert_ids_to_tokens(enc.input_ids) == list(text)
    unseen = "\u9fa5"  # not in the corpus: three UTF-8 bytes
    toks = tokenizer.convert_ids_to_tokens(tokenizer(unseen, add_special_tokens=False).input_ids)
    assert toks == [f"<0x{b:02X}>" for b in unseen.encode("utf-8")]


def test_training_min_frequency_and_max_size():
    texts = ["aaaa", "bbb", "cc", "d"]
    tok = train_char_tokenizer(texts, min_frequency=2)
    vocab = tok.get_vocab()
    assert {"a", "b", "c"} <= vocab.keys() and "d" not in vocab
    reserved = len(SPECIAL_TOKENS) + 256
    small = train_char_tokenizer(texts, max_vocab_size=reserved + 2)
    assert len(small) == reserved + 2
    assert {"a", "b"} <= small.get_vocab().keys() and "c" not in small.get_vocab()  # most frequent first
    # independent of the order of the texts
    assert train_char_tokenizer(texts[::-1]).get_vocab() == train_char_tokenizer(texts).get_vocab()
    with pytest.raises(ValueError, match="max_vocab_size"):
        train_char_tokenizer(texts, max_vocab_size=10)
    with pytest.raises(ValueError, match="min_frequency"):
        train_char_tokenizer(texts, min_frequency=0)


def test_training_reads_an_iterator():
    tok = train_char_tokenizer(iter(CORPUS))
    assert "迈" in tok.get_vocab()


def test_special_tokens_and_post_processor(tokenizer):
    for name, token in [("pad", "<pad>"), ("unk", "<unk>"), ("bos", "<s>"), ("eos", "</s>"), ("cls", "<cls>"), ("sep", "<sep>"), ("mask", "<mask>")]:
        assert getattr(tokenizer, f"{name}_token") == token
        assert getattr(tokenizer, f"{name}_token_id") == SPECIAL_TOKENS.index(token)
    single = tokenizer("ab")
    assert single.input_ids[0] == tokenizer.bos_token_id and len(single.input_ids) == 3
    pair = tokenizer("ab", "cd")
    assert tokenizer.convert_ids_to_tokens(pair.input_ids) == ["<s>", "a", "b", "<sep>", "c", "d"]
    assert tokenizer("ab", "cd", return_token_type_ids=True).token_type_ids == [0, 0, 0, 0, 1, 1]
    mask = tokenizer("ab", return_special_tokens_mask=True).special_tokens_mask
    assert mask == [1, 0, 0]


def test_offsets_are_characters_and_a_text_is_one_word(tokenizer):
    text = "ab 你😀"  # 你 is not in the vocabulary: three byte tokens sharing its offsets (3, 4)
    vocab = tokenizer.get_vocab()
    assert "你" not in vocab and "😀" in vocab
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc.offset_mapping == [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (3, 4), (3, 4), (4, 5)]
    assert [enc.token_to_chars(k).start for k in range(1, 8)] == [0, 1, 2, 3, 3, 3, 4]  # the character index
    # no pre-tokenizer (a per-character Split cost half of the Rust time): a plain text is one word
    assert enc.word_ids() == [None, 0, 0, 0, 0, 0, 0, 0]


def test_is_split_into_words_word_ids(tokenizer):
    words = ["EU", "rejects", "German"]
    enc = tokenizer(words, is_split_into_words=True)
    word_ids = enc.word_ids()
    assert word_ids[0] is None
    assert word_ids[1:] == [0, 0] + [1] * 7 + [2] * 6
    chars = ["人", "民", "😀"]
    enc = tokenizer(chars, is_split_into_words=True)
    n_emoji = len(tokenizer("😀", add_special_tokens=False).input_ids)
    assert enc.word_ids()[1:] == [0, 1] + [2] * n_emoji


def test_padding_truncation_batches(tokenizer):
    batch = tokenizer(["abc", "a"], padding=True)
    assert batch.input_ids[1] == [2, tokenizer.convert_tokens_to_ids("a"), 0, 0]
    assert batch.attention_mask == [[1, 1, 1, 1], [1, 1, 0, 0]]
    tokenizer.padding_side = "left"
    try:
        left = tokenizer(["abc", "a"], padding=True)
        assert left.input_ids[1][:2] == [0, 0] and left.attention_mask[1] == [0, 0, 1, 1]
    finally:
        tokenizer.padding_side = "right"
    trunc = tokenizer("abcdefgh", truncation=True, max_length=4)
    assert len(trunc.input_ids) == 4 and trunc.input_ids[0] == tokenizer.bos_token_id
    padded = tokenizer(["ab"], padding="max_length", max_length=6, return_tensors="pt")
    assert tuple(padded.input_ids.shape) == (1, 6)


def test_save_load_autotokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    assert data["model"]["type"] == "BPE" and data["model"]["byte_fallback"] is True and data["model"]["merges"] == []
    assert data["pre_tokenizer"] is None
    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=False)
    assert isinstance(loaded, PreTrainedTokenizerFast)
    for text in ["hello 人民 😀", "ab", "x\ty"]:
        assert loaded(text).input_ids == tokenizer(text).input_ids
        assert loaded(text, return_offsets_mapping=True).offset_mapping == tokenizer(text, return_offsets_mapping=True).offset_mapping
    assert loaded("ab", "cd").input_ids == tokenizer("ab", "cd").input_ids
    assert loaded.decode(loaded("a😀").input_ids, skip_special_tokens=True) == "a😀"


def test_build_rejects_multi_character_entries():
    with pytest.raises(ValueError, match="single characters"):
        build_char_tokenizer(["ab"])


# ------------------------------------------------------------------------ loading with no hf_charlm, no prompt
LOAD_WITHOUT_HF_CHARLM = r"""
import json, sys
sys.modules["hf_charlm"] = None  # a user who has transformers but not hf_charlm
try:
    import hf_charlm
    raise SystemExit("hf_charlm is importable")
except ImportError:
    pass
from transformers import AutoTokenizer, PreTrainedTokenizerFast

folder, text = sys.argv[1], sys.argv[2]
ways = {  # the plain ways first: loading remote code could register something for the later ones
    "AutoTokenizer": lambda: AutoTokenizer.from_pretrained(folder),
    "AutoTokenizer, trust_remote_code=False": lambda: AutoTokenizer.from_pretrained(folder, trust_remote_code=False),
    "PreTrainedTokenizerFast": lambda: PreTrainedTokenizerFast.from_pretrained(folder),
    "AutoTokenizer, trust_remote_code=True": lambda: AutoTokenizer.from_pretrained(folder, trust_remote_code=True),
}
for name, load in ways.items():
    print(f"@@@ {name}", flush=True)
    try:
        ids = load()(text).input_ids
    except Exception as e:
        ids = f"{type(e).__name__}: {e}"
    print("@@@ ids " + json.dumps(ids), flush=True)
"""
LOAD_TEXT = "<|user|>北京 met Obama 😀<s>"
LOAD_WAYS = ("AutoTokenizer", "AutoTokenizer, trust_remote_code=False", "PreTrainedTokenizerFast",
             "AutoTokenizer, trust_remote_code=True")
# transformers 5.24 cannot do these silently from a model folder whatever the tokenizer files say, see README (Design)
TRANSFORMERS_LOADS_THE_CONFIG = pytest.mark.xfail(
    strict=True,
    reason="AutoTokenizer.from_pretrained always loads config.json through AutoConfig first "
    "(models/auto/tokenization_auto.py); a model_type transformers does not know with an auto_map['AutoConfig'] "
    "makes AutoConfig ask [y/N] (dynamic_module_utils.resolve_trust_remote_code) and, refused, AutoTokenizer falls "
    "back to PreTrainedConfig.from_pretrained, which warns about model type `charlm`",
)


@pytest.fixture(scope="module")
def loads_without_hf_charlm(tmp_path_factory) -> tuple[dict[str, tuple[str, object]], list[int]]:
    """A model folder (config.json with model_type charlm and auto_map, remote code, tokenizer with an added chat
    marker) loaded in a process where hf_charlm cannot be imported and stdin is closed: way -> (output, ids)."""
    from hf_charlm import CharLMForCausalLM

    tokenizer = train_char_tokenizer(CORPUS)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|user|>"]})
    folder = tmp_path_factory.mktemp("model_folder")
    CharLMForCausalLM(tiny_config(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "charlm" and "AutoConfig" in config["auto_map"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_HF_CHARLM, str(folder), LOAD_TEXT], cwd=folder,
                          env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = {}
    for chunk in proc.stdout.split("@@@ ")[1:]:
        if chunk.startswith("ids "):
            results[way] = (output, json.loads(chunk[4:].splitlines()[0]))
        else:
            way, _, output = chunk.partition("\n")
    return results, tokenizer(LOAD_TEXT).input_ids


@pytest.mark.parametrize("way", [pytest.param(w, marks=TRANSFORMERS_LOADS_THE_CONFIG) if w.startswith("AutoTokenizer")
                                 and not w.endswith("True") else w for w in LOAD_WAYS])
def test_saved_tokenizer_loads_without_prompt_or_warning(loads_without_hf_charlm, way):
    results, expected = loads_without_hf_charlm
    output, ids = results[way]
    assert ids == expected  # identical ids, the added chat marker one token
    for noise in ("[y/N]", "custom code", "to instantiate a model of type"):
        assert noise not in output, output


# ------------------------------------------------------------------------ tokenizer.json of earlier versions
def _with_character_split(tokenizer) -> PreTrainedTokenizerFast:
    """The tokenizer as earlier versions built it: a `Split` pre-tokenizer on every character."""
    data = json.loads(tokenizer.backend_tokenizer.to_str())
    data["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated", "invert": False}
    from tokenizers import Tokenizer

    clone = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(data)), **{
        name: getattr(tokenizer, name) for name in ("pad_token", "unk_token", "bos_token", "eos_token", "cls_token",
                                                    "sep_token", "mask_token")})
    return clone


def test_saved_tokenizer_of_earlier_versions_loads_with_the_same_ids(tokenizer, tmp_path):
    old = _with_character_split(tokenizer)
    old.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["pre_tokenizer"]["type"] == "Split"
    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=False)
    texts = ["hello 人民 😀", "e\u0301 <s> x\ty", "", "你好"]
    for split in (False, True):
        new = tokenizer(texts, return_offsets_mapping=True, split_special_tokens=split)
        got = loaded(texts, return_offsets_mapping=True, split_special_tokens=split)
        assert got.input_ids == new.input_ids and got.offset_mapping == new.offset_mapping
    assert loaded("ab 你", return_offsets_mapping=True).word_ids() == [None, 0, 1, 2, 3, 3, 3]  # as before
    assert encode_corpus(loaded, texts).tolist() == encode_corpus(tokenizer, texts).tolist()
    assert _CharTable.of(loaded.backend_tokenizer) is not None  # read directly, not through the tokenizer


# ------------------------------------------------------------------------ encode_corpus
def _reference(tok, texts, add_special_tokens=True, append_eos=False) -> tuple[list[int], list[int]]:
    rows = tok(texts, split_special_tokens=True, add_special_tokens=add_special_tokens).input_ids if texts else []
    rows = [row + [tok.eos_token_id] for row in rows] if append_eos else rows
    return [i for row in rows for i in row], [len(row) for row in rows]


def _check_encode_corpus(tok, texts) -> None:
    for add_special_tokens, append_eos in ((True, False), (False, True), (True, True)):
        ids, lengths = encode_corpus(tok, texts, add_special_tokens=add_special_tokens, append_eos=append_eos,
                                     return_lengths=True)
        expected_ids, expected_lengths = _reference(tok, texts, add_special_tokens, append_eos)
        assert ids.dtype == np.int32 and lengths.tolist() == expected_lengths
        assert ids.tolist() == expected_ids


SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


def _corpora() -> dict[str, list[str]]:
    from hf_charlm.data import load_builtin

    corpora = {name: load_builtin(name)["train"]["text"][:3000] for name in ("peoples_daily_text", "reviews_text")}
    for candidate in (SHAKESPEARE, Path("/work/shared/data/tinyshakespeare.txt")):
        if candidate.exists():
            corpora["tiny_shakespeare"] = candidate.read_text(encoding="utf-8").splitlines()[:20000]
            break
    return corpora


@pytest.mark.parametrize("name", ["peoples_daily_text", "reviews_text", "tiny_shakespeare"])
def test_encode_corpus_id_for_id_on_the_builtin_corpora(name):
    corpora = _corpora()
    if name not in corpora:
        pytest.skip(f"{SHAKESPEARE} is not here")
    texts = corpora[name]
    # trained on a part, with a frequency floor: the rest of the characters take the byte fallback
    tok = train_char_tokenizer(texts[: len(texts) // 2], min_frequency=3)
    unseen = {c for t in texts for c in t} - tok.get_vocab().keys()
    assert unseen or name == "tiny_shakespeare"
    _check_encode_corpus(tok, texts)


INTERESTING = (
    "a", "e", "A", " ", "\t", "\n", "\r", "\x00", "\x7f", "\u0085", "<", ">", "s", "/", "</s>", "<s>", "<pad>",
    "\u0301", "\u0308", "\u0327", "\u0323", "\u0345", "\u00e9", "\u212b", "\u2126", "\ufb01", "\uff21",
    "\u1100", "\u1161", "\u11a8", "\uac00", "\ud55c", "\u0b47", "\u0b3e", "\u0dd9", "\u0dcf", "\u0dca",
    "\uf900", "\u4e00", "人", "民", "😀", "\U0002f800", "\U00020000", "\U0010fffd", "\ue000", "\u0378",
    "\U000e0001", "\u200d", "\ufeff", "\u0374", "\u0344", "\u1e9b",
)
any_or_interesting = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(INTERESTING))
corpus_texts = st.lists(st.lists(any_or_interesting, max_size=30).map("".join), max_size=8)
ENCODERS = {form: train_char_tokenizer(CORPUS + ["e\u0301\u0308\u1161\u11a8\u0b3e\u0dcf\u212b\ufb01\uf900<>/"],
                                       normalization=form) for form in ("NFC", "NFKC", "NFD", "NFKD", None)}


@settings(max_examples=150, deadline=None)
@given(corpus_texts, st.sampled_from(sorted(ENCODERS, key=str)))
def test_encode_corpus_id_for_id_on_any_text(texts, form):
    """Astral and control characters, combining marks, Hangul jamo, singletons and compatibility characters,
    written special tokens, under every normalisation: the bulk encoder gives the tokenizer's ids."""
    _check_encode_corpus(ENCODERS[form], texts)


COMPOSING = ["\u1100\u1161", "\uac00\u11a8", "\u1100\u1161\u11a8", "\u0b47\u0b3e", "\u0dd9\u0dcf\u0dca",
             "e\u0301", "e\u0327\u0301", "\u212b", "\ufb01", "\uf900", "\u0344", "\u1e9b\u0323", "a\u0345\u0301"]


@pytest.mark.parametrize("form", ["NFC", "NFKC", "NFD", "NFKD", None])
def test_encode_corpus_characters_that_normalisation_joins_or_splits(form):
    """Each text here changes under some form: a pair that composes (Hangul L+V, LV+T, Oriya and Sinhala two-part
    vowels), marks to reorder or compose, singletons and compatibility characters, in and out of the vocabulary."""
    tok = ENCODERS[form]
    _check_encode_corpus(tok, COMPOSING)
    _check_encode_corpus(tok, ["x" + text + "y" for text in COMPOSING])
    _check_encode_corpus(train_char_tokenizer(["x"], normalization=form), COMPOSING)


def test_encode_corpus_falls_back_to_the_tokenizer_when_it_cannot_read_it():
    with_added = train_char_tokenizer(CORPUS)
    with_added.add_tokens(["<plain>"])  # a non-special added token is matched even in literal text
    assert _CharTable.of(with_added.backend_tokenizer) is None
    _check_encode_corpus(with_added, ["a <plain> b", "", "人民"])
    from tokenizers import Tokenizer, models

    merged = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(
        vocab={"a": 0, "b": 1, "ab": 2, "<unk>": 3}, merges=[("a", "b")], unk_token="<unk>")), eos_token="<unk>")
    assert _CharTable.of(merged.backend_tokenizer) is None
    assert encode_corpus(merged, ["abab", "ba"], add_special_tokens=False).tolist() == [2, 2, 1, 0]


def test_encode_corpus_errors(tokenizer):
    with pytest.raises(ValueError, match=r"^texts\[1\] is not valid Unicode: lone surrogate '\\ud800' at character 2"):
        encode_corpus(tokenizer, ["ok", "ab\ud800"])
    with pytest.raises(TypeError, match=r"texts\[0\] must be str, got int"):
        encode_corpus(tokenizer, [1])
    with pytest.raises(ValueError, match="cannot hold the ids"):
        encode_corpus(tokenizer, ["a"], dtype=np.uint8)
    no_eos = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    with pytest.raises(ValueError, match="no eos_token"):
        encode_corpus(no_eos, ["a"], append_eos=True)
    assert encode_corpus(tokenizer, []).tolist() == [] and encode_corpus(tokenizer, iter(["ab"]), dtype=np.uint16).dtype == np.uint16


# ------------------------------------------------------------------------ the direct path of large batches
def _rust_and_direct(tok, texts, **kwargs):
    tok.direct_min_characters = 10**18
    try:
        rust = tok(texts, **kwargs)
    finally:
        tok.direct_min_characters = 0
    try:
        direct = tok(texts, **kwargs)
    finally:
        del tok.direct_min_characters  # back to the class default
    return rust, direct


CALLS = [
    {},
    {"return_offsets_mapping": True},
    {"return_offsets_mapping": True, "add_special_tokens": False, "split_special_tokens": True},
    {"return_special_tokens_mask": True, "return_length": True, "return_token_type_ids": True,
     "return_attention_mask": False},
]


def _check_same(rust, direct, texts) -> None:
    assert dict(direct) == dict(rust) and list(direct) == list(rust)  # same keys in the same order, same lists
    assert direct.is_fast and len(direct.encodings) == len(texts)
    for row in range(len(texts)):
        assert direct.word_ids(row) == rust.word_ids(row) and direct.tokens(row) == rust.tokens(row)
        assert direct.encodings[row].offsets == rust.encodings[row].offsets


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(any_or_interesting, max_size=30).map("".join), min_size=1, max_size=6),
       st.sampled_from(CALLS), st.sampled_from(sorted(ENCODERS, key=str)))
def test_direct_path_gives_what_the_rust_path_gives(texts, kwargs, form):
    tok = ENCODERS[form]
    rust, direct = _rust_and_direct(tok, texts, **kwargs)
    _check_same(rust, direct, texts)


@pytest.mark.parametrize("name", ["peoples_daily_text", "reviews_text", "tiny_shakespeare"])
def test_direct_path_on_the_builtin_corpora(name):
    corpora = _corpora()
    if name not in corpora:
        pytest.skip(f"{SHAKESPEARE} is not here")
    texts = corpora[name][:3000]
    tok = train_char_tokenizer(texts[:1500], min_frequency=3)
    assert sum(map(len, texts)) >= tok.direct_min_characters  # the class default takes the direct path here
    rust, direct = _rust_and_direct(tok, texts, return_offsets_mapping=True, return_special_tokens_mask=True)
    assert type(tok(texts)).__name__ == "_LaterEncodings"
    assert dict(direct) == dict(rust)
    assert [e.ids for e in direct.encodings] == rust.input_ids and direct.word_ids(7) == rust.word_ids(7)


def test_direct_path_leaves_to_rust_what_it_does_not_cover(tmp_path):
    tok = train_char_tokenizer(CORPUS)
    tok.direct_min_characters = 0
    plain = ["hello world", "人民"]
    assert type(tok(plain)).__name__ == "_LaterEncodings"
    for texts, kwargs in [
        (["a <s> b", "x"], {}),  # a special token written in a text: the Rust tokenizer reads it
        (["e\u0301", "x"], {}),  # the normaliser changes the text
        (plain, {"padding": True}),
        (plain, {"truncation": True, "max_length": 3}),
        ([["a", "b"], ["c"]], {"is_split_into_words": True}),
    ]:
        assert type(tok(texts, **kwargs)).__name__ == "BatchEncoding", (texts, kwargs)
    assert type(tok(["a <s> b", "x"], split_special_tokens=True)).__name__ == "_LaterEncodings"
    # a reloaded tokenizer (the generic class, no hf_charlm code) gives the same
    tok.save_pretrained(tmp_path)
    generic = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=False)
    texts = ["ab 你😀", "The quick brown fox", ""]
    assert dict(generic(texts, return_offsets_mapping=True)) == dict(tok(texts, return_offsets_mapping=True))
    # tensors, pickling: the encodings are made when needed
    import pickle

    direct = tok(["abc", "xyz"], return_tensors="np")
    assert direct["input_ids"].shape == (2, 4)
    again = pickle.loads(pickle.dumps(tok(texts, return_offsets_mapping=True)))
    assert again.word_ids(0) == [None, 0, 0, 0, 0, 0, 0, 0] and again.char_to_token(0, 4) == 7
