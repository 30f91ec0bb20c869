"""The masked char LM and the CRF output layer: brute-force checks of the CRF, the fill-mask pipeline, loading
the heads from a masked checkpoint."""

from __future__ import annotations

import itertools
import logging

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForTokenClassification, pipeline

from hf_charlm import CharLMForCausalLM, CharLMForMaskedLM, CharLMForTokenClassification, train_char_tokenizer
from hf_charlm.modeling_charlm import CharLMCRF, allowed_transitions
from tests.conftest import BACKBONES, CORPUS, tiny_config

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BMES = ["B", "M", "E", "S"]


def _crf(labels: list[str], seed: int = 0) -> CharLMCRF:
    config = tiny_config("transformer", num_labels=len(labels), id2label=dict(enumerate(labels)), use_crf=True)
    crf = CharLMCRF(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (crf.transitions, crf.start_transitions, crf.end_transitions):
            p.copy_(torch.randn(p.shape, generator=g))
    return crf


def _path_score(crf: CharLMCRF, em: torch.Tensor, path: tuple[int, ...]) -> float:
    trans, start, end = crf._scores()
    score = start[path[0]] + end[path[-1]] + sum(em[t, y] for t, y in enumerate(path))
    return float((score + sum(trans[a, b] for a, b in zip(path, path[1:]))).detach())


# --- tag-scheme constraints ----------------------------------------------------------------------------------------


def test_allowed_transitions_bio_and_bmes():
    allowed, start, end = allowed_transitions(BIO)
    idx = {name: i for i, name in enumerate(BIO)}
    assert not allowed[idx["O"], idx["I-PER"]] and not allowed[idx["B-LOC"], idx["I-PER"]]
    assert allowed[idx["B-PER"], idx["I-PER"]] and allowed[idx["I-PER"], idx["I-PER"]] and allowed[idx["I-PER"], idx["B-LOC"]]
    assert start.tolist() == [True, True, False, True, False] and end.all()
    allowed, start, end = allowed_transitions(BMES)
    assert allowed.int().tolist() == [[0, 1, 1, 0], [0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1]]
    assert start.tolist() == [True, False, False, True] and end.tolist() == [False, False, True, True]
    # names of no scheme: nothing forbidden
    assert all(t.all() for t in allowed_transitions(["negative", "positive"]))


# --- CRF against brute force ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", (BIO, BMES), ids=("bio", "bmes"))
def test_viterbi_and_partition_equal_brute_force(labels):
    crf = _crf(labels)
    L = len(labels)
    g = torch.Generator().manual_seed(1)
    for T in (1, 2, 3, 4):
        em = torch.randn(1, T, L, generator=g)
        mask = torch.ones(1, T, dtype=torch.bool)
        paths = list(itertools.product(range(L), repeat=T))
        scores = torch.tensor([_path_score(crf, em[0], p) for p in paths])
        feasible = [p for p in paths if _path_score(crf, em[0], p) > -5e3]
        best = max(feasible, key=lambda p: _path_score(crf, em[0], p))
        assert crf.decode(em, mask)[0] == list(best)
        # the decoded path never takes a forbidden step
        assert all(crf.allowed[a, b] for a, b in zip(best, best[1:]))
        # log-likelihood of every feasible path = its score - log Z, with Z the brute-force partition
        log_z = torch.logsumexp(scores, 0)
        for path in feasible[:20]:
            ll = crf.log_likelihood(em, torch.tensor([path]), mask)[0]
            torch.testing.assert_close(ll, torch.tensor(_path_score(crf, em[0], path)) - log_z, rtol=1e-4, atol=1e-4)
        # an unobserved position (-100) is summed over
        if T >= 2:
            partial = torch.tensor([[best[0]] + [-100] * (T - 1)])
            consistent = [p for p in paths if p[0] == best[0]]
            want = torch.logsumexp(torch.tensor([_path_score(crf, em[0], p) for p in consistent]), 0) - log_z
            torch.testing.assert_close(crf.log_likelihood(em, partial, mask)[0], want, rtol=1e-4, atol=1e-4)


def test_crf_padding_left_or_right_gives_the_rows_alone():
    crf = _crf(BMES, seed=3)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 4, generator=g), torch.randn(3, 4, generator=g)
    right = torch.stack([a, torch.cat([b, torch.zeros(2, 4)])])
    left = torch.stack([a, torch.cat([torch.zeros(2, 4), b])])
    mask_r = torch.tensor([[1] * 5, [1, 1, 1, 0, 0]]).bool()
    mask_l = torch.tensor([[1] * 5, [0, 0, 1, 1, 1]]).bool()
    alone = crf.decode(b[None], torch.ones(1, 3, dtype=torch.bool))[0]
    assert crf.decode(right, mask_r)[1] == alone == crf.decode(left, mask_l)[1]
    lab = torch.tensor([[0, 2, 3, 0, 2], [3, 3, 3, -100, -100]])
    lab_l = torch.tensor([[0, 2, 3, 0, 2], [-100, -100, 3, 3, 3]])
    torch.testing.assert_close(crf.log_likelihood(right, lab, mask_r), crf.log_likelihood(left, lab_l, mask_l))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_crf_head_logits_argmax_is_the_viterbi_path_and_trains(backbone, tokenizer, tmp_path):
    config = tiny_config(backbone, vocab_size=len(tokenizer), num_labels=4, id2label=dict(enumerate(BMES)),
                         label2id={n: i for i, n in enumerate(BMES)}, use_crf=True)
    torch.manual_seed(0)
    model = CharLMForTokenClassification(config)
    enc = tokenizer(["人民日报新年", "北京天安门广场"], return_tensors="pt", padding=True)
    labels = torch.full(enc["input_ids"].shape, -100)
    labels[0, 1:7] = torch.tensor([0, 1, 1, 2, 3, 3])  # B M M E S S
    labels[1, 1:8] = torch.tensor([0, 2, 0, 1, 2, 0, 2])  # B E B M E B E
    model.eval()
    out = model(**enc, labels=labels)
    assert torch.isfinite(out.loss) and out.loss > 0
    emissions = model.classifier(model.model(**enc, is_causal=False).last_hidden_state)
    paths = model.crf.decode(emissions, enc["attention_mask"].bool())
    assert [row[m].tolist() for row, m in zip(out.logits.argmax(-1), enc["attention_mask"].bool())] == paths
    # a training step reads the loss only: the same loss, and the emissions as logits (no max-marginal passes)
    model.train()
    train_out = model(**enc, labels=labels)
    torch.testing.assert_close(train_out.loss, out.loss)
    torch.testing.assert_close(train_out.logits, emissions)
    # a few steps of training fit the two sentences
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for _ in range(30):
        opt.zero_grad()
        model(**enc, labels=labels).loss.backward()
        opt.step()
    model.eval()
    pred = model(**enc).logits.argmax(-1)
    assert torch.equal(pred[labels != -100], labels[labels != -100])
    # a forbidden gold transition is named
    bad = labels.clone()
    bad[0, 2] = 3  # B then S
    with pytest.raises(ValueError, match="B -> S"):
        model(**enc, labels=bad)
    # save / load keeps the CRF, and the pipeline returns the Viterbi labels
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded(**enc).logits, model(**enc).logits)
    ner = pipeline("token-classification", model=loaded, tokenizer=tokenizer)
    got = [r["entity"] for r in ner("人民日报新年")]
    assert got == [BMES[i] for i in pred[0, 1:7].tolist()]


