"""Backbone x head matrix on tiny configs, in the spirit of transformers' ModelTester classes."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from hf_charlm import (
    CharLMConfig,
    CharLMForCausalLM,
    CharLMForSequenceClassification,
    CharLMForTokenClassification,
    CharLMModel,
    CharLMRecurrentCache,
)
from tests.conftest import BACKBONES, tiny_config

HEADS = (CharLMForCausalLM, CharLMForTokenClassification, CharLMForSequenceClassification)
B, T, V = 3, 10, 128


def make_inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    return ids, mask


def make_labels(head: type, ids: torch.Tensor, num_labels: int = 3) -> torch.Tensor:
    if head is CharLMForCausalLM:
        return ids.clone()
    if head is CharLMForTokenClassification:
        return torch.randint(0, num_labels, ids.shape)
    return torch.randint(0, num_labels, (ids.shape[0],))


def expected_logits_shape(head: type, config: CharLMConfig) -> tuple[int, ...]:
    if head is CharLMForCausalLM:
        return (B, T, config.vocab_size)
    if head is CharLMForTokenClassification:
        return (B, T, config.num_labels)
    return (B, config.num_labels)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("head", HEADS, ids=lambda h: h.__name__)
class TestMatrix:
    def test_shapes_and_loss(self, backbone, head):
        config = tiny_config(backbone)
        model = head(config).eval()
        ids, mask = make_inputs()
        labels = make_labels(head, ids)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        assert out.logits.shape == expected_logits_shape(head, config)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        # an untrained model is close to uniform: the loss is near log(num classes)
        n_classes = config.vocab_size if head is CharLMForCausalLM else config.num_labels
        assert abs(out.loss.item() - torch.log(torch.tensor(float(n_classes))).item()) < 1.0

    def test_ignore_index(self, backbone, head):
        if head is CharLMForSequenceClassification:
            pytest.skip("one label per text: nothing to ignore")
        model = head(tiny_config(backbone)).eval()
        ids, mask = make_inputs()
        labels = make_labels(head, ids)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        # changing labels that are -100 must not change the loss; changing a counted label must
        ignored = labels.clone()
        ignored[:, 5:] = -100
        loss_a = model(input_ids=ids, attention_mask=mask, labels=ignored).loss
        ignored_b = ignored.clone()
        ignored_b[:, 2] = (ignored_b[:, 2] + 1) % 3
        loss_b = model(input_ids=ids, attention_mask=mask, labels=ignored_b).loss
        assert not torch.allclose(loss_a, out.loss)
        assert not torch.allclose(loss_a, loss_b)
        # manual computation over the counted positions only
        logits = model(input_ids=ids, attention_mask=mask).logits
        if head is CharLMForCausalLM and not model.config.is_recurrent:
            lg, lb = logits[:, :-1], ignored[:, 1:]
        elif head is CharLMForCausalLM:
            return  # the bidirectional recurrent LM adds a backward term, checked in its own test
        else:
            lg, lb = logits, ignored
        keep = lb != -100
        manual = torch.nn.functional.cross_entropy(lg[keep], lb[keep])
        torch.testing.assert_close(loss_a, manual)

    def test_save_load_identical(self, backbone, head, tmp_path):
        model = head(tiny_config(backbone)).eval()
        ids, mask = make_inputs()
        model.save_pretrained(tmp_path)
        assert (tmp_path / "model.safetensors").exists()
        assert not list(tmp_path.glob("*.bin"))
        loaded = head.from_pretrained(tmp_path).eval()
        torch.testing.assert_close(loaded(ids, attention_mask=mask).logits, model(ids, attention_mask=mask).logits, rtol=0, atol=0)

    def test_gradient_checkpointing_same_gradients(self, backbone, head):
        config = tiny_config(backbone)
        model = head(config)
        model.train()
        ids, mask = make_inputs()
        labels = make_labels(head, ids)

        def grads():
            model.zero_grad()
            model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
            return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

        plain = grads()
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        assert model.is_activation_checkpointing
        ckpt = grads()
        assert plain.keys() == ckpt.keys() and len(plain) > 0
        for name in plain:
            torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-6, msg=name)

    def test_padding_does_not_change_real_positions(self, backbone, head):
        """Right and left padding: each row's outputs at real positions equal the row run alone."""
        model = head(tiny_config(backbone)).eval()
        g = torch.Generator().manual_seed(1)
        rows = [torch.randint(10, V, (n,), generator=g) for n in (7, 4, 9)]
        for side in ("right", "left"):
            width = max(len(r) for r in rows)
            ids = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, r in enumerate(rows):
                sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
                ids[i, sl], mask[i, sl] = r, 1
            batched = model(input_ids=ids, attention_mask=mask).logits
            for i, r in enumerate(rows):
                alone = model(input_ids=r[None]).logits[0]
                sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
                got = batched[i] if head is CharLMForSequenceClassification else batched[i, sl]
                torch.testing.assert_close(got, alone, rtol=1e-4, atol=1e-5, msg=f"{side} padding, row {i}")


