"""Offline metrics for the char LMs: bits-per-char / perplexity, entity-level NER scores (seqeval),
word-segmentation scores for B/M/E/S tags or word lists, classification / multi-label / regression
scores, sequence-to-sequence scores (BLEU / chrF by sacrebleu, character error rate, character accuracy,
exact match), the `compute_metrics` factories that `Trainer` calls, and `load_metric`, which loads the
`evaluate` wrappers in `metric_modules/` by local path (no Hub, no network). This file may import the
package, `datasets`, `evaluate`, `numpy`, `seqeval` and `sacrebleu`; `evaluate`, `seqeval` and `sacrebleu`
are imported where they are used, so the other scoring functions need only numpy.
"""

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .spans_charlm import text_edits

if TYPE_CHECKING:
    import evaluate

METRIC_MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"
SEGMENTATION_TAGS = ("B", "M", "E", "S")

__all__ = [
    "bits_per_char",
    "perplexity",
    "entity_scores",
    "bmes_to_spans",
    "words_to_spans",
    "words_to_bmes",
    "segmentation_scores",
    "segmentation_scores_from_words",
    "classification_scores",
    "multilabel_scores",
    "regression_scores",
    "detect_label_scheme",
    "tags_to_entities",
    "merge_windows",
    "token_classification_compute_metrics",
    "sequence_classification_compute_metrics",
    "available_metrics",
    "load_metric",
    "edit_distance",
    "character_error_rate",
    "character_accuracy",
    "exact_match",
    "bleu_tokenize_for",
    "seq2seq_scores",
    "seq2seq_compute_metrics",
]


# ----------------------------------------------------------------------------------------------------
# language modelling


def bits_per_char(nats_per_char: float) -> float:
    """Mean cross-entropy per character in nats (what the causal-LM loss reports, one token = one
    character) -> bits per character."""
    return float(nats_per_char) / math.log(2)


def perplexity(nats: float) -> float:
    """exp(mean cross-entropy in nats); `inf` instead of an OverflowError for a diverged model."""
    try:
        return math.exp(float(nats))
    except OverflowError:
        return math.inf


# ----------------------------------------------------------------------------------------------------
# named entities (seqeval)


def entity_scores(
    references: list[list[str]],
    predictions: list[list[str]],
    scheme: str | None = None,
    mode: str | None = None,
    suffix: bool = False,
) -> dict[str, Any]:
    """Entity-level precision / recall / F1 with seqeval, in the layout of the Hub's `seqeval` metric
    (and so of `run_ner.py`): `overall_precision`, `overall_recall`, `overall_f1`, `overall_accuracy`
    (token accuracy), and for each entity type `{"precision", "recall", "f1", "number"}` where `number`
    is the count of reference entities of that type. The default (`mode=None`) is seqeval's
    conlleval-compatible decoding, in which an `I-X` without a `B-X` still starts an entity;
    `mode="strict", scheme="IOB2"` scores only well-formed entities. Undefined ratios (0/0) are 0."""
    from seqeval.metrics import accuracy_score, classification_report

    _check_same_lengths(references, predictions)
    report = classification_report(
        y_true=references,
        y_pred=predictions,
        suffix=suffix,
        output_dict=True,
        scheme=_seqeval_scheme(scheme),
        mode=mode,
        zero_division=0,
    )
    report.pop("macro avg", None)
    report.pop("weighted avg", None)
    overall = report.pop("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    scores: dict[str, Any] = {
        entity_type: {
            "precision": float(s["precision"]),
            "recall": float(s["recall"]),
            "f1": float(s["f1-score"]),
            "number": int(s["support"]),
        }
        for entity_type, s in report.items()
    }
    scores["overall_precision"] = float(overall["precision"])
    scores["overall_recall"] = float(overall["recall"])
    scores["overall_f1"] = float(overall["f1-score"])
    scores["overall_accuracy"] = float(accuracy_score(y_true=references, y_pred=predictions))
    return scores


def _seqeval_scheme(scheme: str | None) -> Any:
    if scheme is None:
        return None
    import seqeval.scheme

    try:
        return getattr(seqeval.scheme, scheme)
    except AttributeError:
        raise ValueError(f"unknown seqeval scheme {scheme!r} (IOB1, IOB2, IOE1, IOE2, IOBES, BILOU)") from None


