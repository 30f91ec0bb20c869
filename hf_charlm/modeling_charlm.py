"""hf_charlm models: layers, the Transformer / LSTM / GRU backbone, the CRF, `CharLMPreTrainedModel` and the heads.

This file ships with every checkpoint and is loaded through `trust_remote_code=True` on machines without
hf_charlm, so it may import only `torch`, public `transformers` names and its sibling `configuration_charlm`.
Read top to bottom: leaf layers and helpers, attention / MLP / block / recurrent encoder, the pretrained base,
the backbone model, then the heads.
"""

import contextlib
import copy
import functools
import inspect
import itertools
import math
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch import nn
from torch.nn import functional as F
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import Concatenate, WeightConverter
from transformers.generation import GenerationMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward as _SDPA_FORWARD
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask, find_packed_sequence_indices
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    CausalLMOutputWithPast,
    MaskedLMOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils import ModelOutput, can_return_tuple, logging
from transformers.utils.deprecation import deprecate_kwarg

from .configuration_charlm import CORRECTION_PIPELINE_FILES, CharLMConfig, correction_pipelines
from .generation_charlm import CharLMUTF8LogitsProcessor

logger = logging.get_logger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Leaf layers and free helpers
# ----------------------------------------------------------------------------------------------------------------


# a generation step's "few rows" (batch x new positions) for the CPU fast paths of the norm and the linear layers
FEW_ROWS = 16


class CharLMRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
        for value in (eps, 0.0, math.sqrt(hidden_size * eps)):  # the forward's scalars, made now, not at a step
            _cpu_scalar(value)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.is_cuda and hidden_states.dtype == self.weight.dtype:
            # one fused kernel on the GPU (the same arithmetic, in float32 accumulation)
            return F.rms_norm(hidden_states, self.weight.shape, self.weight, self.variance_epsilon)
        # On the CPU F.rms_norm has no fused kernel (a composite of these same operations) and measured slower than
        # an explicit chain, both at a generation step and in a training step's forward and backward. The chain is
        # written for the number of dispatches: `mean` is a sum followed by an in-place division by a Python number,
        # and `+ eps` adds a Python number, each of which is wrapped into a tensor (a copy) at every call; here the
        # sum of squares, times 1 / hidden_size, plus eps is one `add` of a cached zero-dimensional eps tensor with
        # `alpha`. The same arithmetic within float32 rounding (bit for bit when hidden_size is a power of two).
        dtype = hidden_states.dtype
        size = hidden_states.shape[-1]
        if dtype == torch.float32 and hidden_states.numel() <= FEW_ROWS * size and not torch.is_grad_enabled():
            # A generation step's few rows, no gradient: four operations instead of six, 39 against 62 us per call
            # on the tiny preset (one thread). x / sqrt(mean(x^2) + eps) == x * sqrt(H) / hypot(||x||, sqrt(H eps)),
            # the vector norm in one pass; equal within float32 rounding (training keeps the chain below).
            norm = torch.linalg.vector_norm(hidden_states, dim=-1, keepdim=True)
            eps_term = _cpu_scalar(math.sqrt(size * self.variance_epsilon))
            scaled = torch.addcdiv(_cpu_scalar(0.0), hidden_states, torch.hypot(norm, eps_term), value=math.sqrt(size))
            return scaled * self.weight
        # (the dtype tests in Python: a no-op `.to()` still costs a dispatch, ~2 us, at every norm of a step)
        x = hidden_states if dtype == torch.float32 else hidden_states.float()
        mean_square_plus_eps = torch.add(
            _cpu_scalar(self.variance_epsilon), torch.sum(x * x, -1, keepdim=True), alpha=1.0 / x.shape[-1]
        )
        x = x * torch.rsqrt(mean_square_plus_eps)
        return self.weight * (x if dtype == torch.float32 else x.to(dtype))


class CharLMLinear(nn.Linear):
    """`nn.Linear` (the same parameter, state dict and behaviour) with a fast path for generation on the CPU.

    At a generation step a layer multiplies a handful of rows (one at batch 1) by its weight. `nn.Linear` multiplies
    by the transpose of its (out, in) weight, and for so few rows the CPU BLAS (MKL) takes longer with the transposed
    operand than with a contiguous (in, out) matrix (measured 26-31 against 17-20 us per call through `torch.matmul`
    at batch 1 on the tiny preset's shapes, one thread): what GPT-2's `Conv1D` layout gets for free. Inside
    `generate()` on the CPU (`CharLMGenerationMixin._generation_weights`) each layer holds a contiguous transposed
    copy of its weight, made at the start of that call and dropped at its end, and multiplies inputs of at most
    `FEW_ROWS` rows by it when no gradient is recorded; everything else (training, prefill of a long prompt, the GPU, a
    call outside `generate()`) is `F.linear`. The same products within float32 rounding; greedy text identical in the
    tests.
    """

    weight_t: torch.Tensor | None = None  # set by _generation_weights for the length of one generate() call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight_t = self.weight_t
        if weight_t is not None and x.numel() <= FEW_ROWS * x.shape[-1] and not torch.is_grad_enabled():
            # (matmul folds the leading dimensions in one call: an explicit reshape, mm and view cost as much as
            # the transposed product saved)
            out = torch.matmul(x, weight_t)
            return out if self.bias is None else out + self.bias
        return F.linear(x, self.weight, self.bias)


_CPU_SCALARS: dict[float, torch.Tensor] = {}


def _cpu_scalar(value: float) -> torch.Tensor:
    """A zero-dimensional float32 CPU tensor holding `value`, made once per value (a CPU scalar tensor combines with
    tensors on any device, as a Python number does, without being wrapped into a new tensor at each call)."""
    scalar = _CPU_SCALARS.get(value)
    if scalar is None:
        scalar = _CPU_SCALARS[value] = torch.tensor(value, dtype=torch.float32, device="cpu")
    return scalar


def sequence_starts(
    shape: tuple[int, int], attention_mask: torch.Tensor | None, position_ids: torch.LongTensor | None, device: torch.device
) -> torch.Tensor | None:
    """(B, T) True where position t does not continue the sequence of position t-1: the row's first position, a
    change between padding and text (either side of it), a packed sequence's position 0. `None` when the rows are
    plain single sequences (no padding, no packing): only the first position starts one."""
    B, T = shape
    starts = None
    if attention_mask is not None and attention_mask.ndim == 2 and not bool(attention_mask.all()):
        real = attention_mask[:, -T:].bool().to(device)
        starts = F.pad(real[:, 1:] != real[:, :-1], (1, 0), value=True)
    if position_ids is not None:
        first = position_ids.expand(B, T).to(device) == 0
        starts = first if starts is None else starts | first
    return starts


class CharLMBigramEmbedding(nn.Module):
    """Hashed character-bigram features (`config.bigram_buckets`): position t reads an embedding of the pair
    (character t-1, character t), projected to the hidden size. The first character of a sequence pairs with a
    boundary id, and so does a character after padding or at a packed sequence's start (position 0)."""

    # a multiplicative hash (Knuth's constant): consecutive ids land far apart, and the products stay in int64
    MULTIPLIER = 2654435761

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.num_buckets = config.bigram_buckets
        self.embed = nn.Embedding(config.bigram_buckets, config.bigram_embedding_size)
        self.proj = nn.Linear(config.bigram_embedding_size, config.hidden_size, bias=False)
        self.proj.starts_at_zero = True

    def bucket_ids(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, position_ids: torch.LongTensor | None = None
    ) -> torch.LongTensor:
        """(B, T) bucket of each position's (previous, current) pair; the previous id is 0 at a boundary."""
        previous = F.pad(input_ids[:, :-1] + 1, (1, 0))
        starts = sequence_starts(input_ids.shape, attention_mask, position_ids, input_ids.device)
        if starts is not None:
            previous = previous.masked_fill(starts, 0)
        return (previous * self.MULTIPLIER + input_ids) % self.num_buckets

    def forward(
        self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None, position_ids: torch.LongTensor | None = None
    ) -> torch.Tensor:
        return self.proj(self.embed(self.bucket_ids(input_ids, attention_mask, position_ids)))  # (B, T, H)