@pytest.mark.parametrize("head", HEADS, ids=lambda h: h.__name__)
def test_eager_equals_sdpa(head, tmp_path):
    config = tiny_config("transformer")
    model = head(config).eval()
    model.save_pretrained(tmp_path)
    eager = head.from_pretrained(tmp_path, attn_implementation="eager").eval()
    sdpa = head.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
    ids, mask = make_inputs()
    mask[0, :3] = 0  # left padding in one row
    mask[1, -2:] = 0  # right padding in another
    # padding positions carry no meaning; every real position must agree
    real = mask.bool() if head is not CharLMForSequenceClassification else slice(None)
    torch.testing.assert_close(eager(ids, attention_mask=mask).logits[real], sdpa(ids, attention_mask=mask).logits[real], rtol=1e-4, atol=1e-5)
    # switching at runtime too
    model.set_attn_implementation("eager")
    torch.testing.assert_close(model(ids, attention_mask=mask).logits[real], sdpa(ids, attention_mask=mask).logits[real], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_generate_cache_matches_no_cache_and_left_padding(backbone):
    model = CharLMForCausalLM(tiny_config(backbone, max_position_embeddings=128)).eval()
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(10, V, (n,), generator=g) for n in (5, 8, 3)]
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    alone = [model.generate(p[None], **kw)[0, len(p):] for p in prompts]
    for p, new in zip(prompts, alone):
        no_cache = model.generate(p[None], use_cache=False, **kw)[0, len(p):]
        assert torch.equal(new, no_cache)
    width = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):], mask[i, width - len(p):] = p, 1
    batched = model.generate(ids, attention_mask=mask, **kw)[:, width:]
    for i in range(len(prompts)):
        assert torch.equal(batched[i], alone[i]), f"row {i}"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_beam_search_and_sampling(backbone):
    model = CharLMForCausalLM(tiny_config(backbone, max_position_embeddings=128)).eval()
    ids = torch.randint(10, V, (2, 6))
    beams = model.generate(ids, num_beams=3, num_return_sequences=2, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert beams.shape == (4, 14)
    assert torch.equal(beams[0::2, :6], ids) and torch.equal(beams[1::2, :6], ids)
    # beam search with cache equals beam search without (reorder_cache works)
    beams_nc = model.generate(ids, num_beams=3, num_return_sequences=2, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None, use_cache=False)
    assert torch.equal(beams, beams_nc)
    torch.manual_seed(5)
    s1 = model.generate(ids, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, pad_token_id=0, eos_token_id=None)
    torch.manual_seed(5)
    s2 = model.generate(ids, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, max_new_tokens=8, pad_token_id=0, eos_token_id=None)
    assert s1.shape == (2, 14) and torch.equal(s1, s2)


@pytest.mark.parametrize("backbone", ("lstm", "gru"))
def test_recurrent_incremental_state_equals_full_recompute(backbone):
    model = CharLMForCausalLM(tiny_config(backbone)).eval()
    ids, _ = make_inputs()
    full = model(ids, use_cache=False).logits
    out = model(ids[:, :4], use_cache=True)
    assert isinstance(out.cache, CharLMRecurrentCache) and out.cache.get_seq_length() == 4
    steps = [out.logits]
    cache = out.cache
    for t in range(4, T):
        out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
        cache = out.cache
        steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-6)
    assert cache.get_seq_length() == T


@pytest.mark.parametrize("backbone", ("lstm", "gru"))
def test_recurrent_generate_feeds_one_token_per_step(backbone):
    """generate() carries the recurrent state: after the prompt each forward sees one new token."""
    model = CharLMForCausalLM(tiny_config(backbone)).eval()
    seen = []
    handle = model.model.embed_tokens.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    model.generate(torch.randint(10, V, (2, 7)), max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=None)
    handle.remove()
    assert seen == [7, 1, 1, 1, 1]


def test_transformer_kv_cache_incremental_equals_full():
    model = CharLMForCausalLM(tiny_config("transformer")).eval()
    ids, _ = make_inputs()
    full = model(ids).logits
    out = model(ids[:, :6], use_cache=True)
    nxt = model(ids[:, 6:], cache=out.cache, use_cache=True)
    torch.testing.assert_close(torch.cat([out.logits, nxt.logits], dim=1), full, rtol=1e-5, atol=1e-5)


