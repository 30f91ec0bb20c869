"""Hashed character-bigram features (`CharLMConfig.bigram_buckets`): which pair each position reads, padding and
packing leave a row's outputs unchanged, a backbone loaded without them is unchanged until they are trained, and
the heads that cannot use them say so."""

from __future__ import annotations

import pytest
import torch

from hf_charlm import CharLMConfig, CharLMForCausalLM, CharLMForMaskedLM, CharLMForSequenceClassification, CharLMForTokenClassification
from hf_charlm.modeling_charlm import CharLMBigramEmbedding
from tests.conftest import final_loss_training_only, tiny_config

BIGRAMS = dict(bigram_buckets=101, bigram_embedding_size=8)


def _with_live_bigrams(model):
    """The projection starts at zero; a random one makes the features count in the outputs."""
    with torch.no_grad():
        model.model.embed_bigrams.proj.weight.normal_(0.0, 0.5)
    return model.eval()


def test_bucket_ids_pair_each_character_with_the_previous_one():
    layer = CharLMBigramEmbedding(tiny_config(**BIGRAMS))
    ids = torch.tensor([[0, 0, 5, 6, 7], [4, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])

    def expected(previous: int, current: int) -> int:  # previous: the id + 1, 0 at a boundary
        return (previous * CharLMBigramEmbedding.MULTIPLIER + current) % 101

    got = layer.bucket_ids(ids, mask).tolist()
    # row 0 is left-padded: its first real character (5) pairs with the boundary, not with the padding
    assert got[0][2:] == [expected(0, 5), expected(6, 6), expected(7, 7)]
    assert got[1] == [expected(0, 4), expected(5, 5), expected(6, 6), expected(7, 7), expected(8, 8)]
    # a packed row (positions restart at 0): the second sequence starts at a boundary too
    packed = layer.bucket_ids(ids[1:], None, torch.tensor([[0, 1, 0, 1, 2]])).tolist()[0]
    assert packed == [expected(0, 4), expected(5, 5), expected(0, 6), expected(7, 7), expected(8, 8)]
    # the same pair lands in the same bucket wherever it is; different pairs mostly do not collide
    assert layer.bucket_ids(torch.tensor([[9, 5, 6]])).tolist()[0][2] == got[1][2]
    pairs = torch.cartesian_prod(torch.arange(1, 40), torch.arange(40)).T
    buckets = layer.bucket_ids(pairs.T.contiguous())[:, 1]
    assert buckets.unique().numel() > 0.55 * 101  # 1560 pairs fill most of the 101 buckets


@pytest.mark.parametrize("backbone", ["transformer", "lstm"])
@pytest.mark.parametrize("head", [CharLMForTokenClassification, CharLMForSequenceClassification, CharLMForMaskedLM])
def test_padding_and_packing_give_each_row_its_own_outputs(backbone, head):
    torch.manual_seed(0)
    model = _with_live_bigrams(head(tiny_config(backbone, **BIGRAMS)))
    a, b = torch.tensor([[11, 12, 13, 14, 15]]), torch.tensor([[21, 22, 23]])
    with torch.no_grad():
        alone_a, alone_b = model(input_ids=a).logits, model(input_ids=b).logits
        for side in ("left", "right"):
            pad = torch.zeros(1, 2, dtype=torch.long)
            padded_b = torch.cat([pad, b], 1) if side == "left" else torch.cat([b, pad], 1)
            mask_b = (padded_b != 0).long()
            out = model(input_ids=torch.cat([a, padded_b]), attention_mask=torch.cat([torch.ones_like(a), mask_b])).logits
            torch.testing.assert_close(out[:1], alone_a, rtol=1e-5, atol=1e-5)
            if head is CharLMForSequenceClassification:
                torch.testing.assert_close(out[1:], alone_b, rtol=1e-5, atol=1e-5)
            else:
                torch.testing.assert_close(out[1:][mask_b.bool()], alone_b[0], rtol=1e-5, atol=1e-5)
        if head is not CharLMForSequenceClassification:
            packed = model(input_ids=torch.cat([a, b], 1), position_ids=torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2]])).logits
            torch.testing.assert_close(packed[0], torch.cat([alone_a[0], alone_b[0]]), rtol=1e-5, atol=1e-5)


def test_bigrams_change_the_outputs_only_through_the_pair():
    torch.manual_seed(0)
    model = _with_live_bigrams(CharLMForTokenClassification(tiny_config(**BIGRAMS)))
    plain = CharLMForTokenClassification(tiny_config()).eval()
    plain.load_state_dict(model.state_dict(), strict=False)  # the same weights, without the bigram table
    ids = torch.tensor([[11, 12, 13, 14]])
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, plain(input_ids=ids).logits)
        model.model.embed_bigrams.proj.weight.zero_()
        torch.testing.assert_close(model(input_ids=ids).logits, plain(input_ids=ids).logits)


