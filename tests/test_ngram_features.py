"""Hashed n-gram indicator features (`CharLMConfig.feature_buckets`): which features each position reads, what
they add to the token and sequence heads' scores, padding leaves a row's scores unchanged, a model starts out
unchanged and learns through them, they save and load, and the heads that have no use for them say so. Also the
CPU fast path of the recurrent backbone when no final state is needed (what made the BiLSTM recipes slow)."""

from __future__ import annotations

import pytest
import torch

from hf_charlm import (
    CharLMConfig,
    CharLMForCausalLM,
    CharLMForConditionalGeneration,
    CharLMForMaskedLM,
    CharLMForSequenceClassification,
    CharLMForTokenClassification,
)
from hf_charlm.modeling_charlm import CharLMNgramFeatures, _run_masked_rnn
from tests.conftest import final_loss_training_only, tiny_config

FEATURES = dict(feature_buckets=997)


def _live(model, std: float = 0.5):
    """The feature weights start at zero; random ones make them count in the outputs."""
    with torch.no_grad():
        model.features.weight.weight.normal_(0.0, std)
    return model.eval()


def _bucket(layer: CharLMNgramFeatures, index: int, shifted: tuple[int, ...]) -> int:
    """The documented hash, written out: template `index` over the ids + 1 of its characters (0 at a boundary)."""
    m = CharLMNgramFeatures.MULTIPLIERS
    h = (index + 1) * m[0] + sum(c * m[1 + j] for j, c in enumerate(shifted))
    return (h ^ (h >> 29)) % layer.num_buckets