def test_bidirectional_recurrent_lm_loss_is_mean_of_both_directions():
    model = CharLMForCausalLM(tiny_config("lstm")).eval()
    ids, _ = make_inputs()
    out = model(ids, labels=ids)
    hidden = model.model(ids, return_backward=True)
    fwd = torch.nn.functional.cross_entropy(model.lm_head(hidden.last_hidden_state)[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    bwd = torch.nn.functional.cross_entropy(model.lm_head(hidden.backward_hidden_state)[:, 1:].reshape(-1, V), ids[:, :-1].reshape(-1))
    torch.testing.assert_close(out.loss, 0.5 * (fwd + bwd))
    # the forward LM (generation) never reads the right context
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % V
    torch.testing.assert_close(model(changed).logits[:, :-1], model(ids).logits[:, :-1])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_classification_heads_read_right_context(backbone):
    """Changing the last character changes the token-classification logits at the first position."""
    model = CharLMForTokenClassification(tiny_config(backbone)).eval()
    ids, _ = make_inputs()
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 7) % V
    assert not torch.allclose(model(ids).logits[:, 0], model(changed).logits[:, 0])
    causal = CharLMForTokenClassification(tiny_config(backbone, classifier_attention="causal")).eval()
    torch.testing.assert_close(causal(ids).logits[:, 0], causal(changed).logits[:, 0])


def test_logits_to_keep():
    model = CharLMForCausalLM(tiny_config()).eval()
    ids, _ = make_inputs()
    full = model(ids).logits
    last = model(ids, logits_to_keep=1).logits
    assert last.shape == (B, 1, V)
    torch.testing.assert_close(last, full[:, -1:])


def test_tied_embeddings_and_depth_scaled_init():
    model = CharLMForCausalLM(tiny_config(num_hidden_layers=8, initializer_range=0.02))
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    untied = CharLMForCausalLM(tiny_config(tie_word_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()
    q_std = torch.stack([layer.self_attn.qkv_proj.weight.std() for layer in model.model.layers]).mean()
    o_std = torch.stack([layer.self_attn.o_proj.weight.std() for layer in model.model.layers]).mean()
    assert abs(q_std.item() - 0.02) < 0.002
    assert abs(o_std.item() - 0.02 / 4) < 0.001  # 0.02 / sqrt(2 * 8)


@pytest.mark.parametrize("problem_type,labels,loss_fn", [
    ("single_label_classification", torch.tensor([0, 2, 1]), lambda lg, lb: torch.nn.functional.cross_entropy(lg, lb)),
    ("multi_label_classification", torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0]]), lambda lg, lb: torch.nn.functional.binary_cross_entropy_with_logits(lg, lb)),
    ("regression", torch.tensor([[0.5, -1.0, 2.0], [0, 0, 1], [1, 1, 0]]), lambda lg, lb: torch.nn.functional.mse_loss(lg, lb)),
])
def test_sequence_problem_types(problem_type, labels, loss_fn):
    model = CharLMForSequenceClassification(tiny_config(problem_type=problem_type)).eval()
    ids, mask = make_inputs()
    out = model(ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, loss_fn(out.logits, labels))


def test_problem_type_inferred_like_builtin_heads():
    model = CharLMForSequenceClassification(tiny_config(num_labels=1)).eval()
    ids, _ = make_inputs()
    model(ids, labels=torch.tensor([0.1, 0.2, 0.3]))
    assert model.config.problem_type == "regression"
    model = CharLMForSequenceClassification(tiny_config()).eval()
    model(ids, labels=torch.tensor([0, 1, 2]))
    assert model.config.problem_type == "single_label_classification"


