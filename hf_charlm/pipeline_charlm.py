"""The `text-correction` pipeline: a text (or a list) in, `{"corrected_text", "edits"}` out, an edit being
`{"start", "end", "original", "replacement", "score"}` with character offsets into the input text. Its helpers
(windows of characters, predictions to edits, applying edits) are in the sibling `spans_charlm.py`, which
`hf_charlm.correction` uses too.

This file ships with every text-correction checkpoint (the model's `save_pretrained` copies it and writes
`custom_pipelines` into config.json, task `charlm-text-correction`), so that `pipeline(model=dir,
trust_remote_code=True)` runs it on a machine without hf_charlm. It may import only `torch`, public `transformers`
names and single-dot siblings that ship too. With the package installed, `hf_charlm.pipelines` registers the same
class as `pipeline("text-correction")`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from transformers import Pipeline

from .spans_charlm import (
    _char_costs,
    _encode_window,
    apply_edits,
    char_vocabulary,
    gate_by_detection,
    merge_predictions,
    plan_char_windows,
    text_edits,
)


def _pieces(tokenizer: Any, text: str, max_length: int) -> list[str]:
    """`text` cut into consecutive pieces of at most `max_length` tokens with the special tokens, at whitespace
    where it can be (a word longer than a piece is cut between characters): what an encoder-decoder rewrites."""
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


# the settings file of a saved noisy-channel corrector (`hf_charlm.correction.LanguageModelCorrector.CONFIG_NAME`)
NOISY_CHANNEL_CONFIG = "noisy_channel.json"


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
    most the model's positions, the edits are the alignment of input and output (`text_edits`), and
    each edit's score is the mean probability of the generated tokens. A folder written by
    `hf_charlm.correction.LanguageModelCorrector.save_pretrained` (a noisy channel: n-gram, language models,
    weights or reranker, margin) is corrected by that corrector, as it was tuned; its edits' scores are its own
    (weighted gains or log-odds). A list of texts gives a list of answers.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        corrector = getattr(self.model, "noisy_channel", None)
        if corrector is not None:  # its other models go where the pipeline put the one it loaded (`device=`)
            corrector.to(self.model.device)

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

    @property
    def _noisy_channel(self) -> Any:
        """The noisy-channel corrector the model carries when `pipeline("text-correction", model=dir)` loaded a
        folder of `hf_charlm.correction.LanguageModelCorrector.save_pretrained`; None otherwise."""
        corrector = getattr(self.model, "noisy_channel", None)
        if corrector is None and os.path.isfile(os.path.join(str(getattr(self.model, "name_or_path", "")),
                                                             NOISY_CHANNEL_CONFIG)):
            raise ValueError(
                f"{self.model.name_or_path!r} is a saved noisy-channel corrector (n-gram, language models and "
                "reranker), which needs the hf_charlm package (`pip install hf_charlm[correction]`, then "
                "pipeline(\"text-correction\", model=folder)); its model alone is not a corrector."
            )
        return corrector

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        corrector = self._noisy_channel
        if corrector is not None and isinstance(inputs, (str, list, tuple)):
            # a text or a list goes to the corrector whole: it reads the texts together, in batches of its own
            # `batch_size` (one text at a time, through preprocess / _forward below, is what a stream gets)
            ignored = {"batch_size", "num_workers"}
            if args or set(kwargs) - ignored:
                raise TypeError(
                    f"a noisy-channel corrector takes no {sorted(set(kwargs) - ignored) or 'positional arguments'} here "
                    "(min_score, max_length and stride are the same-length corrector's); its margin and settings are "
                    "set when it is loaded: LanguageModelCorrector.from_pretrained(folder, margin=...)"
                )
            return corrector(list(inputs) if isinstance(inputs, tuple) else inputs)
        return super().__call__(inputs, *args, **kwargs)

    def preprocess(self, text: str, max_length: int | None = None, stride: int | None = None) -> dict:
        if not isinstance(text, str):
            raise TypeError(f"text-correction takes a text or a list of texts, got {type(text).__name__}.")
        if self._noisy_channel is not None:  # it reads the text itself, with its own windows
            return {"text": text}
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
        if self._noisy_channel is not None:  # its answer is already the pipeline's
            return {"answer": self._noisy_channel(model_inputs["text"])}
        if self._is_seq2seq:
            # room for a few inserted characters, never past the decoder's positions
            room = model_inputs["input_ids"].shape[1] + model_inputs["input_ids"].shape[1] // 2 + 8
            if "max_new_tokens" not in generate_kwargs:  # max_length (decoder tokens, start included) overrides the
                generate_kwargs.setdefault("max_length", min(room, self._limit(None)) + 1)  # saved one without a warning
            out = self.model.generate(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"],
                                      return_dict_in_generate=True, output_scores=True, **generate_kwargs)
            scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            return {**model_inputs, "output_ids": out.sequences, "token_logprobs": scores}
        outputs = self.model(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"])
        best, best_id = outputs.logits.float().softmax(-1).max(-1)
        best_id = gate_by_detection(best_id, getattr(outputs, "detection_logits", None))
        return {**model_inputs, "best": best, "best_id": best_id}

    def postprocess(self, model_outputs: dict, min_score: float = 0.5) -> dict:
        if "answer" in model_outputs:  # the noisy channel's (its own margin or reranker decided; min_score plays no part)
            return model_outputs["answer"]
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


__all__ = ["CharLMTextCorrectionPipeline"]
