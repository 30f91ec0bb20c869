"""CharLMForConditionalGeneration on the three backbones (and both recurrent attention types): loss, shapes,
save -> load, cached == uncached decoding, padding invariance, beams, tuple outputs, warm start from a causal LM,
and a real (tiny) training run on a reversal task."""

from __future__ import annotations

import random

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModelForSeq2SeqLM, pipeline

from hf_charlm import CharLMConfig, CharLMForCausalLM, CharLMForConditionalGeneration, train_char_tokenizer
from hf_charlm.modeling_charlm_seq2seq import CharLMSeq2SeqRecurrentCache, shift_tokens_right
from transformers.cache_utils import EncoderDecoderCache
from tests.conftest import tiny_config

CASES = [("transformer", "additive"), ("lstm", "additive"), ("lstm", "dot"), ("gru", "additive"), ("gru", "dot")]
IDS = [f"{b}-{a}" if b != "transformer" else b for b, a in CASES]
V = 128


def make_model(backbone: str, attention_type: str, **overrides) -> CharLMForConditionalGeneration:
    # a wide initialisation so that an untrained model's greedy output varies with its input (the default
    # std=0.02 mostly repeats one character, and equal outputs would prove little)
    fields = dict(attention_type=attention_type, initializer_range=0.3)
    fields.update(overrides)
    return CharLMForConditionalGeneration(tiny_config(backbone, vocab_size=V, **fields)).eval()


