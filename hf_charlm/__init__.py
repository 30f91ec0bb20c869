"""hf_charlm: Hugging Face-compatible character-level language models.

Public names and the Auto-class registration, nothing else: after `import hf_charlm`, `AutoConfig`,
`AutoModel`, `AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModelForTokenClassification`,
`AutoModelForSequenceClassification` and `AutoModelForSeq2SeqLM` know `model_type = "charlm"`.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_charlm import CharLMConfig
from .modeling_charlm import (
    CharLMForCausalLM,
    CharLMForMaskedLM,
    CharLMForSequenceClassification,
    CharLMForTokenClassification,
    CharLMModel,
    CharLMPreTrainedModel,
    CharLMRecurrentCache,
)
from .modeling_charlm_seq2seq import CharLMForConditionalGeneration
from .presets import PRESETS, config_from_preset
from .tokenization_charlm import CharLMTokenizerFast, build_char_tokenizer, train_char_tokenizer
from . import pipelines  # noqa: F401  (registers the text2text-generation / translation pipelines)

__version__ = "0.1.0"

AutoConfig.register("charlm", CharLMConfig, exist_ok=True)
CharLMConfig.register_for_auto_class("AutoConfig")
for _auto, _cls in (
    (AutoModel, CharLMModel),
    (AutoModelForCausalLM, CharLMForCausalLM),
    (AutoModelForMaskedLM, CharLMForMaskedLM),
    (AutoModelForTokenClassification, CharLMForTokenClassification),
    (AutoModelForSequenceClassification, CharLMForSequenceClassification),
    (AutoModelForSeq2SeqLM, CharLMForConditionalGeneration),
):
    _auto.register(CharLMConfig, _cls, exist_ok=True)
    _cls.register_for_auto_class(_auto.__name__)

__all__ = [
    "CharLMConfig",
    "CharLMModel",
    "CharLMPreTrainedModel",
    "CharLMForCausalLM",
    "CharLMForMaskedLM",
    "CharLMForTokenClassification",
    "CharLMForSequenceClassification",
    "CharLMForConditionalGeneration",
    "CharLMRecurrentCache",
    "PRESETS",
    "config_from_preset",
    "CharLMTokenizerFast",
    "build_char_tokenizer",
    "train_char_tokenizer",
    "__version__",
]
