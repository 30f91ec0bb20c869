"""Equality tests for the fast paths of the model step (issue 12): the fused q/k/v projection, the fused RMS norm,
the precomputed rotary tables, the per-step cost of the UTF-8 logits processor, and the generation step's
transposed weight copies, GELU kernel and four-operation norm change no output (beyond float32 rounding).

The reference outputs in tests/data/fast_path_golden.json were written by the code before these changes (see
tests/fast_path_golden.py) from seeded checkpoints in the separate q_proj / k_proj / v_proj layout; no timing is
asserted anywhere.
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers.utils import logging as hf_logging

from hf_charlm import CharLMForCausalLM, CharLMForMaskedLM
from hf_charlm.generation_charlm import CharLMUTF8LogitsProcessor
from hf_charlm.modeling_charlm import CharLMRMSNorm, CharLMRotaryEmbedding, apply_rotary
from tests.conftest import tiny_config
from tests.fast_path_golden import GOLDEN, old_layout_checkpoint, outputs

CASES = ["transformer/eager", "transformer/sdpa", "lstm/sdpa", "gru/sdpa"]


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.fixture
def transformers_log(caplog):
    """caplog that sees transformers' records (its logger does not propagate by default)."""
    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO):
            yield caplog
    finally:
        hf_logging.disable_propagation()


@pytest.mark.parametrize("case", CASES)
def test_old_layout_checkpoint_gives_the_golden_logits_and_greedy_text(case, golden, tmp_path, transformers_log):
    backbone, attn = case.split("/")
    old_layout_checkpoint(backbone, tmp_path)
    assert any(".q_proj." in name for name in load_file(tmp_path / "model.safetensors")) == (backbone == "transformer")
    transformers_log.clear()
    model, info = CharLMForCausalLM.from_pretrained(tmp_path, attn_implementation=attn, output_loading_info=True)
    # the conversion is silent and complete: nothing missing, unexpected or freshly initialised
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    log = transformers_log.text.lower()
    assert "qkv" not in log and "newly initialized" not in log and "not used" not in log and "missing" not in log
    got = outputs(model.eval())
    ref = golden[case]
    torch.testing.assert_close(torch.tensor(got["logits"]), torch.tensor(ref["logits"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(got["logsumexp"]), torch.tensor(ref["logsumexp"]), atol=1e-5, rtol=0)
    assert got["greedy_batch"] == ref["greedy_batch"]
    assert got["greedy_single"] == ref["greedy_single"]


def test_golden_generation_exercises_byte_tokens(golden):
    # the UTF-8 processor's slow path (a row inside a multi-byte character) is part of what the golden text checks
    ids = [t for row in golden["transformer/sdpa"]["greedy_batch"] for t in row[10:]]
    assert any(40 <= t < 296 for t in ids)


def test_save_writes_the_separate_layout_and_reloads_identically(tmp_path):
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    attn = model.model.layers[0].self_attn
    assert attn.fused_qkv and attn.qkv_proj.weight.shape == (3 * 32, 32) and not hasattr(attn, "q_proj")
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / "model.safetensors")
    H = model.config.hidden_size
    for i, layer in enumerate(model.model.layers):
        fused = layer.self_attn.qkv_proj.weight
        for j, part in enumerate(("q_proj", "k_proj", "v_proj")):  # the rows of the fused matrix, in this order
            assert torch.equal(stored[f"model.layers.{i}.self_attn.{part}.weight"], fused[j * H : (j + 1) * H])
    assert not any("qkv_proj" in name for name in stored)
    ids = torch.randint(0, 64, (2, 12))
    reloaded = CharLMForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded(ids).logits, model(ids).logits)
    # a masked LM reads the same checkpoint through the same conversion
    masked = CharLMForMaskedLM.from_pretrained(tmp_path)
    assert torch.equal(masked.model.layers[1].self_attn.qkv_proj.weight, model.model.layers[1].self_attn.qkv_proj.weight)


