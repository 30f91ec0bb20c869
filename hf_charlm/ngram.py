"""Character n-gram language model with interpolated Kneser-Ney smoothing, in pure Python: the classical input
method's language model (`benchmarks/baselines.py`), and a second opinion fused into `hf_charlm.pinyin.PinyinDecoder`
(counts memorise the training text's exact phrases, which a small neural model learns slowly).

May import the standard library only.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable, Sequence

__all__ = ["KneserNeyLM", "BOS", "EOS"]

# Stand-ins for the characters before the start and after the end of a text: longer than one character, so no
# real character can take their value.
BOS, EOS = "<s>", "</s>"


class KneserNeyLM:
    """Interpolated Kneser-Ney character n-gram language model (Chen & Goodman's interpolated form, one absolute
    discount `discount` at every order): the highest order counts n-grams, every lower order counts the distinct
    characters seen to the left of its n-grams (continuation counts), and the unigram level interpolates with a
    uniform distribution over the characters of the training texts and `</s>`. `prob(context, char)` sums to 1
    over that vocabulary for every context (tested). Texts are padded with `order - 1` `<s>` on the left and one
    `</s>` on the right; `<s>` is never predicted."""

    def __init__(self, texts: Iterable[str], order: int = 3, discount: float = 0.75):
        if order < 1:
            raise ValueError(f"order={order} must be >= 1")
        top: dict[tuple[str, ...], int] = {}
        for text in texts:
            chars = [BOS] * (order - 1) + list(text) + [EOS]
            for i in range(order - 1, len(chars)):
                gram = tuple(chars[i - order + 1:i + 1])
                top[gram] = top.get(gram, 0) + 1
        self._build(top, order, discount)

    def _build(self, top: dict[tuple[str, ...], int], order: int, discount: float) -> None:
        """Everything else from the top order's counts (what `save` writes)."""
        self.order, self.discount = order, discount
        # counts[n]: n-gram -> count (raw at the top order, continuation counts below)
        self.counts: dict[int, dict[tuple[str, ...], int]] = {order: top}
        for n in range(order - 1, 0, -1):
            lower: dict[tuple[str, ...], int] = {}
            for gram in self.counts[n + 1]:
                lower[gram[1:]] = lower.get(gram[1:], 0) + 1
            self.counts[n] = lower
        # per context: (total count, number of distinct following characters)
        self.contexts: dict[int, dict[tuple[str, ...], list[int]]] = {}
        for n, grams in self.counts.items():
            table: dict[tuple[str, ...], list[int]] = {}
            for gram, count in grams.items():
                entry = table.setdefault(gram[:-1], [0, 0])
                entry[0] += count
                entry[1] += 1
            self.contexts[n] = table
        self.vocabulary = sorted({gram[-1] for gram in self.counts[1]})
        self._cache: dict[tuple[str, ...], float] = {}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the model to `path` (gzip-compressed JSON: the order, the discount and the top order's counts,
        from which everything else follows), through a temporary file, so that a failed write leaves an earlier
        file whole. `KneserNeyLM.load(path)` reads it back with identical probabilities."""
        grams = [[list(gram), count] for gram, count in self.counts[self.order].items()]
        payload = {"format": "hf_charlm.KneserNeyLM", "version": 1, "order": self.order, "discount": self.discount,
                   "counts": grams}
        temporary = f"{os.fspath(path)}.tmp"
        with gzip.open(temporary, "wt", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False, separators=(",", ":"))
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KneserNeyLM":
        """The model `save` wrote to `path`."""
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                payload = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"no n-gram model at {os.fspath(path)!r}") from None
        except (OSError, EOFError, ValueError) as error:  # not gzip, cut short, or not JSON
            raise ValueError(f"{os.fspath(path)!r} is not an n-gram model written by KneserNeyLM.save ({error})") from None
        if not isinstance(payload, dict) or payload.get("format") != "hf_charlm.KneserNeyLM":
            raise ValueError(f"{os.fspath(path)!r} is not an n-gram model written by KneserNeyLM.save")
        model = cls.__new__(cls)
        model._build({tuple(gram): count for gram, count in payload["counts"]}, payload["order"], payload["discount"])
        return model

    def prob(self, context: Sequence[str], char: str) -> float:
        """P(char | the last `order - 1` characters of context), context padded with `<s>` on the left."""
        history = tuple([BOS] * (self.order - 1) + list(context))[len(context):] if self.order > 1 else ()
        key = history + (char,)
        if key not in self._cache:
            p = 1.0 / len(self.vocabulary)
            for n in range(1, self.order + 1):
                h = history[len(history) - n + 1:] if n > 1 else ()
                total, types = self.contexts[n].get(h, (0, 0))
                if total:
                    p = max(self.counts[n].get(h + (char,), 0) - self.discount, 0) / total + (
                        self.discount * types / total * p)
            self._cache[key] = p
        return self._cache[key]