def source_batch(lengths: list[int], side: str = "right", seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of real ids (>= 4, the specials are 0..3) of the given lengths, padded with 0 on `side`."""
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        cols = slice(0, n) if side == "right" else slice(T - n, T)
        ids[i, cols] = torch.randint(4, V, (n,), generator=gen)
        mask[i, cols] = 1
    return ids, mask


@pytest.fixture(params=CASES, ids=IDS)
def model(request):
    return make_model(*request.param)


# -------------------------------------------------------------------------------------------------- forward, loss


def test_shapes_loss_and_ignored_labels(model):
    ids, mask = source_batch([7, 4])
    labels = torch.randint(4, V, (2, 5))
    labels[1, -2:] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 5, V)
    assert out.encoder_last_hidden_state.shape[:2] == (2, 7)
    # decoder inputs are the labels shifted right behind <s>, -100 read as <pad>
    decoder_input_ids = shift_tokens_right(labels, 0, 2)
    assert decoder_input_ids.tolist()[1] == [2, *labels[1, :3].tolist(), 0]
    explicit = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_input_ids)
    torch.testing.assert_close(out.logits, explicit.logits, rtol=0, atol=0)
    keep = labels != -100
    expected = F.cross_entropy(out.logits[keep], labels[keep])
    torch.testing.assert_close(out.loss, expected)
    # the ignored positions really are ignored: any label there gives the same loss, a real one does not
    other = labels.clone()
    other[1, -1] = 7
    assert not torch.allclose(model(input_ids=ids, attention_mask=mask, labels=other).loss, out.loss)
    with pytest.raises(ValueError, match="labels have shape"):
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_input_ids[:, :3], labels=labels)


def test_return_dict_false_gives_tuple(model):
    ids, mask = source_batch([6, 3])
    labels = torch.randint(4, V, (2, 4))
    as_dict = model(input_ids=ids, attention_mask=mask, labels=labels)
    as_tuple = model(input_ids=ids, attention_mask=mask, labels=labels, return_dict=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], as_dict.loss, rtol=0, atol=0)
    torch.testing.assert_close(as_tuple[1], as_dict.logits, rtol=0, atol=0)
    # the encoder's tuple output is accepted back as encoder_outputs
    encoder_tuple = model.get_encoder()(input_ids=ids, attention_mask=mask, return_dict=False)
    assert isinstance(encoder_tuple, tuple)
    again = model(attention_mask=mask, encoder_outputs=encoder_tuple, labels=labels)
    torch.testing.assert_close(again.logits, as_dict.logits, rtol=0, atol=0)


def test_config_is_encoder_decoder_only_for_this_head():
    config = tiny_config("transformer", vocab_size=V)
    assert config.is_encoder_decoder is False
    causal = CharLMForCausalLM(config)
    model = CharLMForConditionalGeneration(config)
    assert model.config.is_encoder_decoder is True and model.config.decoder_start_token_id == 2
    # a config shared with a causal LM is not changed under it (its generate() would take the seq2seq path)
    assert config.is_encoder_decoder is False and causal.config.is_encoder_decoder is False
    assert model.generation_config.decoder_start_token_id == 2
    assert model.lm_head.weight is model.model.encoder.embed_tokens.weight  # tied, shared embedding
    with pytest.raises(ValueError, match="attention_type"):
        CharLMConfig(attention_type="bahdanau")


def test_save_load_identical_logits_and_files(model, tmp_path):
    ids, mask = source_batch([5, 8])
    labels = torch.randint(4, V, (2, 6))
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    # register_for_auto_class copies the class's module and its single-dot imports
    assert {"modeling_charlm_seq2seq.py", "modeling_charlm.py", "configuration_charlm.py", "model.safetensors"} <= files
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, CharLMForConditionalGeneration)
    assert loaded.config.is_encoder_decoder and loaded.config.auto_map["AutoModelForSeq2SeqLM"] == (
        "modeling_charlm_seq2seq.CharLMForConditionalGeneration"
    )
    # bit-identical for the transformer; a packed recurrent batch may differ in the last float32 bit between two
    # copies of the same weights (BLAS picks kernels by memory alignment), as in test_remote_code.py
    exact = not model.config.is_recurrent
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask, labels=labels).logits,
            model(input_ids=ids, attention_mask=mask, labels=labels).logits,
            rtol=0 if exact else 1e-5,
            atol=0 if exact else 1e-5,
        )


# -------------------------------------------------------------------------------------------------- decoding


@torch.no_grad()
def test_step_by_step_logits_equal_teacher_forced(model):
    ids, mask = source_batch([7, 4], side="left")
    decoder_input_ids = torch.cat([torch.full((2, 1), 2), torch.randint(4, V, (2, 6))], dim=1)
    full = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_input_ids, use_cache=False).logits
    encoder_outputs = model.get_encoder()(input_ids=ids, attention_mask=mask)
    cache, steps = None, []
    for t in range(decoder_input_ids.shape[1]):
        out = model(
            attention_mask=mask,
            encoder_outputs=encoder_outputs,
            decoder_input_ids=decoder_input_ids[:, t : t + 1],
            cache=cache,
            use_cache=True,
        )
        cache = out.cache
        steps.append(out.logits)
    expected_cache = CharLMSeq2SeqRecurrentCache if model.config.is_recurrent else EncoderDecoderCache
    assert isinstance(cache, expected_cache) and cache.get_seq_length() == decoder_input_ids.shape[1]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_generate_cached_equals_uncached(model):
    ids, mask = source_batch([8, 5, 3], side="left")
    kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=10, eos_token_id=None)
    greedy = model.generate(**kwargs, do_sample=False)
    assert greedy.shape == (3, 11) and (greedy[:, 0] == 2).all()
    assert len(set(map(tuple, greedy[:, 1:].tolist()))) > 1  # rows differ: the source is being read
    assert torch.equal(greedy, model.generate(**kwargs, do_sample=False, use_cache=False))
    beams = model.generate(**kwargs, num_beams=3)
    assert torch.equal(beams, model.generate(**kwargs, num_beams=3, use_cache=False))
    torch.manual_seed(3)
    sampled = model.generate(**kwargs, do_sample=True, top_k=0)
    torch.manual_seed(3)
    assert torch.equal(sampled, model.generate(**kwargs, do_sample=True, top_k=0, use_cache=False))


@torch.no_grad()
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_sources_decode_as_alone(model, side):
    lengths = [9, 4, 6]
    ids, mask = source_batch(lengths, side=side)
    kwargs = dict(max_new_tokens=8, eos_token_id=None, do_sample=False)
    batched = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    decoder_input_ids = batched[:, :6]
    batched_logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_input_ids).logits
    for i, n in enumerate(lengths):
        alone_ids = ids[i : i + 1][mask[i : i + 1].bool()].unsqueeze(0)  # (1, n): the real tokens only
        assert alone_ids.shape == (1, n)
        alone = model.generate(input_ids=alone_ids, attention_mask=torch.ones_like(alone_ids), **kwargs)
        assert torch.equal(alone[0], batched[i]), (i, side)
        alone_logits = model(input_ids=alone_ids, decoder_input_ids=decoder_input_ids[i : i + 1]).logits
        torch.testing.assert_close(alone_logits[0], batched_logits[i], rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_beam_search_shapes_and_order(model):
    ids, mask = source_batch([6, 3], side="left")
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=7,
        eos_token_id=None,
        num_beams=4,
        num_return_sequences=3,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert out.sequences.shape == (6, 8)
    scores = out.sequences_scores.view(2, 3)
    assert (scores[:, :-1] >= scores[:, 1:]).all()  # best first within each source
    best = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=7, eos_token_id=None, num_beams=4)
    assert torch.equal(best, out.sequences[::3])
    # the best beam is at least as likely as greedy decoding under the model
    greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=7, eos_token_id=None, do_sample=False)

    def log_prob(seqs: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=seqs[:, :-1]).logits
        return logits.log_softmax(-1).gather(-1, seqs[:, 1:, None]).squeeze(-1).sum(-1)

    assert (log_prob(best) >= log_prob(greedy) - 1e-4).all()


@torch.no_grad()
def test_prompt_lookup_decoding(model):
    ids, mask = source_batch([6])
    kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=8, eos_token_id=None, do_sample=False)
    if model.config.is_recurrent:
        # a recurrent state cannot be cropped back to the accepted draft tokens
        with pytest.raises(ValueError, match="stateful"):
            model.generate(**kwargs, prompt_lookup_num_tokens=2)
    else:  # the EncoderDecoderCache is cropped after rejected drafts: same result as greedy
        assert torch.equal(model.generate(**kwargs, prompt_lookup_num_tokens=2), model.generate(**kwargs))


# -------------------------------------------------------------------------------------------------- warm start


@pytest.mark.parametrize("backbone", ["transformer", "lstm", "gru"])
def test_warm_start_from_causal_lm(backbone, tmp_path):
    causal = CharLMForCausalLM(tiny_config(backbone, vocab_size=V)).eval()
    causal.save_pretrained(tmp_path)
    model, info = CharLMForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert model.config.is_encoder_decoder and not CharLMConfig.from_pretrained(tmp_path).is_encoder_decoder
    source = causal.state_dict()
    target = model.state_dict()
    # the whole backbone goes to the encoder
    for name, tensor in causal.model.state_dict().items():
        assert torch.equal(target[f"model.encoder.{name}"], tensor), name
    if backbone == "transformer":
        shared = ["layers.1.self_attn.qkv_proj.weight", "layers.0.mlp.down_proj.weight", "layers.1.input_layernorm.weight", "norm.weight"]
        new = {n for n in target if ".cross_attn" in n}
    else:
        shared = ["forward_rnn.rnn.weight_ih_l0", "forward_rnn.rnn.weight_hh_l1", "forward_rnn.norm.weight"]
        new = {n for n in target if n.startswith(("model.decoder.attention.", "model.decoder.context_proj."))}
    for name in shared:
        assert torch.equal(target[f"model.decoder.{name}"], source[f"model.{name}"]), name
    assert torch.equal(model.lm_head.weight, causal.lm_head.weight)
    # the report lists exactly the fresh tensors, which differ from anything in the causal LM
    assert new and set(info["missing_keys"]) == new
    assert info["mismatched_keys"] == []
    # the recurrent causal LM's backward stack is used (by the encoder); nothing is left over
    assert info["unexpected_keys"] == []
    # through the Auto class too, and the warm-started model saves as an encoder-decoder checkpoint
    auto = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert isinstance(auto, CharLMForConditionalGeneration)
    assert torch.equal(auto.model.encoder.embed_tokens.weight, causal.model.embed_tokens.weight)
    model.save_pretrained(tmp_path / "s2s")
    reloaded, info2 = CharLMForConditionalGeneration.from_pretrained(tmp_path / "s2s", output_loading_info=True)
    assert not info2["missing_keys"] and not info2["unexpected_keys"]
    ids, mask = source_batch([5, 3])
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded.eval()(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.full((2, 3), 2)).logits,
            model(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.full((2, 3), 2)).logits,
            rtol=0 if backbone == "transformer" else 1e-5,
            atol=0 if backbone == "transformer" else 1e-5,
        )


def test_text2text_pipelines_are_registered_by_hf_charlm(tokenizer):
    # transformers 5 removed the "text2text-generation" and "translation" tasks (REMOVED_TASKS); `import hf_charlm`
    # registers its own (hf_charlm/pipelines.py, compared with model.generate in tests/test_finetune_seq2seq.py)
    from hf_charlm.pipelines import CharLMText2TextGenerationPipeline, CharLMTranslationPipeline

    for task, cls in (("text2text-generation", CharLMText2TextGenerationPipeline), ("translation", CharLMTranslationPipeline)):
        assert type(pipeline(task, model=make_model("gru", "additive"), tokenizer=tokenizer)) is cls


# -------------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    "backbone, attention_type, layers, lr, steps",
    [
        ("gru", "additive", 1, 3e-3, 300),
        ("lstm", "dot", 1, 3e-3, 300),
        pytest.param("transformer", "additive", 2, 1e-3, 300, marks=pytest.mark.slow),  # 20-35 s on a busy CPU
    ],
)
def test_train_reverse_strings(backbone, attention_type, layers, lr, steps):
    """A few hundred AdamW steps of a tiny model (hidden 64) learn to reverse strings of 2-6 characters."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster than two fighting other processes
    try:
        torch.manual_seed(0)  # the initial weights: otherwise whatever ran before in the session decides them
        rng = random.Random(0)
        alphabet = "abcdefgh"
        tokenizer = train_char_tokenizer([alphabet])

        def sample(n: int) -> list[str]:
            return ["".join(rng.choice(alphabet) for _ in range(rng.randint(2, 6))) for _ in range(n)]

        config = tiny_config(
            backbone, vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
            attention_type=attention_type,
        )
        model = CharLMForConditionalGeneration(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
        # decayed linearly to zero: at a constant rate the last steps can undo a solved task (LSTM, seed 2: 0.96
        # exact match after 300 steps, 0.82 after 400)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
        for _ in range(steps):
            sources = sample(32)
            batch = tokenizer(sources, padding=True, return_tensors="pt")
            targets = [tokenizer(s[::-1], add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for s in sources]
            width = max(map(len, targets))
            labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets])
            loss = model(**batch, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        tests = sample(100)
        tokenizer.padding_side = "left"
        with torch.no_grad():
            generated = model.generate(**tokenizer(tests, padding=True, return_tensors="pt"), max_new_tokens=8, do_sample=False)
        predictions = tokenizer.batch_decode(generated, skip_special_tokens=True)
        accuracy = sum(p == s[::-1] for p, s in zip(predictions, tests)) / len(tests)
        print(f"reverse-strings exact match ({backbone}, {attention_type}): {accuracy:.2f}")
        assert accuracy > 0.9, (accuracy, list(zip(tests, predictions))[:5])
    finally:
        torch.set_num_threads(threads)
