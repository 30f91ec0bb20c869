"""Masking for masked char LM pretraining: `CharLMMaskingCollator` masks single characters, spans or whole words.

transformers' `DataCollatorForLanguageModeling` masks tokens independently and its whole-word collator relies on
WordPiece's `##` marks; neither fits text with no word boundaries. Here a block's maskable positions (every token
but the special ones) are chosen by one of three schemes, then BERT's 80 / 10 / 10 rule replaces them. May import
torch, numpy and public transformers names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

MASKING_SCHEMES = ("char", "span", "word")


def longest_match_words(text: str, lexicon: set[str] | frozenset[str], max_word_length: int) -> list[int]:
    """Word lengths of `text` by forward maximum matching against `lexicon` (unknown characters are words of
    one): the classic dictionary segmentation, good enough to keep a word's characters together when masking."""
    lengths, i = [], 0
    while i < len(text):
        n = min(max_word_length, len(text) - i)
        while n > 1 and text[i : i + n] not in lexicon:
            n -= 1
        lengths.append(n)
        i += n
    return lengths


@dataclass
class CharLMMaskingCollator:
    """Batches `input_ids` blocks and masks a share of their characters for `CharLMForMaskedLM`.

    - `scheme="char"`: each maskable character independently (BERT).
    - `scheme="span"`: contiguous spans with geometric lengths (SpanBERT; mean about `mean_span_length`,
      at most 10), until the share is reached.
    - `scheme="word"`: whole words of `lexicon` (forward maximum matching over the characters of the block);
      with an empty lexicon this is the char scheme.

    Exactly `round(mlm_probability * maskable)` positions are chosen per row for "char"; "span" and "word"
    stop at the first unit that reaches that number (never more than one unit over). Of the chosen positions
    `mask_replace_prob` become `<mask>`, `random_replace_prob` a random character of the batch, the rest stay.
    `labels` hold the original ids at the chosen positions and -100 elsewhere. Special tokens and padding are
    never chosen. `seed` makes the masking reproducible (the validation set is masked the same way every time).
    """

    tokenizer: PreTrainedTokenizerBase
    mlm_probability: float = 0.15
    scheme: str = "char"
    mean_span_length: float = 3.0
    lexicon: Iterable[str] | None = None
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    seed: int | None = None
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.scheme not in MASKING_SCHEMES:
            raise ValueError(f"scheme={self.scheme!r} is invalid: must be one of {MASKING_SCHEMES}.")
        if not 0.0 < self.mlm_probability < 1.0:
            raise ValueError(f"mlm_probability={self.mlm_probability} is invalid: must be in (0, 1).")
        if self.mask_replace_prob < 0 or self.random_replace_prob < 0 or self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError("mask_replace_prob and random_replace_prob must be >= 0 and add up to at most 1.")
        if self.tokenizer.mask_token_id is None:
            raise ValueError("The tokenizer has no mask token: masked LM needs one (hf_charlm tokenizers have <mask>).")
        if self.scheme == "span" and self.mean_span_length < 1:
            raise ValueError(f"mean_span_length={self.mean_span_length} is invalid: must be >= 1.")
        self.special_ids = np.array(sorted(set(self.tokenizer.all_special_ids)))
        self.lexicon = frozenset(self.lexicon or ())
        self.max_word_length = max((len(w) for w in self.lexicon), default=1)
        self._rng = np.random.default_rng(self.seed)

    def _units(self, ids: np.ndarray, maskable: np.ndarray) -> list[np.ndarray]:
        """The groups of positions that are masked together, in a random order."""
        positions = np.flatnonzero(maskable)
        if self.scheme == "char" or (self.scheme == "word" and not self.lexicon):
            return [np.array([p]) for p in self._rng.permutation(positions)]
        if self.scheme == "word":
            units, run = [], []
            # words never cross a special token: segment each run of maskable positions on its own
            for p in list(positions) + [None]:
                if p is not None and (not run or p == run[-1] + 1):
                    run.append(p)
                    continue
                if run:
                    text = self.tokenizer.convert_ids_to_tokens(ids[run].tolist())
                    # byte tokens are not characters of any word: they stay units of their own
                    chars = "".join(t if len(t) == 1 else "\0" for t in text)
                    start = 0
                    for n in longest_match_words(chars, self.lexicon, self.max_word_length):
                        units.append(np.array(run[start : start + n]))
                        start += n
                run = [p] if p is not None else []
            return [units[i] for i in self._rng.permutation(len(units))]
        # span: random starts, geometric lengths, clipped to the maskable run they start in
        units = []
        p = 1.0 / self.mean_span_length
        for start in self._rng.permutation(positions):
            n = min(int(self._rng.geometric(p)), 10)
            span = [start]
            while len(span) < n and span[-1] + 1 < len(maskable) and maskable[span[-1] + 1]:
                span.append(span[-1] + 1)
            units.append(np.array(span))
        return units

    def _choose(self, ids: np.ndarray, maskable: np.ndarray) -> np.ndarray:
        chosen = np.zeros_like(maskable)
        budget = int(round(self.mlm_probability * int(maskable.sum())))
        for unit in self._units(ids, maskable):
            if int(chosen.sum()) >= budget:
                break
            chosen[unit] = True
        return chosen

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer.pad(
            [{"input_ids": f["input_ids"]} for f in features], padding=True, return_tensors="np"
        )
        ids = np.asarray(batch["input_ids"], dtype=np.int64)
        attention = np.asarray(batch["attention_mask"], dtype=bool)
        maskable = attention & ~np.isin(ids, self.special_ids)
        chosen = np.stack([self._choose(row, m) for row, m in zip(ids, maskable)])
        labels = np.where(chosen, ids, -100)
        inputs = ids.copy()
        roll = self._rng.random(ids.shape)
        to_mask = chosen & (roll < self.mask_replace_prob)
        to_random = chosen & (roll >= self.mask_replace_prob) & (roll < self.mask_replace_prob + self.random_replace_prob)
        inputs[to_mask] = self.tokenizer.mask_token_id
        if to_random.any():
            # a random character of the batch (its unigram distribution), never a special or padding token
            pool = ids[maskable]
            inputs[to_random] = pool[self._rng.integers(0, len(pool), int(to_random.sum()))]
        return {
            "input_ids": torch.from_numpy(inputs),
            "attention_mask": torch.from_numpy(attention.astype(np.int64)),
            "labels": torch.from_numpy(labels),
        }


__all__ = ["CharLMMaskingCollator", "MASKING_SCHEMES", "longest_match_words"]