class CharLMLexiconFeatures(nn.Module):
    """Lexicon features (`config.lexicon_max_length`): for every length l in 2..L, whether a word of the model's
    lexicon of l tokens begins at a position, continues through it (neither first nor last) or ends there; the
    3 (L - 1) indicators are projected to the hidden size (starting at zero) and added to the character embedding.

    The lexicon lives in two persistent buffers saved with the weights: `hashes`, the sorted hashes of its words'
    token ids, and `folds`, for each word a bitmask of the training folds it came from. Training on a lexicon built
    from the training data itself teaches the model that every word is in it; with folds (`lexicon_fold`, the fold
    of each training example), an example sees only the words found in the other folds (jackknifing), so that the
    features are as reliable in training as on unseen text. Without `lexicon_fold` (evaluation, prediction,
    pipelines) every word counts. A window never crosses padding or the start of a packed sequence.
    """

    # odd multipliers below 2**32, one per position of a word: with token ids below 2**22 (checked) the sum of the
    # at most 8 products stays below 2**57, and the length term (2**57 times the length) puts the sums of each
    # length in a range of their own, below 2**61: no int64 overflow, and words of different lengths never collide
    MULTIPLIERS = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 3432918353, 461845907, 2246822507)
    LENGTH_TERM = 1 << 57
    MAX_TOKEN_ID = (1 << 22) - 1

    def __init__(self, config: CharLMConfig):
        super().__init__()
        if config.vocab_size - 1 > self.MAX_TOKEN_ID:
            raise ValueError(
                f"CharLMConfig.vocab_size={config.vocab_size}: lexicon features hash token ids below 2**22 "
                f"({self.MAX_TOKEN_ID + 1}); this vocabulary is larger."
            )
        self.max_length = config.lexicon_max_length
        self.register_buffer("hashes", torch.full((config.lexicon_size,), -1, dtype=torch.long))
        self.register_buffer("folds", torch.zeros(config.lexicon_size, dtype=torch.long))
        self.proj = nn.Linear(3 * (self.max_length - 1), config.hidden_size, bias=False)
        self.proj.starts_at_zero = True

    @classmethod
    def hash_ids(cls, ids: Sequence[int]) -> int:
        """The hash of one word's token ids, as `forward` computes it for a window."""
        if not 2 <= len(ids) <= len(cls.MULTIPLIERS):
            raise ValueError(f"a lexicon word has 2 to {len(cls.MULTIPLIERS)} tokens, not {len(ids)}")
        if not all(0 <= i <= cls.MAX_TOKEN_ID for i in ids):
            raise ValueError(f"lexicon token ids are from 0 to {cls.MAX_TOKEN_ID}, got {list(ids)}")
        return len(ids) * cls.LENGTH_TERM + sum((i + 1) * m for i, m in zip(ids, cls.MULTIPLIERS))

    def set_entries(self, hashes: torch.Tensor, folds: torch.Tensor) -> None:
        """Replaces the lexicon (1D int64 tensors of equal length; sorted here)."""
        order = torch.argsort(hashes)
        device = self.hashes.device
        self.hashes = hashes[order].to(device=device, dtype=torch.long)
        self.folds = folds[order].to(device=device, dtype=torch.long)

    def indicators(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        lexicon_fold: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """(B, T, 3 (L - 1)) float: per length, begins / inside / ends indicators."""
        B, T = input_ids.shape
        shifted = input_ids + 1
        usable = torch.ones_like(input_ids, dtype=torch.bool)
        if attention_mask is not None and attention_mask.ndim == 2:
            usable = attention_mask[:, -T:].bool().to(input_ids.device)
        starts = sequence_starts(input_ids.shape, attention_mask, position_ids, input_ids.device)
        continues = usable if starts is None else usable & ~starts  # a window's later tokens may not start a sequence
        other_folds = None
        if lexicon_fold is not None:
            # the bits of the other folds: this example's own fold bit cleared (a fold of -1 clears none)
            own = lexicon_fold.to(input_ids.device).view(B, 1)
            other_folds = ~torch.where(own >= 0, torch.ones_like(own) << own.clamp(min=0), torch.zeros_like(own))
        size = self.hashes.shape[0]
        out = []
        for length in range(2, self.max_length + 1):
            n = T - length + 1
            if n <= 0 or size == 0:
                out.extend([torch.zeros(B, T, dtype=torch.bool, device=input_ids.device)] * 3)
                continue
            h = torch.full((B, n), length * self.LENGTH_TERM, dtype=torch.long, device=input_ids.device)
            ok = usable[:, :n]
            for j in range(length):
                h = h + shifted[:, j : j + n] * self.MULTIPLIERS[j]
                if j:
                    ok = ok & continues[:, j : j + n]
            index = torch.searchsorted(self.hashes, h).clamp_(max=size - 1)
            found = (self.hashes[index] == h) & ok
            if other_folds is not None:  # a word found in some other fold
                found = found & ((self.folds[index] & other_folds) != 0)
            begins = F.pad(found, (0, length - 1))
            ends = F.pad(found, (length - 1, 0))
            inside = torch.zeros_like(begins)
            for k in range(1, length - 1):
                inside = inside | F.pad(found, (k, length - 1 - k))
            out.extend([begins, inside, ends])
        return torch.stack(out, dim=-1).to(self.proj.weight.dtype)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        lexicon_fold: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        return self.proj(self.indicators(input_ids, attention_mask, position_ids, lexicon_fold))  # (B, T, H)


class CharLMNgramFeatures(nn.Module):
    """Hashed character n-gram indicator features read straight into the head's scores (`config.feature_buckets`):
    the features of a linear tagger or classifier (a CRF's window of characters and character pairs, a TF-IDF
    classifier's character 1-3-grams), trained with the network, whose scores they add to: the "wide" part of a
    wide-and-deep model.

    `templates` are tuples of offsets: `(0,)` is the character itself, `(-1, 0)` the pair of the previous and this
    character. A position outside the text (before its first or after its last real token, padding included) reads
    a boundary id. Each (template, characters) combination is hashed into one of `config.feature_buckets` rows of
    per-label weights, which start at zero: the head starts out computing what it computes without them.
    """

    # odd multipliers below 2**32 (xxHash's primes): with ids below 2**22 every product and their sum stay inside int64
    MULTIPLIERS = (2654435761, 2246822519, 3266489917, 668265263)

    def __init__(self, config: CharLMConfig, templates: tuple[tuple[int, ...], ...]):
        super().__init__()
        self.num_buckets = config.feature_buckets
        self.templates = templates
        self.weight = nn.Embedding(config.feature_buckets, config.num_labels)
        self.weight.starts_at_zero = True
        self.reach = max(abs(o) for template in templates for o in template)

    def bucket_ids(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None) -> torch.LongTensor:
        """(B, T, len(templates)) bucket of each position's features."""
        B, T = input_ids.shape
        shifted = input_ids + 1  # 0: the boundary
        if attention_mask is not None:
            shifted = shifted.masked_fill(~attention_mask[:, -T:].bool().to(shifted.device), 0)
        r = self.reach
        padded = F.pad(shifted, (r, r))
        buckets = []
        for index, template in enumerate(self.templates):
            h = torch.full_like(input_ids, (index + 1) * self.MULTIPLIERS[0])
            for j, offset in enumerate(template):
                h = h + padded[:, r + offset : r + offset + T] * self.MULTIPLIERS[1 + j]
            buckets.append((h ^ (h >> 29)) % self.num_buckets)
        return torch.stack(buckets, dim=-1)

    def forward(self, input_ids: torch.LongTensor | None, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, num_labels): the summed weights of each position's features."""
        if input_ids is None:
            raise ValueError(
                f"This model reads character n-gram features (config.feature_buckets={self.num_buckets}), which are "
                "computed from input_ids: pass input_ids, not inputs_embeds."
            )
        return self.weight(self.bucket_ids(input_ids, attention_mask)).sum(-2)


class CharLMRotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer); returns `cos, sin` of shape (B, T, 1, 1, head_dim) for `apply_rotary`
    (broadcast over the q / k pair and the heads of the attention's (B, T, 3, nh, hd) projection).

    The tables for positions 0..max_position_embeddings-1 are computed once: each call is then one lookup instead
    of a matmul, a concatenation and two transcendental functions per step. `sin` comes with its first half
    negated, so that the rotation is `x * cos + x.roll(head_dim / 2) * sin` (no `rotate_half` concatenation).
    """

    inv_freq: torch.Tensor
    cos_cached: torch.Tensor
    sin_cached: torch.Tensor

    def __init__(self, config: CharLMConfig):
        super().__init__()
        head_dim = config.hidden_size // config.num_attention_heads
        self.base = config.rope_theta
        self.head_dim = head_dim
        self.max_positions = config.max_position_embeddings
        self.register_buffer("inv_freq", self.compute_inv_freq(), persistent=False)
        cos, sin = self.compute_tables()
        self.register_buffer("cos_cached", cos, persistent=False)
        self.register_buffer("sin_cached", sin, persistent=False)

    def compute_inv_freq(self, device: torch.device | None = None) -> torch.Tensor:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float() / self.head_dim
        return 1.0 / (self.base**exponents)

    def _cos_sin(self, positions: torch.Tensor, inv_freq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[..., None] * inv_freq.float()  # (..., D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (..., D)
        sign = torch.ones(self.head_dim, device=emb.device)
        sign[: self.head_dim // 2] = -1.0  # rotate_half(x) * sin == x.roll(D/2) * (sign * sin)
        return emb.cos(), emb.sin() * sign

    def compute_tables(self, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(self.max_positions, device=device)
        cos, sin = self._cos_sin(positions, self.compute_inv_freq(device))  # (P, D) each
        # stored as (P, 1, 1, D): a lookup gives the (B, T, 1, 1, D) that `apply_rotary` broadcasts, with no
        # unsqueeze per call (four operations per generated token)
        return cos[:, None, None], sin[:, None, None]

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, position_ids: torch.Tensor, max_position: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`max_position`: the largest of `position_ids` if the caller knows it (saves a reduction per step). A caller
        that leaves the check to the table lookup (on the CPU an index past the table raises `IndexError`) passes
        any value inside the table."""
        if max_position is None:
            max_position = int(position_ids.max()) if position_ids.numel() else 0
        if max_position >= self.cos_cached.shape[0]:
            cos, sin = self._cos_sin(position_ids, self.inv_freq)  # past the table (a caller that skips the check)
            cos, sin = cos[:, :, None, None], sin[:, :, None, None]
        else:
            cos, sin = self.cos_cached[position_ids], self.sin_cached[position_ids]  # (B, T, 1, 1, D)
        if cos.dtype != x.dtype:
            cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        return cos, sin


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates the last dimension of `x` by the angles of `cos` / `sin` (from `CharLMRotaryEmbedding`, `sin`
    sign-folded), broadcasting them over the dimensions in between."""
    if x.shape[1] == 1:
        # a generation step (one position per row): the halves swapped as one flip of a (2, head_dim / 2) view,
        # where roll's CPU kernel (two slices and a concatenation) costs three times as much; on the strided
        # (B, T, 2, nh, hd) slice of a training batch roll is the faster of the two. Both are exact.
        swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)
    else:
        swapped = x.roll(x.shape[-1] // 2, dims=-1)
    return torch.addcmul(x * cos, swapped, sin)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention on (B, nh, T, hd) tensors; `attention_mask` is additive, (B, 1, T, S)."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, nh, T, S)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)  # (B, nh, T, hd)
    return attn_output.transpose(1, 2).contiguous(), attn_weights  # (B, T, nh, hd)


# ----------------------------------------------------------------------------------------------------------------
# Attention, MLP, transformer block, recurrent encoder
# ----------------------------------------------------------------------------------------------------------------


class CharLMAttention(nn.Module):
    """Causal self-attention with rotary positions and a KV cache.

    q, k and v come from one fused projection `qkv_proj` (H -> 3H, nanoGPT's `c_attn`): one matmul instead of
    three. Checkpoints store the three matrices separately, as `q_proj` / `k_proj` / `v_proj` (the layout of
    every checkpoint written before the fusion): `from_pretrained` concatenates them on load and `save_pretrained`
    splits them again (the weight conversion registered below this class). A subclass that overrides `forward`
    (the decoder's cross-attention: q from the decoder, k and v from the encoder) gets the three separate
    projections instead, since it cannot use the fused one.
    """

    def __init__(self, config: CharLMConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        self.fused_qkv = type(self).forward is CharLMAttention.forward
        if self.fused_qkv:
            self.qkv_proj = CharLMLinear(config.hidden_size, 3 * config.hidden_size, bias=False)
        else:
            self.q_proj = CharLMLinear(config.hidden_size, config.hidden_size, bias=False)
            self.k_proj = CharLMLinear(config.hidden_size, config.hidden_size, bias=False)
            self.v_proj = CharLMLinear(config.hidden_size, config.hidden_size, bias=False)
        self.o_proj = CharLMLinear(config.hidden_size, config.hidden_size, bias=False)
        self.o_proj.is_residual_projection = True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # torch's load_state_dict on a saved file (the Trainer's resume_from_checkpoint and load_best_model_at_end
        # read model.safetensors that way, past from_pretrained's conversion) gets the checkpoint layout: fuse it here
        parts = [f"{prefix}{name}_proj.weight" for name in "qkv"]
        if self.fused_qkv and all(part in state_dict for part in parts):
            state_dict[f"{prefix}qkv_proj.weight"] = torch.cat([state_dict.pop(part) for part in parts], dim=0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
        is_causal: bool = True,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(B, T, 3, -1, self.head_dim)  # (B, T, 3, nh, hd)
        # split, not indexing: its backward is one concatenation instead of zero-filled gradients added up
        qk, v = qkv.split((2, 1), dim=2)  # (B, T, 2, nh, hd), (B, T, 1, nh, hd)
        cos, sin = position_embeddings  # (B, T, 1, 1, hd)
        qk = apply_rotary(qk, cos, sin)  # q and k rotated in one pass
        q, k = qk.permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hd) each
        v = v.squeeze(2).transpose(1, 2)  # (B, nh, T, hd)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, nh, S, hd)
        return self.attend(q, k, v, attention_mask, is_causal, **kwargs)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attention_mask: torch.Tensor | None, is_causal: bool, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of (B, nh, T, hd) queries over (B, nh, S, hd) keys / values through the configured
        implementation, then the output projection; shared with the decoder's cross-attention."""
        B, _, T, _ = q.shape
        implementation = self.config._attn_implementation
        if implementation == "sdpa" and not kwargs and ALL_ATTENTION_FUNCTIONS.get("sdpa") is _SDPA_FORWARD:
            # the interface's sdpa_attention_forward with nothing to adapt (no grouped heads, no extra arguments):
            # torch's kernel directly, the same call, without a wrapper's ~10 us per layer and generated token
            is_causal = T > 1 and attention_mask is None and is_causal
            if is_causal and k.shape[2] > T:  # (as the wrapper does: a prefill into a preallocated cache)
                k, v = k[:, :, :T], v[:, :, :T]
            attn_output = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attention_mask, dropout_p=self.config.attention_dropout if self.training else 0.0,
                scale=self.scaling, is_causal=is_causal,
            ).transpose(1, 2)
            return self.o_proj(attn_output.reshape(B, T, -1)), None
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        attn_output, attn_weights = attention_interface(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.config.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=is_causal,
            **kwargs,
        )
        attn_output = attn_output.reshape(B, T, -1).contiguous()  # (B, T, H)
        return self.o_proj(attn_output), attn_weights


# Checkpoints keep q_proj / k_proj / v_proj (the layout of all checkpoints before the fused projection, and of
# those written since: save_pretrained reverts the conversion). Registered under the model type, so every CharLM
# class (and the remote-code copy of this file) loads both layouts; "self_attn." leaves cross-attention alone.
register_checkpoint_conversion_mapping(
    CharLMConfig.model_type,
    [
        WeightConverter(
            source_patterns=["self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"],
            target_patterns="self_attn.qkv_proj.weight",
            operations=[Concatenate(dim=0)],
        )
    ],
    overwrite=True,  # hf_charlm and a remote-code copy of this file may both be imported
)


class CharLMMLP(nn.Module):
    GELU_FAST_ROWS = 4

    def __init__(self, config: CharLMConfig):
        super().__init__()
        self.up_proj = CharLMLinear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = CharLMLinear(config.intermediate_size, config.hidden_size, bias=False)
        self.down_proj.is_residual_projection = True
        self.act_fn = ACT2FN[config.hidden_act]
        self.exact_gelu = config.hidden_act == "gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.up_proj(x)
        few_rows = h.numel() <= self.GELU_FAST_ROWS * h.shape[-1]
        if self.exact_gelu and few_rows and h.is_cpu and not torch.is_grad_enabled():
            # A generation step's few rows: torch's CPU GELU hands a contiguous float32 input to oneDNN, which costs
            # ~40 us per call on the tiny preset's 512 values against ~10 for torch's own kernel (one thread); the
            # oneDNN kernel is the faster one on a training batch, and torch has no per-call switch between them, only
            # the process-wide `torch.backends.mkldnn`. A non-contiguous input (a stride-0 expansion of the rows to
            # two copies) takes torch's own kernel: the same function, equal within float32 rounding. Doubling the
            # rows pays up to 4 of them (measured: 33 / 31 against 40 / 41 us at 1 / 4 rows, 47 against 44 at 8).
            return self.down_proj(F.gelu(h.expand(2, *h.shape))[0])
        return self.down_proj(self.act_fn(h))


class CharLMBlock(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: CharLMConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = CharLMAttention(config, layer_idx)
        self.post_attention_layernorm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = CharLMMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        is_causal: bool = True,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            is_causal=is_causal,
            **kwargs,
        )
        if self.training:  # (an nn.Dropout call per residual costs more than the step's arithmetic at generation)
            attn_out = self.dropout(attn_out)
        hidden_states = hidden_states + attn_out
        mlp_out = self.mlp(self.post_attention_layernorm(hidden_states))
        if self.training:
            mlp_out = self.dropout(mlp_out)
        return hidden_states + mlp_out, attn_weights


class CharLMGrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values live in a buffer with room for `growth` more positions: a generation
    step writes its new position in place instead of concatenating (copying) the whole cache, which at batch 1 is
    the largest cost of a step after the matmuls (and grows with the context).

    `keys` / `values` stay views of the filled part, so whatever reads or replaces them as for a `DynamicLayer`
    (beam reordering, cropping, batch selection, offloading) works unchanged: a tensor put there from outside is
    taken as the content of a new buffer at the next `update`. Inputs that require grad take `DynamicLayer`'s
    concatenation (an in-place write would overwrite values saved for backward).
    """

    growth = 256
    # below this many positions `DynamicLayer`'s concatenation is cheaper: two operations per layer and step
    # against the buffer's six (two slices and copies, two views), and the copy of a short cache costs less
    concatenate_below = 128

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._buffers, self._views = None, None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if key_states.requires_grad or value_states.requires_grad:
            self._buffers = None
            return super().update(key_states, value_states, *args, **kwargs)
        length = self.keys.shape[-2] if self.keys.ndim == 4 else 0
        needed = length + key_states.shape[-2]
        buffers = self._buffers
        if buffers is None and needed < self.concatenate_below:
            return super().update(key_states, value_states, *args, **kwargs)
        if (
            buffers is None
            or self._views is None
            or self.keys is not self._views[0]
            or self.values is not self._views[1]
            or needed > buffers[0].shape[-2]
            or buffers[0].shape[:2] != key_states.shape[:2]
        ):
            buffers = tuple(
                new.new_empty((*new.shape[:-2], needed + self.growth, new.shape[-1]))
                for new in (key_states, value_states)
            )
            if length:
                buffers[0][:, :, :length].copy_(self.keys)
                buffers[1][:, :, :length].copy_(self.values)
            self._buffers = buffers
        buffers[0][:, :, length:needed].copy_(key_states)
        buffers[1][:, :, length:needed].copy_(value_states)
        self.keys, self.values = buffers[0][:, :, :needed], buffers[1][:, :, :needed]
        self._views = (self.keys, self.values)
        return self.keys, self.values


def use_growing_layers(cache: Cache | None) -> Cache | None:
    """Gives a fresh `DynamicCache` made for this model (or the self-attention half of an `EncoderDecoderCache`)
    `CharLMGrowingLayer`s; any other cache, one that holds data or one that offloads, is left as it is."""
    if isinstance(cache, EncoderDecoderCache):
        use_growing_layers(cache.self_attention_cache)
    elif (
        type(cache) is DynamicCache
        and not getattr(cache, "offloading", False)
        and all(type(layer) is DynamicLayer and not layer.is_initialized for layer in cache.layers)
    ):
        cache.layers = [CharLMGrowingLayer() for _ in cache.layers]
        if getattr(cache, "layer_class_to_replicate", None) is DynamicLayer:
            cache.layer_class_to_replicate = CharLMGrowingLayer
    return cache


class CharLMRecurrentCache:
    """State of a recurrent backbone after the tokens seen so far, carried from one `forward` to the next.

    Holds the forward stack's state only: generation runs left to right, and the backward stack of a
    bidirectional model is never needed for it. `state` is `(h, c)` for an LSTM and `(h,)` for a GRU, each
    tensor of shape (num_layers, B, H).
    """

    is_compileable = False
    is_croppable = False  # a recurrent state cannot be rolled back (no assisted decoding)
    is_linear = (False,)  # generate() slices a continued prompt to the tokens the state has not seen

    def __init__(self, state: tuple[torch.Tensor, ...], seen_tokens: int):
        self.state = state
        self.seen_tokens = seen_tokens

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return self.seen_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.state = tuple(s.index_select(1, beam_idx.to(s.device)) for s in self.state)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.state = tuple(s.repeat_interleave(repeats, dim=1) for s in self.state)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.state = tuple(s[:, indices] for s in self.state)


def _run_masked_rnn(
    rnn: Callable,
    is_lstm: bool,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    state: tuple[torch.Tensor, ...] | None,
    need_state: bool = True,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """Runs `rnn` (an `nn.LSTM` / `nn.GRU` or a callable with its signature) over the real tokens of each row
    only, wherever the padding is (left or right).

    The real tokens of each row are gathered to the front, packed with their lengths, run, and the outputs
    scattered back to their positions; padding positions get zeros and never touch the state. Rows without
    a real token keep their incoming state.

    On the CPU, when the final state is not asked for (`need_state=False`: training and scoring, no cache), the
    gathered rows run unpacked: with the real tokens first, the padding after them cannot reach their outputs,
    and only the final state (which would have read the padding) differs. The packed CPU kernel's backward
    allocates a zero gradient of the whole input at every time step (quadratic in the length: a backward of 5.6 s
    against 0.54 s unpacked for a 32 x 287 batch of a one-layer BiLSTM); `None` is returned as the state.
    """
    hx = None if state is None else (state if is_lstm else state[0])
    if mask is None or bool(mask.all()):
        out, h = rnn(x, hx)
        return out, (h if isinstance(h, tuple) else (h,))
    B, T, _ = x.shape
    mask = mask.bool()
    lengths = mask.sum(dim=1)  # (B,)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, T): real positions first, in order
    gather_idx = order.unsqueeze(-1).expand(-1, -1, x.shape[-1])  # (B, T, H_in)
    compact = x.gather(1, gather_idx)
    valid = (torch.arange(T, device=x.device)[None, :] < lengths[:, None]).unsqueeze(-1)  # (B, T, 1)
    if not need_state and x.device.type == "cpu":
        out_compact, _ = rnn(compact, hx)
        out_compact = out_compact * valid
        out = torch.zeros_like(out_compact).scatter(1, order.unsqueeze(-1).expand(-1, -1, out_compact.shape[-1]), out_compact)
        return out, None
    packed = pack_padded_sequence(compact, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
    out_packed, h = rnn(packed, hx)
    out_compact, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)  # (B, T, H)
    out_compact = out_compact * valid
    out = torch.zeros_like(out_compact).scatter(1, order.unsqueeze(-1).expand(-1, -1, out_compact.shape[-1]), out_compact)
    h = h if isinstance(h, tuple) else (h,)
    if state is not None and bool((lengths == 0).any()):
        keep = (lengths == 0).view(1, B, 1)
        h = tuple(torch.where(keep, old, new) for old, new in zip(state, h))
    return out, h


class CharLMRecurrentStack(GradientCheckpointingLayer):
    """A stack of LSTM or GRU layers reading one direction, followed by an RMS norm."""

    def __init__(self, config: CharLMConfig):
        super().__init__()
        rnn_class = nn.LSTM if config.backbone == "lstm" else nn.GRU
        self.rnn = rnn_class(
            config.hidden_size,
            config.hidden_size,
            num_layers=config.num_hidden_layers,
            batch_first=True,
            dropout=config.hidden_dropout_prob if config.num_hidden_layers > 1 else 0.0,
        )
        self.norm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def _layer(self, index: int) -> Callable:
        """Layer `index` of the fused stack as a one-layer RNN on the same parameters (no copy), so that the
        per-layer outputs can be read without a second set of weights."""
        rnn = self.rnn
        template = type(rnn)(rnn.input_size, rnn.hidden_size, num_layers=1, batch_first=True, device="meta")
        params = {name: getattr(rnn, name.replace("_l0", f"_l{index}")) for name, _ in template.named_parameters()}
        return lambda inputs, hx: functional_call(template, params, (inputs, hx))

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None = None,
        state: tuple[torch.Tensor, ...] | None = None,
        reverse: bool = False,
        output_layers: bool = False,
        need_state: bool = True,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """Returns the normed output (B, T, H), the new state and, with `output_layers`, every layer's output
        (the last one normed). The fused cuDNN / MKL stack runs unless the layers' outputs are asked for. With
        `need_state=False` the state may be `None` (see `_run_masked_rnn`)."""
        if reverse:  # read right to left: flip time, run, flip back
            hidden_states = hidden_states.flip(1)
            mask = None if mask is None else mask.flip(1)
        is_lstm = isinstance(self.rnn, nn.LSTM)
        layers = None
        if not output_layers:
            out, new_state = _run_masked_rnn(self.rnn, is_lstm, hidden_states, mask, state, need_state)
        else:
            out, layers, states = hidden_states, [], []
            for index in range(self.rnn.num_layers):
                if index > 0:  # the fused stack's dropout between layers
                    out = F.dropout(out, p=self.rnn.dropout, training=self.training)
                layer_state = None if state is None else tuple(s[index : index + 1] for s in state)
                out, layer_new = _run_masked_rnn(self._layer(index), is_lstm, out, mask, layer_state, need_state)
                layers.append(out)
                states.append(layer_new)
            # (L, B, H) each
            new_state = None if states[0] is None else tuple(torch.cat(parts) for parts in zip(*states))
        out = self.norm(out)
        if layers is not None:
            layers[-1] = out
            layers = tuple(layer.flip(1) for layer in layers) if reverse else tuple(layers)
        return (out.flip(1) if reverse else out), new_state, layers


def _tag_parts(label: str) -> tuple[str, str | None] | None:
    """("B", "PER") for "B-PER", ("S", None) for "S", ("O", None) for "O"; None for a name of no tag scheme."""
    head, _, kind = str(label).partition("-")
    if head.upper() not in ("B", "I", "M", "E", "S", "O") or (head.upper() == "O" and kind):
        return None
    return head.upper(), (kind or None)


def allowed_transitions(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(allowed[a, b], allowed_start[b], allowed_end[a]) for the tag scheme the label names follow.

    BIO / IOB2 (`B-X`, `I-X`, `O`): `I-X` only after `B-X` or `I-X`, never first. BMES / BIOES (`B`, `M` or `I`,
    `E`, `S`, optionally typed, and `O`): inside and end tags only after `B-X` or an inside tag of the same type;
    `B`, `S` and `O` only after `E`, `S` or `O` (or first); the last tag is `E`, `S` or `O`. Names that follow
    neither scheme (`LABEL_0`, `positive`) allow everything.
    """
    n = len(labels)
    parts = [_tag_parts(label) for label in labels]
    everything = torch.ones(n, n, dtype=torch.bool), torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
    if n == 0 or any(p is None for p in parts):
        return everything
    heads = {h for h, _ in parts}
    if heads <= {"B", "I", "O"}:
        allowed = torch.tensor([[not (hb == "I" and not (ha in "BI" and ta == tb)) for hb, tb in parts] for ha, ta in parts])
        return allowed, torch.tensor([h != "I" for h, _ in parts]), torch.ones(n, dtype=torch.bool)

    def inside(h: str) -> bool:
        return h in ("I", "M")

    def rule(a: tuple[str, str | None], b: tuple[str, str | None]) -> bool:
        (ha, ta), (hb, tb) = a, b
        if inside(hb) or hb == "E":
            return (ha == "B" or inside(ha)) and ta == tb
        return ha in ("E", "S", "O")

    allowed = torch.tensor([[rule(a, b) for b in parts] for a in parts])
    start = torch.tensor([h in ("B", "S", "O") for h, _ in parts])
    end = torch.tensor([h in ("E", "S", "O") for h, _ in parts])
    return allowed, start, end


class CharLMCRF(nn.Module):
    """Linear-chain CRF over the real positions of each row (pure torch: it ships with the model).

    Scores are emissions + transition / start / end scores; transitions the tag scheme forbids (derived from
    `config.id2label` by `allowed_transitions`) are impossible. The loss is the negative log-likelihood with
    positions labelled -100 left unobserved (summed over: the special tokens and padding of a char model
    simply carry no label); decoding is Viterbi, exposed as max-marginals so that their argmax is the best path.
    """

    allowed: torch.Tensor
    allowed_start: torch.Tensor
    allowed_end: torch.Tensor

    def __init__(self, config: CharLMConfig):
        super().__init__()
        n = config.num_labels
        self.labels = [config.id2label[i] for i in range(n)]
        self.transitions = nn.Parameter(torch.zeros(n, n))  # (from, to)
        self.start_transitions = nn.Parameter(torch.zeros(n))
        self.end_transitions = nn.Parameter(torch.zeros(n))
        for name, value in zip(("allowed", "allowed_start", "allowed_end"), allowed_transitions(self.labels)):
            self.register_buffer(name, value, persistent=False)

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        never = -1e4  # finite: a forbidden step costs more than any path's emissions, without inf - inf = nan
        return (
            self.transitions.masked_fill(~self.allowed, never),
            self.start_transitions.masked_fill(~self.allowed_start, never),
            self.end_transitions.masked_fill(~self.allowed_end, never),
        )

    @staticmethod
    def _compact(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Real positions of each row moved to the front (left or right padding alike): (x, lengths, order)."""
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # (B, T)
        index = order if x.ndim == 2 else order.unsqueeze(-1).expand_as(x)
        return x.gather(1, index), mask.sum(1), order

    def log_likelihood(self, emissions: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(labels | x) per row, (B,), with -100 labels unobserved; emissions (B, T, L), mask (B, T)."""
        emissions, lengths, _ = self._compact(emissions.float(), mask)
        labels, _, _ = self._compact(labels, mask)
        B, T, L = emissions.shape
        trans, start, end = self._scores()
        observed = labels != -100  # (B, T)
        # per position, the labels a path may take: the gold one where known, any where not
        fits = ~observed.unsqueeze(-1) | (torch.arange(L, device=labels.device) == labels.clamp(min=0).unsqueeze(-1))
        penalty = torch.zeros_like(emissions).masked_fill(~fits, -1e4)
        # both partition functions in one pass over the positions (the loop, not the batch, is what costs)
        both = self._forward_algorithm(torch.cat([emissions, emissions + penalty]), lengths.repeat(2), trans, start, end)
        all_paths, gold_paths = both[:B], both[B:]
        return gold_paths - all_paths

    @staticmethod
    def _forward_algorithm(em, lengths, trans, start, end) -> torch.Tensor:
        B, T, L = em.shape
        alpha = start + em[:, 0]  # (B, L)
        for t in range(1, T):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans, dim=1) + em[:, t]  # (B, L)
            alpha = torch.where((t < lengths).unsqueeze(-1), step, alpha)
        return torch.logsumexp(alpha + end, dim=-1)  # (B,)

    def max_marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, L): the score of the best path through each (position, label); argmax over labels is the
        Viterbi path. Padding positions get the emissions."""
        compact, lengths, order = self._compact(emissions.float(), mask)
        B, T, L = compact.shape
        trans, start, end = self._scores()
        alpha = [start + compact[:, 0]]
        for t in range(1, T):
            alpha.append((alpha[-1].unsqueeze(2) + trans).amax(dim=1) + compact[:, t])
        beta = [None] * T
        # beta[t]: best score of the rest of the path after label y at t (the end score at each row's last position)
        last = (lengths - 1).clamp(min=0)
        nxt = end.expand(B, L).clone()
        for t in range(T - 1, -1, -1):
            here = torch.where((t == last).unsqueeze(-1), end.expand(B, L), nxt)
            beta[t] = here
            if t > 0:
                nxt = (trans.unsqueeze(0) + (compact[:, t] + here).unsqueeze(1)).amax(dim=2)
        scores = torch.stack(alpha, 1) + torch.stack(beta, 1)  # (B, T, L)
        real = torch.arange(T, device=mask.device)[None, :] < lengths[:, None]
        scores = torch.where(real.unsqueeze(-1), scores, compact)
        out = torch.empty_like(scores).scatter_(1, order.unsqueeze(-1).expand_as(scores), scores)
        return out.to(emissions.dtype)

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The Viterbi label path of each row's real positions."""
        best = self.max_marginals(emissions, mask).argmax(-1)
        return [row[m].tolist() for row, m in zip(best, mask.bool())]


# ----------------------------------------------------------------------------------------------------------------
# Pretrained base and backbone model
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CharLMModelOutput(ModelOutput):
    """
    last_hidden_state: (B, T, H), or (B, T, 2H) for a bidirectional recurrent backbone read with `is_causal=False`.
    cache: the transformer's KV cache or a `CharLMRecurrentCache`.
    backward_hidden_state: (B, T, H), the backward stack of a bidirectional recurrent backbone, when asked for.
    """

    last_hidden_state: torch.Tensor | None = None
    cache: Cache | CharLMRecurrentCache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    backward_hidden_state: torch.Tensor | None = None


class CharLMPreTrainedModel(PreTrainedModel):
    config_class = CharLMConfig
    config: CharLMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CharLMBlock", "CharLMRecurrentStack"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = False
    _supports_attention_backend = True
    _can_compile_fullgraph = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # generate() inspects `forward`'s signature at every step of a model registered for the Auto classes (its
        # remote-code `cache_position` check), about 0.1 ms a token at batch 1: computed once here instead
        forward = cls.__dict__.get("forward")
        if forward is not None and getattr(forward, "__signature__", None) is None:
            forward.__signature__ = inspect.signature(forward)

    def _prepare_cache_for_generation(self, generation_config, model_kwargs: dict, *args, **kwargs):
        # generate()'s own DynamicCache (not one the caller passed) writes each step in place (CharLMGrowingLayer)
        super()._prepare_cache_for_generation(generation_config, model_kwargs, *args, **kwargs)
        if not getattr(model_kwargs.get("cache"), "_is_user_defined", False):
            use_growing_layers(model_kwargs.get("cache"))

    def _supports_default_dynamic_cache(self) -> bool:
        # Recurrent backbones carry their own state object (CharLMRecurrentCache) instead of a KV cache.
        return not self.config.is_recurrent

    def _get_logits_processor(self, generation_config, *args, **kwargs):
        # (the generating heads; GenerationMixin comes later in their MRO) generated byte-fallback tokens must form
        # valid UTF-8, so that every sample decodes without U+FFFD: first in the list, before temperature / top-k
        # can leave only invalid bytes
        processors = super()._get_logits_processor(generation_config, *args, **kwargs)
        start = self.config.byte_token_start
        if start is not None and start + 256 <= self.config.vocab_size:
            processors.insert(0, CharLMUTF8LogitsProcessor(start, max_length=generation_config.max_length))
        return processors

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        here = os.path.dirname(os.path.abspath(__file__))
        # a corrector ships its pipeline: `pipeline(model=dir, trust_remote_code=True)` runs it without hf_charlm
        shipped = list(CORRECTION_PIPELINE_FILES) if self._declares_correction_pipeline(here) else []
        cls = type(self)
        if cls.__dict__.get("_saved_as_parent", False):
            # a backbone-specific subclass (CharLMRecurrentForCausalLM) is saved as the public class it stands for,
            # so that config.json's `architectures` and `auto_map` name that class, whatever the backbone
            self.__class__ = cls.__bases__[0]
        try:
            super().save_pretrained(save_directory, *args, **kwargs)
        finally:
            self.__class__ = cls
        # every file the config's auto_map names ships, whichever head was saved: a causal folder must also load as
        # AutoModelForSeq2SeqLM (warm start) with trust_remote_code (transformers copies only the saved class's
        # module and its imports). Where the package files are not beside this one (remote code), none is added.
        names = [reference.split(".")[0] + ".py" for reference in (getattr(self.config, "auto_map", None) or {}).values()]
        for name in names + shipped:
            source, target = os.path.join(here, name), os.path.join(save_directory, name)
            if os.path.isfile(source) and not os.path.exists(target):
                shutil.copyfile(source, target)
        # safetensors writes its files with mode 0600 (a private temporary file renamed into place); give the
        # weights the same permissions as every other file of the folder, i.e. what the umask allows.
        umask = os.umask(0)
        os.umask(umask)
        for name in os.listdir(save_directory):
            path = os.path.join(save_directory, name)
            if name.endswith((".safetensors", ".safetensors.index.json")) and os.path.isfile(path):
                os.chmod(path, 0o666 & ~umask)

    def _declares_correction_pipeline(self, here: str) -> bool:
        """For a text corrector (`finetuning_task` "text-correction", what the correction scripts record) whose
        pipeline file is at hand (the package, or a remote copy that came with it): write `custom_pipelines` into
        the config, the pipeline loading the model through the Auto class of its kind."""
        if getattr(self.config, "finetuning_task", None) != "text-correction":
            return False
        if not all(os.path.isfile(os.path.join(here, name)) for name in CORRECTION_PIPELINE_FILES):
            return bool(getattr(self.config, "custom_pipelines", None))
        self.config.custom_pipelines = correction_pipelines(self.config.is_encoder_decoder)
        return True

    def set_lexicon(self, words: "Iterable[str] | Mapping[str, int]", tokenizer) -> int:
        """Fills the lexicon of the lexicon features (`config.lexicon_max_length`; every ensemble member's) and
        sets `config.lexicon_size`; returns the number of entries.

        `words`: the lexicon's words, or a mapping from each word to the bitmask of the training folds it was found
        in (bit k: fold k; see `CharLMLexiconFeatures`); plain words count in every fold. Each word is tokenized
        with `tokenizer` (no special tokens); words of fewer than 2 or more than `lexicon_max_length` tokens are
        left out."""
        modules = [m for m in self.modules() if isinstance(m, CharLMLexiconFeatures)]
        if not modules:
            raise ValueError("This model has no lexicon features: set config.lexicon_max_length (2 to 8) first.")
        folds_of = words if isinstance(words, Mapping) else dict.fromkeys(words, -1)
        entries: dict[int, int] = {}
        longest = self.config.lexicon_max_length
        for word, folds in folds_of.items():
            if not isinstance(word, str):
                raise TypeError(f"lexicon words are strings, got {type(word).__name__}: {word!r}")
            ids = tokenizer(word, add_special_tokens=False)["input_ids"]
            if 2 <= len(ids) <= longest:
                key = CharLMLexiconFeatures.hash_ids(ids)
                entries[key] = entries.get(key, 0) | int(folds)
        hashes = torch.tensor(list(entries), dtype=torch.long)
        masks = torch.tensor(list(entries.values()), dtype=torch.long)
        for module in modules:
            module.set_entries(hashes, masks)
        self.config.lexicon_size = len(entries)
        return len(entries)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)) and getattr(module, "starts_at_zero", False):
            # the bigram projection, the n-gram feature weights: a model loaded without them is unchanged
            init.zeros_(module.weight)
        elif isinstance(module, nn.Linear) and getattr(module, "is_residual_projection", False):
            # GPT-2's depth scaling: the projections that write into the residual stream get std / sqrt(2 L).
            init.normal_(module.weight, mean=0.0, std=std / math.sqrt(2 * self.config.num_hidden_layers))
        elif isinstance(module, CharLMRMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, CharLMLexiconFeatures):
            # an empty lexicon (no hash is negative) until set_lexicon or a checkpoint fills it
            init.constant_(module.hashes, -1)
            init.zeros_(module.folds)
        elif isinstance(module, CharLMCRF):
            for param in (module.transitions, module.start_transitions, module.end_transitions):
                init.zeros_(param)
            for name, value in zip(("allowed", "allowed_start", "allowed_end"), allowed_transitions(module.labels)):
                init.copy_(getattr(module, name), value)  # non-persistent buffers, rebuilt after an empty init
        elif isinstance(module, CharLMRotaryEmbedding):
            # a non-persistent buffer: from_pretrained builds the model empty and must recompute it
            init.copy_(module.inv_freq, module.compute_inv_freq(module.inv_freq.device))
            cos, sin = module.compute_tables(module.cos_cached.device)
            init.copy_(module.cos_cached, cos)
            init.copy_(module.sin_cached, sin)
        elif isinstance(module, nn.GRU):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)
        else:
            super()._init_weights(module)


