"""Text correction with char models: the same-length corrector (a masked char LM that predicts the right character
at every position, MacBERT4CSC style), the zero-shot corrector (a pretrained masked char LM scores each
character in context and swaps in the confusion-set candidate it prefers), and the training examples of
`scripts/finetune_correction.py`. The helpers they share with the `text-correction` pipeline (windows of
characters, predictions to edits, applying edits) live in the shipped `spans_charlm.py` and are re-exported here.

An edit is `{"start", "end", "original", "replacement", "score"}` with character offsets into the input text,
as the `text-correction` pipeline returns it. May import the package, `torch` and public `transformers` names;
the confusion sets come from `hf_charlm.correction_data` (the `correction` extra).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .metrics import correction_scores
from .spans_charlm import (  # (also what the scripts and benchmarks import from here)
    _encode_window,
    apply_edits,
    char_vocabulary,
    gate_by_detection,
    merge_predictions,
    plan_char_windows,
)

__all__ = [
    "char_vocabulary",
    "plan_char_windows",
    "encode_correction_examples",
    "apply_edits",
    "predict_same_length",
    "ZeroShotCorrector",
    "ConfusionSetCorrector",
]


def encode_correction_examples(
    tokenizer: Any, sources: Sequence[str], targets: Sequence[str] | None, max_length: int, stride: int | None = None
) -> tuple[dict[str, list[list[int]]], list[tuple[int, list[int], int, int]]]:
    """Model inputs for same-length correction: each source in windows (`plan_char_windows`), `labels` the
    target's character id at every single-token character (the source's own id where the target has no such
    token, or without targets; -100 at special tokens and byte-token characters). Returns the columns and, per
    window, `(example, positions, own_start, own_end)` that `merge_predictions` reads back."""
    vocab = {c: i for i, c in char_vocabulary(tokenizer).items()}
    columns: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    plan = []
    for n, source in enumerate(sources):
        target = targets[n] if targets is not None else None
        if target is not None and len(target) != len(source):
            raise ValueError(f"example {n}: the source has {len(source)} characters but the target {len(target)}; "
                             "same-length correction needs one target character per source character")
        for start, end, own_start, own_end in plan_char_windows(tokenizer, source, max_length, stride):
            ids, positions = _encode_window(tokenizer, source, start, end)
            labels = []
            for token, p in zip(ids, positions):
                if p < 0:
                    labels.append(-100)
                else:
                    labels.append(vocab.get(target[p], token) if target is not None else token)
            columns["input_ids"].append(ids)
            columns["attention_mask"].append([1] * len(ids))
            columns["labels"].append(labels)
            plan.append((n, positions, own_start, own_end))
    return columns, plan


def _batches(columns: dict[str, list[list[int]]], batch_size: int, pad_id: int):
    for start in range(0, len(columns["input_ids"]), batch_size):
        rows = columns["input_ids"][start : start + batch_size]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        yield start, ids, mask


@torch.no_grad()
def predict_same_length(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int | None = None, stride: int | None = None,
    batch_size: int = 32, min_score: float = 0.0,
) -> list[list[dict]]:
    """Edits of a same-length corrector (`CharLMForMaskedLM` fine-tuned by `scripts/finetune_correction.py`) for
    each text: the most likely character at every position, kept where it differs from the input and its
    probability is at least `min_score` (and, with a detection head, where it finds the input character wrong with
    probability >= 0.5). Long texts are read in overlapping windows."""
    model.eval()
    max_length = max_length or _model_limit(model)
    columns, plan = encode_correction_examples(tokenizer, texts, None, max_length, stride)
    predicted, scores = [], []
    device = next(model.parameters()).device
    for _, ids, mask in _batches(columns, batch_size, tokenizer.pad_token_id):
        outputs = model(input_ids=ids.to(device), attention_mask=mask.to(device))
        best, best_id = outputs.logits.float().softmax(-1).max(-1)
        best_id = gate_by_detection(best_id, getattr(outputs, "detection_logits", None))
        predicted.extend(best_id.cpu().tolist())
        scores.extend(best.cpu().tolist())
    return merge_predictions(texts, plan, predicted, scores, char_vocabulary(tokenizer), min_score)


def _model_limit(model: Any) -> int:
    config = model.config
    return config.max_position_embeddings if getattr(config, "backbone", "transformer") == "transformer" else 512


def _candidate_ids(candidates: Callable[[str], frozenset[str]], ids: dict[str, int], char: str) -> list[str]:
    """The confusable characters of `char` that are one vocabulary token, sorted; none for a character outside."""
    return [c for c in sorted(candidates(char)) if c in ids] if char in ids else []


# the margins `tune` tries (nats). On 300 peoples_daily_csc validation sentences the zero-shot corrector's best was 8
# (the end of an earlier grid) and the fine-tuned one's held to the confusion sets 0 (a fine-tuned corrector leans
# to copying its input: a candidate a little below the character may still be the fix)
MARGINS = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0)


class _MarginCorrector:
    """What the confusion-set correctors share: `proposals` gives, per text, each confusable character with its best
    candidate and the log-probability gain of that candidate over the character; an edit is a proposal whose gain
    exceeds `margin`, which `tune` picks on validation pairs."""

    def __init__(self, model: Any, tokenizer: Any, candidates: Callable[[str], frozenset[str]] | None, margin: float,
                 max_length: int | None, batch_size: int):
        if candidates is None:  # the pycorrector sound / shape sets widened by pypinyin
            from .correction_data import candidates as default_candidates

            candidates = default_candidates
        self.model, self.tokenizer, self.candidates = model.eval(), tokenizer, candidates
        self.margin, self.batch_size = margin, batch_size
        self.max_length = max_length or _model_limit(model)
        self._ids = {c: i for i, c in char_vocabulary(tokenizer).items()}

    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        raise NotImplementedError

    def correct(self, texts: Sequence[str], proposals: list[list[dict]] | None = None) -> list[list[dict]]:
        """The edits whose gain exceeds the margin, per text."""
        proposals = self.proposals(texts) if proposals is None else proposals
        return [[e for e in edits if e["score"] > self.margin] for edits in proposals]

    def tune(self, sources: Sequence[str], targets: Sequence[str], margins: Sequence[float] = MARGINS) -> dict[str, float]:
        """Sets `margin` to the value of `margins` with the best sentence-level correction F1 on these (validation)
        pairs; returns that F1 per margin."""
        proposals = self.proposals(sources)
        results = {}
        for margin in margins:
            self.margin = margin
            outputs = [apply_edits(s, e) for s, e in zip(sources, self.correct(sources, proposals))]
            results[margin] = correction_scores(sources, targets, outputs)["sentence_correction_f1"]
        self.margin = max(results, key=lambda m: (results[m], m))  # ties: the larger margin, fewer false alarms
        return results


class ZeroShotCorrector(_MarginCorrector):
    """Correction with a pretrained masked char LM and no fine-tuning.

    Each character that has confusion-set candidates is masked in turn (read with `context` characters on either
    side) and the model's distribution at that position compared: the best candidate replaces the character when its log-probability beats the character's
    own by more than `margin` nats. `tune` picks the margin on validation pairs (sentence-level correction F1).
    `candidates` maps a character to its confusable characters (default: `correction_data.candidates`, the
    pycorrector sound / shape sets widened by pypinyin).
    """

    def __init__(self, model: Any, tokenizer: Any, candidates: Callable[[str], frozenset[str]] | None = None,
                 margin: float = 2.0, context: int = 24, max_length: int | None = None, batch_size: int = 64):
        if tokenizer.mask_token_id is None:
            raise ValueError("the zero-shot corrector masks characters: the tokenizer has no mask token")
        super().__init__(model, tokenizer, candidates, margin, max_length, batch_size)
        self.context = context

    @torch.no_grad()
    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        """For every text, each confusable character with the best candidate and the log-probability gain
        (`score` = log p(candidate) - log p(character)), before any margin."""
        out: list[list[dict]] = [[] for _ in texts]
        rows, where = [], []  # one masked copy of a window per candidate position
        for n, text in enumerate(texts):
            for p, char in enumerate(text):
                options = _candidate_ids(self.candidates, self._ids, char)
                if not options:
                    continue
                # the masked character in `context` characters either side: one masked copy per position costs
                # O(length x window) instead of O(length^2), and a character's spelling rarely depends on more
                context = self.context
                while True:
                    start, end = max(0, p - context), min(len(text), p + context + 1)
                    ids, positions = _encode_window(self.tokenizer, text, start, end)
                    if len(ids) <= self.max_length or context == 0:
                        break
                    context //= 2
                k = positions.index(p)
                ids[k] = self.tokenizer.mask_token_id
                rows.append(ids)
                where.append((n, p, k, options))
        device = next(self.model.parameters()).device
        for start, ids, mask in _batches({"input_ids": rows}, self.batch_size, self.tokenizer.pad_token_id):
            ks = torch.tensor([where[start + b][2] for b in range(ids.shape[0])])
            logp = self._masked_logits(ids.to(device), mask.to(device), ks.to(device)).float().log_softmax(-1)  # (B, V)
            for b in range(ids.shape[0]):
                n, p, k, options = where[start + b]
                original = texts[n][p]
                scores = logp[b, [self._ids[c] for c in options]]
                best = int(scores.argmax())
                gain = float(scores[best] - logp[b, self._ids[original]])
                out[n].append({"start": p, "end": p + 1, "original": original, "replacement": options[best], "score": gain})
        return out

    def _masked_logits(self, ids: torch.Tensor, mask: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
        """(B, V) logits at position ks[b] of each row: for a transformer the output layer runs on those positions
        only (the vocabulary is large; the rows are short)."""
        rows = torch.arange(ids.shape[0], device=ids.device)
        if getattr(self.model.config, "backbone", "transformer") == "transformer" and hasattr(self.model, "lm_head"):
            hidden = self.model.model(input_ids=ids, attention_mask=mask, use_cache=False, is_causal=False,
                                      return_dict=True).last_hidden_state  # (B, T, H), read both ways
            return self.model.lm_head(hidden[rows, ks])
        return self.model(input_ids=ids, attention_mask=mask).logits[rows, ks]

class ConfusionSetCorrector(_MarginCorrector):
    """A same-length corrector (`scripts/finetune_correction.py`) held to the confusion sets: the model reads each
    text once, unmasked, and at every character that has candidates the best candidate replaces it when its
    log-probability beats the character's own by more than `margin` nats (`tune` picks the margin on validation
    pairs). The model's free choice over the whole vocabulary (`predict_same_length`) may write any character; this
    one writes only the confusable characters a spelling error is made of, as the zero-shot corrector does, at one
    forward pass per window instead of one per character.
    """

    def __init__(self, model: Any, tokenizer: Any, candidates: Callable[[str], frozenset[str]] | None = None,
                 margin: float = 0.0, max_length: int | None = None, stride: int | None = None, batch_size: int = 32):
        super().__init__(model, tokenizer, candidates, margin, max_length, batch_size)
        self.stride = stride

    @torch.no_grad()
    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        columns, plan = encode_correction_examples(self.tokenizer, texts, None, self.max_length, self.stride)
        out: list[list[dict]] = [[] for _ in texts]
        device = next(self.model.parameters()).device
        for start, ids, mask in _batches(columns, self.batch_size, self.tokenizer.pad_token_id):
            outputs = self.model(input_ids=ids.to(device), attention_mask=mask.to(device))
            logp = outputs.logits.float().log_softmax(-1).cpu()  # (B, T, V)
            for b in range(ids.shape[0]):
                n, positions, own_start, own_end = plan[start + b]
                text = texts[n]
                for k, p in enumerate(positions):
                    if p < own_start or p >= own_end:  # specials, byte tokens, another window's character
                        continue
                    options = _candidate_ids(self.candidates, self._ids, text[p])
                    if not options:
                        continue
                    scores = logp[b, k, [self._ids[c] for c in options]]
                    best = int(scores.argmax())
                    gain = float(scores[best] - logp[b, k, self._ids[text[p]]])
                    out[n].append({"start": p, "end": p + 1, "original": text[p], "replacement": options[best], "score": gain})
        return out