@pytest.mark.parametrize("pooling", ("mean", "last", "first"))
def test_pooling_left_and_right_padding(pooling):
    model = CharLMForSequenceClassification(tiny_config(classifier_pooling=pooling)).eval()
    row = torch.randint(10, V, (6,))
    alone = model(row[None]).logits
    right = model(torch.cat([row, torch.zeros(3, dtype=torch.long)])[None], attention_mask=torch.tensor([[1] * 6 + [0] * 3])).logits
    left = model(torch.cat([torch.zeros(3, dtype=torch.long), row])[None], attention_mask=torch.tensor([[0] * 3 + [1] * 6])).logits
    torch.testing.assert_close(right, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(left, alone, rtol=1e-4, atol=1e-5)


def test_auto_classes_registered(tmp_path):
    config = tiny_config()
    assert isinstance(AutoConfig.for_model("charlm"), CharLMConfig)
    assert type(AutoModel.from_config(config)) is CharLMModel
    assert type(AutoModelForCausalLM.from_config(config)) is CharLMForCausalLM
    assert type(AutoModelForTokenClassification.from_config(config)) is CharLMForTokenClassification
    assert type(AutoModelForSequenceClassification.from_config(config)) is CharLMForSequenceClassification


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("auto,head", [
    (AutoModelForTokenClassification, CharLMForTokenClassification),
    (AutoModelForSequenceClassification, CharLMForSequenceClassification),
])
def test_classifier_from_causal_lm_keeps_backbone(backbone, auto, head, tmp_path, caplog):
    lm = CharLMForCausalLM(tiny_config(backbone))
    lm.save_pretrained(tmp_path)
    clf, info = auto.from_pretrained(tmp_path, num_labels=5, output_loading_info=True)
    assert type(clf) is head and clf.config.num_labels == 5
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert not info["unexpected_keys"]  # lm_head is tied to the embedding: never stored, nothing left over
    lm_state = lm.model.state_dict()
    for name, tensor in clf.model.state_dict().items():
        torch.testing.assert_close(tensor, lm_state[name], rtol=0, atol=0, msg=name)


# ---- clear errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,needle", [
    ({"backbone": "mamba"}, "backbone"),
    ({"hidden_size": 30, "num_attention_heads": 4}, "divisible by num_attention_heads"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob"),
    ({"classifier_pooling": "max"}, "classifier_pooling"),
    ({"classifier_attention": "sideways"}, "classifier_attention"),
    ({"pad_token_id": 500, "vocab_size": 100}, "pad_token_id"),
])
def test_bad_config_values(kwargs, needle):
    with pytest.raises(ValueError, match=needle) as err:
        tiny_config(**kwargs)
    assert "CharLMConfig." in str(err.value)


def test_unknown_backbone_message_lists_choices():
    with pytest.raises(ValueError, match="'transformer', 'lstm', 'gru'"):
        CharLMConfig(backbone="rwkv")


def test_input_longer_than_max_positions_names_limit():
    model = CharLMForCausalLM(tiny_config(max_position_embeddings=16)).eval()
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        model(torch.randint(10, V, (1, 17)))
    model(torch.randint(10, V, (1, 16)))  # the limit itself is fine
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        model.generate(torch.randint(10, V, (1, 10)), max_new_tokens=10, do_sample=False, pad_token_id=0)


@pytest.mark.parametrize("head,bad", [
    (CharLMForCausalLM, torch.zeros(B, T - 1, dtype=torch.long)),
    (CharLMForTokenClassification, torch.zeros(B, T + 2, dtype=torch.long)),
    (CharLMForSequenceClassification, torch.zeros(B + 1, dtype=torch.long)),
])
def test_labels_shape_mismatch(head, bad):
    model = head(tiny_config()).eval()
    ids, _ = make_inputs()
    with pytest.raises(ValueError, match=r"labels have shape"):
        model(ids, labels=bad)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_causal_lm_loss_ignores_padding_positions(backbone):
    """Right or left padding (labels -100 there) gives the loss of the unpadded text, for both directions of a
    bidirectional recurrent LM too."""
    model = CharLMForCausalLM(tiny_config(backbone)).eval()
    row = torch.randint(10, V, (1, 8))
    alone = model(row, labels=row).loss
    pad = torch.zeros(1, 3, dtype=torch.long)
    ignore = torch.full((1, 3), -100)
    right = model(torch.cat([row, pad], 1), attention_mask=torch.tensor([[1] * 8 + [0] * 3]), labels=torch.cat([row, ignore], 1)).loss
    left = model(torch.cat([pad, row], 1), attention_mask=torch.tensor([[0] * 3 + [1] * 8]), labels=torch.cat([ignore, row], 1)).loss
    torch.testing.assert_close(right, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(left, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backbone", ("lstm", "gru"))
def test_generate_continues_from_a_given_recurrent_cache(backbone):
    model = CharLMForCausalLM(tiny_config(backbone)).eval()
    ids = torch.randint(10, V, (1, 6))
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=0, eos_token_id=None)
    prefix = model(ids[:, :4], use_cache=True)
    continued = model.generate(ids, cache=prefix.cache, **kw)
    assert torch.equal(continued, model.generate(ids, **kw))
    assert model._is_stateful and not CharLMForCausalLM(tiny_config("transformer"))._is_stateful


def test_sequence_pooling_without_mask_skips_pad_ids():
    model = CharLMForSequenceClassification(tiny_config(pad_token_id=0)).eval()
    row = torch.randint(10, V, (1, 6))
    padded = torch.cat([row, torch.zeros(1, 3, dtype=torch.long)], 1)
    torch.testing.assert_close(model(padded).logits, model(row).logits, rtol=1e-4, atol=1e-5)
    assert CharLMForSequenceClassification.accepts_loss_kwargs is False  # Trainer must not rescale a per-text mean
