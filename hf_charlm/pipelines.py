"""Pipelines for the encoder-decoder: `pipeline("text2text-generation", model=dir)` and `pipeline("translation",
model=dir)`, registered with `transformers.pipelines.PIPELINE_REGISTRY` when `hf_charlm` is imported.

transformers 5.24 removed both tasks from its own pipelines. `register_pipeline` accepts the two names, but
`pipeline()` still refuses them through its table of removed tasks (`transformers.pipelines.REMOVED_TASKS`), so this
module takes exactly those two entries out of it (the tasks it points to are the ones registered here) and also
registers them as `charlm-text2text-generation` and `charlm-translation`, names that need no such change. The
pipeline is small: tokenize the source,
`model.generate`, decode. It takes one text or a list (`batch_size` pads them together; the model gives each
row what it gives alone), generation keywords at construction or per call (`num_beams`, `max_new_tokens`,
`do_sample`, `num_return_sequences`, ...), and answers as the old pipelines did: `[{"generated_text": ...}]`
per text (`"translation_text"` for translation), a flat list of those for a list of texts.

May import the package and public `transformers` names.
"""

from typing import Any

from transformers import AutoModelForSeq2SeqLM, GenerationConfig, Pipeline
from transformers import pipelines as _hf_pipelines
from transformers.pipelines import PIPELINE_REGISTRY

# what `generate()` gets when neither the caller nor the model's generation config says otherwise
DEFAULT_MAX_NEW_TOKENS = 128


class CharLMText2TextGenerationPipeline(Pipeline):
    """Characters in, characters out: `pipe("ni hao")` -> `[{"generated_text": "你好"}]`."""

    return_name = "generated"
    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _default_generation_config = GenerationConfig(max_new_tokens=DEFAULT_MAX_NEW_TOKENS)

    def _sanitize_parameters(self, truncation: bool | None = None, max_length: int | None = None,
                             clean_up_tokenization_spaces: bool | None = None, **generate_kwargs: Any):
        preprocess: dict[str, Any] = {}
        if truncation is not None:
            preprocess["truncation"] = truncation
        if max_length is not None:  # of the source; the output's length is max_new_tokens
            preprocess["max_length"] = max_length
        postprocess = {}
        if clean_up_tokenization_spaces is not None:
            postprocess["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess, generate_kwargs, postprocess

    def __call__(self, inputs: str | list[str], **kwargs: Any):
        result = super().__call__(inputs, **kwargs)
        # as the old Text2TextGenerationPipeline: one answer per text flattens to a list of dicts
        if isinstance(inputs, list) and all(isinstance(r, list) and len(r) == 1 for r in result):
            return [r[0] for r in result]
        return result

    def preprocess(self, text: str, truncation: bool = True, max_length: int | None = None) -> dict:
        if not isinstance(text, str):
            raise TypeError(f"{self.task} takes a text or a list of texts, got {type(text).__name__}.")
        config = self.model.config
        if max_length is None and config.backbone == "transformer":
            max_length = config.max_position_embeddings  # the encoder has no positions beyond these
        # the text is read literally: "<s>" typed in it is four characters, not a special token
        return self.tokenizer(text, return_tensors="pt", split_special_tokens=True,
                              truncation=truncation and max_length is not None, max_length=max_length)

    def _forward(self, model_inputs: dict, **generate_kwargs: Any):
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        output_ids = self.model.generate(
            input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"], **generate_kwargs
        )
        batch = model_inputs["input_ids"].shape[0]
        return {"output_ids": output_ids.reshape(batch, -1, output_ids.shape[-1])}  # (B, num_return_sequences, T)

    def postprocess(self, model_outputs: dict, clean_up_tokenization_spaces: bool = False) -> list[dict[str, str]]:
        return [
            {f"{self.return_name}_text": self.tokenizer.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces)}
            for ids in model_outputs["output_ids"][0]
        ]


class CharLMTranslationPipeline(CharLMText2TextGenerationPipeline):
    """The same, answering `[{"translation_text": ...}]` as transformers' former translation pipeline did."""

    return_name = "translation"