# ----------------------------------------------------------------------------------------------------
# word segmentation
#
# Decoding rule for B/M/E/S tags, applied alike to references and predictions: a word starts at
# character i when i == 0, when tag[i] is B or S, or when tag[i-1] is E or S. Every character
# therefore belongs to exactly one word, and ill-formed sequences decode as follows:
#   - an M or E with no open word (first character, or after E/S) starts a new word
#     (so a lone E is a one-character word, and "M M E" is one word);
#   - a B or S while a word is open closes that word first (so "B B" is two one-character words);
#   - a word still open at the end (B or M on the last character) ends at the last character.
# Scores are micro-averaged over the corpus, as in the SIGHAN bakeoff script: a predicted word is
# correct when its (start, end) span is also a reference span.


def bmes_to_spans(tags: Sequence[str]) -> list[tuple[int, int]]:
    """B/M/E/S tags -> word spans `(start, end)`, end exclusive, with the decoding rule above."""
    starts = []
    previous = None
    for i, tag in enumerate(tags):
        if tag not in SEGMENTATION_TAGS:
            raise ValueError(f"segmentation tag {tag!r} at position {i} is not one of {SEGMENTATION_TAGS}")
        if i == 0 or tag in ("B", "S") or previous in ("E", "S"):
            starts.append(i)
        previous = tag
    return list(zip(starts, starts[1:] + [len(tags)]))


def words_to_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """Word list -> character-offset spans `(start, end)`, end exclusive. Empty words are skipped."""
    spans = []
    start = 0
    for word in words:
        if word:
            spans.append((start, start + len(word)))
            start += len(word)
    return spans


def words_to_bmes(words: Sequence[str]) -> list[str]:
    """Word list -> one B/M/E/S tag per character (S for a one-character word)."""
    tags = []
    for word in words:
        if len(word) == 1:
            tags.append("S")
        elif word:
            tags.extend(["B"] + ["M"] * (len(word) - 2) + ["E"])
    return tags


def _span_scores(
    reference_spans: list[list[tuple[int, int]]], predicted_spans: list[list[tuple[int, int]]]
) -> dict[str, float]:
    num_reference = num_predicted = num_correct = 0
    for ref, pred in zip(reference_spans, predicted_spans):
        num_reference += len(ref)
        num_predicted += len(pred)
        num_correct += len(set(ref) & set(pred))
    precision = num_correct / num_predicted if num_predicted else 0.0
    recall = num_correct / num_reference if num_reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "num_reference_words": num_reference,
        "num_predicted_words": num_predicted,
        "num_correct_words": num_correct,
    }


