"""Equivalence tests in the style of transformers' `tests/test_modeling_common.py`: the behaviours every built-in
model has (tuple outputs, config flags, the cache-name shim, `shift_labels`, padding-free batches, per-layer hidden
states, the stateful flag, file modes) and valid UTF-8 from `generate()`, for all three backbones."""

from __future__ import annotations

import os
import random
import warnings

import pytest
import torch
from transformers import DataCollatorWithFlattening
from transformers.utils import ModelOutput

from hf_charlm import (
    CharLMForCausalLM,
    CharLMForSequenceClassification,
    CharLMForTokenClassification,
    CharLMModel,
    train_char_tokenizer,
)
from hf_charlm.generation_charlm import CharLMUTF8LogitsProcessor
from tests.conftest import BACKBONES, CORPUS, tiny_config

ALL_CLASSES = (CharLMModel, CharLMForCausalLM, CharLMForTokenClassification, CharLMForSequenceClassification)


def _ids(B: int = 2, T: int = 9, seed: int = 0) -> torch.Tensor:
    return torch.randint(10, 128, (B, T), generator=torch.Generator().manual_seed(seed))


def _labels(cls: type, ids: torch.Tensor) -> dict:
    if cls is CharLMForCausalLM:
        return {"labels": ids.clone()}
    if cls is CharLMForTokenClassification:
        return {"labels": ids % 3}
    if cls is CharLMForSequenceClassification:
        return {"labels": ids[:, 0] % 3}
    return {}


# --- 1. return_dict=False, as an argument and in the config -------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_return_dict_false_gives_the_same_values_as_a_tuple(backbone, cls):
    torch.manual_seed(0)
    model = cls(tiny_config(backbone)).eval()
    ids = _ids()
    kwargs = dict(input_ids=ids, output_hidden_states=True, **_labels(cls, ids))
    as_dict = model(**kwargs)
    assert isinstance(as_dict, ModelOutput)
    as_tuple = model(**kwargs, return_dict=False)
    assert type(as_tuple) is tuple
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected)
    for got, want in zip(as_tuple, expected):
        if isinstance(want, torch.Tensor):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    model.config.return_dict = False
    from_config = model(**kwargs)
    assert type(from_config) is tuple and len(from_config) == len(expected)
    # the argument wins over the config, as for built-in models
    assert isinstance(model(**kwargs, return_dict=True), ModelOutput)


# --- 2. config.output_attentions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
def test_config_output_attentions_equals_the_argument(cls):
    config = tiny_config("transformer", attn_implementation="eager")
    torch.manual_seed(0)
    model = cls(config).eval()
    ids = _ids()
    by_argument = model(input_ids=ids, output_attentions=True).attentions
    assert model(input_ids=ids).attentions is None
    model.config.output_attentions = True
    by_config = model(input_ids=ids).attentions
    assert len(by_config) == config.num_hidden_layers
    assert by_config[0].shape == (2, config.num_attention_heads, 9, 9)
    for a, b in zip(by_config, by_argument):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # each row of attention weights is a distribution
    torch.testing.assert_close(by_config[0].sum(-1), torch.ones(2, config.num_attention_heads, 9))


