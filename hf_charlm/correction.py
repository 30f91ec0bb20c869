"""Text correction with char models: the same-length corrector (a masked char LM that predicts the right character
at every position, MacBERT4CSC style), the zero-shot correctors (a pretrained masked char LM scores each
character in context and swaps in the confusion-set candidate it prefers; or, as a noisy channel, a character
n-gram proposes confusion-set changes and causal char LMs read both ways score them, by tuned weights or by a
reranker learned from training pairs), and the training examples
of `scripts/finetune_correction.py`. The helpers they share with the `text-correction` pipeline (windows of
characters, predictions to edits, applying edits) live in the shipped `spans_charlm.py` and are re-exported here.

An edit is `{"start", "end", "original", "replacement", "score"}` with character offsets into the input text,
as the `text-correction` pipeline returns it. May import the package, `torch` and public `transformers` names;
the confusion sets come from `hf_charlm.correction_data` (the `correction` extra).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .lm_eval import sequence_log_probs
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
    "LanguageModelCorrector",
    "EditReranker",
    "Lexicon",
    "weight_grid",
    "corrector_proposals_above",
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


def _masked_window(tokenizer: Any, text: str, p: int, context: int, limit: int) -> tuple[list[int], int]:
    """Token ids of `text` around character `p` (`context` characters either side, halved until the window fits
    `limit` tokens) with `p` masked, and the index of the mask (-1 where `p` is no single token)."""
    while True:
        ids, positions = _encode_window(tokenizer, text, max(0, p - context), min(len(text), p + context + 1))
        if len(ids) <= limit or context == 0:
            break
        context //= 2
    k = positions.index(p) if p in positions else -1
    if k >= 0:
        ids[k] = tokenizer.mask_token_id
    return ids, k


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
        self.candidates, self.margin, self.batch_size = candidates, margin, batch_size
        self.model, self.tokenizer = (model.eval() if model is not None else None), tokenizer
        self.max_length = max_length or (_model_limit(model) if model is not None else None)
        self._ids = {c: i for i, c in char_vocabulary(tokenizer).items()} if tokenizer is not None else {}

    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        raise NotImplementedError

    def correct(self, texts: Sequence[str], proposals: list[list[dict]] | None = None) -> list[list[dict]]:
        """The edits whose gain exceeds the margin, per text."""
        proposals = self.proposals(texts) if proposals is None else proposals
        return [[e for e in edits if e["score"] > self.margin] for edits in proposals]

    def __call__(self, texts: str | Sequence[str]) -> dict[str, Any] | list[dict[str, Any]]:
        """What the `text-correction` pipeline answers: `{"corrected_text", "edits"}` for a text, a list of them
        for a list of texts (the edits `correct` keeps, in text order)."""
        single = isinstance(texts, str)
        batch = [texts] if single else list(texts)
        if not all(isinstance(t, str) for t in batch):
            raise TypeError("the corrector takes a text or a list of texts")
        answers = []
        for text, edits in zip(batch, self.correct(batch)):
            edits = sorted(edits, key=lambda e: e["start"])
            answers.append({"corrected_text": apply_edits(text, edits), "edits": edits})
        return answers[0] if single else answers

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
                ids, k = _masked_window(self.tokenizer, text, p, self.context, self.max_length)
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
    def candidate_log_probs(self, texts: Sequence[str]) -> list[dict[int, dict[str, float]]]:
        """Per text, at every character that has candidates (in text order): the model's log-probabilities, the
        text read once and unmasked, of the character itself (first) and of each of its candidates,
        `{position: {character: log-probability}}`. Long texts are read in overlapping windows, each character
        where it has context on both sides."""
        columns, plan = encode_correction_examples(self.tokenizer, texts, None, self.max_length, self.stride)
        out: list[dict[int, dict[str, float]]] = [{} for _ in texts]
        device = next(self.model.parameters()).device
        for start, ids, mask in _batches(columns, self.batch_size, self.tokenizer.pad_token_id):
            outputs = self.model(input_ids=ids.to(device), attention_mask=mask.to(device))
            logits = outputs.logits.float()  # (B, T, V): the few log-probabilities wanted are logit - logsumexp,
            norm = logits.logsumexp(-1).cpu()  # with no second (B, T, V) tensor (a batch of long texts is large)
            logits = logits.cpu()
            for b in range(ids.shape[0]):
                n, positions, own_start, own_end = plan[start + b]
                text = texts[n]
                for k, p in enumerate(positions):
                    if p < own_start or p >= own_end:  # specials, byte tokens, another window's character
                        continue
                    options = _candidate_ids(self.candidates, self._ids, text[p])
                    if not options:
                        continue
                    chars = [text[p], *(c for c in options if c != text[p])]
                    values = logits[b, k, [self._ids[c] for c in chars]] - norm[b, k]
                    out[n][p] = dict(zip(chars, values.tolist()))
        return out

    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        out: list[list[dict]] = []
        for table in self.candidate_log_probs(texts):
            out.append([{"start": p, "end": p + 1, "original": own, "replacement": best, "score": gain}
                        for p, (own, best, gain) in _best_candidates(table)])
        return out


def _best_candidates(table: dict[int, dict[str, float]]):
    """(position, (character, its best candidate, that candidate's log-probability gain over it)) for each position
    of a `candidate_log_probs` table that has a candidate; of equal candidates the first (sorted), as argmax."""
    for p, logps in table.items():
        own, *options = logps  # the character first, then its candidates in sorted order
        if options:
            best = max(options, key=logps.__getitem__)
            yield p, (own, best, logps[best] - logps[own])


# the gains `LanguageModelCorrector` weighs: the n-gram's, the forward and backward causal LMs', the masked LM's, the
# channel's, and a fine-tuned same-length corrector's
GAINS = ("ngram", "forward", "backward", "masked", "channel", "corrector")


def _checked_weights(weights: dict[str, float]) -> dict[str, float]:
    unknown = set(weights) - set(GAINS)
    if unknown:
        raise ValueError(f"unknown weight(s) {sorted(unknown)}; the gains are {GAINS}")
    return dict(weights)


# the values `weight_grid` combines (the n-gram's and the channel's weights always, each model's when given)
WEIGHT_VALUES = {"ngram": (0.5, 1.0), "forward": (0.0, 0.25, 0.5, 1.0), "backward": (0.0, 0.25, 0.5, 1.0),
                 "masked": (0.0, 0.25, 0.5), "channel": (0.0, 1.0, 2.0), "corrector": (0.0, 0.25, 0.5, 1.0)}


def weight_grid(models: Sequence[str]) -> list[dict[str, float]]:
    """The weights for `LanguageModelCorrector.tune` to try: every combination of `WEIGHT_VALUES` for the n-gram,
    the channel and the models named (of forward, backward, masked, corrector)."""
    import itertools

    names = [n for n in WEIGHT_VALUES if n in models or n in ("ngram", "channel")]
    return [dict(zip(names, combo)) for combo in itertools.product(*(WEIGHT_VALUES[n] for n in names))]


# the n-gram counts an edit's context features read (`LanguageModelCorrector.features`, key "context"), besides
# the gains: how many of the top-order n-grams and of the bigrams over the changed character the training text
# holds with the change and without it, how common the two characters are (log of 1 + their continuation counts),
# whether the character is the text's first or last, how many edits the text gets, and whether the edit is one the
# masked LM (`masked_proposals`) or the fine-tuned corrector (`corrector_proposals`) proposed off the n-gram's best path
CONTEXT_FEATURES = ("seen_top_new", "seen_top_old", "seen_bigram_new", "seen_bigram_old", "log_count_new",
                    "log_count_old", "at_edge", "edits_in_text", "masked_only", "corrector_only")
# the log-odds margins `tune` tries once a reranker scores the edits (0: probability 1/2)
RERANKER_MARGINS = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


# the lexicon features an edit's context gets when the corrector has a `Lexicon`: of the words of two characters or
# more that cover the changed character, the log of 1 + the count of the most frequent (0: no word covers it) and the
# length of the longest, in the text with the change and without it
LEXICON_FEATURES = ("word_new", "word_old", "word_length_new", "word_length_old")


class Lexicon:
    """Words of two to `max_length` characters with their counts: which words of a text cover a character
    (`cover`), the context a noisy-channel corrector's reranker reads beside the n-gram's counts (a change that
    makes a known word where the text had none is likely right; one that breaks a known word, a name, likely not).

    `Lexicon.from_words(words)` counts a list of words (the People's Daily segmentation's train words,
    `hf_charlm.correction_data.peoples_daily_lexicon`); `Lexicon.from_file(path)` reads `word count` lines (the
    format of jieba's dictionary and of pycorrector's `word_freq.txt`, `hf_charlm.correction_data.pycorrector_lexicon`);
    `save` / `load` write and read `word<TAB>count` lines, gzip-compressed."""

    FILE_NAME = "lexicon.txt.gz"

    def __init__(self, counts: dict[str, int], max_length: int = 6):
        if max_length < 2:
            raise ValueError(f"max_length={max_length}: a lexicon holds words of two characters or more")
        self.max_length = max_length
        self.counts = {w: int(c) for w, c in counts.items() if 2 <= len(w) <= max_length}

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, word: str) -> bool:
        return word in self.counts

    @classmethod
    def from_words(cls, words: Any, max_length: int = 6) -> "Lexicon":
        counts: dict[str, int] = {}
        for word in words:
            counts[word] = counts.get(word, 0) + 1
        return cls(counts, max_length)

    @classmethod
    def from_file(cls, path: str | os.PathLike, max_length: int = 6) -> "Lexicon":
        """Reads `word count [anything]` lines (whitespace-separated; a line with a word alone counts 1); of a word
        listed twice the larger count. Gzip-compressed when the name ends in `.gz`."""
        import gzip

        opener = gzip.open if os.fspath(path).endswith(".gz") else open
        counts: dict[str, int] = {}
        try:
            with opener(path, "rt", encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    fields = line.split()
                    if not fields:
                        continue
                    try:
                        count = int(fields[1]) if len(fields) > 1 else 1
                    except ValueError:
                        raise ValueError(f"{os.fspath(path)!r} line {number}: the count {fields[1]!r} after the word is "
                                         "not a whole number (lines are `word count`)") from None
                    counts[fields[0]] = max(count, counts.get(fields[0], 0))
        except FileNotFoundError:
            raise FileNotFoundError(f"no lexicon file at {os.fspath(path)!r}") from None
        return cls(counts, max_length)

    def merged(self, other: "Lexicon") -> "Lexicon":
        """Both lexicons' words, of a word in both the larger count."""
        counts = dict(self.counts)
        for word, count in other.counts.items():
            counts[word] = max(count, counts.get(word, 0))
        return Lexicon(counts, max(self.max_length, other.max_length))

    def save(self, path: str | os.PathLike) -> None:
        """Writes `word<TAB>count` lines, gzip-compressed, through a temporary file (an earlier file stays whole
        if the write fails); `Lexicon.load` reads it back."""
        import gzip

        temporary = f"{os.fspath(path)}.tmp"
        with gzip.open(temporary, "wt", encoding="utf-8") as f:
            f.write(f"# hf_charlm.Lexicon max_length={self.max_length}\n")
            f.writelines(f"{word}\t{count}\n" for word, count in sorted(self.counts.items()))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Lexicon":
        import gzip

        header = "# hf_charlm.Lexicon max_length="
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                first = f.readline()
                if not first.startswith(header):
                    raise ValueError("no header line")
                max_length = int(first[len(header):])
                counts = {word: int(count) for word, count in (line.rstrip("\n").split("\t") for line in f)}
        except FileNotFoundError:
            raise FileNotFoundError(f"no lexicon at {os.fspath(path)!r}") from None
        except (OSError, EOFError, ValueError) as error:  # not gzip, cut short, or not `word<TAB>count` lines
            raise ValueError(f"{os.fspath(path)!r} is not a lexicon written by Lexicon.save ({error})") from None
        return cls(counts, max_length)

    def cover(self, text: str, p: int) -> tuple[float, int]:
        """(log(1 + count) of the most frequent word of the lexicon that covers `text[p]`, the length of the longest);
        (0.0, 0) when none does."""
        best, longest = -1, 0
        counts, n = self.counts, len(text)
        for i in range(max(0, p - self.max_length + 1), p + 1):
            for j in range(max(p + 1, i + 2), min(n, i + self.max_length) + 1):
                count = counts.get(text[i:j])
                if count is not None:
                    best, longest = max(best, count), max(longest, j - i)
        return (math.log1p(best) if best >= 0 else 0.0), longest

    def features(self, text: str, p: int, new: str) -> dict[str, float]:
        """`LEXICON_FEATURES` of changing `text[p]` into `new`."""
        word_old, length_old = self.cover(text, p)
        word_new, length_new = self.cover(text[:p] + new + text[p + 1:], p)
        return {"word_new": word_new, "word_old": word_old, "word_length_new": float(length_new),
                "word_length_old": float(length_old)}


def corrector_proposals_above(features: list[list[dict]], threshold: float | None) -> list[list[dict]]:
    """`LanguageModelCorrector.features` as a reading with `corrector_proposals=threshold` gives them, from one at
    a lower threshold: the fine-tuned corrector's own proposals (`corrector_only`) whose gain does not beat
    `threshold` dropped, each text's `edits_in_text` counted again (None: unchanged). One reading then serves a
    search over the threshold on validation pairs."""
    if threshold is None:
        return features
    out = []
    for row in features:
        row = [e for e in row if not (e.get("context", {}).get("corrector_only") and e["gains"]["corrector"] <= threshold)]
        out.append([{**e, "context": {**e["context"], "edits_in_text": float(len(row))}} if "context" in e else e
                    for e in row])
    return out


class EditReranker:
    """Logistic regression over an edit's features (its gains and its context features), in pure torch: the
    probability that a proposed edit is a right correction, learned from pairs of erroneous and correct text
    (`LanguageModelCorrector.fit_reranker`). `names` fixes the order of the features; features are standardised
    with the training set's mean and deviation, and the weights carry an L2 penalty of `l2` (the loss is the mean
    log-loss plus l2 / 2 * |w|^2 / n, scikit-learn's `C = 1 / l2`)."""

    def __init__(self, names: Sequence[str], l2: float = 1.0):
        self.names, self.l2 = tuple(names), l2
        self.mean = self.scale = self.weight = None
        self.bias = 0.0

    def _matrix(self, edits: Sequence[dict]) -> torch.Tensor:
        rows = [[{**e["gains"], **e.get("context", {})}.get(name, 0.0) for name in self.names] for e in edits]
        return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(self.names))

    def fit(self, edits: Sequence[dict], labels: Sequence[int]) -> "EditReranker":
        if not edits or len(set(labels)) < 2:
            raise ValueError("the reranker needs proposed edits of both kinds (right and wrong corrections) to learn from")
        x, y = self._matrix(edits), torch.tensor(labels, dtype=torch.float64)
        self.mean, self.scale = x.mean(0), x.std(0).clamp_min(1e-6)
        x = (x - self.mean) / self.scale
        params = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([params], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            logits = x @ params[:-1] + params[-1]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            loss = loss + self.l2 / (2 * len(y)) * params[:-1].square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        params = params.detach()
        self.weight, self.bias = params[:-1], float(params[-1])
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fitted reranker as plain numbers (what `LanguageModelCorrector.save_pretrained` writes);
        `EditReranker.from_dict` gives it back."""
        if self.weight is None:
            raise ValueError("the reranker is not fitted: nothing to save")
        return {"names": list(self.names), "l2": self.l2, "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weight": self.weight.tolist(), "bias": self.bias}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EditReranker":
        reranker = cls(values["names"], l2=values["l2"])
        columns = {k: torch.tensor(values[k], dtype=torch.float64) for k in ("mean", "scale", "weight")}
        if any(c.shape != (len(reranker.names),) for c in columns.values()):
            raise ValueError(f"the reranker's mean, scale and weight need one number per feature ({len(reranker.names)})")
        reranker.mean, reranker.scale, reranker.weight = columns["mean"], columns["scale"], columns["weight"]
        reranker.bias = float(values["bias"])
        return reranker

    def log_odds(self, edits: Sequence[dict]) -> list[float]:
        """log(p / (1 - p)) that each edit is a right correction."""
        if self.weight is None:
            raise ValueError("the reranker is not fitted: call fit (or LanguageModelCorrector.fit_reranker) first")
        if not edits:
            return []
        return (((self._matrix(edits) - self.mean) / self.scale) @ self.weight + self.bias).tolist()


def saved_corrector_folder(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> Path | None:
    """The local folder of a saved noisy-channel corrector (`LanguageModelCorrector.save_pretrained`): the folder
    itself, or for a Hub repo holding one its snapshot (downloaded; `hub_kwargs` such as `revision`, `token` go to
    `huggingface_hub`); None when there is none there."""
    config_name = LanguageModelCorrector.CONFIG_NAME
    if os.path.isdir(name_or_path):
        return Path(name_or_path) if os.path.isfile(os.path.join(name_or_path, config_name)) else None
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, RepositoryNotFoundError

    hub_kwargs = {k: v for k, v in hub_kwargs.items() if k in ("revision", "token", "cache_dir")}
    try:
        hf_hub_download(str(name_or_path), config_name, **hub_kwargs)
    except (EntryNotFoundError, HFValidationError, RepositoryNotFoundError):
        return None
    return Path(snapshot_download(str(name_or_path), **hub_kwargs))


class LanguageModelCorrector(_MarginCorrector):
    """Zero-shot correction with language models of correct text read in both directions, and no fine-tuning: a
    noisy channel over the confusion sets.

    Proposals: a beam search (`beam` histories) over each text with a character n-gram model (`ngram`, an
    `hf_charlm.ngram.KneserNeyLM` of correct text) in which every character may stay or become one of its
    confusable characters (`candidates`) at a cost of `proposal_penalty` nats minus the channel's log-probability
    of the error (`channel(observed, intended)`; default with the default candidates:
    `correction_data.channel_log_prob`, the draw that made `peoples_daily_csc`). The changes of the best path,
    grouped where they are less than the n-gram order apart (`clusters`), are the proposals; a low penalty
    proposes many, and the scoring picks. With a masked LM and `masked_proposals` (nats), the characters the path
    leaves alone are proposed too, one change each, where the masked LM's best confusable candidate beats the
    character by more than that (`masked_groups`; the errors an n-gram's short context misses). Scoring: each
    group is judged against the text as it is, by the log-probability gain of the text with the group applied
    under each model given (`forward`: a causal hf_charlm LM; `backward`: one trained on reversed text,
    `scripts/pretrain.py --reverse_text`, both on `context` characters either side; `masked`: a masked char LM,
    the masked character's gain; `ngram`: the n-gram over the characters the group conditions; `channel`: the channel's log-probability of the errors), per changed
    character, and `score = sum of weights[name] * gain[name]`. A group is kept when its score exceeds `margin`;
    `tune` picks the weights (a grid) and the margin on validation pairs. Each model comes with its tokenizer
    (`forward=(model, tokenizer)`); `from_pretrained` loads them from folders or the Hub. `fit_reranker` learns
    a logistic regression over the gains and the edit's n-gram context from training pairs, whose log-odds then
    score the edits in place of the weights. With a `lexicon` (`Lexicon`: words with counts) the context also holds
    which words cover the changed character with the change and without it (`LEXICON_FEATURES`), for the reranker.

    `corrector`: a same-length corrector fine-tuned on erroneous text (`scripts/finetune_correction.py`), which
    reads each text once, as it is, and knows what the errors look like: its gain is log P(replacement) - log
    P(character) at the changed position (`ConfusionSetCorrector.candidate_log_probs`); with `corrector_proposals`
    (nats) it also proposes, one change each, the characters left alone so far whose best confusable candidate
    beats them by more than that. Its training pairs must not be the reranker's (it would know their answers).
    """

    def __init__(self, ngram: Any, forward: tuple[Any, Any] | None = None, backward: tuple[Any, Any] | None = None,
                 masked: tuple[Any, Any] | None = None, candidates: Callable[[str], frozenset[str]] | None = None,
                 channel: Callable[[str, str], float] | None = None, weights: dict[str, float] | None = None,
                 margin: float = 8.0, proposal_penalty: float = 1.5, beam: int = 8, context: int = 32,
                 batch_size: int = 64, masked_proposals: float | None = None,
                 corrector: tuple[Any, Any] | None = None, corrector_proposals: float | None = None,
                 lexicon: Lexicon | None = None):
        if channel is None and candidates is None:  # the default confusion sets come with the draw that uses them
            from .correction_data import channel_log_prob as channel
        super().__init__(None, None, candidates, margin, None, batch_size)
        self.ngram, self.channel, self.lexicon = ngram, channel, lexicon
        self.proposal_penalty, self.beam, self.context = proposal_penalty, beam, context
        if masked_proposals is not None and masked is None:
            raise ValueError("masked_proposals reads the masked LM's candidates: pass masked=(model, tokenizer)")
        if corrector_proposals is not None and corrector is None:
            raise ValueError("corrector_proposals reads the fine-tuned corrector's candidates: pass corrector=(model, tokenizer)")
        self.masked_proposals, self.corrector_proposals = masked_proposals, corrector_proposals
        self.models = {name: (pair[0].eval(), pair[1]) for name, pair in
                       (("forward", forward), ("backward", backward), ("masked", masked), ("corrector", corrector))
                       if pair is not None}
        if "masked" in self.models and self.models["masked"][1].mask_token_id is None:
            raise ValueError("the masked model's tokenizer has no mask token")
        if weights is None:
            weights = {name: 1.0 for name in ("ngram", *self.models, *(("channel",) if channel else ()))}
        self.weights = _checked_weights(weights)
        self.reranker: EditReranker | None = None  # set by fit_reranker: it scores the edits instead of the weights
        self._vocabs = {name: tokenizer.get_vocab() for name, (_, tokenizer) in self.models.items()}

    # a saved corrector (`save_pretrained`): its settings, its n-gram, and where its models are in the folder
    CONFIG_NAME = "noisy_channel.json"
    NGRAM_NAME = "ngram.json.gz"
    SETTINGS = ("weights", "margin", "proposal_penalty", "beam", "context", "batch_size", "masked_proposals",
                "corrector_proposals")

    @classmethod
    def from_pretrained(cls, ngram: Any, forward: str | None = None, backward: str | None = None,
                        masked: str | None = None, corrector: str | None = None, *, revision: str | None = None,
                        token: str | bool | None = None, cache_dir: str | os.PathLike | None = None, **kwargs):
        """Loads the models (folders or Hub ids) with their tokenizers: `from_pretrained(ngram, forward=...,
        backward=..., masked=..., corrector=...)`. Given a folder (or a Hub repo) in place of `ngram`, loads the
        corrector `save_pretrained` wrote there (n-gram, models, weights, margin, reranker); keyword arguments then override
        its settings (`margin=...`, `batch_size=...`). `revision`, `token` and `cache_dir` go to the Hub downloads
        (a saved corrector's repo, or the models' repos), as for any `from_pretrained`."""
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

        hub = {k: v for k, v in (("revision", revision), ("token", token), ("cache_dir", cache_dir)) if v is not None}

        def pair(path, auto, hub_kwargs=None):
            hub_kwargs = hub_kwargs or {}
            return (auto.from_pretrained(path, **hub_kwargs), AutoTokenizer.from_pretrained(path, **hub_kwargs)) if path else None

        if isinstance(ngram, (str, os.PathLike)):
            if any(m is not None for m in (forward, backward, masked, corrector)):
                raise ValueError("a saved corrector brings its own models: pass only its folder (and settings)")
            return cls._load_saved(saved_corrector_folder(ngram, **hub) or Path(ngram), pair, kwargs)
        return cls(ngram, pair(forward, AutoModelForCausalLM, hub), pair(backward, AutoModelForCausalLM, hub),
                   pair(masked, AutoModelForMaskedLM, hub), corrector=pair(corrector, AutoModelForMaskedLM, hub), **kwargs)

    @classmethod
    def _load_saved(cls, folder: Path, pair: Callable, overrides: dict[str, Any]) -> "LanguageModelCorrector":
        from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

        from .ngram import KneserNeyLM

        config_file = folder / cls.CONFIG_NAME
        if not config_file.is_file():
            raise FileNotFoundError(f"{os.fspath(folder)!r} holds no saved noisy-channel corrector (no "
                                    f"{cls.CONFIG_NAME}; LanguageModelCorrector.save_pretrained writes one)")
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if config.get("format") != "hf_charlm.LanguageModelCorrector":
            raise ValueError(f"{os.fspath(config_file)!r} is not the settings file of a saved LanguageModelCorrector")
        unknown = set(overrides) - set(cls.SETTINGS)
        if unknown:
            raise ValueError(f"unknown setting(s) {sorted(unknown)} for a saved corrector; it takes {list(cls.SETTINGS)}")
        autos = {"forward": AutoModelForCausalLM, "backward": AutoModelForCausalLM, "masked": AutoModelForMaskedLM,
                 "corrector": AutoModelForMaskedLM}
        # only what save_pretrained writes: each model in the folder itself or in the subfolder of its name, the
        # n-gram under its own name (a settings file cannot point the loader elsewhere on the machine)
        lexicon_file = config.get("lexicon")  # (absent from folders saved before lexicons)
        if any(name not in autos or where not in (".", name) for name, where in config["models"].items()) or (
                config["ngram"] != cls.NGRAM_NAME) or lexicon_file not in (None, Lexicon.FILE_NAME):
            raise ValueError(f"{os.fspath(config_file)!r} names models or files that save_pretrained does not write: "
                             f"models {config['models']}, n-gram {config['ngram']!r}, lexicon {lexicon_file!r}")
        models = {name: pair(str(folder / where), autos[name]) for name, where in config["models"].items()}
        if config["candidates"] != "default":
            raise ValueError(f"{os.fspath(config_file)!r}: unknown candidates {config['candidates']!r}")
        from .correction_data import candidates, channel_log_prob

        channel = channel_log_prob if config["channel"] == "default" else None
        settings = {key: config[key] for key in cls.SETTINGS if key in config}  # (a folder saved before a setting existed)
        settings.update(overrides)
        corrector = cls(KneserNeyLM.load(folder / config["ngram"]), candidates=candidates, channel=channel,
                        forward=models.get("forward"), backward=models.get("backward"), masked=models.get("masked"),
                        corrector=models.get("corrector"),
                        lexicon=Lexicon.load(folder / lexicon_file) if lexicon_file else None, **settings)
        if config["reranker"] is not None:
            corrector.reranker = EditReranker.from_dict(config["reranker"])
            if corrector.lexicon is None and set(LEXICON_FEATURES) & set(corrector.reranker.names):
                raise ValueError(f"{os.fspath(config_file)!r}: the reranker weighs lexicon features but the folder "
                                 "holds no lexicon")
        return corrector

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Writes the corrector to a folder, so that `from_pretrained(folder)` and `pipeline("text-correction",
        model=folder)` load it as it is now, tuned and with its reranker: `noisy_channel.json` (the weights,
        the margin, the search and reading settings, the reranker's coefficients), the n-gram (`ngram.json.gz`,
        `KneserNeyLM.save`) and each model with its tokenizer, the first of masked / forward / backward in the
        folder itself (the model the pipeline loads), the others (and a fine-tuned `corrector`) in subfolders named
        after them, and its lexicon (`lexicon.txt.gz`, `Lexicon.save`) if it has one. Only the default confusion sets
        and channel can be saved (a function of your own is not data);
        that is checked before anything is written."""
        from . import correction_data

        if self.candidates is not correction_data.candidates:
            raise ValueError("save_pretrained writes the default confusion sets' corrector only: this one was built "
                             "with candidates of its own, which cannot be saved (a function, not data)")
        if self.channel not in (None, correction_data.channel_log_prob):
            raise ValueError("save_pretrained writes the default channel (or none) only: this corrector was built "
                             "with a channel of its own, which cannot be saved (a function, not data)")
        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{os.fspath(folder)!r} is a file, not a folder to save the corrector in")
        names = [n for n in ("masked", "forward", "backward", "corrector") if n in self.models]
        where = {name: "." if i == 0 else name for i, name in enumerate(names)}
        config = {
            "format": "hf_charlm.LanguageModelCorrector", "version": 1, "ngram": self.NGRAM_NAME,
            "models": where, "candidates": "default",
            "channel": None if self.channel is None else "default",
            **{key: getattr(self, key) for key in self.SETTINGS},
            "reranker": None if self.reranker is None else self.reranker.to_dict(),
            "lexicon": None if self.lexicon is None else Lexicon.FILE_NAME,
        }
        folder.mkdir(parents=True, exist_ok=True)
        self.ngram.save(folder / self.NGRAM_NAME)
        if self.lexicon is not None:
            self.lexicon.save(folder / Lexicon.FILE_NAME)
        for name in names:
            model, tokenizer = self.models[name]
            model.save_pretrained(folder / where[name])
            tokenizer.save_pretrained(folder / where[name])
        temporary = folder / f"{self.CONFIG_NAME}.tmp"  # last, and whole: a folder without it holds no corrector
        temporary.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, folder / self.CONFIG_NAME)

    def to(self, device: str | torch.device) -> "LanguageModelCorrector":
        """Moves every model of the corrector to `device` (the n-gram stays in Python); returns the corrector."""
        for model, _ in self.models.values():
            model.to(device)
        return self

    def best_path(self, text: str) -> str:
        """The n-gram model's best reading of `text` when each character may become a confusable one at
        `proposal_penalty` nats (beam search over the last `order - 1` characters)."""
        from .ngram import EOS

        keep = self.ngram.order - 1
        states: dict[tuple[str, ...], tuple[float, tuple[str, ...]]] = {(): (0.0, ())}
        for char in text:
            options = [char, *sorted(self.candidates(char))]
            grown: dict[tuple[str, ...], tuple[float, tuple[str, ...]]] = {}
            cost = {option: self.proposal_penalty - (self.channel(char, option) if self.channel else 0.0)
                    for option in options[1:]}
            cost[char] = 0.0
            for history, (score, chars) in states.items():
                for option in options:
                    if cost[option] == math.inf:  # the channel cannot make `char` from this option
                        continue
                    value = score + math.log(self.ngram.prob(history, option)) - cost[option]
                    key = (history + (option,))[-keep:] if keep else ()
                    if key not in grown or grown[key][0] < value:
                        grown[key] = (value, chars + (option,))
            states = dict(sorted(grown.items(), key=lambda kv: -kv[1][0])[: self.beam])
        _, chars = max(states.values(), key=lambda v: v[0] + math.log(self.ngram.prob(v[1][-keep:] if keep else (), EOS)))
        return "".join(chars)

    def _ngram_logprob(self, text: str, first: int, last: int) -> float:
        """log P_ngram of the characters `first` .. `last + order - 1` of `text` (and of its end, when that is
        among them): every term a change between `first` and `last` touches."""
        from .ngram import EOS

        order = self.ngram.order
        total = 0.0
        for j in range(first, min(len(text), last + order)):
            total += math.log(self.ngram.prob(text[max(0, j - order + 1):j], text[j]))
        if len(text) - last < order:
            total += math.log(self.ngram.prob(text[max(0, len(text) - order + 1):], EOS))
        return total

    def _causal_logprobs(self, name: str, texts: Sequence[str]) -> list[float]:
        """log P of each text's characters (after `<s>`) under the causal model `name`."""
        model, tokenizer = self.models[name]
        limit = _model_limit(model)
        # a window of characters outside the vocabulary (byte tokens) may outgrow the positions: its far start goes
        rows = [r if len(r) <= limit else r[:1] + r[len(r) - limit + 1:]
                for r in tokenizer(list(texts), split_special_tokens=True, verbose=False)["input_ids"]]
        return sequence_log_probs(model, rows, tokenizer.pad_token_id, self.batch_size)

    @torch.no_grad()
    def _masked_gains(self, items: Sequence[tuple[str, int, str, str]]) -> list[float]:
        """For each (text, position, new, old): log P(new) - log P(old) at that position masked, `context`
        characters either side; 0 where either is not one token of the masked model."""
        model, tokenizer = self.models["masked"]
        vocab = self._vocabs["masked"]
        rows, where = [], []
        limit = _model_limit(model)
        for text, p, new, old in items:
            ids, k = _masked_window(tokenizer, text, p, self.context, limit)
            rows.append(ids)
            where.append((k, vocab.get(new), vocab.get(old)))
        gains = [0.0] * len(items)
        device = next(model.parameters()).device
        for start, ids, mask in _batches({"input_ids": rows}, self.batch_size, tokenizer.pad_token_id):
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            for b in range(ids.shape[0]):
                k, new, old = where[start + b]
                if k >= 0 and new is not None and old is not None:
                    logp = logits[b, k].float().log_softmax(-1)
                    gains[start + b] = float(logp[new] - logp[old])
        return gains

    def clusters(self, text: str) -> list[list[tuple[int, str]]]:
        """The best path's changes to `text` as groups of `(position, replacement)`: changes less than `order`
        characters apart are one group, judged together (their n-gram terms overlap)."""
        path = self.best_path(text)
        groups: list[list[tuple[int, str]]] = []
        for p, (old, new) in enumerate(zip(text, path)):
            if old == new:
                continue
            if groups and p - groups[-1][-1][0] < self.ngram.order:
                groups[-1].append((p, new))
            else:
                groups.append([(p, new)])
        return groups

    @contextlib.contextmanager
    def with_ngram(self, ngram: Any, lexicon: Lexicon | None = None):
        """Proposes and counts with `ngram` instead of the corrector's own n-gram inside the block (the reading of
        training pairs by an n-gram that has not counted their texts, `fit_reranker`), and with `lexicon`, when given,
        instead of its lexicon (one whose words were not counted from those texts either); restored after it."""
        kept = self.ngram, self.lexicon
        self.ngram = ngram
        if lexicon is not None:
            self.lexicon = lexicon
        try:
            yield self
        finally:
            self.ngram, self.lexicon = kept

    def masked_groups(self, texts: Sequence[str],
                      paths: Sequence[list[list[tuple[int, str]]]]) -> list[list[list[tuple[int, str]]]]:
        """The masked LM's proposals off the best paths (`paths`, per text its `clusters`): per text, as
        one-change groups, each character the path leaves alone whose best confusable candidate (one the channel
        can turn into the character), the character masked, beats it by more than `masked_proposals` nats. Empty
        lists when `masked_proposals` is None."""
        if self.masked_proposals is None:
            return [[] for _ in texts]
        model, tokenizer = self.models["masked"]
        reader = ZeroShotCorrector(model, tokenizer, self._channel_candidates, context=self.context,
                                   batch_size=self.batch_size)
        out = []
        for edits, path in zip(reader.proposals(texts), paths):
            taken = {p for group in path for p, _ in group}
            out.append([[(e["start"], e["replacement"])] for e in edits
                        if e["start"] not in taken and e["score"] > self.masked_proposals])
        return out

    def _channel_candidates(self, char: str) -> frozenset[str]:
        """The candidates the channel can make `char` from (what the best path may write)."""
        options = self.candidates(char)
        if self.channel is None:
            return options
        return frozenset(c for c in options if self.channel(char, c) > -math.inf)

    def corrector_readings(self, texts: Sequence[str]) -> list[dict[int, dict[str, float]]]:
        """The fine-tuned corrector's log-probabilities of each confusable character and its candidates (those the
        channel can make), per text (`ConfusionSetCorrector.candidate_log_probs`); empty without a corrector."""
        if "corrector" not in self.models:
            return [{} for _ in texts]
        model, tokenizer = self.models["corrector"]
        reader = ConfusionSetCorrector(model, tokenizer, self._channel_candidates, batch_size=self.batch_size)
        return reader.candidate_log_probs(texts)

    def corrector_groups(self, texts: Sequence[str], readings: Sequence[dict[int, dict[str, float]]],
                         taken: Sequence[set[int]]) -> list[list[list[tuple[int, str]]]]:
        """The fine-tuned corrector's proposals (`readings`, from `corrector_readings`): per text, as one-change
        groups, each character not in `taken` (the positions already proposed) whose best candidate beats it by
        more than `corrector_proposals` nats. Empty lists when `corrector_proposals` is None."""
        if self.corrector_proposals is None:
            return [[] for _ in texts]
        return [[[(p, best)] for p, (_, best, gain) in _best_candidates(table)
                 if p not in seen and gain > self.corrector_proposals] for table, seen in zip(readings, taken)]

    def _context(self, text: str, p: int, new: str, edits_in_text: int) -> dict[str, float]:
        """The n-gram counts around a change of `text[p]` into `new` (`CONTEXT_FEATURES`)."""
        order, counts = self.ngram.order, self.ngram.counts
        changed = text[:p] + new + text[p + 1:]

        def seen(t: str, n: int) -> int:
            return sum(tuple(t[j:j + n]) in counts[n] for j in range(max(0, p - n + 1), min(len(t) - n, p) + 1))

        def log_count(char: str) -> float:
            return math.log1p(counts[1].get((char,), 0))

        bigram = min(order, 2)  # (an order-1 model counts single characters only)
        context = {"seen_top_new": seen(changed, order), "seen_top_old": seen(text, order),
                   "seen_bigram_new": seen(changed, bigram), "seen_bigram_old": seen(text, bigram),
                   "log_count_new": log_count(new), "log_count_old": log_count(text[p]),
                   "at_edge": float(p == 0 or p == len(text) - 1), "edits_in_text": float(edits_in_text)}
        if self.lexicon is not None:
            context.update(self.lexicon.features(text, p, new))
        return context

    def features(self, texts: Sequence[str]) -> list[list[dict]]:
        """Per text, the proposed edits, each with `gains` ({model name: log-probability gain}) before weighting
        and `context` (`CONTEXT_FEATURES`, n-gram counts around the change, which a reranker reads).
        A group of nearby changes (`clusters`) is judged as one against the text as it is: its gains are those
        of the text with the whole group applied over the text unchanged, divided by the group's size, so that
        `score > margin` keeps a group when its total gain beats `margin` per changed character."""
        if isinstance(texts, str):
            raise TypeError("the corrector takes a list of texts; wrap a single text in a list")
        out: list[list[dict]] = []
        jobs: list[tuple[list[dict], str, str, int, int]] = []  # (group's edits, with the group, without, window)
        paths = [self.clusters(text) for text in texts]
        extras = self.masked_groups(texts, paths)
        readings = self.corrector_readings(texts)
        taken = [{p for group in path + extra for p, _ in group} for path, extra in zip(paths, extras)]
        from_corrector = self.corrector_groups(texts, readings, taken)
        for text, path, extra, more, reading in zip(texts, paths, extras, from_corrector, readings):
            edits = []
            for group in path + extra + more:
                changed = list(text)
                for p, new in group:
                    changed[p] = new
                changed = "".join(changed)
                first, last = group[0][0], group[-1][0]
                gain = self._ngram_logprob(changed, first, last) - self._ngram_logprob(text, first, last)
                members = [{"start": p, "end": p + 1, "original": text[p], "replacement": new,
                            "gains": {"ngram": gain / len(group)}} for p, new in group]
                if self.channel:
                    channel = sum(self.channel(text[p], new) for p, new in group) / len(group)
                    for edit in members:
                        edit["gains"]["channel"] = channel
                if "corrector" in self.models:  # read on the text as it is: no other model's window needed
                    gain = sum(reading[p][new] - reading[p][text[p]] if new in reading.get(p, {}) else 0.0
                               for p, new in group)
                    for edit in members:
                        edit["gains"]["corrector"] = gain / len(group)
                edits.extend(members)
                jobs.append((members, changed, text, max(0, first - self.context), min(len(text), last + self.context + 1)))
            off_path = {p for group in extra for p, _ in group}
            corrector_only = {p for group in more for p, _ in group}
            for edit in edits:
                edit["context"] = self._context(text, edit["start"], edit["replacement"], len(edits))
                edit["context"]["masked_only"] = float(edit["start"] in off_path)
                edit["context"]["corrector_only"] = float(edit["start"] in corrector_only)
            out.append(edits)
        if not jobs:
            return out
        for name in ("forward", "backward"):
            if name not in self.models:
                continue
            turn = (lambda t: t) if name == "forward" else (lambda t: t[::-1])
            kept = self._causal_logprobs(name, [turn(w[a:b]) for _, w, _, a, b in jobs])
            reverted = self._causal_logprobs(name, [turn(w[a:b]) for _, _, w, a, b in jobs])
            for (members, *_), x, y in zip(jobs, kept, reverted):
                for edit in members:
                    edit["gains"][name] = (x - y) / len(members)
        if "masked" in self.models:
            items = [(w, edit["start"], edit["replacement"], edit["original"]) for members, w, *_ in jobs for edit in members]
            gains = iter(self._masked_gains(items))
            for members, *_ in jobs:
                total = sum(next(gains) for _ in members)
                for edit in members:
                    edit["gains"]["masked"] = total / len(members)
        return out

    def score_features(self, features: list[list[dict]]) -> list[list[dict]]:
        """`features` with `score` in place of the gains and context: the weighted sum of each edit's gains, or
        with a fitted reranker (`fit_reranker`) its log-odds that the edit is a right correction."""
        if self.reranker is not None:
            flat = iter(self.reranker.log_odds([e for edits in features for e in edits]))
            scores = [[next(flat) for _ in edits] for edits in features]
        else:
            scores = [[sum(self.weights.get(name, 0.0) * g for name, g in e["gains"].items()) for e in edits]
                      for edits in features]
        return [[{**{k: v for k, v in e.items() if k not in ("gains", "context")}, "score": score}
                 for e, score in zip(edits, row)] for edits, row in zip(features, scores)]

    def fit_reranker(self, sources: Sequence[str], targets: Sequence[str], ngram: Any = None, l2: float = 1.0,
                     features: list[list[dict]] | None = None, lexicon: Lexicon | None = None) -> dict[str, Any]:
        """Learns an `EditReranker` from erroneous `sources` and their corrections `targets` (training pairs): a
        proposed edit is a right one when the target has its replacement at its position. From then on the
        reranker's log-odds score the edits instead of `weights`; `tune` (with `RERANKER_MARGINS`) then picks
        the margin on validation pairs, as for the weights.

        The n-gram that proposes and counts must not have read the targets (a count model remembers its training
        text: its gains on them are those of text it knows by heart, which test text is not): pass `ngram`, one
        counted without these targets (`KneserNeyLM` of the train texts less them), used for these features only;
        the same for a `lexicon` counted from the same text (`correction_data.peoples_daily_lexicon(exclude=targets)`).
        Returns {"edits": proposals read, "right": the right ones among them}."""
        if features is None:
            with self.with_ngram(self.ngram if ngram is None else ngram, lexicon):
                features = self.features(sources)
        edits = [e for row in features for e in row]
        if self.lexicon is not None and any(LEXICON_FEATURES[0] not in e.get("context", {}) for e in edits):
            raise ValueError("this corrector has a lexicon, but the features given were read without one: read them "
                             "with the lexicon (features(sources)) so that the reranker learns its weights")
        labels = [int(len(target) == len(source) and target[e["start"]:e["end"]] == e["replacement"])
                  for source, target, row in zip(sources, targets, features) for e in row]
        names = [n for n in GAINS if any(n in e["gains"] for e in edits)] + list(CONTEXT_FEATURES)
        if self.lexicon is not None:
            names += LEXICON_FEATURES
        self.reranker = EditReranker(names, l2=l2).fit(edits, labels)
        return {"edits": len(edits), "right": sum(labels)}

    def fit_reranker_and_tune(self, sources: Sequence[str], targets: Sequence[str], features: list[list[dict]],
                              validation_sources: Sequence[str], validation_targets: Sequence[str],
                              validation_features: list[list[dict]],
                              corrector_proposals: Sequence[float] | None = None) -> dict[str, Any]:
        """`fit_reranker` on training pairs, then `tune` (the margin) on validation pairs, from readings already made
        (`features` of both; the training pairs' read by an n-gram that has not counted them). With several
        `corrector_proposals` thresholds (the readings made at the lowest), once per threshold on what a reading at
        it proposes (`corrector_proposals_above`), and the best validation F1 kept (ties: the lower threshold): the
        corrector is left with that reranker, margin and threshold. Returns {"best": tune's best, "counts":
        fit_reranker's, "corrector_proposals": the threshold kept (None without), "by_threshold": {threshold: F1}}."""
        tried = []
        for threshold in sorted(corrector_proposals) if corrector_proposals else [None]:
            counts = self.fit_reranker(sources, targets, features=corrector_proposals_above(features, threshold))
            best = self.tune(validation_sources, validation_targets,
                             features=corrector_proposals_above(validation_features, threshold))["best"]
            tried.append((best["f1"], threshold, best, counts, self.reranker))
        _, threshold, best, counts, self.reranker = max(tried, key=lambda t: t[0])  # max() keeps the first of equals
        self.margin = best["margin"]
        if threshold is not None:
            self.corrector_proposals = threshold
        return {"best": best, "counts": counts, "corrector_proposals": threshold,
                "by_threshold": {t[1]: t[0] for t in tried}}

    def proposals(self, texts: Sequence[str]) -> list[list[dict]]:
        """Per text, the proposed edits with their `score` (`score_features`), before any margin."""
        return self.score_features(self.features(texts))

    def tune(self, sources: Sequence[str], targets: Sequence[str], margins: Sequence[float] | None = None,
             weights: Sequence[dict[str, float]] | None = None, features: list[list[dict]] | None = None) -> dict[str, Any]:
        """Sets `weights` (the best of the grid `weights`; default: the current ones) and `margin` (from
        `margins`; default `MARGINS`, or `RERANKER_MARGINS` once a reranker scores the edits, when the weights
        play no part) by sentence-level correction F1 on these (validation) pairs, the models read once (or
        `features`, this corrector's `features(sources)`, given). Returns {"best": {"weights", "margin", "f1"},
        "records": [the same, per setting and margin]}; ties go to the earlier weights and the larger margin."""
        if margins is None:
            margins = MARGINS if self.reranker is None else RERANKER_MARGINS
        features = self.features(sources) if features is None else features
        records = []
        for setting in (weights or [self.weights]):
            self.weights = _checked_weights(setting)
            proposals = self.score_features(features)
            for margin in margins:
                self.margin = margin
                outputs = [apply_edits(s, e) for s, e in zip(sources, self.correct(sources, proposals))]
                f1 = correction_scores(sources, targets, outputs)["sentence_correction_f1"]
                records.append({"weights": dict(setting), "margin": margin, "f1": f1})
        best = max(records, key=lambda r: (r["f1"], r["margin"]))  # max() keeps the first of equal keys
        self.weights, self.margin = dict(best["weights"]), best["margin"]
        return {"best": {"weights": best["weights"], "margin": best["margin"], "f1": best["f1"]}, "records": records}
