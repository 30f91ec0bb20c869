"""`CharLMConfig`: the configuration of every hf_charlm model (Transformer, LSTM or GRU backbone).

This file ships with every checkpoint and is loaded through `trust_remote_code=True` on machines without
hf_charlm, so it may import only public `transformers` names.
"""

from transformers import PretrainedConfig

BACKBONES = ("transformer", "lstm", "gru")
CLASSIFIER_ATTENTION = ("bidirectional", "causal")
CLASSIFIER_POOLING = ("mean", "last", "first")
ATTENTION_TYPES = ("additive", "dot")
# the longest lexicon word (in tokens) the lexicon features look up: one hash multiplier per position
MAX_LEXICON_LENGTH = 8
# Every saved folder maps all the Auto classes to the files shipped beside the weights, whichever head was saved.
AUTO_MAP = {
    "AutoConfig": "configuration_charlm.CharLMConfig",
    "AutoModel": "modeling_charlm.CharLMModel",
    "AutoModelForCausalLM": "modeling_charlm.CharLMForCausalLM",
    "AutoModelForMaskedLM": "modeling_charlm.CharLMForMaskedLM",
    "AutoModelForTokenClassification": "modeling_charlm.CharLMForTokenClassification",
    "AutoModelForSequenceClassification": "modeling_charlm.CharLMForSequenceClassification",
    "AutoModelForSeq2SeqLM": "modeling_charlm_seq2seq.CharLMForConditionalGeneration",
}
# A text corrector (finetuning_task "text-correction") also ships its pipeline, these files, declared in config.json's
# `custom_pipelines` under this task. Not "text-correction": transformers loads a task named in `custom_pipelines`
# as remote code, so that name would need trust_remote_code=True even where hf_charlm registers the pipeline.
CORRECTION_PIPELINE_FILES = ("pipeline_charlm.py", "spans_charlm.py")
CORRECTION_PIPELINE_TASK = "charlm-text-correction"


def correction_pipelines(is_encoder_decoder: bool) -> dict[str, dict]:
    """The `custom_pipelines` entry of a corrector's config.json: the shipped pipeline, its model loaded by the Auto
    class of its kind (an encoder-decoder or a same-length masked LM)."""
    auto = "AutoModelForSeq2SeqLM" if is_encoder_decoder else "AutoModelForMaskedLM"
    return {CORRECTION_PIPELINE_TASK: {"impl": "pipeline_charlm.CharLMTextCorrectionPipeline", "pt": [auto], "type": "text"}}