def test_torch_load_state_dict_reads_the_saved_layout(tmp_path):
    # the Trainer resumes (and loads the best model) with model.load_state_dict(safetensors file), not from_pretrained
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    model.save_pretrained(tmp_path)
    torch.manual_seed(1)
    other = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    ids = torch.randint(0, 64, (1, 9))
    assert not torch.equal(other(ids).logits, model(ids).logits)
    result = other.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=False)
    assert result.unexpected_keys == [] and result.missing_keys == ["lm_head.weight"]  # tied: not in the file
    assert torch.equal(other(ids).logits, model(ids).logits)
    other.load_state_dict(model.state_dict())  # the in-memory (fused) layout, strict
    assert torch.equal(other(ids).logits, model(ids).logits)


def test_a_fused_layout_checkpoint_loads_too(tmp_path):
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    model.save_pretrained(tmp_path, save_original_format=False)
    assert any("qkv_proj" in name for name in load_file(tmp_path / "model.safetensors"))
    reloaded, info = CharLMForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    ids = torch.randint(0, 64, (1, 9))
    assert torch.equal(reloaded.eval()(ids).logits, model(ids).logits)


def test_a_damaged_old_layout_checkpoint_is_refused_with_the_tensor_named(tmp_path, transformers_log):
    # a checkpoint missing one of the three matrices cannot be converted: the load fails and names the tensor
    old_layout_checkpoint("transformer", tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["model.layers.1.self_attn.v_proj.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RuntimeError, match="mismatch"):
        CharLMForCausalLM.from_pretrained(tmp_path)
    assert "model.layers.1.self_attn.qkv_proj.weight" in transformers_log.text and "MISMATCH" in transformers_log.text


def reference_rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The norm before the fused kernel (and LLaMA's): float32 statistics, cast back, then the weight."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rms_norm_fast_path_equals_the_reference(dtype):
    torch.manual_seed(0)
    norm = CharLMRMSNorm(48, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = (torch.randn(3, 7, 48) * 5).to(dtype)
    if dtype == torch.bfloat16:  # the weight stays float32: the non-fused path, as before
        torch.testing.assert_close(norm(x), reference_rms_norm(x, norm.weight, 1e-6), atol=0, rtol=0)
        norm = norm.to(dtype)
    torch.testing.assert_close(norm(x).float(), reference_rms_norm(x, norm.weight, 1e-6).float(),
                               atol=1e-5 if dtype == torch.float32 else 2e-2, rtol=1e-5 if dtype == torch.float32 else 2e-2)


def reference_rotary(x: torch.Tensor, positions: torch.Tensor, head_dim: int, base: float) -> torch.Tensor:
    """RoFormer's rotation as it was computed per step before the tables: inv_freq @ positions, rotate_half."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
    freqs = positions.float()[..., None] * inv_freq  # (B, T, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, :, None], emb.sin()[:, :, None]  # broadcast over heads of (B, T, nh, hd)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def test_rotary_tables_equal_the_per_step_computation():
    config = tiny_config(max_position_embeddings=40)
    rotary = CharLMRotaryEmbedding(config)
    head_dim = config.hidden_size // config.num_attention_heads
    x = torch.randn(2, 5, 3, config.num_attention_heads, head_dim)  # (B, T, 3, nh, hd) as the fused projection
    positions = torch.tensor([[0, 1, 2, 3, 4], [35, 36, 37, 38, 39]])
    cos, sin = rotary(x, positions)
    assert cos.shape == (2, 5, 1, 1, head_dim)
    for j in range(3):
        torch.testing.assert_close(apply_rotary(x[:, :, j], cos[:, :, 0], sin[:, :, 0]),
                                   reference_rotary(x[:, :, j], positions, head_dim, config.rope_theta), atol=1e-6, rtol=0)
    # positions past the table (a caller that skips the model's length check) are computed, not indexed out of range
    far = torch.tensor([[38, 39, 40, 41, 100]])
    cos_far, sin_far = rotary(x[:1], far)
    torch.testing.assert_close(apply_rotary(x[:1, :, 0], cos_far[:, :, 0], sin_far[:, :, 0]),
                               reference_rotary(x[:1, :, 0], far, head_dim, config.rope_theta), atol=1e-5, rtol=0)


def test_rotary_tables_survive_from_pretrained(tmp_path):
    # non-persistent buffers: from_pretrained builds the model empty, _init_weights must refill them
    model = CharLMForCausalLM(tiny_config(vocab_size=64))
    model.save_pretrained(tmp_path)
    fresh = CharLMRotaryEmbedding(model.config)
    loaded = CharLMForCausalLM.from_pretrained(tmp_path).model.rotary_emb
    assert torch.equal(loaded.cos_cached, fresh.cos_cached) and torch.equal(loaded.sin_cached, fresh.sin_cached)


class ReferenceUTF8Processor(CharLMUTF8LogitsProcessor):
    """The processor's step before the fast check (tensor comparisons on the last tokens)."""

    def __call__(self, input_ids, scores):
        left = 4 if self.max_length is None else max(1, min(4, self.max_length - input_ids.shape[1]))
        boundary = self.boundary_blocked[left].to(scores.device)
        last = input_ids[:, -1]
        if not bool(((last >= self.start) & (last < self.start + 256)).any()):
            return scores.index_fill(1, boundary, -float("inf"))
        blocked = torch.zeros_like(scores, dtype=torch.bool)
        for b, row in enumerate(input_ids[:, -4:].tolist()):
            pending = self._pending(row)
            if pending is None:
                blocked[b, boundary] = True
            else:
                _, (low, high) = pending
                blocked[b] = True
                blocked[b, self.start + low : self.start + high + 1] = False
        return scores.masked_fill(blocked, -float("inf"))


def test_utf8_processor_equals_the_reference_step():
    start, vocab = 10, 300
    generator = torch.Generator().manual_seed(0)
    fast, slow = CharLMUTF8LogitsProcessor(start, max_length=20), ReferenceUTF8Processor(start, max_length=20)
    rows = [[5, 6, 7], [5, 6, start + 0xE4], [5, start + 0xE4, start + 0xB8], [5, 6, start + 0x41], [7, 8, 9]]
    for length in (3, 17, 18, 19):
        for batch in ([rows[0]], [rows[4], rows[0]], rows):
            ids = torch.tensor([[4] * (length - 3) + r for r in batch])
            scores = torch.randn(len(batch), vocab, generator=generator)
            assert torch.equal(fast(ids, scores.clone()), slow(ids, scores.clone()))


def test_cached_generation_equals_full_recompute_with_the_fused_step():
    # the KV cache stores the rotated keys of the fused projection: incremental == recompute
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    ids = torch.randint(4, 64, (2, 7))
    cached = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None)
    full = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None, use_cache=False)
    assert torch.equal(cached, full)


def test_training_step_gradients_reach_every_fused_row():
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).train()
    ids = torch.randint(0, 64, (2, 10))
    model(ids, labels=ids).loss.backward()
    grad = model.model.layers[0].self_attn.qkv_proj.weight.grad
    H = model.config.hidden_size
    assert all(grad[j * H : (j + 1) * H].abs().sum() > 0 for j in range(3))  # q, k and v rows all learn


@pytest.mark.parametrize("hidden_size", [64, 40])
def test_rms_norm_on_the_cpu_is_the_reference_in_float32(hidden_size):
    # the explicit chain (faster than F.rms_norm's CPU composite) is the reference's arithmetic: the mean of squares
    # as sum * (1 / hidden_size), bit for bit where that reciprocal is exact (a power of two), within float32
    # rounding otherwise
    torch.manual_seed(1)
    norm = CharLMRMSNorm(hidden_size, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(4, 9, hidden_size) * 3
    x[0, 0] = 1e-4  # where eps is most of the mean square: eps is added after the division, not folded into the sum
    if hidden_size & (hidden_size - 1) == 0:
        assert torch.equal(norm(x), reference_rms_norm(x, norm.weight, 1e-5))
    else:
        torch.testing.assert_close(norm(x), reference_rms_norm(x, norm.weight, 1e-5), atol=0, rtol=1e-6)
        assert not torch.equal(norm(x), reference_rms_norm(x, norm.weight, 0.0))  # (eps does reach the result)
    x.requires_grad_(True)
    norm(x).square().sum().backward()  # and it trains: gradients reach the input and the weight
    assert x.grad.abs().sum() > 0 and norm.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("positions", [1, 3], ids=["generation-step", "batch"])
def test_rotary_half_swap_equals_roll(positions):
    x = torch.randn(2, positions, 3, 4, 16)[:, :, :2]  # the strided q / k slice of the fused projection
    cos, sin = torch.randn(2, positions, 1, 1, 16), torch.randn(2, positions, 1, 1, 16)
    assert torch.equal(apply_rotary(x, cos, sin), torch.addcmul(x * cos, x.roll(8, dims=-1), sin))


GENERATION_SETTINGS = [
    dict(do_sample=False),
    dict(do_sample=False, num_beams=3),
    dict(do_sample=True, top_k=8, num_return_sequences=2),
]


@pytest.mark.parametrize("concatenate_below", [0, 14], ids=["buffer", "concatenated-then-buffer"])
@pytest.mark.parametrize("settings", GENERATION_SETTINGS, ids=["greedy", "beam", "sample"])
def test_growing_cache_generates_what_a_plain_dynamic_cache_does(settings, concatenate_below, monkeypatch):
    from transformers import DynamicCache

    from hf_charlm.modeling_charlm import CharLMGrowingLayer

    monkeypatch.setattr(CharLMGrowingLayer, "growth", 5)  # a reallocation every few steps, beams reordered between
    # 0: the buffer from the prompt on; 14: concatenation for the 9-token prompt and a few steps, then the buffer
    monkeypatch.setattr(CharLMGrowingLayer, "concatenate_below", concatenate_below)
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    ids = torch.randint(4, 64, (2, 9))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row: the masked path of every step
    kwargs = dict(attention_mask=mask, max_new_tokens=20, eos_token_id=None, pad_token_id=0, **settings)
    torch.manual_seed(1)
    out = model.generate(ids, return_dict_in_generate=True, **kwargs)
    torch.manual_seed(1)
    plain = model.generate(ids, cache=DynamicCache(config=model.config), **kwargs)  # the caller's cache is kept as is
    assert torch.equal(out.sequences, plain)
    assert type(out.cache) is DynamicCache  # still transformers' class to everything that reads it
    assert {type(layer) for layer in out.cache.layers} == {CharLMGrowingLayer}
    assert out.cache.get_seq_length() == out.sequences.shape[1] - 1  # the last token is never fed back


@pytest.mark.parametrize("concatenate_below", [0, 6])
def test_growing_layer_adopts_tensors_put_in_from_outside(concatenate_below, monkeypatch):
    from hf_charlm.modeling_charlm import CharLMGrowingLayer

    monkeypatch.setattr(CharLMGrowingLayer, "concatenate_below", concatenate_below)
    layer, plain = CharLMGrowingLayer(), __import__("transformers").cache_utils.DynamicLayer()
    steps = [torch.randn(3, 2, n, 4) for n in (4, 1, 1, 2)]
    for i, new in enumerate(steps):
        for target in (layer, plain):
            keys, values = target.update(new, -new)
        assert torch.equal(keys, plain.keys) and torch.equal(layer.values, plain.values)
        if i == 1:  # what beam search and cropping do between steps: replace keys / values with new tensors
            for target in (layer, plain):
                target.reorder_cache(torch.tensor([2, 0, 1]))
                target.crop(-1)
    assert layer.get_seq_length() == plain.get_seq_length() == 4 + 1 + 1 - 1 + 2
    # an earlier view handed out is never overwritten by a later step
    first = layer.keys.clone()
    held = layer.keys
    layer.update(torch.randn(3, 2, 1, 4), torch.randn(3, 2, 1, 4))
    assert torch.equal(held, first)
    assert layer._buffers is not None  # past `concatenate_below` positions the layer writes into its buffer


def test_growing_layer_concatenates_a_short_cache_then_switches_to_its_buffer(monkeypatch):
    from hf_charlm.modeling_charlm import CharLMGrowingLayer

    monkeypatch.setattr(CharLMGrowingLayer, "concatenate_below", 4)
    layer, seen = CharLMGrowingLayer(), []
    for n in (2, 1, 1, 1):  # 2, 3 positions: concatenated; 4, 5: the buffer
        new = torch.randn(1, 2, n, 4)
        seen.append(new)
        keys, values = layer.update(new, -new)
        assert torch.equal(keys, torch.cat(seen, dim=2)) and torch.equal(values, -torch.cat(seen, dim=2))
        assert (layer._buffers is not None) == (keys.shape[2] >= 4)
    assert layer._buffers[0].shape[2] == 4 + CharLMGrowingLayer.growth


def test_growing_layer_concatenates_inputs_that_require_grad():
    from hf_charlm.modeling_charlm import CharLMGrowingLayer

    layer = CharLMGrowingLayer()
    k = torch.randn(1, 2, 3, 4, requires_grad=True)
    layer.update(k.detach(), k.detach())
    keys, _ = layer.update(k * 2, k * 2)
    keys.sum().backward()  # an in-place write into a buffer would have broken the graph
    assert torch.equal(k.grad, torch.full_like(k, 2.0))


def test_generation_signatures_are_computed_once():
    # generate() inspects these at every step; the cached signature must be the real one
    import inspect

    from hf_charlm import CharLMForConditionalGeneration

    for cls in (CharLMForCausalLM, CharLMForMaskedLM, CharLMForConditionalGeneration):
        cached = cls.forward.__signature__
        assert cached == inspect.signature(inspect.unwrap(cls.forward))
        assert "cache" in inspect.signature(cls(tiny_config(vocab_size=64)).forward).parameters or cls is CharLMForMaskedLM
    assert list(inspect.signature(CharLMUTF8LogitsProcessor(10).__call__).parameters) == ["input_ids", "scores"]


def test_operation_count_of_a_generated_token(monkeypatch):
    """benchmarks/generation_speed.py counts top-level ATen operations per generated token (a count, not a time).
    Below `concatenate_below` cached positions the growing layer concatenates: two operations per layer and token
    instead of the buffer's six (two slices, two copies, two views), so the count drops by 4 x num_hidden_layers."""
    from pathlib import Path

    from hf_charlm.modeling_charlm import CharLMGrowingLayer

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import generation_speed

    ours = generation_speed.build_models(64, "cpu")["hf_charlm"]
    prompt = torch.randint(7, 72, (1, 12), generator=torch.Generator().manual_seed(0))
    concatenated = generation_speed.operations_per_token(ours, prompt, steps=8)
    monkeypatch.setattr(CharLMGrowingLayer, "concatenate_below", 0)
    buffered = generation_speed.operations_per_token(ours, prompt, steps=8)
    assert buffered - concatenated == 4 * ours.config.num_hidden_layers
    assert generation_speed.operations_per_token(ours, prompt, steps=8) == buffered  # a count: the same every time


def _linear_layers(model: torch.nn.Module) -> list:
    from hf_charlm.modeling_charlm import CharLMLinear

    return [m for m in model.modules() if isinstance(m, CharLMLinear)]


@pytest.mark.parametrize("rows", [1, 3, 16, 17])
def test_transposed_weight_product_equals_linear(rows):
    # CharLMLinear's generation path (a contiguous (in, out) copy of the weight, for up to FEW_ROWS rows) against
    # nn.Linear's product; past FEW_ROWS, with gradients recorded, or without a copy it is F.linear itself
    from torch.nn import functional as F

    from hf_charlm.modeling_charlm import FEW_ROWS, CharLMLinear

    torch.manual_seed(0)
    for bias in (False, True):
        layer = CharLMLinear(48, 80, bias=bias)
        x = torch.randn(rows, 1, 48)
        reference = F.linear(x, layer.weight, layer.bias)
        with torch.no_grad():
            assert torch.equal(layer(x), reference)  # no copy: the plain product
            layer.weight_t = layer.weight.t().contiguous()
            got = layer(x)
        assert got.shape == reference.shape
        torch.testing.assert_close(got, reference, atol=1e-6, rtol=1e-6)
        assert torch.equal(layer(x), reference)  # gradients recorded: never the copy
        layer.weight_t = torch.zeros_like(layer.weight_t)  # a wrong copy shows which rows it serves
        with torch.no_grad():
            assert torch.equal(layer(x), reference) == (rows > FEW_ROWS)


@pytest.mark.parametrize("rows", [1, 4, 5])
def test_mlp_generation_gelu_equals_the_activation(rows, monkeypatch):
    # a few rows take torch's own GELU kernel (a non-contiguous input) instead of oneDNN's: the same function
    from torch.nn import functional as F

    from hf_charlm.modeling_charlm import CharLMMLP

    torch.manual_seed(0)
    mlp = CharLMMLP(tiny_config(intermediate_size=512))
    x = torch.randn(rows, 1, 32) * 3
    reference = mlp.down_proj(mlp.act_fn(mlp.up_proj(x)))
    gelu, contiguous_inputs = F.gelu, []
    monkeypatch.setattr(F, "gelu", lambda h, **kw: contiguous_inputs.append(h.is_contiguous()) or gelu(h, **kw))
    mlp.act_fn.register_forward_pre_hook(lambda module, args: contiguous_inputs.append(args[0].is_contiguous()))
    with torch.no_grad():
        got = mlp(x)
    assert contiguous_inputs == [rows > CharLMMLP.GELU_FAST_ROWS]  # which kernel the input was given to
    torch.testing.assert_close(got, reference, atol=1e-6, rtol=1e-6)
    gelu_config = tiny_config(hidden_act="gelu_new")  # another activation: never the exact-GELU path
    assert not CharLMMLP(gelu_config).exact_gelu and mlp.exact_gelu


def _weights_seen_by_generate(model, **kwargs) -> tuple[torch.Tensor, list[bool]]:
    """generate()'s output and, at each step, whether the output layer held a transposed copy of its weight."""
    seen = []
    layer = model.get_output_embeddings()
    handle = layer.register_forward_pre_hook(lambda m, args: seen.append(m.weight_t is not None))
    try:
        out = model.generate(**kwargs)
    finally:
        handle.remove()
    return out, seen


@pytest.mark.parametrize("settings", GENERATION_SETTINGS, ids=["greedy", "beam", "sample"])
def test_generation_with_transposed_weights_equals_plain_linear(settings, monkeypatch):
    from hf_charlm import CharLMForConditionalGeneration
    from hf_charlm.modeling_charlm import CharLMGenerationMixin

    torch.manual_seed(0)
    ids = torch.randint(4, 64, (2, 9))
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=15, eos_token_id=None,
                  pad_token_id=0, **settings)
    for model in (CharLMForCausalLM(tiny_config(vocab_size=64)).eval(),
                  CharLMForConditionalGeneration(tiny_config(vocab_size=64)).eval()):
        torch.manual_seed(1)
        fast, seen = _weights_seen_by_generate(model, **kwargs)
        assert seen and all(seen)  # every step, the prompt's too, had the copies
        assert all(m.weight_t is None and "weight_t" not in m.__dict__ for m in _linear_layers(model))  # dropped
        monkeypatch.setattr(CharLMGenerationMixin, "GENERATION_COPY_LIMIT", 0)  # a model over the size limit
        torch.manual_seed(1)
        plain, seen = _weights_seen_by_generate(model, **kwargs)
        monkeypatch.undo()
        assert not any(seen)
        assert torch.equal(fast, plain)


def test_generation_copies_follow_weights_changed_between_calls():
    # the copies live for one generate() call: weights changed afterwards in place, even through .data (which
    # bumps no version counter), are the ones the next call uses
    torch.manual_seed(0)
    model = CharLMForCausalLM(tiny_config(vocab_size=64)).eval()
    ids = torch.randint(4, 64, (1, 6))
    kwargs = dict(max_new_tokens=12, do_sample=False, eos_token_id=None)
    before = model.generate(ids, **kwargs)
    generator = torch.Generator().manual_seed(3)
    for layer in _linear_layers(model):
        layer.weight.data.copy_(torch.randn(layer.weight.shape, generator=generator))
    after = model.generate(ids, **kwargs)
    recomputed = ids
    with torch.no_grad():
        for _ in range(12):  # full forwards outside generate(): F.linear on the changed weights
            recomputed = torch.cat([recomputed, model(recomputed).logits[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(after, recomputed) and not torch.equal(after, before)


@pytest.mark.parametrize("rows", [1, 16, 17])
def test_rms_norm_generation_path_equals_the_reference(rows):
    from hf_charlm.modeling_charlm import FEW_ROWS

    assert FEW_ROWS == 16  # the parametrisation's edge
    # up to FEW_ROWS rows without gradients: x * sqrt(H) / hypot(||x||, sqrt(H eps)); the chain otherwise
    torch.manual_seed(2)
    norm = CharLMRMSNorm(40, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(rows, 1, 40) * 3
    x[0, 0] = 1e-4  # where eps is most of the mean square
    x[-1, 0] = 0.0  # an all-zero row: eps alone in the denominator
    reference = reference_rms_norm(x, norm.weight, 1e-5)
    with torch.no_grad():
        got = norm(x)
    torch.testing.assert_close(got, reference, atol=1e-6, rtol=1e-6)
    assert torch.equal(got[-1], torch.zeros_like(got[-1]))
    with_grad = norm(x)  # gradients recorded: the chain, whatever the rows
    assert with_grad.requires_grad
    torch.testing.assert_close(with_grad, reference, atol=0, rtol=1e-6)
    # which path ran: the formula's own operations, bit for bit, up to FEW_ROWS rows; the chain's result past them
    vector_norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    formula = x * 40**0.5 / torch.hypot(vector_norm, torch.tensor((40 * 1e-5) ** 0.5))
    assert torch.equal(got, formula * norm.weight) if rows <= FEW_ROWS else torch.equal(got, with_grad)


def test_generation_benchmark_pools_the_per_repeat_ratios(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import generation_speed

    runs = [([120, 100, 90], [100, 100, 100]), ([200, 150], [100, 150])]  # ratios 1.2 1.0 0.9 | 2.0 1.0
    paths = []
    for i, (ours, ref) in enumerate(runs):
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps({"rows": [{"prompt_chars": 64, "hf_charlm_runs": ours, "gpt2_runs": ref}]}))
        paths.append(str(path))
    generation_speed.pool(paths)
    out = capsys.readouterr().out
    assert "pooled over 2 runs" in out and "prompt 64: median 1.00" in out and "min-max 0.90-2.00, 5 repeats" in out
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="bad.json: not a generation_speed.json"):
        generation_speed.pool([str(tmp_path / "bad.json")])