# --- 3. the deprecated cache name ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
def test_past_key_values_is_renamed_to_cache_with_a_warning(backbone):
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(backbone)).eval()
    ids = _ids(T=8)
    full = model(input_ids=ids).logits
    first = model(input_ids=ids[:, :5], use_cache=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step = model(input_ids=ids[:, 5:], past_key_values=first.cache, use_cache=True)
    assert any("past_key_values" in str(w.message) and "cache" in str(w.message) for w in caught)
    torch.testing.assert_close(step.logits, full[:, 5:], rtol=1e-5, atol=1e-5)
    # the same through the backbone alone
    base = model.model
    first = base(input_ids=ids[:, :5], use_cache=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = base(input_ids=ids[:, 5:], past_key_values=first.cache, use_cache=True)
    torch.testing.assert_close(step.last_hidden_state, base(input_ids=ids).last_hidden_state[:, 5:], rtol=1e-5, atol=1e-5)


# --- 4. shift_labels -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shift_labels_give_the_loss_of_the_labels_they_shift(backbone):
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(backbone)).eval()
    ids = _ids()
    labels = ids.clone()
    labels[0, 6:] = -100
    shift = torch.nn.functional.pad(labels[:, 1:], (0, 1), value=-100)
    by_labels = model(input_ids=ids, labels=labels).loss
    by_shift = model(input_ids=ids, shift_labels=shift).loss
    both = model(input_ids=ids, labels=labels, shift_labels=shift).loss
    # shift_labels alone say nothing of position 0, which only the backward LM of a bidirectional RNN predicts
    unknown_first = labels.clone()
    unknown_first[:, 0] = -100
    torch.testing.assert_close(by_shift, model(input_ids=ids, labels=unknown_first).loss)
    torch.testing.assert_close(both, by_labels)
    # shift_labels are used as given, not shifted again
    other = shift.clone()
    other[1, :4] = (other[1, :4] + 1) % 128
    assert not torch.allclose(model(input_ids=ids, labels=labels, shift_labels=other).loss, by_labels)


# --- 5. padding-free batches (DataCollatorWithFlattening) ----------------------------------------------------------


def _flattened(lengths: tuple[int, ...], seed: int = 0) -> tuple[list[torch.Tensor], dict]:
    g = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(10, 128, (n,), generator=g) for n in lengths]
    batch = DataCollatorWithFlattening(return_tensors="pt")([{"input_ids": s.tolist()} for s in seqs])
    return seqs, batch


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("cls", (CharLMForCausalLM, CharLMForTokenClassification), ids=lambda c: c.__name__)
def test_packed_row_gives_each_sequence_what_it_gives_alone(backbone, cls):
    # each sequence fits max_position_embeddings=64, the packed row (90 tokens) does not
    config = tiny_config(backbone)
    torch.manual_seed(0)
    model = cls(config).eval()
    seqs, batch = _flattened((30, 40, 20))
    assert batch["input_ids"].shape == (1, 90) and "attention_mask" not in batch
    assert batch["position_ids"][0, 30].item() == 0
    packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
    start = 0
    for s in seqs:
        alone = model(input_ids=s[None]).logits[0]
        torch.testing.assert_close(packed[start : start + len(s)], alone, rtol=1e-5, atol=1e-5)
        start += len(s)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_packed_training_loss_equals_per_sequence_loss(backbone):
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(backbone, bidirectional=False)).eval()
    seqs, batch = _flattened((12, 20, 7), seed=1)
    packed = model(**batch).loss  # the collator's labels start each sequence with -100
    per_seq = [model(input_ids=s[None], labels=s[None]) for s in seqs]
    # mean over all predicted tokens: weight each sequence's mean by its number of targets (length - 1)
    weights = torch.tensor([len(s) - 1 for s in seqs], dtype=torch.float)
    expected = (torch.stack([o.loss for o in per_seq]) * weights).sum() / weights.sum()
    torch.testing.assert_close(packed, expected, rtol=1e-5, atol=1e-5)


def test_transformer_length_check_uses_positions():
    model = CharLMForCausalLM(tiny_config("transformer")).eval()
    ids = _ids(B=1, T=65)
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(input_ids=ids)
    positions = torch.cat([torch.arange(64), torch.arange(1)])[None]  # 65 tokens, 2 sequences
    assert model(input_ids=ids, position_ids=positions).logits.shape == (1, 65, 128)
    # given positions past the table (on the CPU found by the table lookup, not by a reduction per call): the same
    # message, with the largest position + 1
    too_far = torch.cat([torch.arange(65), torch.arange(0)])[None]
    with pytest.raises(ValueError, match=r"Input of 65 tokens .* max_position_embeddings=64"):
        model(input_ids=ids, position_ids=too_far)
    with pytest.raises(ValueError, match=r"Input of 71 tokens .* max_position_embeddings=64"):
        model(input_ids=ids[:, :1], position_ids=torch.tensor([[70]]))
    with pytest.raises(IndexError, match="-70"):  # a negative position past the table is not reported as too long
        model(input_ids=ids[:, :1], position_ids=torch.tensor([[-70]]))


# --- 6. per-layer hidden states ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("cls", (CharLMForCausalLM, CharLMForTokenClassification), ids=lambda c: c.__name__)
def test_hidden_states_has_one_entry_per_layer_plus_embeddings(backbone, cls):
    config = tiny_config(backbone, num_hidden_layers=3)
    torch.manual_seed(0)
    model = cls(config).eval()
    ids = _ids()
    plain = model(input_ids=ids)
    out = model(input_ids=ids, output_hidden_states=True)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    # reading the layers does not change the result
    torch.testing.assert_close(out.logits, plain.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.hidden_states[0], model.model.embed_tokens(ids))
    last = model.model(input_ids=ids, is_causal=cls is CharLMForCausalLM).last_hidden_state
    torch.testing.assert_close(out.hidden_states[-1], last, rtol=1e-5, atol=1e-6)
    width = config.classifier_hidden_size if cls is CharLMForTokenClassification else config.hidden_size
    assert all(h.shape == (2, 9, width) for h in out.hidden_states[1:])


@pytest.mark.parametrize("backbone", ("lstm", "gru"))
def test_recurrent_layer_outputs_are_those_of_each_layer(backbone):
    config = tiny_config(backbone, num_hidden_layers=2, bidirectional=False)
    torch.manual_seed(0)
    model = CharLMModel(config).eval()
    ids = _ids()
    hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    # layer 1 alone: a one-layer RNN with the stack's first-layer weights, on the embeddings
    rnn = model.forward_rnn.rnn
    one = type(rnn)(config.hidden_size, config.hidden_size, num_layers=1, batch_first=True)
    one.load_state_dict({k: v for k, v in rnn.state_dict().items() if k.endswith("_l0")})
    torch.testing.assert_close(hidden[1], one(hidden[0])[0], rtol=1e-5, atol=1e-6)


