"""hf_charlm.pinyin: the syllable table, the constraint logits processor on hand-made scores, and the input-method
decoder against brute force over every allowed sentence, in windows, with a tagger, an n-gram model and a backward
model fused in; hf_charlm.ngram: Kneser-Ney probabilities against hand computation."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from hf_charlm import CharLMForCausalLM, CharLMForTokenClassification
from hf_charlm.ngram import KneserNeyLM
from hf_charlm.pinyin import PinyinDecoder, SyllableConstraintLogitsProcessor, syllable_table
from hf_charlm.tokenization_charlm import train_char_tokenizer

from tests.conftest import tiny_config

SOURCES = ["wo shi xue sheng", "gu shi hen hao", "ta shi lao shi", "wo men ai bei jing ！"]
TARGETS = ["我是学生", "故事很好", "他是老师", "我们爱北京！"]


@pytest.fixture
def lm():
    tokenizer = train_char_tokenizer(TARGETS)
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=len(tokenizer), max_position_embeddings=32,
                                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                          eos_token_id=tokenizer.eos_token_id)).eval()
    return model, tokenizer


def sentence_logprob(model, tokenizer, text: str) -> float:
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer.convert_tokens_to_ids(list(text)) + [tokenizer.eos_token_id]])
    with torch.no_grad():
        logp = model(ids).logits[0, :-1].log_softmax(-1)
    return float(logp.gather(1, ids[0, 1:, None]).sum())


def test_syllable_table_counts_each_reading():
    table = syllable_table(SOURCES, TARGETS)
    assert table["shi"] == {"是": 2, "事": 1, "师": 1} and table["！"] == {"！": 1} and table["wo"] == {"我": 2}
    with pytest.raises(ValueError, match="pair 1: 1 pinyin tokens for 2 characters"):
        syllable_table(["wo", "wo"], ["我", "我们"])


def test_constraint_processor_keeps_the_allowed_ids_adds_the_prior_and_ends_with_eos():
    scores = torch.arange(12, dtype=torch.float).reshape(2, 6) * -0.5  # two batch items, one beam each
    allowed = [[torch.tensor([1, 3])], [torch.tensor([2])]]
    prior = [[torch.tensor([-1.0, -2.0])], [torch.tensor([-4.0])]]
    processor = SyllableConstraintLogitsProcessor(allowed, prompt_length=1, eos_token_id=5, prior=prior, weight=0.5)
    out = processor(torch.zeros(2, 1, dtype=torch.long), scores)  # step 0
    expected = torch.full((2, 6), -math.inf)
    expected[0, 1], expected[0, 3] = -0.5 - 0.5, -1.5 - 1.0
    expected[1, 2] = -4.0 - 2.0
    assert torch.equal(out, expected)
    out = processor(torch.zeros(2, 2, dtype=torch.long), scores)  # past the last token: </s> only, unchanged
    assert torch.isinf(out).sum() == 10 and out[0, 5] == scores[0, 5] and out[1, 5] == scores[1, 5]
    # with beams, rows 0-1 are item 0 and rows 2-3 item 1
    beams = SyllableConstraintLogitsProcessor(allowed, 1, 5, num_beams=2)
    out = beams(torch.zeros(4, 1, dtype=torch.long), scores.repeat_interleave(2, 0))
    assert [torch.isfinite(r).nonzero().flatten().tolist() for r in out] == [[1, 3], [1, 3], [2], [2]]


def test_decoder_finds_the_sentence_the_language_model_prefers_among_all_allowed(lm):
    model, tokenizer = lm
    table = syllable_table(SOURCES, TARGETS)
    source = "ta shi wo"  # 他 x {是, 事, 师} x 我: every allowed sentence, scored by the model
    candidates = ["".join(c) for c in itertools.product(*[table[t] for t in source.split(" ")])]
    best = max(candidates, key=lambda text: sentence_logprob(model, tokenizer, text))
    decoder = PinyinDecoder(model, tokenizer, table, num_beams=len(candidates))
    assert decoder([source]) == [best]
    # batched with sources of other lengths, the same answer; tokens the table never saw stay or become "?"
    out = decoder(["wo men ai bei jing ！", source, "zzz ！ wo"])
    assert out[1] == best and len(out[0]) == 6 and out[2][:2] == "?！"
    assert all(c in table[t] for text, s in zip(out[:2], ["wo men ai bei jing ！", source])
               for c, t in zip(text, s.split(" ")))


def test_decoder_reads_a_source_longer_than_the_positions_in_windows(lm):
    model, tokenizer = lm
    table = syllable_table(SOURCES, TARGETS)
    decoder = PinyinDecoder(model, tokenizer, table, num_beams=2, context=4)
    assert decoder.window == 32 - 2 - 4 and PinyinDecoder(model, tokenizer, table).context == 8
    source = " ".join(["wo shi xue sheng ！ ta shi lao shi"] * 8)
    tokens = source.split(" ")
    out = decoder([source])[0]
    assert len(out) == len(tokens) == 72 and out.count("！") == 8
    # the first window (window + context tokens) is decoded as that prefix would be alone
    first = decoder.window + decoder.context
    assert out[:first] == decoder([" ".join(tokens[:first])])[0]
    with pytest.raises(ValueError, match="source 1 has an empty token"):
        decoder(["wo", "wo  shi"])
    with pytest.raises(TypeError, match="takes a list of sources"):
        decoder("wo shi")
    with pytest.raises(ValueError, match="context=30 leaves no room"):
        PinyinDecoder(model, tokenizer, table, context=30)


def test_a_heavily_weighted_tagger_decides_and_tune_picks_the_best_weight(lm):
    model, tokenizer = lm
    table = syllable_table(SOURCES, TARGETS)
    pinyin_tokenizer = train_char_tokenizer(SOURCES)
    labels = sorted(set("".join(TARGETS)))
    torch.manual_seed(1)
    tagger = CharLMForTokenClassification(tiny_config(
        vocab_size=len(pinyin_tokenizer), num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={c: i for i, c in enumerate(labels)}, pad_token_id=pinyin_tokenizer.pad_token_id)).eval()
    source = "ta shi wo"
    decoder = PinyinDecoder(model, tokenizer, table, tagger, pinyin_tokenizer, tagger_weight=1000.0, num_beams=3)
    scores = decoder.tagger_scores([source])[0]
    assert len(scores) == 3 and all(math.isclose(float(s.exp()[torch.isfinite(s)].sum()), 1.0, rel_tol=1e-5) for s in scores)
    # the tagger's own choice among each token's allowed characters
    expected = "".join(max(table[t], key=lambda c: float(s[tokenizer.convert_tokens_to_ids(c)]))
                       for t, s in zip(source.split(" "), scores))
    assert decoder([source]) == [expected]
    decoder.tagger_weight = 0.0
    assert decoder([source]) == PinyinDecoder(model, tokenizer, table, num_beams=3)([source])
    result = decoder.tune(["ta shi wo"], ["他事我"], [{"tagger_weight": 0.0}, {"tagger_weight": 1000.0}])
    right = {w: sum(a == b for a, b in zip(p, "他事我")) for w, p in
             ((0.0, PinyinDecoder(model, tokenizer, table, num_beams=3)([source])[0]), (1000.0, expected))}
    assert result["records"] == [{"tagger_weight": w, "char_accuracy": right[w] / 3} for w in (0.0, 1000.0)]
    assert decoder.tagger_weight == result["best"]["tagger_weight"] == max((0.0, 1000.0), key=lambda w: (right[w], -w))
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['num_beams'\]"):
        decoder.tune(["ta shi wo"], ["他事我"], [{"num_beams": 2}])


def ngram_logprob(ngram, text: str) -> float:
    return sum(math.log(ngram.prob(list(text[:i]), c)) for i, c in enumerate(list(text) + ["</s>"]))


@pytest.mark.parametrize("weight", [1.0, 5.0])
def test_ngram_fusion_and_backward_rescoring_pick_the_best_fused_sentence(lm, weight):
    model, tokenizer = lm
    table = syllable_table(SOURCES, TARGETS)
    ngram = KneserNeyLM(TARGETS, order=3)
    source = "ta shi wo"
    candidates = ["".join(c) for c in itertools.product(*[table[t] for t in source.split(" ")])]

    def fused(text: str) -> float:
        return sentence_logprob(model, tokenizer, text) + weight * ngram_logprob(ngram, text)

    decoder = PinyinDecoder(model, tokenizer, table, ngram=ngram, ngram_weight=weight, num_beams=len(candidates))
    assert decoder([source]) == [max(candidates, key=fused)]
    # a backward model (another, reading right to left) rescores the n-best: here every allowed sentence
    torch.manual_seed(7)
    backward = CharLMForCausalLM(model.config).eval()
    decoder = PinyinDecoder(model, tokenizer, table, ngram=ngram, ngram_weight=weight, backward=backward,
                            backward_tokenizer=tokenizer, backward_weight=weight, num_beams=len(candidates))
    expected = max(candidates, key=lambda t: fused(t) + weight * sentence_logprob(backward, tokenizer, t[::-1]))
    assert decoder([source]) == [expected]
    hypotheses = [tokenizer.convert_tokens_to_ids(list(t)) for t in candidates]
    assert decoder.backward_logprob(hypotheses).tolist() == pytest.approx(
        [sentence_logprob(backward, tokenizer, t[::-1]) for t in candidates], abs=1e-4)
    with pytest.raises(ValueError, match="pass both backward and backward_tokenizer"):
        PinyinDecoder(model, tokenizer, table, backward=backward)


# ------------------------------------------------------------------------------------------------------------
# the Kneser-Ney n-gram model


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_is_a_distribution_for_every_context(order):
    lm = KneserNeyLM(["我们是学生", "他是老师", "我是", "学生们"], order=order)
    assert "</s>" in lm.vocabulary and "<s>" not in lm.vocabulary
    for context in [(), ("我",), ("我", "们"), ("是", "学"), ("没", "见"), ("学", "生", "们")]:
        total = sum(lm.prob(context, char) for char in lm.vocabulary)
        assert total == pytest.approx(1.0, abs=1e-12), context


def test_kneser_ney_matches_the_hand_computed_bigram():
    # bigrams: (<s>,a) x3, (a,b) x2, (b,</s>) x2, (a,c), (c,</s>); continuation counts: a 1, b 1, c 1, </s> 2 (of 5)
    lm = KneserNeyLM(["ab", "ab", "ac"], order=2, discount=0.5)
    unigram_b = (1 - 0.5) / 5 + 0.5 * 4 / 5 * (1 / 4)  # 4 unigram types, uniform over 4 characters
    assert unigram_b == pytest.approx(0.2)
    assert lm.prob((), "b") == pytest.approx(0.5 * 1 / 3 * unigram_b)  # the empty context is <s>: (<s>,b) unseen
    assert lm.prob(("a",), "b") == pytest.approx((2 - 0.5) / 3 + 0.5 * 2 / 3 * unigram_b)
    assert lm.prob(("a",), "a") == pytest.approx(0.5 * 2 / 3 * ((1 - 0.5) / 5 + 0.5 * 4 / 5 / 4))
    with pytest.raises(ValueError, match="order=0 must be >= 1"):
        KneserNeyLM(["ab"], order=0)