@pytest.mark.parametrize("backbone", ["transformer", "gru"])
def test_loading_without_bigrams_starts_unchanged_and_they_train(backbone, tmp_path):
    torch.manual_seed(0)
    base = CharLMForTokenClassification(tiny_config(backbone)).eval()
    base.save_pretrained(tmp_path)
    model, info = CharLMForTokenClassification.from_pretrained(tmp_path, output_loading_info=True, **BIGRAMS)
    assert set(info["missing_keys"]) == {"model.embed_bigrams.embed.weight", "model.embed_bigrams.proj.weight"}
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    ids = torch.tensor([[11, 12, 13, 14, 12, 13]])
    model.eval()
    with torch.no_grad():
        # (x + 0 is x; a recurrent layer may still differ in the last bit: BLAS picks kernels by memory alignment)
        exact = backbone == "transformer"
        torch.testing.assert_close(
            model(input_ids=ids).logits, base(input_ids=ids).logits, rtol=0 if exact else 1e-6, atol=0 if exact else 1e-6
        )
    # the same character labelled by the one before it (13 after 11: 1, 13 after 12: 2): with the backbone frozen,
    # the bigram path learns it (it gets gradient although its projection starts at zero); the transformer's
    # frozen attention alone does not
    ids = torch.tensor([[11, 13, 12, 13, 14, 11, 13, 12, 13]])
    labels = torch.tensor([[0, 1, 0, 2, 0, 0, 1, 0, 2]])

    def final_loss(trained: list) -> float:
        return final_loss_training_only(model, trained, ids, labels, steps=60)

    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    without = final_loss(list(model.classifier.parameters()))
    model.load_state_dict(state)
    with_bigrams = final_loss([*model.classifier.parameters(), *model.model.embed_bigrams.parameters()])
    assert model.model.embed_bigrams.proj.weight.abs().sum() > 0
    assert with_bigrams < 0.01
    if backbone == "transformer":
        assert without > 0.1


def test_bigram_config_errors():
    with pytest.raises(ValueError, match="bigram_buckets=-1 is invalid"):
        CharLMConfig(bigram_buckets=-1)
    with pytest.raises(ValueError, match="bigram_embedding_size=0 is invalid"):
        CharLMConfig(bigram_buckets=8, bigram_embedding_size=0)
    with pytest.raises(ValueError, match="bigram features are for the masked LM and the classification heads"):
        CharLMForCausalLM(tiny_config(**BIGRAMS))
    model = CharLMForTokenClassification(tiny_config(**BIGRAMS))
    with pytest.raises(ValueError, match="pass input_ids, not inputs_embeds"):
        model(inputs_embeds=torch.zeros(1, 3, 32))


def test_pretrain_script_bigrams_need_the_masked_objective_and_carry_over(tmp_path, capsys):
    from pathlib import Path

    from transformers import AutoModelForTokenClassification

    from tests.conftest import run_script_in_process

    script = Path(__file__).resolve().parents[1] / "scripts" / "pretrain.py"
    train = tmp_path / "train.txt"
    train.write_text("\n".join(f"第{i}句话，北京天气很好，我们去公园散步。" for i in range(60)) + "\n", encoding="utf-8")
    tiny = "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64,max_position_embeddings=64"
    args = ["--train_file", str(train), "--block_size", "32", "--max_steps", "2", "--disable_tqdm", "true",
            "--config_overrides", f"{tiny},bigram_buckets=512,bigram_embedding_size=8"]
    refused = tmp_path / "clm"
    code, last = run_script_in_process(script, [*args, "--output_dir", str(refused)], capsys)
    assert code == 2 and "are for --objective mlm" in last, last
    assert not refused.exists()
    out = tmp_path / "mlm"
    code, last = run_script_in_process(script, [*args, "--objective", "mlm", "--output_dir", str(out)], capsys)
    assert code == 0, last
    model, info = AutoModelForTokenClassification.from_pretrained(out, num_labels=4, output_loading_info=True)
    # every backbone weight, the pretrained bigram table included, is kept: only the head is new
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    assert model.model.embed_bigrams.proj.weight.abs().sum() > 0  # trained: no longer the zero start


def test_encoder_decoder_refuses_bigrams_and_warm_starts_without_them(tmp_path):
    from hf_charlm import CharLMForConditionalGeneration

    mlm = CharLMForMaskedLM(tiny_config(**BIGRAMS))
    mlm.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pass bigram_buckets=0 to from_pretrained"):
        CharLMForConditionalGeneration.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="the encoder-decoder has no bigram features"):
        CharLMForConditionalGeneration(tiny_config(**BIGRAMS))
    model = CharLMForConditionalGeneration.from_pretrained(tmp_path, bigram_buckets=0)
    assert model.config.bigram_buckets == 0 and getattr(model.model.encoder, "embed_bigrams", None) is None
    # the warm start copied the masked LM's backbone
    torch.testing.assert_close(model.model.encoder.embed_tokens.weight, mlm.model.embed_tokens.weight)