# --- 8. stateful flag where transformers reads it -----------------------------------------------------------------


def test_stateful_flag_is_visible_on_the_class(tmp_path):
    assert CharLMForCausalLM._is_stateful is False
    for backbone in BACKBONES:
        model = CharLMForCausalLM(tiny_config(backbone))
        assert isinstance(model, CharLMForCausalLM)
        assert type(model)._is_stateful is (backbone != "transformer")
    model = CharLMForCausalLM(tiny_config("gru"))
    model.save_pretrained(tmp_path)
    loaded = CharLMForCausalLM.from_pretrained(tmp_path)
    assert type(loaded)._is_stateful is True
    # saved as the public class: config.json names it, whatever the backbone
    import json

    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == ["CharLMForCausalLM"]
    assert saved["auto_map"]["AutoModelForCausalLM"] == "modeling_charlm.CharLMForCausalLM"
    # generate()'s guard for stateful models now applies
    with pytest.raises(ValueError, match="stateful"):
        loaded.generate(_ids(B=1), assistant_model=loaded, max_new_tokens=3)


# --- 16. file modes ------------------------------------------------------------------------------------------------


def test_weights_get_the_same_mode_as_the_other_files(tmp_path):
    CharLMForCausalLM(tiny_config("transformer")).save_pretrained(tmp_path)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o777 for name in os.listdir(tmp_path)}
    umask = os.umask(0)
    os.umask(umask)
    assert modes["model.safetensors"] == modes["config.json"] == 0o666 & ~umask


# --- 18. valid UTF-8 from generate() -------------------------------------------------------------------------------


def _is_valid_utf8(byte_values: list[int]) -> bool:
    try:
        bytes(byte_values).decode("utf-8", errors="strict")
        return True
    except UnicodeDecodeError:
        return False


def test_utf8_processor_only_allows_valid_byte_sequences():
    start, vocab = 7, 7 + 256 + 20
    rng = random.Random(0)
    for trial in range(300):
        max_length = rng.randint(2, 12)
        proc = CharLMUTF8LogitsProcessor(start, max_length=max_length)
        ids = [2]  # <s>
        while len(ids) < max_length:
            scores = proc(torch.tensor([ids]), torch.zeros(1, vocab))[0]
            allowed = torch.nonzero(torch.isfinite(scores)).flatten().tolist()
            # mostly bytes, so that multi-byte characters are started often
            bytes_allowed = [a for a in allowed if start <= a < start + 256]
            ids.append(rng.choice(bytes_allowed if bytes_allowed and rng.random() < 0.9 else allowed))
        byte_values = []
        for t in ids[1:]:
            if start <= t < start + 256:
                byte_values.append(t - start)
            else:  # a character token: the bytes before it must have been whole characters
                assert _is_valid_utf8(byte_values), (trial, ids)
                byte_values = []
        assert _is_valid_utf8(byte_values), (trial, ids)


def test_utf8_processor_blocks_surrogates_and_overlongs():
    proc = CharLMUTF8LogitsProcessor(7)
    after_ed = proc(torch.tensor([[2, 7 + 0xED]]), torch.zeros(1, 300))[0]
    allowed = {t - 7 for t in torch.nonzero(torch.isfinite(after_ed)).flatten().tolist()}
    assert allowed == set(range(0x80, 0xA0))  # ED A0..BF would encode a surrogate
    after_e0 = proc(torch.tensor([[2, 7 + 0xE0]]), torch.zeros(1, 300))[0]
    assert {t - 7 for t in torch.nonzero(torch.isfinite(after_e0)).flatten().tolist()} == set(range(0xA0, 0xC0))
    boundary = proc(torch.tensor([[2, 50]]), torch.zeros(1, 300))[0]
    blocked = {t - 7 for t in torch.nonzero(~torch.isfinite(boundary)).flatten().tolist()}
    assert blocked == set(range(0x80, 0xC2)) | set(range(0xF5, 0x100))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_sampled_text_always_decodes_cleanly(backbone):
    tokenizer = train_char_tokenizer(CORPUS)
    V = len(tokenizer)  # byte tokens are most of this vocabulary: an untrained model samples them constantly
    prompt = tokenizer(["北京", "hello"], return_tensors="pt", padding=True, padding_side="left")

    def samples(byte_token_start):
        torch.manual_seed(0)
        model = CharLMForCausalLM(tiny_config(backbone, vocab_size=V, byte_token_start=byte_token_start)).eval()
        out = model.generate(**prompt, do_sample=True, top_k=0, max_new_tokens=25, num_return_sequences=4, pad_token_id=0)
        return tokenizer.batch_decode(out, skip_special_tokens=True)

    assert not any("\ufffd" in text for text in samples(7))
    # the check can fail: without the processor the same sampling yields broken bytes
    assert any("\ufffd" in text for text in samples(None))