def segmentation_scores(references: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    """Word-level precision / recall / F1 (micro over the corpus) of B/M/E/S tag sequences, one list
    of tags per sentence, decoded with the rule documented above `bmes_to_spans`. Also returns the
    three word counts. Reference and prediction of a sentence must have the same length."""
    _check_same_lengths(references, predictions)
    return _span_scores([bmes_to_spans(t) for t in references], [bmes_to_spans(t) for t in predictions])


def segmentation_scores_from_words(ref_words: list[list[str]], pred_words: list[list[str]]) -> dict[str, float]:
    """Same scores as `segmentation_scores` for word lists (e.g. `list(jieba.cut(text))`): spans are
    character offsets, so a word list and its `words_to_bmes` tags score identically. The words of a
    reference and of its prediction must join to the same text."""
    if len(ref_words) != len(pred_words):
        raise ValueError(f"{len(ref_words)} references but {len(pred_words)} predictions")
    for i, (ref, pred) in enumerate(zip(ref_words, pred_words)):
        if "".join(ref) != "".join(pred):
            raise ValueError(f"sentence {i}: reference and predicted words do not join to the same text")
    return _span_scores([words_to_spans(w) for w in ref_words], [words_to_spans(w) for w in pred_words])


def _check_same_lengths(references: Sequence[Sequence[Any]], predictions: Sequence[Sequence[Any]]) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")
    for i, (ref, pred) in enumerate(zip(references, predictions)):
        if len(ref) != len(pred):
            raise ValueError(f"sequence {i}: {len(ref)} reference tags but {len(pred)} predicted tags")


# ----------------------------------------------------------------------------------------------------
# sequence classification: single label, multi-label, regression


def _f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # 0/0 -> 0, like scikit-learn's zero_division=0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return precision, recall, f1


def classification_scores(
    references: list[int], predictions: list[int], num_labels: int | None = None
) -> dict[str, Any]:
    """Accuracy, macro precision / recall / F1 and per-class F1 for single-label classification.
    The classes are `0 .. num_labels - 1` when `num_labels` is given (a class absent from both lists
    then counts with F1 = 0), else the sorted union of the labels seen, as in scikit-learn's
    `f1_score(average="macro", zero_division=0)`. `per_class_f1[k]` belongs to `labels[k]`."""
    refs = np.asarray(references, dtype=np.int64).reshape(-1)
    preds = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if refs.shape != preds.shape:
        raise ValueError(f"{refs.size} references but {preds.size} predictions")
    if refs.size == 0:
        raise ValueError("no examples to score")
    labels = np.arange(num_labels) if num_labels is not None else np.union1d(refs, preds)
    tp = np.array([np.sum((preds == c) & (refs == c)) for c in labels], dtype=np.float64)
    fp = np.array([np.sum((preds == c) & (refs != c)) for c in labels], dtype=np.float64)
    fn = np.array([np.sum((preds != c) & (refs == c)) for c in labels], dtype=np.float64)
    precision, recall, f1 = _f1_from_counts(tp, fp, fn)
    return {
        "accuracy": float(np.mean(refs == preds)),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "labels": [int(c) for c in labels],
        "per_class_f1": [float(x) for x in f1],
    }


def multilabel_scores(references: Sequence[Sequence[int]], predictions: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Multi-label scores over 0/1 indicator arrays of shape (examples, labels): micro F1 (pooled
    counts), macro F1 (mean of per-label F1, 0/0 -> 0), per-label F1, and subset accuracy (all labels
    of an example right)."""
    refs = np.asarray(references).astype(bool)
    preds = np.asarray(predictions).astype(bool)
    if refs.ndim != 2 or refs.shape != preds.shape:
        raise ValueError(f"expected two (examples, labels) arrays of one shape, got {refs.shape} and {preds.shape}")
    tp = (refs & preds).sum(axis=0).astype(np.float64)
    fp = (~refs & preds).sum(axis=0).astype(np.float64)
    fn = (refs & ~preds).sum(axis=0).astype(np.float64)
    _, _, per_label_f1 = _f1_from_counts(tp, fp, fn)
    micro_precision, micro_recall, micro_f1 = _f1_from_counts(
        tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    )
    return {
        "micro_precision": float(micro_precision[0]),
        "micro_recall": float(micro_recall[0]),
        "micro_f1": float(micro_f1[0]),
        "macro_f1": float(per_label_f1.mean()),
        "per_label_f1": [float(x) for x in per_label_f1],
        "subset_accuracy": float(np.mean(np.all(refs == preds, axis=1))),
    }


def regression_scores(references: Sequence[float], predictions: Sequence[float]) -> dict[str, float]:
    """Mean squared error and Pearson correlation (NaN when either side is constant)."""
    refs = np.asarray(references, dtype=np.float64).reshape(-1)
    preds = np.asarray(predictions, dtype=np.float64).reshape(-1)
    if refs.shape != preds.shape:
        raise ValueError(f"{refs.size} references but {preds.size} predictions")
    if refs.std() == 0 or preds.std() == 0:
        pearson = math.nan
    else:
        pearson = float(np.corrcoef(refs, preds)[0, 1])
    return {"mse": float(np.mean((refs - preds) ** 2)), "pearson": pearson}


# ----------------------------------------------------------------------------------------------------
# tag schemes
#
# "bio": B-X / I-X / O, scored like conlleval (seqeval's default mode: an I-X without B-X starts an entity).
# "iobes": B-X / I-X (or M-X) / E-X / S-X / O, and BILOU's L-X / U-X, scored in seqeval's strict IOBES mode: an
#   entity counts only when it is well formed, so an unterminated "B-ORG M-ORG" does not match "B-ORG E-ORG".
# "bmes": untyped B / M / E / S word-segmentation tags, scored as words (see `segmentation_scores`).

LABEL_SCHEMES = ("bio", "iobes", "bmes")
_IOBES_PREFIX = {"M": "I", "L": "E", "U": "S"}


def detect_label_scheme(label_names: Sequence[str]) -> str:
    """The scheme of a label set: untyped B/M/E/S -> "bmes"; any `E-`, `S-`, `M-`, `L-` or `U-` tag -> "iobes";
    else "bio"."""
    if set(label_names) <= set(SEGMENTATION_TAGS):
        return "bmes"
    if any(len(n) > 2 and n[1] == "-" and n[0] in "ESMLU" for n in label_names):
        return "iobes"
    return "bio"


def _to_iobes(tags: Sequence[str]) -> list[str]:
    return [f"{_IOBES_PREFIX.get(t[0], t[0])}{t[1:]}" if len(t) > 2 and t[1] == "-" else t for t in tags]


def tags_to_entities(tags: Sequence[str], scheme: str = "bio") -> list[tuple[str, int, int]]:
    """One sequence of tags -> `(type, start, end)` spans, end exclusive, decoded as the scheme is scored:
    conlleval-style for "bio", strict for "iobes", words (type "") for "bmes"."""
    if scheme == "bmes":
        return [("", s, e) for s, e in bmes_to_spans(tags)]
    if scheme == "iobes":
        from seqeval.scheme import IOBES, Entities

        return [(e.tag, e.start, e.end) for e in Entities([_to_iobes(tags)], IOBES).entities[0]]
    from seqeval.metrics.sequence_labeling import get_entities

    return [(t, s, e + 1) for t, s, e in get_entities(list(tags))]


def merge_windows(
    predictions: np.ndarray, labels: np.ndarray, windows: Sequence[tuple[int, int, int]] | None
) -> tuple[list[list[int]], list[list[int]]]:
    """Rows of predicted ids and labels (one row per window, -100 where nothing is scored) -> per example, the
    predicted and true ids of its words in order. `windows[r] = (example, own_start, own_end)` says which
    example row r belongs to and which of its scored positions it owns (`training.encode_token_windows`);
    None means one row per example, all positions owned."""
    true_rows: list[list[int]] = []
    pred_rows: list[list[int]] = []
    last = None
    for r, (pred_row, label_row) in enumerate(zip(predictions, labels)):
        keep = label_row != -100
        true_ids, pred_ids = [int(i) for i in label_row[keep]], [int(i) for i in pred_row[keep]]
        example, own_start, own_end = windows[r] if windows is not None else (r, 0, len(true_ids))
        if example != last:
            true_rows.append([])
            pred_rows.append([])
            last = example
        true_rows[-1].extend(true_ids[own_start:own_end])
        pred_rows[-1].extend(pred_ids[own_start:own_end])
    return true_rows, pred_rows


# ----------------------------------------------------------------------------------------------------
# Trainer compute_metrics factories


def _unpack_eval_prediction(eval_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    predictions, labels = eval_pred[0], eval_pred[1]
    if isinstance(predictions, (tuple, list)):  # model returned extra outputs (hidden states, ...)
        predictions = predictions[0]
    return np.asarray(predictions), np.asarray(labels)


def token_classification_compute_metrics(
    id2label: dict[int, str], scheme: str = "bio", windows: Sequence[tuple[int, int, int]] | None = None
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for `Trainer` on token classification. It takes an `EvalPrediction` (or a
    `(predictions, labels)` pair) whose predictions are logits `(B, T, num_labels)` or, after a
    `preprocess_logits_for_metrics` argmax, ids `(B, T)`; positions labelled -100 are skipped. Returns a
    flat dict of floats:
    - `scheme="bio"`: `precision`, `recall`, `f1`, `accuracy` (entity level, see `entity_scores`) and
      `{TYPE}_precision`, `{TYPE}_recall`, `{TYPE}_f1`, `{TYPE}_number` per entity type;
    - `scheme="iobes"`: the same keys, entities scored in seqeval's strict IOBES mode (`M-`, `L-`, `U-` read
      as `I-`, `E-`, `S-`);
    - `scheme="bmes"`: word-level `precision`, `recall`, `f1` (see `segmentation_scores`) and tag
      `accuracy`.
    With `windows` (from `training.encode_token_windows`) the rows are windows of longer examples, put back
    together with `merge_windows` before scoring, so entities and words are scored whole."""
    scheme = scheme.lower()
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"scheme must be one of {LABEL_SCHEMES}, got {scheme!r}")
    id2label = {int(k): v for k, v in id2label.items()}  # config.json round-trips the keys as strings

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, labels = _unpack_eval_prediction(eval_pred)
        if predictions.ndim == labels.ndim + 1:
            predictions = predictions.argmax(axis=-1)
        true_ids, pred_ids = merge_windows(predictions, labels, windows)
        true_tags = [[id2label[i] for i in row] for row in true_ids]
        pred_tags = [[id2label[i] for i in row] for row in pred_ids]
        if scheme == "bmes":
            scores = segmentation_scores(true_tags, pred_tags)
            n_tags = sum(len(t) for t in true_tags)
            n_right = sum(a == b for t, p in zip(true_tags, pred_tags) for a, b in zip(t, p))
            return {
                "precision": scores["precision"],
                "recall": scores["recall"],
                "f1": scores["f1"],
                "accuracy": n_right / n_tags if n_tags else 0.0,
            }
        if scheme == "iobes":
            scores = entity_scores([_to_iobes(t) for t in true_tags], [_to_iobes(t) for t in pred_tags], scheme="IOBES", mode="strict")
        else:
            scores = entity_scores(true_tags, pred_tags)
        flat = {
            "precision": scores.pop("overall_precision"),
            "recall": scores.pop("overall_recall"),
            "f1": scores.pop("overall_f1"),
            "accuracy": scores.pop("overall_accuracy"),
        }
        for entity_type, type_scores in scores.items():
            for key, value in type_scores.items():
                flat[f"{entity_type}_{key}"] = float(value)
        return flat

    return compute_metrics


def sequence_classification_compute_metrics(
    problem_type: str | None = None, id2label: dict[int, str] | None = None, num_labels: int | None = None
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for `Trainer` on sequence classification, following the head's
    `config.problem_type`:
    - `"single_label_classification"`: argmax of the logits -> `accuracy`, `macro_f1`, and `f1_{label}`
      per class (label names from `id2label`, else the class id);
    - `"multi_label_classification"`: a label is on when its logit > 0 (sigmoid > 0.5) -> `micro_f1`,
      `macro_f1`, `subset_accuracy`;
    - `"regression"`: the logits squeezed to (B,) -> `mse`, `pearson`.
    `problem_type=None` decides per call the way the model's forward does: one logit -> regression,
    integer labels -> single label, else multi-label."""
    known = (None, "single_label_classification", "multi_label_classification", "regression")
    if problem_type not in known:
        raise ValueError(f"problem_type must be one of {known}, got {problem_type!r}")
    if id2label is not None:
        id2label = {int(k): v for k, v in id2label.items()}
        num_labels = num_labels if num_labels is not None else len(id2label)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits, labels = _unpack_eval_prediction(eval_pred)
        kind = problem_type
        if kind is None:
            if logits.ndim == 1 or logits.shape[-1] == 1:
                kind = "regression"
            elif np.issubdtype(labels.dtype, np.integer) and labels.ndim == 1:
                kind = "single_label_classification"
            else:
                kind = "multi_label_classification"
        if kind == "regression":
            return regression_scores(labels.reshape(-1), logits.reshape(-1))
        if kind == "multi_label_classification":
            scores = multilabel_scores(labels > 0.5, logits > 0)
            return {k: scores[k] for k in ("micro_f1", "macro_f1", "subset_accuracy")}
        predictions = logits.argmax(axis=-1) if logits.ndim == labels.ndim + 1 else logits
        scores = classification_scores(labels, predictions, num_labels=num_labels)
        flat = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}
        for label, f1 in zip(scores["labels"], scores["per_class_f1"]):
            name = id2label.get(label, str(label)) if id2label else str(label)
            flat[f"f1_{name}"] = f1
        return flat

    return compute_metrics


# ----------------------------------------------------------------------------------------------------
# sequence to sequence: BLEU and chrF (sacrebleu), character error rate, character accuracy, exact match


def _check_pairs(references: Sequence[str], predictions: Sequence[str]) -> None:
    if len(references) != len(predictions):
        raise ValueError(f"{len(references)} references but {len(predictions)} predictions")


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions, each costing 1) between two sequences, by the
    plain dynamic programme over one row at a time."""
    if len(a) < len(b):
        a, b = b, a  # the row runs over the shorter sequence
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def character_error_rate(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Corpus character error rate: the edit distances of all pairs summed, over the total reference length
    (so a long sentence weighs more than a short one, as in ASR scoring). 0 is perfect; above 1 is possible when
    predictions are longer than the references. Empty references with empty predictions score 0."""
    _check_pairs(references, predictions)
    edits = sum(edit_distance(r, p) for r, p in zip(references, predictions))
    total = sum(len(r) for r in references)
    if total == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / total


def character_accuracy(references: Sequence[str], predictions: Sequence[str]) -> float:
    """For tasks whose output has one character per input unit (pinyin -> characters, spelling correction): the
    share of reference positions whose character the prediction has at the same position, counted over the total
    reference length (a missing character counts as wrong; extra predicted characters are not counted)."""
    _check_pairs(references, predictions)
    total = sum(len(r) for r in references)
    if total == 0:
        return 0.0
    correct = sum(sum(x == y for x, y in zip(r, p)) for r, p in zip(references, predictions))
    return correct / total


def exact_match(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Share of predictions equal to their reference (after stripping surrounding whitespace)."""
    _check_pairs(references, predictions)
    if not references:
        return 0.0
    return sum(r.strip() == p.strip() for r, p in zip(references, predictions)) / len(references)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F or 0x3040 <= code <= 0x30FF


def bleu_tokenize_for(references: Sequence[str]) -> str:
    """sacrebleu's tokenizer for these references: "zh" (each CJK character a word) when most of their
    non-space characters are CJK, else "13a" (WMT's default)."""
    chars = [ch for r in references for ch in r if not ch.isspace()]
    cjk = sum(_is_cjk(ch) for ch in chars)
    return "zh" if chars and cjk * 2 > len(chars) else "13a"


def seq2seq_scores(
    references: Sequence[str], predictions: Sequence[str], tokenize: str | None = None, char_accuracy: bool = False
) -> dict[str, float]:
    """`bleu` (sacrebleu corpus BLEU, 0-100, `tokenize` "zh" / "13a" / ..., default from `bleu_tokenize_for`),
    `chrf` (sacrebleu chrF, 0-100), `cer` (`character_error_rate`), `exact_match` (0-1), and with
    `char_accuracy` the share of reference positions predicted right (0-1), plus `gen_len`, the mean predicted
    length in characters. sacrebleu is imported here: `pip install "hf_charlm[metrics]"`."""
    try:
        import sacrebleu
    except ImportError as err:
        raise ImportError('BLEU and chrF need sacrebleu: pip install "hf_charlm[metrics]"') from err
    _check_pairs(references, predictions)
    references, predictions = list(references), list(predictions)
    tokenize = tokenize or bleu_tokenize_for(references)
    scores = {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
        "cer": character_error_rate(references, predictions),
        "exact_match": exact_match(references, predictions),
    }
    if char_accuracy:
        scores["char_accuracy"] = character_accuracy(references, predictions)
    scores["gen_len"] = float(np.mean([len(p) for p in predictions])) if predictions else 0.0
    return scores


def seq2seq_compute_metrics(
    tokenizer: Any, references: Sequence[str], tokenize: str | None = None, char_accuracy: bool = False
) -> Callable[[Any], dict[str, float]]:
    """A `compute_metrics` for `Seq2SeqTrainer` with `predict_with_generate`: the generated ids are decoded
    (-100 read as padding) and scored by `seq2seq_scores` against `references`, the whole target texts of the
    evaluated split in order (not the labels, which may have been cut to `max_target_length`)."""
    references = list(references)

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, _ = _unpack_eval_prediction(eval_pred)
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        predictions = np.where(predictions < 0, tokenizer.pad_token_id, predictions)
        texts = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        if len(texts) != len(references):
            raise ValueError(f"{len(texts)} predictions for {len(references)} references: score one split at a time.")
        return seq2seq_scores(references, texts, tokenize=tokenize, char_accuracy=char_accuracy)

    return compute_metrics


# ----------------------------------------------------------------------------------------------------
# evaluate modules, loaded by local path


def available_metrics() -> list[str]:
    """Names of the `evaluate` modules shipped in `hf_charlm/metric_modules/`."""
    return sorted(p.parent.name for p in METRIC_MODULES_DIR.glob("*/*.py") if p.stem == p.parent.name)


def load_metric(name: str, config_name: str | None = None, **kwargs: Any) -> "evaluate.EvaluationModule":
    """`evaluate.load` of one of the package's metric modules by its local path: nothing is fetched
    from the Hub, so it works offline (`HF_HUB_OFFLINE=1` or not). The modules are thin wrappers
    around this file's functions: `charlm_seqeval` (entity_scores), `charlm_cws` (segmentation
    scores; `compute(..., input_format="words")` for word lists) and `charlm_classification`
    (configs `multiclass`, `multilabel`, `regression`). `kwargs` go to `evaluate.load`."""
    import evaluate

    path = METRIC_MODULES_DIR / name / f"{name}.py"
    if not path.is_file():
        raise ValueError(f"unknown metric {name!r}; available: {', '.join(available_metrics())}")
    return evaluate.load(str(path), config_name=config_name, **kwargs)


# ----------------------------------------------------------------------------------------------------
# text correction (spelling / typo correction): SIGHAN-style scores


def _prf(tp: int, predicted: int, gold: int) -> tuple[float, float, float]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def correction_scores(sources: Sequence[str], targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """SIGHAN-style scores of a corrector's `predictions` for `sources` whose corrections are `targets`.

    Sentence level (the SIGHAN 2015 official measures): a sentence is *detected* when the positions the corrector
    changed are exactly the erroneous positions, and *corrected* when the output equals the target; a true positive
    is such a sentence among those with errors. Precision divides by the sentences the corrector changed (a change
    to a correct sentence, or a wrong change anywhere, costs precision), recall by the sentences with errors.
    Character level: each edit (`text_edits`: one per changed character for same-length text) is one unit;
    detection matches its span, correction its span and replacement, over the corrector's edits (precision) and the
    target's (recall). `false_positive_rate`: the share of correct sentences that the corrector changed.
    `sentence_accuracy`: outputs equal to their target, all sentences. Counts come along (`sentences`,
    `erroneous_sentences`, `changed_sentences`). Scores are 0-1; a measure with an empty denominator is 0."""
    if not len(sources) == len(targets) == len(predictions):
        raise ValueError(f"{len(sources)} sources, {len(targets)} targets and {len(predictions)} predictions: give one of each per sentence")
    counts = dict.fromkeys(("erroneous", "changed", "det_tp", "cor_tp", "correct", "false_alarm", "exact",
                            "gold_units", "pred_units", "det_units", "cor_units"), 0)
    for source, target, prediction in zip(sources, targets, predictions):
        gold, pred = text_edits(source, target), text_edits(source, prediction)
        gold_spans, pred_spans = {e[:2] for e in gold}, {e[:2] for e in pred}
        counts["erroneous"] += bool(gold)
        counts["changed"] += bool(pred)
        counts["exact"] += prediction == target
        if gold:
            counts["det_tp"] += pred_spans == gold_spans
            counts["cor_tp"] += prediction == target
        else:
            counts["correct"] += 1
            counts["false_alarm"] += bool(pred)
        counts["gold_units"] += len(gold)
        counts["pred_units"] += len(pred)
        counts["det_units"] += len(gold_spans & pred_spans)
        counts["cor_units"] += len(set(gold) & set(pred))
    scores: dict[str, float] = {}
    for name, tp, predicted, gold in (
        ("sentence_detection", counts["det_tp"], counts["changed"], counts["erroneous"]),
        ("sentence_correction", counts["cor_tp"], counts["changed"], counts["erroneous"]),
        ("char_detection", counts["det_units"], counts["pred_units"], counts["gold_units"]),
        ("char_correction", counts["cor_units"], counts["pred_units"], counts["gold_units"]),
    ):
        scores[f"{name}_precision"], scores[f"{name}_recall"], scores[f"{name}_f1"] = _prf(tp, predicted, gold)
    scores["false_positive_rate"] = counts["false_alarm"] / counts["correct"] if counts["correct"] else 0.0
    scores["sentence_accuracy"] = counts["exact"] / len(sources) if len(sources) else 0.0
    scores.update(sentences=len(sources), erroneous_sentences=counts["erroneous"], changed_sentences=counts["changed"])
    return scores


def word_accuracy(references: Sequence[str], predictions: Sequence[str]) -> float:
    """Share of reference words (split on whitespace) that the prediction reproduces, aligned by difflib so an
    inserted or dropped word shifts nothing: the English typo-correction score (1.0 means every word right)."""
    import difflib

    _check_pairs(references, predictions)
    total = matched = 0
    for reference, prediction in zip(references, predictions):
        words = reference.split()
        total += len(words)
        blocks = difflib.SequenceMatcher(None, words, prediction.split(), autojunk=False).get_matching_blocks()
        matched += sum(block.size for block in blocks)
    return matched / total if total else 0.0


__all__ += ["text_edits", "correction_scores", "word_accuracy"]