class CharLMModel(CharLMPreTrainedModel):
    """The backbone: character embeddings, then transformer blocks or recurrent stacks; no head."""

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embed_bigrams = CharLMBigramEmbedding(config) if config.bigram_buckets else None
        self.embed_lexicon = CharLMLexiconFeatures(config) if config.lexicon_max_length else None
        self.embed_dropout = nn.Dropout(config.embedding_dropout)
        if config.is_recurrent:
            self.forward_rnn = CharLMRecurrentStack(config)
            self.backward_rnn = CharLMRecurrentStack(config) if config.bidirectional else None
        else:
            self.layers = nn.ModuleList([CharLMBlock(config, i) for i in range(config.num_hidden_layers)])
            self.norm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
            self.rotary_emb = CharLMRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | CharLMRecurrentCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        is_causal: bool = True,
        return_backward: bool = False,
        lexicon_fold: torch.LongTensor | None = None,
        **kwargs,
    ) -> CharLMModelOutput:
        r"""
        position_ids: (B, T). Positions restarting inside a row without an `attention_mask` (a padding-free batch
            from `DataCollatorWithFlattening`) mark separate sequences: attention stays within each one, and the
            recurrent backbones start each from a zero state.
        is_causal: `True` for language modelling (each position sees only its left context); `False` for the
            classification heads with `config.classifier_attention == "bidirectional"`: bidirectional attention, or
            both recurrent directions concatenated.
        return_backward: bidirectional recurrent backbone only: also run the backward stack and return its states
            as `backward_hidden_state` (what the causal LM's backward language model reads).
        lexicon_fold: (B,) with lexicon features (`config.lexicon_max_length`): each row's training fold, whose own
            words its lexicon features do not see (see `CharLMLexiconFeatures`); -1 or `None`: every word.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids and inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if self.embed_bigrams is not None:
            if input_ids is None:
                raise ValueError(
                    "This model reads character-bigram features (config.bigram_buckets > 0), which are computed from "
                    "input_ids: pass input_ids, not inputs_embeds."
                )
            inputs_embeds = inputs_embeds + self.embed_bigrams(input_ids, attention_mask, position_ids)
        if self.embed_lexicon is not None:
            if input_ids is None:
                raise ValueError(
                    "This model reads lexicon features (config.lexicon_max_length > 0), which are computed from "
                    "input_ids: pass input_ids, not inputs_embeds."
                )
            inputs_embeds = inputs_embeds + self.embed_lexicon(input_ids, attention_mask, position_ids, lexicon_fold)
        elif lexicon_fold is not None:
            raise ValueError("lexicon_fold was given, but this model has no lexicon features (config.lexicon_max_length=0).")
        B, T, _ = inputs_embeds.shape
        if attention_mask is not None and attention_mask.ndim == 2 and attention_mask.shape[0] != B:
            raise ValueError(f"attention_mask has batch size {attention_mask.shape[0]}, the input has {B}.")
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        output_hidden_states = bool(output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states)
        output_attentions = bool(output_attentions if output_attentions is not None else self.config.output_attentions)
        # (at inference the Dropout module call is skipped: it would return its input after a dispatch per token)
        hidden_states = self.embed_dropout(inputs_embeds) if self.training else inputs_embeds
        if self.config.is_recurrent:
            return self._forward_recurrent(
                hidden_states, attention_mask, position_ids, cache, use_cache, is_causal, return_backward, output_hidden_states
            )
        return self._forward_transformer(
            hidden_states, attention_mask, position_ids, cache, use_cache, is_causal, output_hidden_states, output_attentions, **kwargs
        )

    def _raise_too_long(self, needed: int, past: int, T: int) -> NoReturn:
        raise ValueError(
            f"Input of {needed} tokens ({past} cached + {T} new, or the largest position + 1) is longer than the "
            f"model accepts: max_position_embeddings={self.config.max_position_embeddings}. Truncate the text "
            f"(tokenizer(..., truncation=True, max_length={self.config.max_position_embeddings})) or use a "
            "sliding window."
        )

    def _forward_transformer(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.LongTensor | None,
        cache: Cache | None,
        use_cache: bool,
        is_causal: bool,
        output_hidden_states: bool,
        output_attentions: bool,
        **kwargs,
    ) -> CharLMModelOutput:
        B, T, _ = hidden_states.shape
        if not is_causal:
            cache, use_cache = None, False
        if use_cache and cache is None:
            cache = use_growing_layers(DynamicCache(config=self.config))
        past = cache.get_seq_length() if cache is not None else 0
        # the limit is on positions, not on the row: a padding-free row packs several sequences, each from 0. Given
        # positions on the CPU are checked by the rotary table lookup itself (an index past the table raises
        # there), which saves a reduction and a synchronisation at every generated token; elsewhere (CUDA reports
        # a bad index as a device-side assert) they are checked here
        given = position_ids is not None and position_ids.numel() > 0
        needed = past + T if not given else None if position_ids.device.type == "cpu" else int(position_ids.max()) + 1
        if needed is not None and needed > self.config.max_position_embeddings:
            self._raise_too_long(needed, past, T)
        if position_ids is None:
            if attention_mask is not None and attention_mask.ndim == 2:
                # count only real tokens, so that a left-padded row gets the positions it would have alone
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]  # (B, T)
            else:
                position_ids = torch.arange(past, past + T, device=hidden_states.device).unsqueeze(0).expand(B, -1)
        elif position_ids.shape[0] != B:
            position_ids = position_ids.expand(B, -1)

        if T == 1 and (attention_mask is None or (attention_mask.ndim == 2 and bool(attention_mask.all()))):
            # one new token (a generation step) and no padding anywhere: it sees every cached key, no mask to
            # build (create_causal_mask would answer None too, after ~50 us of checks per generated token)
            mask = None
        elif is_causal:
            mask = create_causal_mask(
                config=self.config,
                inputs_embeds=hidden_states,
                attention_mask=attention_mask,
                # an empty cache changes nothing in the mask, but would stop transformers from reading packed
                # sequences off the positions (which it does only without a cache)
                cache=cache if past > 0 else None,
                position_ids=position_ids,
            )
        else:
            segments = None
            if attention_mask is None and cache is None:
                segments = find_packed_sequence_indices(position_ids)
            if segments is not None:  # packed rows: each sequence sees only itself, in both directions
                same = segments[:, :, None] == segments[:, None, :]  # (B, T, T)
                mask = torch.zeros(same.shape, dtype=hidden_states.dtype, device=hidden_states.device)
                mask = mask.masked_fill(~same, torch.finfo(hidden_states.dtype).min)[:, None]  # (B, 1, T, T)
            else:
                mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        try:
            # (needed unknown: 0, any position inside the table, so that the lookup itself checks)
            position_embeddings = self.rotary_emb(hidden_states, position_ids, max_position=0 if needed is None else needed - 1)
        except IndexError:
            largest = None if needed is not None else int(position_ids.max())
            if largest is None or largest < self.config.max_position_embeddings:
                raise  # not a position past the limit (a negative one, say): torch's message names the index
            self._raise_too_long(largest + 1, past, T)

        all_hidden = [hidden_states] if output_hidden_states else None
        all_attn = [] if output_attentions else None
        for layer in self.layers:
            hidden_states, attn_weights = layer(
                hidden_states,
                position_embeddings=position_embeddings,
                attention_mask=mask,
                cache=cache,
                is_causal=is_causal,
                **kwargs,
            )
            if output_hidden_states:
                all_hidden.append(hidden_states)
            if output_attentions:
                all_attn.append(attn_weights)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden[-1] = hidden_states
        return CharLMModelOutput(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
        )

    def _forward_recurrent(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.LongTensor | None,
        cache: CharLMRecurrentCache | None,
        use_cache: bool,
        is_causal: bool,
        return_backward: bool,
        output_hidden_states: bool,
    ) -> CharLMModelOutput:
        B, T, _ = hidden_states.shape
        if cache is not None and not isinstance(cache, CharLMRecurrentCache):
            raise TypeError(f"A {self.config.backbone} backbone takes a CharLMRecurrentCache, got {type(cache).__name__}.")
        mask = attention_mask[:, -T:] if attention_mask is not None else None  # the columns of the new tokens
        segment_lengths = None
        if position_ids is not None and attention_mask is None and (cache is None or cache.seen_tokens == 0):
            # a padding-free batch (positions restarting inside a row): every sequence starts from a zero state,
            # as if it were a row of its own, so the packed sequences are run as the rows of a padded batch
            segments = find_packed_sequence_indices(position_ids.expand(B, -1))
            if segments is not None:
                segment_lengths = [torch.unique_consecutive(row, return_counts=True)[1].tolist() for row in segments]
                pieces = [piece for b in range(B) for piece in torch.split(hidden_states[b], segment_lengths[b])]
                hidden_states = pad_sequence(pieces, batch_first=True)  # (N, L, H): one row per sequence
                lengths = torch.tensor([len(p) for p in pieces], device=hidden_states.device)
                mask = torch.arange(hidden_states.shape[1], device=hidden_states.device)[None, :] < lengths[:, None]
                if cache is not None:
                    raise ValueError("A padding-free (packed) batch cannot continue from a recurrent cache.")

        state = cache.state if cache is not None else None
        forward_out, state, forward_layers = self.forward_rnn(
            hidden_states, mask, state, output_layers=output_hidden_states, need_state=use_cache
        )
        backward_out, backward_layers = None, None
        run_backward = self.backward_rnn is not None and (return_backward or not is_causal)
        if run_backward:
            if cache is not None and cache.seen_tokens > 0:
                raise ValueError("The backward stack reads the whole text at once: it cannot continue from a cache.")
            backward_out, _, backward_layers = self.backward_rnn(
                hidden_states, mask, None, reverse=True, output_layers=output_hidden_states, need_state=False
            )
        both = not is_causal and backward_out is not None
        last = torch.cat([forward_out, backward_out], dim=-1) if both else forward_out  # (B, T, 2H) or (B, T, H)
        all_hidden = None
        if output_hidden_states:
            # the embeddings, then every layer's output as the head reads it (both directions concatenated for
            # the bidirectional heads), the last one normed: num_hidden_layers + 1 entries, as for the transformer
            layers = forward_layers if not both else tuple(torch.cat(pair, dim=-1) for pair in zip(forward_layers, backward_layers))
            all_hidden = (hidden_states, *layers)

        if segment_lengths is not None:  # back from one row per sequence to the packed rows
            def unpack(x: torch.Tensor | None) -> torch.Tensor | None:
                if x is None:
                    return None
                rows, i = [], 0
                for counts in segment_lengths:
                    rows.append(torch.cat([x[i + j, :n] for j, n in enumerate(counts)]))
                    i += len(counts)
                return torch.stack(rows)  # (B, T, ...)

            last, backward_out = unpack(last), unpack(backward_out)
            all_hidden = None if all_hidden is None else tuple(unpack(h) for h in all_hidden)
            last_rows = torch.tensor(list(itertools.accumulate(len(c) for c in segment_lengths)), device=last.device) - 1
            if state is not None:
                state = tuple(s[:, last_rows] for s in state)  # each row continues from its last sequence
        new_cache = None
        if use_cache:
            new_cache = CharLMRecurrentCache(state, (cache.seen_tokens if cache is not None else 0) + T)
        return CharLMModelOutput(
            last_hidden_state=last,
            cache=new_cache,
            hidden_states=all_hidden,
            backward_hidden_state=backward_out if return_backward else None,
        )


# ----------------------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------------------


def _token_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: int | torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over (..., V) logits, skipping -100; divided by `num_items_in_batch` when the Trainer
    accumulates gradients, so that the loss is the same however the batch is split."""
    logits = logits.float().reshape(-1, logits.shape[-1])
    labels = labels.reshape(-1).to(logits.device)
    if num_items_in_batch is None:
        return F.cross_entropy(logits, labels, ignore_index=-100)
    loss = F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def _check_no_features(config: CharLMConfig, head: str) -> None:
    if config.feature_buckets:
        raise ValueError(
            f"CharLMConfig.feature_buckets={config.feature_buckets}: n-gram features add to the scores of the token and "
            f"sequence classification heads; {head} has none. Set feature_buckets=0."
        )
    if getattr(config, "lexicon_max_length", 0):
        raise ValueError(
            f"CharLMConfig.lexicon_max_length={config.lexicon_max_length}: lexicon features read the words around each "
            f"position, which {head} does not see (a cached generation step reads one new token). Set "
            "lexicon_max_length=0."
        )


