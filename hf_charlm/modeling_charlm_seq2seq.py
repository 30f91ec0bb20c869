"""hf_charlm encoder-decoder: `CharLMForConditionalGeneration` (characters in, characters out) on a Transformer,
LSTM or GRU backbone.

This file ships with seq2seq checkpoints next to `modeling_charlm.py` and is loaded through `trust_remote_code=True`
on machines without hf_charlm, so it may import only `torch`, public `transformers` names and its single-dot
siblings. The picture it implements: input characters -> character embedding -> encoder -> attention -> decoder ->
output characters.

- Transformer: a bidirectional encoder (the backbone `CharLMModel` read with `is_causal=False`), a causal decoder whose
  blocks add cross-attention between self-attention and MLP (as BART / T5), rotary positions in self-attention only,
  one character embedding shared by encoder, decoder and the tied output layer; `EncoderDecoderCache` in `generate()`.
- LSTM / GRU: a bidirectional recurrent encoder and a recurrent decoder with attention over the encoder states
  (Bahdanau et al. 2015). With `s_{t-1}` the decoder's previous top state and `h_j` the encoder states,
  `"additive"`: `alpha_t = softmax_j(v_a^T tanh(W_a [h_j; s_{t-1}] + b_a))`; `"dot"`: Luong's multiplicative
  score `s_{t-1}^T W_a h_j / sqrt(H)`. Context `c_t = sum_j alpha_tj h_j`; decoder step
  `s_t = RNN(e_{t-1} + W_c c_t, s_{t-1})` (the recurrent cell's own input matrix times `[e; W_c c]` is the
  `W_es e_{t-1} + W_cs c_t` of the formula; keeping the input width at `hidden_size` lets the decoder start from a
  causal LM's forward stack); `p(y_t | y_<t, x) = softmax(W_sy s_t)` with `W_sy` tied to the embedding.
  The decoder starts from the encoder's forward final state (`s_0`), and its state plus the projected encoder
  states are the generation cache.

Both encoder and decoder have `num_hidden_layers` layers. `config.is_encoder_decoder` is set to True by this class
only (generate() reads it to run the encoder once and feed `decoder_input_ids`); the other heads leave it False.
"""

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import Seq2SeqLMOutput, Seq2SeqModelOutput
from transformers.utils import ModelOutput, logging

from .configuration_charlm import CharLMConfig
from .modeling_charlm import (
    CharLMAttention,
    CharLMForCausalLM,
    CharLMGenerationMixin,
    CharLMLinear,
    CharLMMLP,
    CharLMModel,
    CharLMPreTrainedModel,
    CharLMRecurrentCache,
    CharLMRecurrentStack,
    CharLMRMSNorm,
    CharLMRotaryEmbedding,
    _check_no_ensemble,
    _check_no_features,
    _token_cross_entropy,
    use_growing_layers,
)

logger = logging.get_logger(__name__)

# hub arguments that locate a checkpoint's config.json (from_pretrained checks which kind of checkpoint it is)
_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "local_files_only", "revision", "subfolder")


