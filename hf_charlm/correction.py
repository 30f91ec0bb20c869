"""Text correction with char models: the same-length corrector (a masked char LM that predicts the right character
at every position, MacBERT4CSC style), the zero-shot corrector (a pretrained masked char LM scores each
character in context and swaps in the confusion-set candidate it prefers), and the helpers both share: reading a
text of any length in overlapping windows of characters, and the training examples of `scripts/finetune_correction.py`.

An edit is `{"start", "end", "original", "replacement", "score"}` with character offsets into the input text,
as the `text-correction` pipeline (`hf_charlm.pipelines`) returns it. May import the package, `torch` and
public `transformers` names; the confusion sets come from `hf_charlm.correction_data` (the `correction` extra).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .metrics import correction_scores
from .training import plan_windows

__all__ = [
    "char_vocabulary",
    "plan_char_windows",
    "encode_correction_examples",
    "apply_edits",
    "predict_same_length",
    "ZeroShotCorrector",
]


def char_vocabulary(tokenizer: Any) -> dict[int, str]:
    """Token id -> character for the tokens that are one ordinary character (no special token, no `<0xNN>` byte
    token): the characters a same-length corrector can write."""
    return _char_vocabulary(tokenizer.backend_tokenizer.to_str(), tuple(tokenizer.all_special_ids))


@functools.lru_cache(maxsize=8)
def _char_vocabulary(serialized: str, special: tuple[int, ...]) -> dict[int, str]:
    import json

    vocab = json.loads(serialized)["model"]["vocab"]
    return {i: t for t, i in vocab.items() if len(t) == 1 and i not in special}


def _char_costs(tokenizer: Any, text: str) -> list[int]:
    """Tokens per character of `text` (1 for a vocabulary character, its UTF-8 byte count for one outside)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True, verbose=False)
    costs = [0] * len(text)
    for start, end in enc["offset_mapping"]:
        if end > start:
            costs[start] += 1
    return costs


def plan_char_windows(tokenizer: Any, text: str, max_length: int, stride: int | None = None) -> list[tuple[int, int, int, int]]:
    """Windows `(start, end, own_start, own_end)` of characters that each fit `max_length` tokens with the special
    tokens; consecutive windows overlap by about `stride` tokens (default a quarter), and each character is judged
    by the one window that owns it (where it has context on both sides), as `training.plan_windows` plans them."""
    capacity = max(1, max_length - tokenizer.num_special_tokens_to_add())
    costs = _char_costs(tokenizer, text)
    if sum(costs) <= capacity:
        return [(0, len(text), 0, len(text))]
    stride = capacity // 4 if stride is None else stride
    return plan_windows(costs, capacity, min(stride, capacity // 2))


def _encode_window(tokenizer: Any, text: str, start: int, end: int) -> tuple[list[int], list[int]]:
    """Token ids of `text[start:end]` with the special tokens, and for each token the absolute index of its
    character when that character is exactly one token (else -1: specials and byte-token characters)."""
    enc = tokenizer(text[start:end], return_offsets_mapping=True, split_special_tokens=True, verbose=False)
    per_char: dict[int, int] = {}
    for s, e in enc["offset_mapping"]:
        if e > s:
            per_char[s] = per_char.get(s, 0) + 1
    positions = [start + s if e > s and per_char[s] == 1 else -1 for s, e in enc["offset_mapping"]]
    return enc["input_ids"], positions


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


def apply_edits(text: str, edits: Sequence[dict]) -> str:
    """`text` with `edits` (non-overlapping, character offsets into `text`) applied."""
    out, last = [], 0
    for edit in sorted(edits, key=lambda e: (e["start"], e["end"])):
        out.append(text[last : edit["start"]])
        out.append(edit["replacement"])
        last = edit["end"]
    out.append(text[last:])
    return "".join(out)


def merge_predictions(
    sources: Sequence[str], plan: Sequence[tuple[int, list[int], int, int]], predicted: Sequence[Sequence[int]],
    scores: Sequence[Sequence[float]] | None, vocabulary: dict[int, str], min_score: float = 0.0,
) -> list[list[dict]]:
    """Edits per source from per-window predicted ids (and their probabilities): a character owned by the window
    is replaced when the predicted token is another ordinary character and scores at least `min_score`."""
    edits: list[list[dict]] = [[] for _ in sources]
    for w, (n, positions, own_start, own_end) in enumerate(plan):
        source = sources[n]
        for k, p in enumerate(positions):
            if p < own_start or p >= own_end:  # -1 (specials, byte tokens) or another window's character
                continue
            char = vocabulary.get(int(predicted[w][k]))
            score = float(scores[w][k]) if scores is not None else 1.0
            if char is not None and char != source[p] and score >= min_score:
                edits[n].append({"start": p, "end": p + 1, "original": source[p], "replacement": char, "score": score})
    return edits


def gate_by_detection(best_id: torch.Tensor, detection_logits: torch.Tensor | None, threshold: float = 0.5) -> torch.Tensor:
    """The predicted ids of a same-length corrector, with -1 (no edit) wherever its detection head (if it has one)
    gives the input character a probability of being wrong below `threshold`."""
    if detection_logits is None:
        return best_id
    return best_id.masked_fill(detection_logits.float().sigmoid() < threshold, -1)


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


class ZeroShotCorrector:
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
        if candidates is None:
            from .correction_data import candidates as default_candidates

            candidates = default_candidates
        self.model, self.tokenizer, self.candidates = model.eval(), tokenizer, candidates
        self.margin, self.batch_size, self.context = margin, batch_size, context
        self.max_length = max_length or _model_limit(model)
        self._ids = {c: i for i, c in char_vocabulary(tokenizer).items()}

    @torch.no_grad()
    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        """For every text, each confusable character with the best candidate and the log-probability gain
        (`score` = log p(candidate) - log p(character)), before any margin."""
        out: list[list[dict]] = [[] for _ in texts]
        rows, where = [], []  # one masked copy of a window per candidate position
        for n, text in enumerate(texts):
            for p, char in enumerate(text):
                options = [c for c in sorted(self.candidates(char)) if c in self._ids] if char in self._ids else []
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

    def correct(self, texts: Sequence[str], proposals: list[list[dict]] | None = None) -> list[list[dict]]:
        """The edits whose gain exceeds the margin, per text."""
        proposals = self.proposals(texts) if proposals is None else proposals
        return [[e for e in edits if e["score"] > self.margin] for edits in proposals]

    def tune(self, sources: Sequence[str], targets: Sequence[str], margins: Sequence[float] = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)) -> dict[str, float]:
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