def _check_no_ensemble(config: CharLMConfig, head: str) -> None:
    if config.ensemble_size != 1:
        raise ValueError(
            f"CharLMConfig.ensemble_size={config.ensemble_size}: ensembles are of token and sequence classifiers "
            f"(CharLMForTokenClassification / CharLMForSequenceClassification.from_members); {head} is one model. "
            "Set ensemble_size=1."
        )


class CharLMEnsembleMember(nn.Module):
    """A further member of a classifier's output ensemble (`CharLMForTokenClassification.ensemble`,
    `CharLMForSequenceClassification.ensemble`): a backbone, its classifier and its n-gram features, named as in a
    single model."""

    def __init__(self, config: CharLMConfig, feature_templates):
        super().__init__()
        self.model = CharLMModel(config)
        self.classifier = nn.Linear(config.classifier_hidden_size, config.num_labels)
        self.features = CharLMNgramFeatures(config, feature_templates) if config.feature_buckets else None


class CharLMEnsembleMixin:
    """`from_members` for the classification heads: one model whose scores are the mean of its members'. The head
    keeps its first member in its own modules (`model`, `classifier`, `features`: a single model's weight names) and
    the others in `self.ensemble`; parameters of the head itself (a CRF) are the mean of the members'."""

    FEATURE_TEMPLATES: tuple = ()

    def _build_ensemble(self, config: CharLMConfig) -> None:
        self.ensemble = (
            nn.ModuleList(CharLMEnsembleMember(config, self.FEATURE_TEMPLATES) for _ in range(config.ensemble_size - 1))
            if config.ensemble_size > 1 else None
        )

    def resize_token_embeddings(self, *args, **kwargs):
        """As transformers' method, refused on an ensemble: it would resize the first member's embeddings only."""
        if self.config.ensemble_size != 1:
            raise ValueError(
                f"resize_token_embeddings on an ensemble of {self.config.ensemble_size} would resize its first member "
                "only: resize each member (and fine-tune it), then build the ensemble with from_members."
            )
        return super().resize_token_embeddings(*args, **kwargs)

    @classmethod
    def from_members(cls, members: "Sequence[str | os.PathLike | CharLMPreTrainedModel]", **kwargs):
        """An output ensemble of fine-tuned classifiers of this head: one model whose scores are the mean of theirs.

        `members` are models or folders (`from_pretrained(member, **kwargs)`), each a single model
        (`ensemble_size=1`) with the same architecture and labels (runs of one fine-tuning recipe with different
        seeds or learning rates; the dropout rates may differ). Each member keeps its backbone, classifier and
        n-gram features. Token classification: the mean of the per-character scores, and with a CRF the mean of the
        members' transition, start and end scores, so that the Viterbi path is the best path under the members'
        mean score. Sequence classification: the mean of the logits (a label's probability is then proportional to
        the geometric mean of the members'; for regression the mean prediction). The result saves, loads (its Auto
        class, remote code) and runs in its pipeline like a single model, at the members' summed cost. Returned in
        evaluation mode."""
        loaded = [m if isinstance(m, cls) else cls.from_pretrained(m, **kwargs) for m in members]
        if len(loaded) < 2:
            raise ValueError(f"from_members needs at least two members, got {len(loaded)}.")
        # what members may differ in: training-only settings and bookkeeping
        free = {"hidden_dropout_prob", "attention_dropout", "embedding_dropout", "classifier_dropout", "_name_or_path",
                "transformers_version", "architectures", "dtype", "torch_dtype", "_attn_implementation_autoset"}
        first = {k: v for k, v in loaded[0].config.to_dict().items() if k not in free}
        for i, member in enumerate(loaded):
            where = members[i] if not isinstance(members[i], nn.Module) else f"member {i}"
            if member.config.ensemble_size != 1:
                raise ValueError(f"{where} is already an ensemble of {member.config.ensemble_size}: pass its members instead.")
            mine = {k: v for k, v in member.config.to_dict().items() if k not in free}
            differ = sorted(k for k in set(first) | set(mine) if first.get(k) != mine.get(k))
            if differ:
                raise ValueError(
                    f"{where} differs from the first member in {', '.join(differ)}: the members of an ensemble share "
                    "one architecture and one label set."
                )
        config = copy.deepcopy(loaded[0].config)
        config.ensemble_size = len(loaded)
        model = cls(config)
        own = ("model.", "classifier.", "features.")  # a member's modules; the rest (a CRF) is the head's
        state = {k: v for k, v in loaded[0].state_dict().items() if k.startswith(own)}
        for i, member in enumerate(loaded[1:]):
            state.update({f"ensemble.{i}.{k}": v for k, v in member.state_dict().items() if k.startswith(own)})
        for name, _ in model.named_parameters():
            if not name.startswith(own) and not name.startswith("ensemble."):
                state[name] = torch.stack([dict(m.named_parameters())[name].detach() for m in loaded]).mean(0)
        model.load_state_dict(state, strict=True)
        return model.eval()


