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

import torch  # noqa: E402  (only the correction pipeline below works on tensors itself)


class CharLMCorrectionModel:
    """The model loader of `pipeline("text-correction", model=dir)`: an encoder-decoder folder (its config has
    `is_encoder_decoder`) loads as `AutoModelForSeq2SeqLM`, any other char model as `AutoModelForMaskedLM` (the
    same-length corrector of `scripts/finetune_correction.py`)."""

    @classmethod
    def from_pretrained(cls, name_or_path: str, **kwargs: Any):
        from transformers import AutoConfig, AutoModelForMaskedLM

        config_kwargs = {k: kwargs[k] for k in ("revision", "trust_remote_code", "token") if k in kwargs}
        config = AutoConfig.from_pretrained(name_or_path, **config_kwargs)
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForMaskedLM
        return auto.from_pretrained(name_or_path, **kwargs)


def _pieces(tokenizer: Any, text: str, max_length: int) -> list[str]:
    """`text` cut into consecutive pieces of at most `max_length` tokens with the special tokens, at whitespace
    where it can be (a word longer than a piece is cut between characters): what an encoder-decoder rewrites."""
    import re

    from .correction import _char_costs

    capacity = max(1, max_length - tokenizer.num_special_tokens_to_add())
    costs = _char_costs(tokenizer, text)
    pieces, start, used = [], 0, 0
    for match in re.finditer(r"\S+\s*|\s+", text):
        for i in range(match.start(), match.end()):
            word_cost = sum(costs[i : match.end()]) if i == match.start() else costs[i]
            if used and (used + word_cost > capacity if i == match.start() else used + costs[i] > capacity):
                pieces.append(text[start:i])
                start, used = i, 0
            used += costs[i]
    pieces.append(text[start:])
    return pieces


class CharLMTextCorrectionPipeline(Pipeline):
    """`pipe("我们去学效上课")` -> `{"corrected_text": "我们去学校上课", "edits": [{"start": 5, "end": 6,
    "original": "效", "replacement": "校", "score": 0.93}]}` (character offsets into the input).

    With a same-length corrector (a masked char LM fine-tuned by `scripts/finetune_correction.py`) each character
    is replaced by the model's choice when that choice is another character with probability >= `min_score`
    (default 0.5; the edit's score is that probability), and, if the model has a detection head
    (`detection_loss_weight`), only where that head finds the character wrong with probability >= 0.5; a text
    longer than the model's positions is read in overlapping windows, each character judged where it has context
    on both sides. With an encoder-decoder
    (`scripts/finetune_seq2seq.py`, e.g. on `english_typos`) the text is rewritten by `generate` in pieces of at
    most the model's positions, the edits are the alignment of input and output (`metrics.text_edits`), and
    each edit's score is the mean probability of the generated tokens. A list of texts gives a list of answers.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, min_score: float | None = None, max_length: int | None = None,
                             stride: int | None = None, **generate_kwargs: Any):
        preprocess: dict[str, Any] = {}
        if max_length is not None:
            preprocess["max_length"] = max_length
        if stride is not None:
            preprocess["stride"] = stride
        postprocess = {"min_score": min_score} if min_score is not None else {}
        return preprocess, generate_kwargs, postprocess

    @property
    def _is_seq2seq(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    def _limit(self, max_length: int | None) -> int:
        config = self.model.config
        limit = config.max_position_embeddings if config.backbone == "transformer" else 512
        return min(max_length or limit, limit)

    def preprocess(self, text: str, max_length: int | None = None, stride: int | None = None) -> dict:
        from .correction import _encode_window, plan_char_windows

        if not isinstance(text, str):
            raise TypeError(f"text-correction takes a text or a list of texts, got {type(text).__name__}.")
        limit = self._limit(max_length)
        if not self._is_seq2seq and self.model.config.backbone != "transformer":
            raise ValueError(f"text-correction: a {self.model.config.backbone} masked LM never reads the character it "
                             "predicts, so it cannot correct one; use a transformer or an encoder-decoder.")
        if self._is_seq2seq:  # consecutive pieces, each short enough for the encoder and for the output
            pieces = _pieces(self.tokenizer, text, limit)
            enc = self.tokenizer(pieces, return_tensors="pt", padding=True, split_special_tokens=True)
            return {"text": text, "pieces": pieces, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        rows, plan = [], []
        for start, end, own_start, own_end in plan_char_windows(self.tokenizer, text, limit, stride):
            ids, positions = _encode_window(self.tokenizer, text, start, end)
            rows.append(ids)
            plan.append((0, positions, own_start, own_end))
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
        return {"text": text, "plan": plan, "input_ids": input_ids, "attention_mask": attention_mask}

    def _forward(self, model_inputs: dict, **generate_kwargs: Any) -> dict:
        if self._is_seq2seq:
            # room for a few inserted characters, never past the decoder's positions
            room = model_inputs["input_ids"].shape[1] + model_inputs["input_ids"].shape[1] // 2 + 8
            if "max_new_tokens" not in generate_kwargs:  # max_length (decoder tokens, start included) overrides the
                generate_kwargs.setdefault("max_length", min(room, self._limit(None)) + 1)  # saved one without a warning
            out = self.model.generate(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"],
                                      return_dict_in_generate=True, output_scores=True, **generate_kwargs)
            scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            return {**model_inputs, "output_ids": out.sequences, "token_logprobs": scores}
        from .correction import gate_by_detection

        outputs = self.model(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"])
        best, best_id = outputs.logits.float().softmax(-1).max(-1)
        best_id = gate_by_detection(best_id, getattr(outputs, "detection_logits", None))
        return {**model_inputs, "best": best, "best_id": best_id}

    def postprocess(self, model_outputs: dict, min_score: float = 0.5) -> dict:
        from .correction import apply_edits, char_vocabulary, merge_predictions
        from .metrics import text_edits

        text = model_outputs["text"]
        if self._is_seq2seq:
            edits, offset = [], 0
            special = set(self.tokenizer.all_special_ids)
            for piece, ids, logprobs in zip(model_outputs["pieces"], model_outputs["output_ids"], model_outputs["token_logprobs"]):
                generated = ids[-logprobs.shape[0]:]  # the decoder's start token is not scored
                kept = [float(lp) for t, lp in zip(generated.tolist(), logprobs.tolist()) if t not in special and lp > float("-inf")]
                score = float(torch.tensor(kept).exp().mean()) if kept else 0.0
                output = self.tokenizer.decode(ids, skip_special_tokens=True)
                for start, end, replacement in text_edits(piece, output):
                    edits.append({"start": offset + start, "end": offset + end, "original": piece[start:end],
                                  "replacement": replacement, "score": score})
                offset += len(piece)
            return {"corrected_text": apply_edits(text, edits), "edits": edits}
        plan = model_outputs["plan"]
        predicted = model_outputs["best_id"].tolist()
        scores = model_outputs["best"].tolist()
        edits = merge_predictions([text], plan, predicted, scores, char_vocabulary(self.tokenizer), min_score)[0]
        edits.sort(key=lambda e: e["start"])
        return {"corrected_text": apply_edits(text, edits), "edits": edits}


PIPELINE_REGISTRY.register_pipeline("text-correction", pipeline_class=CharLMTextCorrectionPipeline, pt_model=CharLMCorrectionModel)
__all__ += ["CharLMTextCorrectionPipeline", "CharLMCorrectionModel"]
