"""Masking collator invariants: special tokens and padding are never masked, the masked share, BERT's 80/10/10,
whole words and spans stay together, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_charlm import train_char_tokenizer
from hf_charlm.collators import CharLMMaskingCollator, longest_match_words

TEXTS = [
    "中华人民共和国成立了，人民日报发表社论。",
    "北京天安门广场举行升旗仪式，群众参加。",
    "经济发展和社会进步是人民的共同愿望。",
    "The quick brown fox jumps over the lazy dog.",
] * 8
LEXICON = {"中华人民共和国", "人民", "人民日报", "成立", "发表", "社论", "北京", "天安门", "广场", "举行", "升旗", "仪式",
           "群众", "参加", "经济", "发展", "社会", "进步", "共同", "愿望"}


@pytest.fixture(scope="module")
def tok():
    return train_char_tokenizer(TEXTS)


def _features(tok, texts=TEXTS):
    # pairs too, so that <sep> sits inside rows; rows of different lengths, so that there is padding
    enc = [tok(t, t[:5])["input_ids"] if i % 3 == 0 else tok(t)["input_ids"] + [tok.eos_token_id] for i, t in enumerate(texts)]
    return [{"input_ids": ids} for ids in enc]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, f in enumerate(list(flags) + [False]):
        if f and start is None:
            start = i
        if not f and start is not None:
            runs.append((start, i))
            start = None
    return runs


@pytest.mark.parametrize("scheme", ("char", "span", "word"))
def test_specials_and_padding_never_masked_and_share(tok, scheme):
    features = _features(tok)
    out = CharLMMaskingCollator(tok, scheme=scheme, lexicon=LEXICON, seed=0)(features)
    ids = tok.pad(features, padding=True, return_tensors="pt")["input_ids"]
    special = torch.isin(ids, torch.tensor(tok.all_special_ids))
    assert special.any() and (out["attention_mask"] == 0).any()
    assert (out["labels"][special] == -100).all()  # padding is <pad>, a special token too
    assert torch.equal(out["input_ids"][special], ids[special])
    chosen = out["labels"] != -100
    assert torch.equal(out["labels"][chosen], ids[chosen])  # labels are the original characters
    for row in range(len(features)):
        maskable = int((~special[row]).sum())
        budget = round(0.15 * maskable)
        n = int(chosen[row].sum())
        if scheme == "char":
            assert n == budget
        else:  # stops at the first unit that reaches the budget: over by less than one unit (<= 10 chars)
            assert budget <= n < budget + 10


def test_80_10_10_replacement(tok):
    features = _features(tok) * 20
    out = CharLMMaskingCollator(tok, seed=1)(features)
    ids = tok.pad(features, padding=True, return_tensors="pt")["input_ids"]
    chosen = out["labels"] != -100
    masked = (out["input_ids"][chosen] == tok.mask_token_id).float().mean().item()
    kept = (out["input_ids"][chosen] == ids[chosen]).float().mean().item()
    assert 0.76 < masked < 0.84 and 0.07 < kept < 0.14
    # random replacements are characters of the batch, never special tokens
    replaced = out["input_ids"][chosen & (out["input_ids"] != tok.mask_token_id)]
    assert not torch.isin(replaced, torch.tensor(tok.all_special_ids)).any()


def test_word_scheme_masks_whole_words(tok):
    collator = CharLMMaskingCollator(tok, scheme="word", lexicon=LEXICON, mlm_probability=0.3, seed=2)
    text = TEXTS[0]
    out = collator([{"input_ids": tok(text)["input_ids"]}])
    chosen = (out["labels"][0, 1:] != -100).numpy()  # drop <s>
    bounds = set(np.cumsum([0] + longest_match_words(text, frozenset(LEXICON), 7)).tolist())
    assert chosen.any()
    for start, end in _runs(chosen):
        assert start in bounds and end in bounds  # each masked run is made of whole words
    assert longest_match_words("中华人民共和国成立", frozenset(LEXICON), 7) == [7, 2]
    assert longest_match_words("人民日报社", frozenset(LEXICON), 4) == [4, 1]


def test_span_scheme_masks_longer_runs_than_char(tok):
    features = _features(tok) * 5

    def mean_run(scheme):
        out = CharLMMaskingCollator(tok, scheme=scheme, mean_span_length=3.0, seed=3)(features)
        runs = [e - s for row in (out["labels"] != -100).numpy() for s, e in _runs(row)]
        return sum(runs) / len(runs)

    assert mean_run("span") > 1.8 > mean_run("char")


def test_seeded_masking_is_reproducible_and_bad_values_are_named(tok):
    features = _features(tok)
    a = CharLMMaskingCollator(tok, scheme="span", seed=7)(features)
    b = CharLMMaskingCollator(tok, scheme="span", seed=7)(features)
    c = CharLMMaskingCollator(tok, scheme="span", seed=8)(features)
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["labels"], c["labels"])
    with pytest.raises(ValueError, match="scheme='whole'"):
        CharLMMaskingCollator(tok, scheme="whole")
    with pytest.raises(ValueError, match="mlm_probability=1.5"):
        CharLMMaskingCollator(tok, mlm_probability=1.5)