def test_token_features_read_the_crf_window_and_stop_at_the_text():
    layer = CharLMNgramFeatures(tiny_config(**FEATURES), CharLMForTokenClassification.FEATURE_TEMPLATES)
    ids = torch.tensor([[0, 0, 5, 6, 7], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    got = layer.bucket_ids(ids, mask)
    assert got.shape == (2, 5, 10)
    row = [0, 0, 6, 7, 8, 0, 0]  # row 0's characters + 1, with the boundary (0) two places either side
    for t, position in enumerate(range(2, 5)):
        at = lambda o: row[position + o]  # noqa: E731
        expected = [_bucket(layer, i, tuple(at(o) for o in template))
                    for i, template in enumerate(CharLMForTokenClassification.FEATURE_TEMPLATES)]
        assert got[0, position].tolist() == expected, t
    # the left padding is a boundary, as the edge of the text is: the text alone reads the same features
    torch.testing.assert_close(got[0, 2:], layer.bucket_ids(ids[:1, 2:])[0])
    # right padding too: the last real character's right neighbours are boundaries
    right = layer.bucket_ids(torch.tensor([[5, 6, 7, 0, 0]]), torch.tensor([[1, 1, 1, 0, 0]]))
    torch.testing.assert_close(right[0, :3], got[0, 2:])
    # the same window gives the same features anywhere; the templates do not share buckets for the same characters
    assert got[1, 2].tolist() == layer.bucket_ids(torch.tensor([[3, 5, 6, 7, 8, 9, 3]]))[0, 3].tolist()
    assert len(set(got[1, 2, :5].tolist())) == 5


@pytest.mark.parametrize("backbone", ["transformer", "lstm"])
def test_token_scores_add_the_weights_of_the_features(backbone):
    torch.manual_seed(0)
    model = CharLMForTokenClassification(tiny_config(backbone, **FEATURES)).eval()
    ids = torch.tensor([[11, 12, 13, 14, 12, 13]])
    with torch.no_grad():
        start = model(input_ids=ids).logits
        plain = CharLMForTokenClassification(tiny_config(backbone)).eval()
        plain.load_state_dict(model.state_dict(), strict=False)  # the same weights without the feature table
        torch.testing.assert_close(start, plain(input_ids=ids).logits, rtol=0, atol=0)  # zero weights: unchanged
        _live(model)
        buckets = model.features.bucket_ids(ids)  # (1, T, 10)
        added = model.features.weight.weight[buckets].sum(-2)
        torch.testing.assert_close(model(input_ids=ids).logits, start + added)


@pytest.mark.parametrize("backbone", ["transformer", "gru"])
def test_sequence_scores_add_the_ngram_bag_over_the_square_root_of_the_length(backbone):
    torch.manual_seed(0)
    model = _live(CharLMForSequenceClassification(tiny_config(backbone, **FEATURES)))
    a, b = torch.tensor([[11, 12, 13, 14, 15]]), torch.tensor([[21, 22, 23]])
    with torch.no_grad():
        alone_a, alone_b = model(input_ids=a).logits, model(input_ids=b).logits
        # what the features add to a: the 1-, 2- and 3-grams ending at each position, summed, / sqrt(5)
        table = model.features.weight.weight.clone()
        bag = table[model.features.bucket_ids(a)].sum(dim=(1, 2)) / 5 ** 0.5
        model.features.weight.weight.zero_()
        torch.testing.assert_close(alone_a, model(input_ids=a).logits + bag)
        model.features.weight.weight.copy_(table)
        for side in ("left", "right"):  # padding neither adds n-grams nor changes the length
            pad = torch.zeros(1, 2, dtype=torch.long)
            padded_b = torch.cat([pad, b], 1) if side == "left" else torch.cat([b, pad], 1)
            mask = torch.cat([torch.ones_like(a), (padded_b != 0).long()])
            out = model(input_ids=torch.cat([a, padded_b]), attention_mask=mask).logits
            torch.testing.assert_close(out, torch.cat([alone_a, alone_b]), rtol=1e-5, atol=1e-5)


def test_features_learn_what_the_frozen_backbone_cannot_and_save_and_load(tmp_path):
    """Each character labelled by the character after it: with the transformer backbone frozen at random, the
    classifier alone does not fit it; the feature weights (offset +1) do. Saved and loaded, the scores stay."""
    torch.manual_seed(0)
    model = CharLMForTokenClassification(tiny_config(**FEATURES)).train()
    ids = torch.tensor([[11, 13, 12, 13, 14, 11, 13, 12, 13, 11]])
    labels = torch.tensor([[1, 0, 1, 0, 2, 1, 0, 1, 2, 0]])  # 13 next: 1, 12: 0, 11: 2, 14: 0, end: 0

    def final_loss(trained: list) -> float:
        return final_loss_training_only(model, trained, ids, labels, steps=80)

    state = {k: v.clone() for k, v in model.state_dict().items()}
    without = final_loss(list(model.classifier.parameters()))
    model.load_state_dict(state)
    with_features = final_loss([*model.classifier.parameters(), *model.features.parameters()])
    assert without > 0.1 and with_features < 0.01, (without, with_features)
    model.eval().save_pretrained(tmp_path)
    loaded = CharLMForTokenClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.feature_buckets == FEATURES["feature_buckets"]
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
        assert loaded(input_ids=ids).logits.argmax(-1).tolist() == labels.tolist()


def test_loading_a_checkpoint_without_features_adds_them_at_zero(tmp_path):
    torch.manual_seed(0)
    CharLMForMaskedLM(tiny_config()).save_pretrained(tmp_path)
    model, info = CharLMForTokenClassification.from_pretrained(tmp_path, output_loading_info=True, **FEATURES)
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias", "features.weight.weight"}
    assert model.features.weight.weight.abs().sum() == 0


def test_feature_config_errors():
    with pytest.raises(ValueError, match="feature_buckets=-1 is invalid"):
        CharLMConfig(feature_buckets=-1)
    for head in (CharLMForCausalLM, CharLMForMaskedLM, CharLMForConditionalGeneration):
        with pytest.raises(ValueError, match="feature_buckets=997: n-gram features add to the scores of the token"):
            head(tiny_config(**FEATURES))
    for head in (CharLMForTokenClassification, CharLMForSequenceClassification):
        with pytest.raises(ValueError, match=r"feature_buckets=997\), which are computed from input_ids"):
            head(tiny_config(**FEATURES))(inputs_embeds=torch.zeros(1, 3, 32))


@pytest.mark.parametrize("rnn_class", [torch.nn.LSTM, torch.nn.GRU])
def test_unpacked_cpu_path_gives_the_packed_outputs_and_gradients(rnn_class):
    """`need_state=False` runs the gathered rows unpacked (the packed CPU backward is quadratic in the length):
    outputs at real positions, zeros at padding, and the gradients equal the packed path's."""
    torch.manual_seed(0)
    rnn = rnn_class(8, 8, num_layers=2, batch_first=True)
    x = torch.randn(3, 7, 8, requires_grad=True)
    mask = torch.tensor([[1] * 7, [0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0]])
    packed, state = _run_masked_rnn(rnn, rnn_class is torch.nn.LSTM, x, mask, None, need_state=True)
    fast, none = _run_masked_rnn(rnn, rnn_class is torch.nn.LSTM, x, mask, None, need_state=False)
    assert state is not None and none is None
    torch.testing.assert_close(fast, packed)
    assert fast[~mask.bool()].abs().sum() == 0
    weights = torch.randn_like(fast)
    grad_packed = torch.autograd.grad((packed * weights).sum(), [x, *rnn.parameters()])
    grad_fast = torch.autograd.grad((fast * weights).sum(), [x, *rnn.parameters()])
    for a, b in zip(grad_packed, grad_fast):
        torch.testing.assert_close(a, b)