def test_crf_head_loads_from_a_causal_checkpoint_with_only_new_head_weights(tmp_path, caplog):
    CharLMForCausalLM(tiny_config("transformer")).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING):
        model, info = CharLMForTokenClassification.from_pretrained(
            tmp_path, num_labels=5, id2label=dict(enumerate(BIO)), use_crf=True, output_loading_info=True
        )
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight", "crf.end_transitions",
                                            "crf.start_transitions", "crf.transitions"]
    assert not info["unexpected_keys"]
    assert model.crf.allowed.int().sum() == allowed_transitions(BIO)[0].int().sum()


# --- masked LM -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
def test_masked_lm_never_reads_the_position_it_predicts(backbone):
    torch.manual_seed(0)
    model = CharLMForMaskedLM(tiny_config(backbone)).eval()
    ids = torch.randint(10, 128, (1, 8), generator=torch.Generator().manual_seed(0))
    base = model(input_ids=ids).logits
    changed = ids.clone()
    changed[0, 4] = 99
    after = model(input_ids=changed).logits
    if backbone == "transformer":
        # a transformer reads the whole input, position 4 included (that is what <mask> hides)
        assert not torch.allclose(after[0, 4], base[0, 4])
    else:
        # the recurrent prediction for t comes from t-1 and t+1 only
        torch.testing.assert_close(after[0, 4], base[0, 4])
    # and every other position sees the change: the context is bidirectional
    assert not torch.allclose(after[0, 3], base[0, 3]) and not torch.allclose(after[0, 5], base[0, 5])


def test_masked_lm_refuses_a_unidirectional_rnn():
    with pytest.raises(ValueError, match="bidirectional=True"):
        CharLMForMaskedLM(tiny_config("lstm", bidirectional=False))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_masked_lm_loss_and_checkpoint_interchange(backbone, tmp_path):
    torch.manual_seed(0)
    model = CharLMForMaskedLM(tiny_config(backbone))
    ids = torch.randint(10, 128, (2, 9), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    masked = ids.clone()
    masked[:, 3] = 6
    out = model(input_ids=masked, labels=labels)
    want = torch.nn.functional.cross_entropy(out.logits[:, 3], ids[:, 3])
    torch.testing.assert_close(out.loss, want)
    # same parameters as the causal LM: each loads the other with nothing missing
    model.save_pretrained(tmp_path / "mlm")
    causal, info = CharLMForCausalLM.from_pretrained(tmp_path / "mlm", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    causal.save_pretrained(tmp_path / "clm")
    back, info = AutoModelForMaskedLM.from_pretrained(tmp_path / "clm", output_loading_info=True)
    assert not info["missing_keys"] and isinstance(back, CharLMForMaskedLM)
    torch.testing.assert_close(back(input_ids=masked).logits, model.eval()(input_ids=masked).logits)
    head, info = AutoModelForTokenClassification.from_pretrained(tmp_path / "mlm", num_labels=3, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]


def test_fill_mask_pipeline_learns_a_pattern(tmp_path):
    tokenizer = train_char_tokenizer(CORPUS)
    config = tiny_config("transformer", vocab_size=len(tokenizer))
    torch.manual_seed(0)
    model = CharLMForMaskedLM(config)
    text = "北京天安门广场"
    enc = tokenizer([text], return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    for step in range(40):  # learn to restore 门 behind the mask
        ids = enc["input_ids"].clone()
        ids[0, 5] = tokenizer.mask_token_id
        labels = torch.full_like(ids, -100)
        labels[0, 5] = enc["input_ids"][0, 5]
        opt.zero_grad()
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    fill = pipeline("fill-mask", model=str(tmp_path), tokenizer=str(tmp_path), tokenizer_kwargs={"split_special_tokens": False})
    best = fill("北京天安" + tokenizer.mask_token + "广场", top_k=3)
    assert best[0]["token_str"] == "门" and best[0]["score"] > 0.5
    assert best[0]["sequence"].replace(" ", "") == text