TASK_NAMES = {
    "text2text-generation": CharLMText2TextGenerationPipeline,
    "charlm-text2text-generation": CharLMText2TextGenerationPipeline,
    "translation": CharLMTranslationPipeline,
    "charlm-translation": CharLMTranslationPipeline,
}
for _task, _cls in TASK_NAMES.items():
    PIPELINE_REGISTRY.register_pipeline(_task, pipeline_class=_cls, pt_model=AutoModelForSeq2SeqLM)
# pipeline() raises "has been removed" for the names in this table before it looks at the registry
_removed = getattr(_hf_pipelines, "REMOVED_TASKS", None)
if isinstance(_removed, dict):
    for _task in ("text2text-generation", "translation"):
        _removed.pop(_task, None)

__all__ = ["CharLMText2TextGenerationPipeline", "CharLMTranslationPipeline", "TASK_NAMES"]


# ---------------------------------------------------------------------------------------------------------------
# text correction

import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

_SHIPPED = f"{__package__}.pipeline_charlm"  # the pipeline's own file, shipped with correctors (also remote code)
_correction_registered = False


class CharLMCorrectionModel:
    """The model loader of `pipeline("text-correction", model=dir)`: an encoder-decoder folder (its config has
    `is_encoder_decoder`) loads as `AutoModelForSeq2SeqLM`, any other char model as `AutoModelForMaskedLM` (the
    same-length corrector of `scripts/finetune_correction.py`); a folder that `LanguageModelCorrector.save_pretrained`
    wrote loads as that corrector, held by its first model (`model.noisy_channel`)."""

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any):
        from transformers import AutoConfig, AutoModelForMaskedLM

        from .correction import LanguageModelCorrector, saved_corrector_folder

        folder = saved_corrector_folder(name_or_path, **kwargs) if isinstance(name_or_path, (str, os.PathLike)) else None
        if folder is not None:
            # a noisy-channel corrector (`LanguageModelCorrector.save_pretrained`): its first model is the
            # pipeline's, and carries the corrector, which the pipeline then asks instead of the model
            corrector = LanguageModelCorrector.from_pretrained(folder)
            primary = next((n for n in ("masked", "forward", "backward") if n in corrector.models), None)
            if primary is None:
                raise ValueError(f"{name_or_path!r} is a noisy-channel corrector without a neural model, which a "
                                 "pipeline needs: load it with LanguageModelCorrector.from_pretrained(folder) and "
                                 "call it (corrector(text) answers as the pipeline does)")
            model = corrector.models[primary][0]
            model.noisy_channel = corrector
            return model
        config_kwargs = {k: kwargs[k] for k in ("revision", "trust_remote_code", "token") if k in kwargs}
        config = AutoConfig.from_pretrained(name_or_path, **config_kwargs)
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForMaskedLM
        return auto.from_pretrained(name_or_path, **kwargs)


def register_correction_pipeline() -> None:
    """Registers `pipeline("text-correction")` once `pipeline_charlm` is complete: from here, or, when importing
    that module is what brought this one in (its `from transformers import Pipeline` imports transformers.pipelines,
    after which hf_charlm imports this module), from hf_charlm's post-import hook once it has finished."""
    global _correction_registered
    shipped = sys.modules.get(_SHIPPED)
    if _correction_registered or shipped is None or not hasattr(shipped, "CharLMTextCorrectionPipeline"):
        return
    PIPELINE_REGISTRY.register_pipeline("text-correction", pipeline_class=shipped.CharLMTextCorrectionPipeline,
                                        pt_model=CharLMCorrectionModel)
    _correction_registered = True


if _SHIPPED not in sys.modules:
    importlib.import_module(_SHIPPED)
register_correction_pipeline()  # (a partly imported pipeline_charlm registers through the hook instead)


def __getattr__(name: str):
    if name == "CharLMTextCorrectionPipeline":
        return importlib.import_module(_SHIPPED).CharLMTextCorrectionPipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ += ["CharLMCorrectionModel", "register_correction_pipeline"]  # and CharLMTextCorrectionPipeline