class CharLMConfig(PretrainedConfig):
    r"""
    Configuration of a character-level language model.

    Args:
        backbone (`str`, defaults to `"transformer"`): one of `"transformer"`, `"lstm"`, `"gru"`.
        vocab_size (`int`): size of the character vocabulary (`len(tokenizer)`).
        hidden_size (`int`): width of the embeddings and of every layer.
        num_hidden_layers (`int`): transformer blocks, or stacked recurrent layers per direction.
        num_attention_heads (`int`): attention heads (transformer only); must divide `hidden_size`.
        intermediate_size (`int`, *optional*): MLP width (transformer only), `4 * hidden_size` when unset.
        hidden_act (`str`): MLP activation.
        max_position_embeddings (`int`): the longest input, in tokens, the model accepts.
        rope_theta (`float`): base of the rotary position embedding.
        rms_norm_eps (`float`): epsilon of the RMS norms.
        hidden_dropout_prob, attention_dropout, embedding_dropout (`float`): dropout rates.
        initializer_range (`float`): std of the normal initialisation; output projections of each block are
            further scaled by `1 / sqrt(2 * num_hidden_layers)` (GPT-2's depth scaling).
        bidirectional (`bool`, defaults to `True`): recurrent backbones only. The backbone holds a forward and a
            backward recurrent stack; the causal LM trains both as language models (ELMo / Flair), generation
            uses the forward one, and classification heads read the concatenation of both.
        classifier_attention (`str`, defaults to `"bidirectional"`): transformer only. Attention used under the
            token and sequence classification heads: `"bidirectional"` (every character sees both sides) or
            `"causal"` (as in pretraining). For a bidirectional recurrent backbone, `"bidirectional"` makes the heads
            read both stacks and `"causal"` the forward one only.
        classifier_pooling (`str`, defaults to `"mean"`): sequence classification pooling over real tokens:
            `"mean"`, `"last"` (last non-padding token) or `"first"`.
        classifier_dropout (`float`, *optional*): dropout before the classification heads.
        tie_word_embeddings (`bool`, defaults to `True`): share the input embedding with the LM output layer.
        use_crf (`bool`, defaults to `False`): token classification only: a linear-chain CRF on the per-character
            scores (negative log-likelihood loss, Viterbi decoding), with the transitions the BIO / BMES / BIOES tag
            scheme of `id2label` forbids made impossible.
        detection_loss_weight (`float`, *optional*): masked LM only: adds an error-detection head (MacBERT4CSC /
            Soft-Masked BERT) for same-length correction, a linear layer giving each position the probability that
            its character is wrong; the loss is `(1 - w) * correction + w * detection` with this `w` in (0, 1).
            `None` (the default): no head.
        bigram_buckets (`int`, defaults to 0): hashed character-bigram features (the bigram embeddings of neural
            word segmentation, Pei et al. 2014; Chen et al. 2015): each position also reads an embedding of the pair
            (previous character, this character), hashed into this many buckets, of width `bigram_embedding_size`,
            projected to `hidden_size` and added to the character embedding. The projection starts at zero, so a
            backbone loaded from a checkpoint without bigrams starts out computing what it computed before. 0: off.
            Not for the causal LM (a cached generation step does not see the previous character).
        bigram_embedding_size (`int`, defaults to 64): width of the bigram embeddings.
        feature_buckets (`int`, defaults to 0): token and sequence classification only: hashed character n-gram
            indicator features added straight to the head's scores, each a row of per-label weights (starting at
            zero) trained with the network: a linear model beside the deep one (wide-and-deep). Token
            classification reads the features of a CRF tagger (the characters at offsets -2..2 and the pairs
            (-2,-1), (-1,0), (0,1), (1,2), (-1,1)); sequence classification the character 1-, 2- and 3-grams of the
            text, summed over its positions and divided by the square root of its length. This many buckets of
            `num_labels` weights each. 0: off.
        lexicon_max_length (`int`, defaults to 0): lexicon features (the dictionary features of neural word
            segmentation, Zhang et al. 2018; for the masked LM and the classification heads, not the causal LM or
            the encoder-decoder): for every length 2..`lexicon_max_length` (in tokens, at most 8) each position
            reads whether a word of the model's lexicon of that length begins there, continues through it or ends
            there, projected to `hidden_size` and added to the character embedding (the projection starts at
            zero). The lexicon is part of the model (the `hashes` / `folds` buffers of `CharLMLexiconFeatures`,
            filled by `set_lexicon`); `scripts/finetune_token_classification.py --lexicon train` builds it from
            the spans of the train split. 0: off.
        lexicon_size (`int`, defaults to 0): number of entries in the lexicon buffers (set by `set_lexicon`).
        byte_token_start (`int`, *optional*, defaults to 7): id of the byte-fallback token `<0x00>`; the 256 byte
            tokens `<0x00>`..`<0xFF>` are the ids from there on (the layout of every hf_charlm tokenizer: 7 special
            tokens, then the bytes). `generate()` keeps generated byte tokens valid UTF-8 with it. `None` turns that
            off (a tokenizer without byte fallback).
        ensemble_size (`int`, defaults to 1): token and sequence classification only: the model is an output
            ensemble of this many members, each a backbone with its own classifier (and n-gram features); the scores
            the CRF (or the argmax) reads are the mean of the members' scores, a text's logits the mean of the
            members' logits. Built from separately fine-tuned models by `from_members` of either head
            (`scripts/build_ensemble.py`). 1: one model.
        attention_type (`str`, defaults to `"additive"`): encoder-decoder with a recurrent backbone only: how the
            decoder scores the encoder states, `"additive"` (Bahdanau) or `"dot"` (Luong). The encoder-decoder
            (`CharLMForConditionalGeneration`) has `num_hidden_layers` layers in encoder and decoder, and sets
            `is_encoder_decoder=True` (and `decoder_start_token_id`, default `bos_token_id`) on its config.
    """

    model_type = "charlm"
    keys_to_ignore_at_inference = ["cache"]

    def __init__(
        self,
        backbone: str = "transformer",
        vocab_size: int = 512,
        hidden_size: int = 256,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int | None = None,
        hidden_act: str = "gelu",
        max_position_embeddings: int = 1024,
        rope_theta: float = 10000.0,
        rms_norm_eps: float = 1e-6,
        hidden_dropout_prob: float = 0.0,
        attention_dropout: float = 0.0,
        embedding_dropout: float = 0.0,
        initializer_range: float = 0.02,
        bidirectional: bool = True,
        classifier_attention: str = "bidirectional",
        classifier_pooling: str = "mean",
        classifier_dropout: float | None = None,
        use_cache: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 2,
        eos_token_id: int | None = 3,
        tie_word_embeddings: bool = True,
        use_crf: bool = False,
        detection_loss_weight: float | None = None,
        bigram_buckets: int = 0,
        bigram_embedding_size: int = 64,
        feature_buckets: int = 0,
        lexicon_max_length: int = 0,
        lexicon_size: int = 0,
        byte_token_start: int | None = 7,
        attention_type: str = "additive",
        ensemble_size: int = 1,
        **kwargs,
    ):
        self.backbone = backbone
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size if intermediate_size is not None else 4 * hidden_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.embedding_dropout = embedding_dropout
        self.initializer_range = initializer_range
        self.bidirectional = bidirectional
        self.classifier_attention = classifier_attention
        self.classifier_pooling = classifier_pooling
        self.classifier_dropout = classifier_dropout
        self.use_cache = use_cache
        self.use_crf = use_crf
        self.detection_loss_weight = detection_loss_weight
        self.bigram_buckets = bigram_buckets
        self.bigram_embedding_size = bigram_embedding_size
        self.feature_buckets = feature_buckets
        self.lexicon_max_length = lexicon_max_length
        self.lexicon_size = lexicon_size
        self.byte_token_start = byte_token_start
        self.attention_type = attention_type
        self.ensemble_size = ensemble_size
        # attention keeps all heads for keys and values; the attention interface reads this.
        self.num_key_value_heads = num_attention_heads
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )
        self._check()

    def _check(self) -> None:
        def bad(field: str, allowed: str) -> None:
            raise ValueError(f"CharLMConfig.{field}={getattr(self, field)!r} is invalid: {allowed}.")

        if self.backbone not in BACKBONES:
            bad("backbone", f"must be one of {', '.join(repr(b) for b in BACKBONES)}")
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "max_position_embeddings", "intermediate_size"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(field, "must be a positive integer")
        if self.backbone == "transformer":
            if not isinstance(self.num_attention_heads, int) or self.num_attention_heads < 1:
                bad("num_attention_heads", "must be a positive integer")
            if self.hidden_size % self.num_attention_heads:
                bad("hidden_size", f"must be divisible by num_attention_heads={self.num_attention_heads}")
            if (self.hidden_size // self.num_attention_heads) % 2:
                bad("hidden_size", "hidden_size / num_attention_heads must be even (rotary embeddings rotate pairs)")
        for field in ("hidden_dropout_prob", "attention_dropout", "embedding_dropout"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                bad(field, "must be in [0, 1)")
        if self.classifier_dropout is not None and not 0.0 <= self.classifier_dropout < 1.0:
            bad("classifier_dropout", "must be None or in [0, 1)")
        if self.classifier_attention not in CLASSIFIER_ATTENTION:
            bad("classifier_attention", f"must be one of {CLASSIFIER_ATTENTION}")
        if self.classifier_pooling not in CLASSIFIER_POOLING:
            bad("classifier_pooling", f"must be one of {CLASSIFIER_POOLING}")
        for field, least in (("bigram_buckets", 0), ("bigram_embedding_size", 1), ("feature_buckets", 0), ("ensemble_size", 1),
                             ("lexicon_max_length", 0), ("lexicon_size", 0)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                bad(field, f"must be an integer >= {least}")
        if self.lexicon_max_length in (1,) or self.lexicon_max_length > MAX_LEXICON_LENGTH:
            bad("lexicon_max_length", f"must be 0 (no lexicon features) or from 2 to {MAX_LEXICON_LENGTH}")
        weight = self.detection_loss_weight
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 < weight < 1.0):
            bad("detection_loss_weight", "must be None (no detection head) or a number in (0, 1)")
        if self.attention_type not in ATTENTION_TYPES:
            bad("attention_type", f"must be one of {ATTENTION_TYPES}")
        if self.byte_token_start is not None and (
            not isinstance(self.byte_token_start, int) or isinstance(self.byte_token_start, bool) or self.byte_token_start < 0
        ):
            bad("byte_token_start", "must be None or a non-negative token id")
        for field in ("pad_token_id", "bos_token_id", "eos_token_id"):
            value = getattr(self, field, None)
            if isinstance(value, int) and not 0 <= value < self.vocab_size:
                bad(field, f"must be a token id below vocab_size={self.vocab_size}")

    @property
    def is_recurrent(self) -> bool:
        return self.backbone in ("lstm", "gru")

    @property
    def classifier_hidden_size(self) -> int:
        """Width of the features the classification heads read: both directions of a bidirectional RNN, unless
        the heads are asked to read the left context only (`classifier_attention="causal"`)."""
        both = self.is_recurrent and self.bidirectional and self.classifier_attention == "bidirectional"
        return 2 * self.hidden_size if both else self.hidden_size


__all__ = ["CharLMConfig"]
