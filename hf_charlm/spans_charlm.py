"""Character spans shared by the package and the text-correction pipeline that ships with correctors:
`plan_windows` (overlapping windows over a long example), `text_edits` (the edits that turn one text into
another), and the same-length corrector's helpers: reading a text of any length in overlapping windows of
characters (`plan_char_windows`), turning per-window predictions into edits (`merge_predictions`,
`gate_by_detection`), applying edits (`apply_edits`). An edit is `{"start", "end", "original", "replacement",
"score"}` with character offsets into the text.

This file ships with every text-correction checkpoint (`pipeline_charlm.py` imports it), and `hf_charlm.metrics`,
`hf_charlm.training` and `hf_charlm.correction` import from it: it may import only the standard library (tensors
are used through their methods), so that `import hf_charlm.metrics` still needs no torch.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def plan_windows(costs: list[int], capacity: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows of whole words over one example: `(start, end, own_start, own_end)` word indices.
    Each window holds at most `capacity` tokens (a single longer word gets a window of its own and is cut);
    consecutive windows share about `stride` tokens of words (at least one word), and each shared word is scored by the window in
    which it sits further from the edge (the owned ranges tile the example exactly once)."""
    n = len(costs)
    spans = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + costs[end] <= capacity:
            used += costs[end]
            end += 1
        end = max(end, start + 1)
        spans.append((start, end))
        if end >= n:
            break
        nxt, back = end, 0
        # at least one word of context, then up to `stride` tokens, as long as the next window still reaches past `end`
        while nxt > start + 1 and back + costs[nxt - 1] + costs[end] <= capacity and (nxt == end or back + costs[nxt - 1] <= stride):
            back += costs[nxt - 1]
            nxt -= 1
        start = nxt
    out = []
    for k, (s, e) in enumerate(spans):
        own_start = s if k == 0 else (s + spans[k - 1][1]) // 2
        own_end = e if k == len(spans) - 1 else (spans[k + 1][0] + e) // 2
        out.append((s, e, own_start, own_end))
    return out


def text_edits(source: str, output: str) -> list[tuple[int, int, str]]:
    """The edits that turn `source` into `output`, as `(start, end, replacement)` with character offsets into
    `source` (an insertion has start == end, a deletion an empty replacement), in order. Texts of the same length
    are compared position by position, one edit per changed character (spelling correction never shifts text);
    otherwise difflib's alignment gives the edits, a replaced span of the same length again split per character."""
    if len(source) == len(output):
        return [(i, i + 1, b) for i, (a, b) in enumerate(zip(source, output)) if a != b]
    import difflib

    edits = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, source, output, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op == "replace" and i2 - i1 == j2 - j1:
            edits.extend((i1 + k, i1 + k + 1, output[j1 + k]) for k in range(i2 - i1) if source[i1 + k] != output[j1 + k])
        else:
            edits.append((i1, i2, output[j1:j2]))
    return edits



def char_vocabulary(tokenizer: Any) -> dict[int, str]:
    """Token id -> character for the tokens that are one ordinary character (no special token, no `<0xNN>` byte
    token): the characters a same-length corrector can write."""
    return _char_vocabulary(tokenizer.backend_tokenizer.to_str(), tuple(tokenizer.all_special_ids))


@functools.lru_cache(maxsize=8)
def _char_vocabulary(serialized: str, special: tuple[int, ...]) -> dict[int, str]:
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
    by the one window that owns it (where it has context on both sides), as `spans_charlm.plan_windows` plans them."""
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


__all__ = ["plan_windows", "text_edits", "char_vocabulary", "plan_char_windows", "apply_edits", "merge_predictions",
           "gate_by_detection"]