# ----------------------------------------------------------------------------------------------------------------
# Free helpers
# ----------------------------------------------------------------------------------------------------------------


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: `<s>` then the labels but the last, -100 replaced by `<pad>` (as BART)."""
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to build decoder_input_ids from labels.")
    shifted = input_ids.new_zeros(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


# ----------------------------------------------------------------------------------------------------------------
# Transformer decoder: cross-attention and the decoder block
# ----------------------------------------------------------------------------------------------------------------


class CharLMCrossAttention(CharLMAttention):
    """Decoder queries over encoder keys / values; no rotary positions (the source positions are in the encoder
    states already). In `generate()` the encoder keys and values are computed once and kept in the cross-attention
    half of the `EncoderDecoderCache`. The projections are self-attention's; only `forward` differs."""

    def __init__(self, config: CharLMConfig, layer_idx: int):
        super().__init__(config, layer_idx)
        self.is_causal = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: EncoderDecoderCache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(B, T, -1, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        if cache is not None and cache.is_updated.get(self.layer_idx):
            k = cache.cross_attention_cache.layers[self.layer_idx].keys  # (B, nh, S, hd)
            v = cache.cross_attention_cache.layers[self.layer_idx].values
        else:
            S = encoder_hidden_states.shape[1]
            k = self.k_proj(encoder_hidden_states).view(B, S, -1, self.head_dim).transpose(1, 2)  # (B, nh, S, hd)
            v = self.v_proj(encoder_hidden_states).view(B, S, -1, self.head_dim).transpose(1, 2)  # (B, nh, S, hd)
            if cache is not None:
                k, v = cache.cross_attention_cache.update(k, v, self.layer_idx)
                cache.is_updated[self.layer_idx] = True
        return self.attend(q, k, v, attention_mask, is_causal=False, **kwargs)


class CharLMDecoderBlock(GradientCheckpointingLayer):
    """Pre-norm decoder block: x + self_attn(norm(x)), x + cross_attn(norm(x), encoder), x + mlp(norm(x)).
    Self-attention, its norms and the MLP carry the names of `CharLMBlock`'s, so a causal LM's blocks load into them."""

    def __init__(self, config: CharLMConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = CharLMAttention(config, layer_idx)
        self.cross_attn_layernorm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.cross_attn = CharLMCrossAttention(config, layer_idx)
        self.post_attention_layernorm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = CharLMMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: EncoderDecoderCache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attn_out, self_weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache.self_attention_cache if cache is not None else None,
            is_causal=True,
            **kwargs,
        )
        hidden_states = hidden_states + self.dropout(attn_out)
        cross_out, cross_weights = self.cross_attn(
            self.cross_attn_layernorm(hidden_states), encoder_hidden_states, encoder_attention_mask, cache=cache
        )
        hidden_states = hidden_states + self.dropout(cross_out)
        hidden_states = hidden_states + self.dropout(self.mlp(self.post_attention_layernorm(hidden_states)))
        return hidden_states, self_weights, cross_weights


# ----------------------------------------------------------------------------------------------------------------
# Recurrent decoder: attention over the encoder states and the generation cache
# ----------------------------------------------------------------------------------------------------------------


class CharLMRecurrentAttention(nn.Module):
    """Attention of the recurrent decoder's previous state `s_{t-1}` (B, H) over the encoder states `h_j` (B, S, C).

    `"additive"` (Bahdanau): `v_a^T tanh(W_a [h_j; s_{t-1}] + b_a)`, with `W_a` split into `key_proj` (on `h_j`, with
    the bias `b_a`) and `query_proj` (on `s_{t-1}`). `"dot"` (Luong, multiplicative): `s_{t-1}^T key_proj(h_j) / sqrt(H)`.
    The keys do not depend on the step: `keys()` computes them once per source and the cache keeps them.
    """

    def __init__(self, config: CharLMConfig, memory_size: int):
        super().__init__()
        self.attention_type = config.attention_type
        self.hidden_size = config.hidden_size
        additive = config.attention_type == "additive"
        self.key_proj = nn.Linear(memory_size, config.hidden_size, bias=additive)
        if additive:
            self.query_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
            self.score = nn.Linear(config.hidden_size, 1, bias=False)  # v_a

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_proj(memory)  # (B, S, H)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.attention_type == "additive":
            scores = self.score(torch.tanh(keys + self.query_proj(query).unsqueeze(1))).squeeze(-1)  # (B, S)
        else:
            scores = (keys @ query.unsqueeze(-1)).squeeze(-1) / math.sqrt(self.hidden_size)  # (B, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        alpha = F.softmax(scores.float(), dim=-1).to(memory.dtype)  # (B, S)
        context = (alpha.unsqueeze(1) @ memory).squeeze(1)  # (B, C)
        return context, alpha


class CharLMSeq2SeqRecurrentCache(CharLMRecurrentCache):
    """The recurrent decoder's state after the target tokens seen so far, and the attention keys of the encoder
    states (computed once per source). `state` is `(h, c)` (LSTM) or `(h,)` (GRU), each (num_layers, B, H);
    `keys` is (B, S, H). Beams and `num_return_sequences` reorder / repeat both."""

    def __init__(self, state: tuple[torch.Tensor, ...], seen_tokens: int, keys: torch.Tensor):
        super().__init__(state, seen_tokens)
        self.keys = keys

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        self.keys = self.keys.index_select(0, beam_idx.to(self.keys.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self.keys = self.keys.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        self.keys = self.keys[indices]


# ----------------------------------------------------------------------------------------------------------------
# Encoder, decoder, encoder-decoder model
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CharLMEncoderOutput(ModelOutput):
    """
    last_hidden_state: (B, S, H), or (B, S, 2H) for a bidirectional recurrent encoder (both directions).
    final_state: recurrent encoders: the forward stack's state after each row's last real token, batch first
        (B, n, L, H) with n = 2 for an LSTM (h, c) and 1 for a GRU, so that generate() can repeat it for beams.
    """

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    final_state: torch.Tensor | None = None


@dataclass
class CharLMDecoderOutput(ModelOutput):
    last_hidden_state: torch.Tensor | None = None
    cache: EncoderDecoderCache | CharLMSeq2SeqRecurrentCache | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    cross_attentions: tuple[torch.Tensor, ...] | None = None


class CharLMEncoder(CharLMModel):
    """The backbone read in both directions: bidirectional attention, or both recurrent stacks concatenated. Its
    parameter names are `CharLMModel`'s, so a causal LM's backbone loads into it unchanged."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ) -> CharLMEncoderOutput | tuple:
        outputs = super().forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=self.config.is_recurrent,  # the forward stack's final state starts the decoder
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            is_causal=False,
        )
        final_state = None
        if self.config.is_recurrent:
            final_state = torch.stack(outputs.cache.state, dim=0).permute(2, 0, 1, 3)  # (B, n, L, H)
        result = CharLMEncoderOutput(
            last_hidden_state=outputs.last_hidden_state,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            final_state=final_state,
        )
        return result if return_dict is not False else result.to_tuple()


class CharLMDecoder(CharLMPreTrainedModel):
    """Causal transformer blocks with cross-attention, or a recurrent stack with attention over the encoder.
    It reads embedded target characters (the embedding is the encoder's, shared)."""

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        self.embed_dropout = nn.Dropout(config.embedding_dropout)
        if config.is_recurrent:
            # named as the causal backbone's forward stack, whose weights it can start from
            self.forward_rnn = CharLMRecurrentStack(config)
            memory_size = 2 * config.hidden_size if config.bidirectional else config.hidden_size
            self.attention = CharLMRecurrentAttention(config, memory_size)
            self.context_proj = nn.Linear(memory_size, config.hidden_size, bias=False)  # W_c
        else:
            self.layers = nn.ModuleList([CharLMDecoderBlock(config, i) for i in range(config.num_hidden_layers)])
            self.norm = CharLMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
            self.rotary_emb = CharLMRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_outputs: CharLMEncoderOutput,
        encoder_attention_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: EncoderDecoderCache | CharLMSeq2SeqRecurrentCache | None = None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        **kwargs,
    ) -> CharLMDecoderOutput:
        hidden_states = self.embed_dropout(inputs_embeds) if self.training else inputs_embeds
        encoder_hidden_states = encoder_outputs.last_hidden_state
        if encoder_attention_mask is not None and encoder_attention_mask.shape[:2] != encoder_hidden_states.shape[:2]:
            raise ValueError(
                f"attention_mask has shape {tuple(encoder_attention_mask.shape)}, the encoder states "
                f"{tuple(encoder_hidden_states.shape[:2])}: pass the attention_mask of input_ids."
            )
        if self.config.is_recurrent:
            return self._forward_recurrent(
                hidden_states, encoder_outputs, encoder_attention_mask, cache, use_cache, output_hidden_states, output_attentions
            )
        return self._forward_transformer(
            hidden_states, encoder_hidden_states, encoder_attention_mask, attention_mask, position_ids, cache,
            use_cache, output_hidden_states, output_attentions, **kwargs,
        )

    def _forward_transformer(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        position_ids: torch.LongTensor | None,
        cache: EncoderDecoderCache | None,
        use_cache: bool,
        output_hidden_states: bool,
        output_attentions: bool,
        **kwargs,
    ) -> CharLMDecoderOutput:
        B, T, _ = hidden_states.shape
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(f"The transformer decoder takes an EncoderDecoderCache, got {type(cache).__name__}.")
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
            use_growing_layers(cache)
        past = cache.get_seq_length() if cache is not None else 0
        if past + T > self.config.max_position_embeddings:
            raise ValueError(
                f"Target of {past + T} tokens ({past} cached + {T} new) is longer than the decoder accepts: "
                f"max_position_embeddings={self.config.max_position_embeddings}. Lower max_new_tokens / max_length."
            )
        if position_ids is None:
            # the target always starts at <s> in column 0 (never left-padded), so positions are the column index
            position_ids = torch.arange(past, past + T, device=hidden_states.device).unsqueeze(0).expand(B, -1)
        self_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            cache=cache.self_attention_cache if cache is not None else None,
            position_ids=position_ids,
        )
        cross_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        position_embeddings = self.rotary_emb(hidden_states, position_ids)
        all_hidden = [hidden_states] if output_hidden_states else None
        all_self, all_cross = ([], []) if output_attentions else (None, None)
        for layer in self.layers:
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                position_embeddings,
                self_mask,
                encoder_hidden_states,
                cross_mask,
                cache=cache,
                **kwargs,
            )
            if output_hidden_states:
                all_hidden.append(hidden_states)
            if output_attentions:
                all_self.append(self_weights)
                all_cross.append(cross_weights)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden[-1] = hidden_states
        return CharLMDecoderOutput(
            last_hidden_state=hidden_states,
            cache=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_self) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions else None,
        )

    def _forward_recurrent(
        self,
        hidden_states: torch.Tensor,
        encoder_outputs: CharLMEncoderOutput,
        encoder_attention_mask: torch.Tensor | None,
        cache: CharLMSeq2SeqRecurrentCache | None,
        use_cache: bool,
        output_hidden_states: bool,
        output_attentions: bool,
    ) -> CharLMDecoderOutput:
        B, T, _ = hidden_states.shape
        memory = encoder_outputs.last_hidden_state  # (B, S, C)
        if cache is not None and not isinstance(cache, CharLMSeq2SeqRecurrentCache):
            raise TypeError(f"The recurrent decoder takes a CharLMSeq2SeqRecurrentCache, got {type(cache).__name__}.")
        if cache is None:
            final_state = getattr(encoder_outputs, "final_state", None)
            if final_state is None:
                raise ValueError("A recurrent decoder starts from the encoder's final state: pass the encoder's "
                                 "CharLMEncoderOutput (model.get_encoder()(...)) as encoder_outputs.")
            state = tuple(s.contiguous() for s in final_state.permute(1, 2, 0, 3).unbind(0))  # n x (L, B, H)
            keys, seen = self.attention.keys(memory), 0
        else:
            state, keys, seen = cache.state, cache.keys, cache.seen_tokens
        mask = encoder_attention_mask.bool() if encoder_attention_mask is not None else None
        rnn = self.forward_rnn.rnn
        outputs, alphas = [], []
        # one step at a time even under teacher forcing: the context of step t depends on the state after t-1
        for t in range(T):
            query = self.forward_rnn.norm(state[0][-1])  # s_{t-1}: top layer, normed as the stack's outputs are
            context, alpha = self.attention(query, keys, memory, mask)  # (B, C), (B, S)
            step_input = hidden_states[:, t] + self.context_proj(context)  # e_{t-1} + W_c c_t
            out, new_state = rnn(step_input.unsqueeze(1), state if isinstance(rnn, nn.LSTM) else state[0])
            state = new_state if isinstance(new_state, tuple) else (new_state,)
            outputs.append(out[:, 0])
            alphas.append(alpha)
        last = self.forward_rnn.norm(torch.stack(outputs, dim=1))  # (B, T, H)
        return CharLMDecoderOutput(
            last_hidden_state=last,
            cache=CharLMSeq2SeqRecurrentCache(state, seen + T, keys) if use_cache else None,
            hidden_states=(hidden_states, last) if output_hidden_states else None,
            cross_attentions=(torch.stack(alphas, dim=1).unsqueeze(1),) if output_attentions else None,  # (B, 1, T, S)
        )