def _read_for_classifier(backbone: "CharLMModel", input_ids, attention_mask, position_ids, inputs_embeds,
                         output_hidden_states, output_attentions, **kwargs) -> CharLMModelOutput:
    """The backbone read as the classification heads read it: no cache, attention as `classifier_attention` says."""
    return backbone(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        inputs_embeds=inputs_embeds,
        use_cache=False,
        output_hidden_states=output_hidden_states,
        output_attentions=output_attentions,
        is_causal=backbone.config.classifier_attention == "causal",
        return_dict=True,
        **kwargs,
    )


def _check_labels_shape(labels: torch.Tensor, expected: tuple[int, ...], what: str) -> None:
    if tuple(labels.shape) != tuple(expected):
        raise ValueError(f"labels have shape {tuple(labels.shape)}, but {what} needs shape {tuple(expected)}.")


class CharLMGenerationMixin(GenerationMixin):
    """transformers' `GenerationMixin` for the generating heads (the causal LM, the encoder–decoder), whose
    `generate()` gives the `CharLMLinear` layers their transposed weight copies for the length of the call."""

    # the most weight elements (all CharLMLinear layers together) for which generate() makes transposed copies: 16 Mi
    # (64 MiB in float32), the tiny and small presets; a larger model's products are bound by memory traffic, where
    # a copy of every weight at each call would cost more than the call overhead it saves
    GENERATION_COPY_LIMIT = 16 * 2**20

    @contextlib.contextmanager
    def _generation_weights(self):
        """For the length of one `generate()` call on the CPU, gives each `CharLMLinear` a contiguous transposed
        copy of its weight (its fast path for a step's few rows). Made from the weights as they are when the call
        starts and dropped when it ends, so no later change of the weights can leave a copy stale; layers that already
        hold one (a concurrent call) are left to the call that made it."""
        layers = [m for m in self.modules() if isinstance(m, CharLMLinear) and m.weight_t is None and m.weight.is_cpu]
        if sum(m.weight.numel() for m in layers) > self.GENERATION_COPY_LIMIT:
            layers = []
        with torch.no_grad():
            for m in layers:
                m.weight_t = m.weight.t().contiguous()
        try:
            yield
        finally:
            for m in layers:
                m.__dict__.pop("weight_t", None)

    @functools.wraps(GenerationMixin.generate)
    def generate(self, *args, **kwargs):
        with self._generation_weights():
            return super().generate(*args, **kwargs)