class CharLMSeq2SeqModel(CharLMPreTrainedModel):
    """Encoder and decoder sharing one character embedding (`encoder.embed_tokens`); no output layer."""

    def __init__(self, config: CharLMConfig):
        super().__init__(config)
        self.encoder = CharLMEncoder(config)
        self.decoder = CharLMDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.encoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> CharLMEncoder:
        return self.encoder

    def get_decoder(self) -> CharLMDecoder:
        return self.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        encoder_outputs: CharLMEncoderOutput | tuple | None = None,
        cache: EncoderDecoderCache | CharLMSeq2SeqRecurrentCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        output_hidden_states = bool(output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states)
        output_attentions = bool(output_attentions if output_attentions is not None else getattr(self.config, "output_attentions", False))
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
            )
        elif not isinstance(encoder_outputs, CharLMEncoderOutput):
            # a tuple from return_dict=False, or another ModelOutput: rebuild the named fields
            if isinstance(encoder_outputs, ModelOutput):
                encoder_outputs = CharLMEncoderOutput(**dict(encoder_outputs.items()))
            else:
                final = encoder_outputs[-1] if self.config.is_recurrent and len(encoder_outputs) > 1 else None
                encoder_outputs = CharLMEncoderOutput(last_hidden_state=encoder_outputs[0], final_state=final)
        if (decoder_input_ids is None) == (decoder_inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids and decoder_inputs_embeds (or labels).")
        if decoder_inputs_embeds is None:
            decoder_inputs_embeds = self.encoder.embed_tokens(decoder_input_ids)
        decoder_outputs = self.decoder(
            inputs_embeds=decoder_inputs_embeds,
            encoder_outputs=encoder_outputs,
            encoder_attention_mask=attention_mask,
            attention_mask=decoder_attention_mask,
            position_ids=decoder_position_ids,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


# ----------------------------------------------------------------------------------------------------------------
# Head
# ----------------------------------------------------------------------------------------------------------------


class CharLMForConditionalGeneration(CharLMPreTrainedModel, CharLMGenerationMixin):
    """Characters in, characters out (transliteration, correction, translation, copying...).

    Labels are the target characters followed by `</s>` (no `<s>`; -100 is ignored); the decoder reads them shifted
    right behind `decoder_start_token_id` (`<s>`, id 2), as BART / T5. `from_pretrained` on a causal-LM checkpoint
    warm-starts encoder and decoder from its backbone (see `from_causal_lm`).
    """

    _tied_weights_keys = {"lm_head.weight": "model.encoder.embed_tokens.weight"}
    _no_split_modules = ["CharLMBlock", "CharLMDecoderBlock", "CharLMRecurrentStack"]

    def __new__(cls, config: CharLMConfig | None = None, *args, **kwargs):
        # as for the causal LM: transformers reads `_is_stateful` on the class, so a recurrent backbone gets the
        # subclass that says so (and is still a CharLMForConditionalGeneration)
        if cls is CharLMForConditionalGeneration and getattr(config, "is_recurrent", False):
            cls = CharLMRecurrentForConditionalGeneration
        return super().__new__(cls)

    @staticmethod
    def _check_no_bigrams(buckets: int) -> None:
        if buckets:
            raise ValueError(
                f"CharLMConfig.bigram_buckets={buckets}: the encoder-decoder has no bigram features. To warm-start "
                "from a checkpoint that has them, pass bigram_buckets=0 to from_pretrained (the bigram table is then "
                "left out)."
            )

    def __init__(self, config: CharLMConfig):
        self._check_no_bigrams(getattr(config, "bigram_buckets", 0))
        _check_no_features(config, "CharLMForConditionalGeneration")
        _check_no_ensemble(config, "CharLMForConditionalGeneration")
        # generate() reads is_encoder_decoder; only this head sets it (and the decoder start token, defaulting to
        # <s>), on its own copy: a config shared with a causal LM must keep it False there
        if not config.is_encoder_decoder:
            config = copy.deepcopy(config)
            config.is_encoder_decoder = True
        if getattr(config, "decoder_start_token_id", None) is None:
            config.decoder_start_token_id = config.bos_token_id
        super().__init__(config)
        self.model = CharLMSeq2SeqModel(config)
        self.lm_head = CharLMLinear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.encoder.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    def get_encoder(self, modality: str | None = None) -> CharLMEncoder:
        return self.model.encoder

    def get_decoder(self) -> CharLMDecoder:
        return self.model.decoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        encoder_outputs: CharLMEncoderOutput | tuple | None = None,
        cache: EncoderDecoderCache | CharLMSeq2SeqRecurrentCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        input_ids, attention_mask: the source characters (left or right padded) and their mask.
        decoder_input_ids: the target read so far, starting with `<s>`; built from `labels` when not given.
        encoder_outputs: the encoder's output for `input_ids` (generate() runs the encoder once and passes it).
        labels: (B, T) target ids followed by `</s>`; -100 is ignored. Aligned with the logits (no shift).
        logits_to_keep: if an int > 0, logits for the last `logits_to_keep` target positions only.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if cache is None:
            cache = kwargs.pop("past_key_values", None)  # the pre-5.40 name
        return_dict = return_dict if return_dict is not None else getattr(self.config, "return_dict", True)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            decoder_position_ids=decoder_position_ids,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, slice_indices, :])  # (B, T, V)

        loss = None
        if labels is not None:
            if tuple(labels.shape) != tuple(hidden_states.shape[:2]):
                raise ValueError(
                    f"labels have shape {tuple(labels.shape)}, but the decoder read {tuple(hidden_states.shape[:2])} "
                    "tokens: pass labels of the decoder inputs' shape (or labels alone)."
                )
            full_logits = logits if logits.shape[1] == hidden_states.shape[1] else self.lm_head(hidden_states)
            loss = _token_cross_entropy(full_logits, labels, num_items_in_batch)

        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------------------------------------ warm start

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """As `PreTrainedModel.from_pretrained`; a causal-LM checkpoint (its config has no `is_encoder_decoder`)
        is routed to `from_causal_lm` (warm start), an encoder-decoder checkpoint loads as usual."""
        if pretrained_model_name_or_path is not None:
            hub_kwargs = {k: kwargs[k] for k in _HUB_KWARGS if k in kwargs}
            config_dict, _ = CharLMConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            if config_dict.get("model_type") == CharLMConfig.model_type and not config_dict.get("is_encoder_decoder"):
                cls._check_no_bigrams(kwargs.get("bigram_buckets", config_dict.get("bigram_buckets", 0)))
                return cls.from_causal_lm(pretrained_model_name_or_path, *model_args, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @classmethod
    def from_causal_lm(
        cls, pretrained_model_name_or_path, *model_args, output_loading_info: bool = False, **kwargs
    ) -> "CharLMForConditionalGeneration | tuple[CharLMForConditionalGeneration, dict]":
        """Warm start from a hf_charlm causal LM (as transformers' `EncoderDecoderModel` does for BERT2BERT).

        The causal LM's backbone initialises the encoder (all of it) and the decoder where names and shapes match:
        transformer self-attention, norms and MLPs; the recurrent forward stack; the shared embedding and output
        layer. Cross-attention (transformer) and the attention / context projections (recurrent) are new and
        trained from their initialisation. The report (logged, and returned with `output_loading_info=True`, in
        `from_pretrained`'s format) lists the new tensors as `missing_keys`. Extra keyword arguments go to
        `CharLMForCausalLM.from_pretrained` (config overrides such as `attention_type="dot"` included).
        """
        causal = CharLMForCausalLM.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        config = copy.deepcopy(causal.config)
        config.architectures = None
        model = cls(config).to(dtype=causal.dtype, device=causal.device)
        source = causal.state_dict()
        loaded, mismatched, used = [], [], set()
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                source_name = name
                for prefix in ("model.encoder.", "model.decoder."):
                    if name.startswith(prefix):
                        source_name = "model." + name[len(prefix) :]
                if source_name not in source:
                    continue
                if source[source_name].shape != tensor.shape:
                    mismatched.append((name, tuple(source[source_name].shape), tuple(tensor.shape)))
                    continue
                tensor.copy_(source[source_name])
                loaded.append(name)
                used.add(source_name)
        missing = [n for n in model.state_dict() if n not in loaded and n not in {m[0] for m in mismatched}]
        info = {
            "missing_keys": missing,
            "unexpected_keys": [k for k in source if k not in used],
            "mismatched_keys": mismatched,
            "error_msgs": [],
        }
        logger.warning(
            f"{cls.__name__} warm-started from the causal LM {pretrained_model_name_or_path}: {len(loaded)} tensors "
            f"copied into encoder and decoder. Newly initialised, to be trained: {missing}."
            + (f" Shape mismatches (newly initialised too): {mismatched}." if mismatched else "")
        )
        model.eval()
        return (model, info) if output_loading_info else model


class CharLMRecurrentForConditionalGeneration(CharLMForConditionalGeneration):
    """`CharLMForConditionalGeneration` on an LSTM / GRU backbone, which `CharLMForConditionalGeneration(config)`
    returns for such a config: its decoder state cannot be rolled back, so transformers must treat it as stateful."""

    _is_stateful = True
    _saved_as_parent = True


__all__ = [
    "CharLMForConditionalGeneration",
    "CharLMRecurrentForConditionalGeneration",
    "CharLMSeq2SeqModel",
    "CharLMEncoder",
    "CharLMDecoder",
    "CharLMSeq2SeqRecurrentCache",
    "shift_tokens_right",
]