class CharLMForCausalLM(CharLMPreTrainedModel, CharLMGenerationMixin):
    """Character language model: next-character prediction (and, for a bidirectional recurrent backbone, a
    backward language model trained alongside: the loss is the mean of both directions' cross-entropies)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __new__(cls, config: CharLMConfig | None = None, *args, **kwargs):
        # transformers reads `_is_stateful` on the class (generate()'s guards, the common model tests): a
        # recurrent backbone gets the subclass that says so, and is still a CharLMForCausalLM
        if cls is CharLMForCausalLM and getattr(config, "is_recurrent", False):
            cls = CharLMRecurrentForCausalLM
        return super().__new__(cls)

    def __init__(self, config: CharLMConfig):
        if config.bigram_buckets:
            raise ValueError(
                f"CharLMConfig.bigram_buckets={config.bigram_buckets}: bigram features are for the masked LM and the "
                "classification heads; a causal LM's cached generation step does not see the previous character. "
                "Set bigram_buckets=0."
            )
        _check_no_features(config, "CharLMForCausalLM")
        _check_no_ensemble(config, "CharLMForCausalLM")
        super().__init__(config)
        self.model = CharLMModel(config)
        self.lm_head = CharLMLinear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | CharLMRecurrentCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        labels: (B, T) token ids, usually `input_ids`; the model shifts them. -100 is ignored.
        shift_labels: (B, T) labels already shifted (position t holds the target of position t), as the Trainer
            passes them under context parallelism; used instead of shifting `labels`.
        logits_to_keep: if an int > 0, compute logits for the last `logits_to_keep` positions only (generation
            needs the last one); a 1D tensor selects positions.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        shift_labels = kwargs.pop("shift_labels", None)
        if labels is None and shift_labels is not None:
            # the labels the shifted ones came from (position 0, which no position predicts, is ignored)
            labels = F.pad(shift_labels[:, :-1], (1, 0), value=-100)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_backward=labels is not None and self.model.config.is_recurrent and self.config.bidirectional,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])

        loss = None
        if labels is not None:
            _check_labels_shape(labels, hidden_states.shape[:2], "the causal LM (one label per input token)")
            full_logits = logits if logits.shape[1] == hidden_states.shape[1] else self.lm_head(hidden_states)
            if shift_labels is not None:
                _check_labels_shape(shift_labels, hidden_states.shape[:2], "the causal LM (shift_labels)")
                targets = shift_labels  # (B, T): the target of every position, the last one included
            else:
                targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, T): position t predicts label t+1
            backward_targets = labels[:, :-1]
            if attention_mask is not None and attention_mask.ndim == 2:
                # a padding position has read nothing: it predicts no label (left padding before the first
                # character for the forward LM, right padding after the last for the backward one)
                mask = attention_mask[:, -labels.shape[1] :].to(labels.device) == 0
                targets = targets.masked_fill(mask, -100)
                backward_targets = backward_targets.masked_fill(mask[:, 1:], -100)
            loss = _token_cross_entropy(full_logits, targets, num_items_in_batch)
            if outputs.backward_hidden_state is not None:
                # the backward LM's state at t has read t..T-1 and predicts t-1
                backward_logits = self.lm_head(outputs.backward_hidden_state[:, 1:])
                loss = 0.5 * (loss + _token_cross_entropy(backward_logits, backward_targets, num_items_in_batch))

        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class CharLMRecurrentForCausalLM(CharLMForCausalLM):
    """`CharLMForCausalLM` on an LSTM / GRU backbone, which `CharLMForCausalLM(config)` returns for such a config.

    Its generation state cannot be rolled back to an earlier length, so transformers must treat it as stateful
    (no assisted or prompt-lookup decoding); everything else is the parent class.
    """

    _is_stateful = True
    _saved_as_parent = True


@dataclass
class CharLMMaskedLMOutput(MaskedLMOutput):
    """
    detection_logits: (B, T) with `config.detection_loss_weight`: the logit of "this character is wrong" at each
        position (sigmoid for the probability); `None` without the detection head.
    """

    detection_logits: torch.Tensor | None = None


class CharLMForMaskedLM(CharLMPreTrainedModel):
    """Masked character model: predicts the characters at `<mask>` (and any labelled) positions from both sides.

    It has exactly the parameters of `CharLMForCausalLM` (the backbone and the output layer tied to the character
    embedding), so a causal checkpoint loads as a masked one and back, and the classification heads load from
    either keeping every backbone weight.

    - Transformer: the backbone with bidirectional attention, then the output layer at every position.
    - Bidirectional LSTM / GRU: the prediction for position t combines the forward stack's prediction from
      t-1 (left context) and the backward stack's from t+1 (right context), as a product of the two
      distributions (their log-probabilities add). The input at t itself is never read for position t, so a
      masked character cannot leak into its own prediction, and the objective is the bidirectional LM of ELMo
      evaluated at the masked positions. A unidirectional recurrent backbone (`bidirectional=False`) has no right
      context and is refused.

    With `config.detection_loss_weight` (same-length correction, MacBERT4CSC's recipe) a detection layer reads the
    same states and scores each position as wrong or right (`detection_logits`); trained on `detection_labels`
    (1 where the input character differs from its label), which default to `labels != input_ids`.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: CharLMConfig):
        if config.is_recurrent and not config.bidirectional:
            raise ValueError(
                f"CharLMForMaskedLM needs right context: a {config.backbone} backbone must have bidirectional=True."
            )
        _check_no_features(config, "CharLMForMaskedLM")
        _check_no_ensemble(config, "CharLMForMaskedLM")
        super().__init__(config)
        self.model = CharLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.detection_loss_weight is not None:
            if config.is_recurrent:
                raise ValueError("The detection head (detection_loss_weight) needs the transformer backbone: a recurrent "
                                 "masked LM never reads the character at the position it scores.")
            self.detector = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> CharLMMaskedLMOutput:
        r"""labels: (B, T) the original character ids at the positions to predict, -100 elsewhere (not shifted).
        detection_labels: (B, T) with the detection head: 1 where the input character is wrong, 0 where it is right,
            -100 ignored; by default `labels != input_ids` where the label is not -100. (A keyword argument, not in
            the signature: the Trainer takes every parameter named like a label as one it must be given.)"""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        detection_labels = kwargs.pop("detection_labels", None)
        recurrent = self.config.is_recurrent
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            is_causal=recurrent,  # the recurrent stacks are read one direction each, below
            return_backward=recurrent,
            return_dict=True,
            **kwargs,
        )
        if recurrent:
            forward_lp = F.log_softmax(self.lm_head(outputs.last_hidden_state).float(), dim=-1)  # (B, T, V)
            backward_lp = F.log_softmax(self.lm_head(outputs.backward_hidden_state).float(), dim=-1)
            # position t: the forward stack after t-1 and the backward stack after t+1; an end has one side only
            left, right = F.pad(forward_lp[:, :-1], (0, 0, 1, 0)), F.pad(backward_lp[:, 1:], (0, 0, 0, 1))
            starts = sequence_starts(left.shape[:2], attention_mask, position_ids, left.device)
            if starts is not None:  # a neighbour outside the sequence contributes nothing, as at the row's ends
                left = left.masked_fill(starts.unsqueeze(-1), 0.0)
                right = right.masked_fill(F.pad(starts[:, 1:], (0, 1), value=True).unsqueeze(-1), 0.0)
            logits = left + right
        else:
            logits = self.lm_head(outputs.last_hidden_state)  # (B, T, V)
        detection_logits = None
        if self.config.detection_loss_weight is not None:
            detection_logits = self.detector(outputs.last_hidden_state).squeeze(-1)  # (B, T)
        loss = None
        if labels is not None:
            _check_labels_shape(labels, logits.shape[:2], "the masked LM (one label per input token)")
            loss = _token_cross_entropy(logits, labels, num_items_in_batch)
        if detection_logits is not None and (labels is not None or detection_labels is not None):
            if detection_labels is None:
                if input_ids is None:
                    raise ValueError("The detection head's default labels (labels != input_ids) need input_ids: pass "
                                     "detection_labels with inputs_embeds.")
                detection_labels = torch.where(labels == -100, -100, (labels != input_ids).long())
            _check_labels_shape(detection_labels, detection_logits.shape, "the detection head (one label per input token)")
            keep = detection_labels != -100
            detection_loss = (
                F.binary_cross_entropy_with_logits(detection_logits[keep].float(), detection_labels[keep].float())
                if keep.any() else detection_logits.sum() * 0.0
            )
            w = self.config.detection_loss_weight
            loss = detection_loss * w if loss is None else (1 - w) * loss + w * detection_loss
        return CharLMMaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
            detection_logits=detection_logits,
        )


class CharLMForTokenClassification(CharLMEnsembleMixin, CharLMPreTrainedModel):
    """A label per character (NER, word segmentation) read from context on both sides.

    With `config.use_crf` a linear-chain CRF sits on the per-character scores: the loss is its negative
    log-likelihood per labelled token, and `logits` are its max-marginals, whose argmax (what the Trainer's
    metrics and the token-classification pipeline take) is the Viterbi path. A training-mode call with labels
    returns the emissions as `logits` instead: its caller (the Trainer's training step) reads the loss alone.
    """

    # the window of a CRF tagger: the characters at offsets -2..2 and five pairs of them
    FEATURE_TEMPLATES = ((-2,), (-1,), (0,), (1,), (2,), (-2, -1), (-1, 0), (0, 1), (1, 2), (-1, 1))

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = CharLMModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.classifier_hidden_size, config.num_labels)
        self.crf = CharLMCRF(config) if config.use_crf else None
        self.features = CharLMNgramFeatures(config, self.FEATURE_TEMPLATES) if config.feature_buckets else None
        # an output ensemble (config.ensemble_size > 1): the first member is the model above (its weights keep the
        # names of a single model's), the others live here; all read the same input and share the CRF
        self._build_ensemble(config)
        self.post_init()

    def _scores(self, scorer: nn.Module, input_ids, attention_mask, position_ids, inputs_embeds, output_hidden_states,
                output_attentions, **kwargs) -> tuple[torch.Tensor, CharLMModelOutput]:
        """One member's per-token scores (B, T, num_labels): the classifier on its backbone, plus its features."""
        outputs = _read_for_classifier(scorer.model, input_ids, attention_mask, position_ids, inputs_embeds,
                                       output_hidden_states, output_attentions, **kwargs)
        logits = scorer.classifier(self.dropout(outputs.last_hidden_state))  # (B, T, num_labels)
        if scorer.features is not None:
            logits = logits + scorer.features(input_ids, attention_mask)
        return logits, outputs

    def _check_gold_paths(self, labels: torch.Tensor, mask: torch.Tensor) -> None:
        """A gold path the tag scheme forbids (I-X after O, an unfinished B-M) cannot be learnt: name it."""
        crf = self.crf
        seq, lengths, _ = crf._compact(labels, mask)  # (B, T): each row's real positions first
        a, b = seq[:, :-1], seq[:, 1:]
        inside = torch.arange(1, seq.shape[1], device=seq.device)[None, :] < lengths[:, None]
        bad = inside & (a != -100) & (b != -100) & ~crf.allowed[a.clamp(min=0), b.clamp(min=0)]
        if bool(bad.any()):
            row, i = (int(x) for x in torch.nonzero(bad)[0])
            raise ValueError(
                f"Row {row} of the batch has the transition {crf.labels[int(a[row, i])]} -> {crf.labels[int(b[row, i])]} "
                f"at token {i + 1}, which the tag scheme of the labels {crf.labels} forbids with use_crf=True. Fix the "
                "tags, or rename the labels so that they follow no scheme."
            )

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        lexicon_fold: torch.LongTensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput:
        r"""labels: (B, T) label ids, -100 where no label applies (special tokens, padding).
        lexicon_fold: (B,) with lexicon features: each training example's fold (its own fold's words unseen by its
            lexicon features, see `CharLMLexiconFeatures`); `None` (evaluation, prediction) or -1: every word."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if lexicon_fold is not None:
            kwargs["lexicon_fold"] = lexicon_fold
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds, output_hidden_states, output_attentions)
        logits, outputs = self._scores(self, *inputs, **kwargs)
        if self.ensemble is not None:  # the mean of the members' scores (hidden states and attentions: the first's)
            for member in self.ensemble:
                logits = logits + self._scores(member, *inputs, **kwargs)[0]
            logits = logits / self.config.ensemble_size
        loss = None
        if labels is not None:
            _check_labels_shape(labels, logits.shape[:2], "token classification (one label per input token)")
            if self.crf is None:
                loss = _token_cross_entropy(logits, labels, num_items_in_batch)
        if self.crf is not None:
            B, T, _ = logits.shape
            real = torch.ones(B, T, dtype=torch.bool, device=logits.device) if attention_mask is None else attention_mask[:, -T:].bool()
            # the chain has one node per character: the UTF-8 continuation bytes of a character outside the
            # vocabulary (byte fallback) are not nodes, and take the scores of the character's first token
            chain = real
            start = self.config.byte_token_start
            if input_ids is not None and start is not None:
                byte = input_ids.to(logits.device) - start
                chain = real & ~((byte >= 0x80) & (byte <= 0xBF))
            if labels is not None:
                labels = labels.to(logits.device)
                self._check_gold_paths(labels, chain)
                # per labelled token, like the cross-entropy, so that learning rates carry over
                count = num_items_in_batch if num_items_in_batch is not None else (labels.masked_fill(~chain, -100) != -100).sum().clamp(min=1)
                loss = -self.crf.log_likelihood(logits, labels, chain).sum() / count
            if self.training and labels is not None:
                # training needs the loss only: the max-marginals (two more passes over the positions) are skipped
                # and `logits` stay the emissions
                return TokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions)
            scores = self.crf.max_marginals(logits, chain)
            positions = torch.arange(T, device=logits.device).expand(B, T)
            source = torch.where(chain, positions, -1).cummax(dim=1).values.clamp(min=0)  # each token's character
            inherited = scores.gather(1, source.unsqueeze(-1).expand_as(scores))
            logits = torch.where((real & ~chain).unsqueeze(-1), inherited, scores)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class CharLMForSequenceClassification(CharLMEnsembleMixin, CharLMPreTrainedModel):
    """A label (or labels, or a score) per text, from the hidden states pooled over the real tokens."""

    # the loss is a mean over the texts of the batch: the Trainer must not rescale it by a token count
    accepts_loss_kwargs = False
    # the character 1-, 2- and 3-grams ending at each position (a TF-IDF classifier's features)
    FEATURE_TEMPLATES = ((0,), (-1, 0), (-2, -1, 0))

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = CharLMModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.classifier_hidden_size, config.num_labels)
        self.features = CharLMNgramFeatures(config, self.FEATURE_TEMPLATES) if config.feature_buckets else None
        # an output ensemble (config.ensemble_size > 1, `from_members`): the first member is the model above, the
        # others live here; the logits are the mean of the members'
        self._build_ensemble(config)
        self.post_init()

    @staticmethod
    def _real(attention_mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """(B, T) 1.0 at the real tokens of `like`'s (B, T, ...) positions, in its dtype and on its device."""
        B, T = like.shape[:2]
        mask = torch.ones(B, T, device=like.device) if attention_mask is None else attention_mask[:, -T:].to(like.device)
        return mask.to(like.dtype)

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        B, T, _ = hidden.shape
        mask = self._real(attention_mask, hidden)
        positions = torch.arange(T, device=hidden.device)
        if self.config.classifier_pooling == "mean":
            return (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)  # (B, H)
        if self.config.classifier_pooling == "last":  # last real token, for left and right padding alike
            index = torch.where(mask.bool(), positions, -1).amax(dim=1).clamp(min=0)
        else:  # "first" real token
            index = torch.where(mask.bool(), positions, T).amin(dim=1).clamp(max=T - 1)
        return hidden[torch.arange(B, device=hidden.device), index]  # (B, H)

    def _scores(self, scorer: nn.Module, input_ids, attention_mask, position_ids, inputs_embeds, output_hidden_states,
                output_attentions, **kwargs) -> tuple[torch.Tensor, CharLMModelOutput]:
        """One member's logits (B, num_labels): the classifier on its pooled backbone, plus its features."""
        outputs = _read_for_classifier(scorer.model, input_ids, attention_mask, position_ids, inputs_embeds,
                                       output_hidden_states, output_attentions, **kwargs)
        pooled = self._pool(outputs.last_hidden_state, attention_mask)
        logits = scorer.classifier(self.dropout(pooled))  # (B, num_labels)
        if scorer.features is not None:
            per_position = scorer.features(input_ids, attention_mask)  # (B, T, num_labels)
            mask = self._real(attention_mask, per_position)
            # summed over the text, divided by the square root of its length: a long text's n-grams count more
            # than a short one's, less than in proportion
            logits = logits + (per_position * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0).sqrt()
        return logits, outputs

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        r"""labels: (B,) class ids; (B, num_labels) 0/1 for multi-label; (B,) or (B, num_labels) floats for
        regression. `config.problem_type` is inferred from them when unset, as in transformers' built-in heads."""
        kwargs.pop("num_items_in_batch", None)
        if attention_mask is None and input_ids is not None and self.config.pad_token_id is not None:
            # padded ids without a mask: find the real tokens as GPT-2's head does (the tokenizer never makes <pad>
            # from text)
            attention_mask = (input_ids != self.config.pad_token_id).long()
        inputs = (input_ids, attention_mask, position_ids, inputs_embeds, output_hidden_states, output_attentions)
        logits, outputs = self._scores(self, *inputs, **kwargs)
        if self.ensemble is not None:  # the mean of the members' logits (hidden states and attentions: the first's)
            for member in self.ensemble:
                logits = logits + self._scores(member, *inputs, **kwargs)[0]
            logits = logits / self.config.ensemble_size

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            B = logits.shape[0]
            if self.config.problem_type == "regression":
                if labels.numel() != B * self.num_labels:
                    _check_labels_shape(labels, (B, self.num_labels) if self.num_labels > 1 else (B,), "regression")
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.reshape(logits.squeeze(-1).shape).float())
            elif self.config.problem_type == "single_label_classification":
                labels = labels.squeeze(-1) if labels.ndim == 2 and labels.shape[1] == 1 else labels  # (B, 1) -> (B,)
                _check_labels_shape(labels, (B,), "single-label classification")
                loss = F.cross_entropy(logits.float(), labels.long())
            else:
                _check_labels_shape(labels, (B, self.num_labels), "multi-label classification")
                loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "CharLMPreTrainedModel",
    "CharLMModel",
    "CharLMForCausalLM",
    "CharLMRecurrentForCausalLM",
    "CharLMForMaskedLM",
    "CharLMForTokenClassification",
    "CharLMForSequenceClassification",
    "CharLMRecurrentCache",
    "CharLMCRF",
    "CharLMNgramFeatures",
    "CharLMEnsembleMember",
]
