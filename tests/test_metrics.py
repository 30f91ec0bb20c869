"""Tests of hf_charlm.metrics and the evaluate modules in hf_charlm/metric_modules: hand-computed
scores (worked out in the comments), cross-checks against scikit-learn, the Trainer compute_metrics
factories with -100 positions, and offline loading of the evaluate modules in fresh processes."""

import json
import math
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hf_charlm.metrics import (
    available_metrics,
    bits_per_char,
    bmes_to_spans,
    classification_scores,
    detect_label_scheme,
    entity_scores,
    load_metric,
    merge_windows,
    multilabel_scores,
    perplexity,
    regression_scores,
    segmentation_scores,
    segmentation_scores_from_words,
    sequence_classification_compute_metrics,
    tags_to_entities,
    token_classification_compute_metrics,
    words_to_bmes,
    words_to_spans,
)


def test_bits_per_char_and_perplexity():
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert bits_per_char(1.0) == pytest.approx(1.4426950408889634)
    assert perplexity(math.log(5)) == pytest.approx(5.0)
    assert perplexity(0.0) == 1.0
    assert perplexity(1e6) == math.inf


# ---------------------------------------------------------------------------------------------------
# entities


def test_entity_scores_one_wrong_boundary():
    # gold: PER[0:2], LOC[3]; predicted: PER[0:1] (boundary wrong), LOC[3] -> 1 of 2 right each way
    scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert scores["overall_precision"] == pytest.approx(0.5)
    assert scores["overall_recall"] == pytest.approx(0.5)
    assert scores["overall_f1"] == pytest.approx(0.5)
    assert scores["overall_accuracy"] == pytest.approx(3 / 4)
    assert scores["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1}
    assert scores["LOC"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}


def test_entity_scores_per_type_two_sentences():
    references = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"], ["B-ORG", "O", "B-PER"]]
    predictions = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "O", "B-LOC"]]
    # gold: PER[0:2] LOC[3:5] | ORG[0] PER[2]     predicted: PER[0:2] LOC[3:4] | ORG[0] LOC[2]
    # correct: PER[0:2], ORG[0] -> P = 2/4, R = 2/4
    # PER: 1 predicted, 2 gold, 1 right -> P 1, R 1/2, F1 2/3; LOC: 2 predicted, 1 gold, 0 right; ORG: all right
    scores = entity_scores(references, predictions)
    assert scores["overall_precision"] == pytest.approx(0.5)
    assert scores["overall_recall"] == pytest.approx(0.5)
    assert scores["overall_f1"] == pytest.approx(0.5)
    assert scores["overall_accuracy"] == pytest.approx(6 / 8)
    assert scores["PER"]["precision"] == pytest.approx(1.0)
    assert scores["PER"]["recall"] == pytest.approx(0.5)
    assert scores["PER"]["f1"] == pytest.approx(2 / 3)
    assert scores["PER"]["number"] == 2
    assert scores["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1}
    assert scores["ORG"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1}
    assert set(scores) == {"PER", "LOC", "ORG", "overall_precision", "overall_recall", "overall_f1", "overall_accuracy"}


def test_entity_scores_default_mode_accepts_i_without_b_strict_does_not():
    references = [["B-PER", "I-PER", "O"]]
    predictions = [["I-PER", "I-PER", "O"]]
    assert entity_scores(references, predictions)["overall_f1"] == pytest.approx(1.0)
    assert entity_scores(references, predictions, mode="strict", scheme="IOB2")["overall_f1"] == 0.0


def test_entity_scores_rejects_length_mismatch():
    with pytest.raises(ValueError):
        entity_scores([["O", "B-PER"]], [["O"]])


# ---------------------------------------------------------------------------------------------------
# word segmentation


@pytest.mark.parametrize(
    "tags, spans",
    [
        (["B", "E", "S", "B", "M", "E"], [(0, 2), (2, 3), (3, 6)]),
        (["B", "B"], [(0, 1), (1, 2)]),  # B while a word is open closes it
        (["E"], [(0, 1)]),  # E without B: one-character word
        (["M", "M", "E"], [(0, 3)]),  # M without B starts a word
        (["S", "M", "E"], [(0, 1), (1, 3)]),  # M after S starts a word
        (["S", "E", "E"], [(0, 1), (1, 2), (2, 3)]),
        (["B", "M"], [(0, 2)]),  # open at the end: closed at the last character
        ([], []),
    ],
)
def test_bmes_to_spans(tags, spans):
    assert bmes_to_spans(tags) == spans


def test_bmes_to_spans_rejects_unknown_tag():
    with pytest.raises(ValueError):
        bmes_to_spans(["B", "O"])


def test_segmentation_scores_ill_formed_prediction():
    # gold spans (0,2) (2,3) (3,6); predicted M E E B B M -> starts 0, 2, 3, 4 -> (0,2) (2,3) (3,4) (4,6)
    # 2 right: P = 2/4, R = 2/3, F1 = 2PR/(P+R) = 4/7
    scores = segmentation_scores([["B", "E", "S", "B", "M", "E"]], [["M", "E", "E", "B", "B", "M"]])
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(4 / 7)
    assert (scores["num_reference_words"], scores["num_predicted_words"], scores["num_correct_words"]) == (3, 4, 2)


def test_segmentation_scores_are_micro_averaged():
    # sentence 1: 1 gold word, 2 predicted, 0 right; sentence 2: 2 gold, 1 predicted, 0 right; sentence 3 right
    references = [["B", "E"], ["S", "S"], ["B", "E"]]
    predictions = [["S", "S"], ["B", "E"], ["B", "E"]]
    # gold 1 + 2 + 1 = 4, predicted 2 + 1 + 1 = 4, right 0 + 0 + 1 = 1 -> P = R = F1 = 1/4
    # (a mean of per-sentence scores would give 1/3)
    scores = segmentation_scores(references, predictions)
    assert scores["precision"] == pytest.approx(0.25)
    assert scores["recall"] == pytest.approx(0.25)
    assert scores["f1"] == pytest.approx(0.25)


def test_segmentation_words_hand_case_and_tags_equivalence():
    ref = [["我们", "是", "中国人"]]  # (0,2) (2,3) (3,6)
    pred = [["我们", "是中国", "人"]]  # (0,2) (2,5) (5,6): 1 of 3 right each way
    from_words = segmentation_scores_from_words(ref, pred)
    assert from_words["f1"] == pytest.approx(1 / 3)
    assert words_to_bmes(ref[0]) == ["B", "E", "S", "B", "M", "E"]
    from_tags = segmentation_scores([words_to_bmes(w) for w in ref], [words_to_bmes(w) for w in pred])
    assert from_tags == from_words


def test_segmentation_words_and_tags_agree_on_random_segmentations():
    rng = random.Random(0)

    def random_words(text):
        words, i = [], 0
        while i < len(text):
            n = rng.randint(1, 4)
            words.append(text[i : i + n])
            i += n
        return words

    texts = ["".join(chr(0x4E00 + rng.randrange(500)) for _ in range(rng.randint(1, 30))) for _ in range(200)]
    ref_words = [random_words(t) for t in texts]
    pred_words = [random_words(t) for t in texts]
    for words in ref_words:
        assert bmes_to_spans(words_to_bmes(words)) == words_to_spans(words)
    from_words = segmentation_scores_from_words(ref_words, pred_words)
    from_tags = segmentation_scores([words_to_bmes(w) for w in ref_words], [words_to_bmes(w) for w in pred_words])
    assert from_words == from_tags
    assert 0.0 < from_words["f1"] < 1.0
    assert segmentation_scores_from_words(ref_words, ref_words)["f1"] == 1.0


def test_segmentation_words_must_join_to_the_same_text():
    with pytest.raises(ValueError):
        segmentation_scores_from_words([["我们", "是"]], [["我", "们"]])
    with pytest.raises(ValueError):
        segmentation_scores([["B", "E"]], [["S"]])


# ---------------------------------------------------------------------------------------------------
# classification, multi-label, regression

REFS = [0, 0, 1, 1, 2, 2, 2]
PREDS = [0, 1, 1, 1, 2, 0, 2]
# class 0: tp 1, fp 1, fn 1 -> F1 1/2; class 1: tp 2, fp 1, fn 0 -> F1 4/5; class 2: tp 2, fp 0, fn 1 -> F1 4/5
# accuracy 5/7, macro-F1 (0.5 + 0.8 + 0.8) / 3 = 0.7; with num_labels=4 the empty class 3 adds an F1 of 0 -> 2.1 / 4


def test_classification_scores_by_hand():
    scores = classification_scores(REFS, PREDS)
    assert scores["accuracy"] == pytest.approx(5 / 7)
    assert scores["per_class_f1"] == pytest.approx([0.5, 0.8, 0.8])
    assert scores["macro_f1"] == pytest.approx(0.7)
    assert scores["labels"] == [0, 1, 2]
    scores4 = classification_scores(REFS, PREDS, num_labels=4)
    assert scores4["macro_f1"] == pytest.approx(2.1 / 4)
    assert scores4["per_class_f1"][3] == 0.0


def test_classification_scores_match_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(0)
    refs = rng.integers(0, 5, size=300)
    preds = np.where(rng.random(300) < 0.6, refs, rng.integers(0, 4, size=300))  # class 4 is never predicted
    for num_labels in (None, 6):
        labels = list(range(num_labels)) if num_labels else None
        scores = classification_scores(refs.tolist(), preds.tolist(), num_labels=num_labels)
        kw = {"labels": labels, "zero_division": 0}
        assert scores["accuracy"] == pytest.approx(accuracy_score(refs, preds))
        assert scores["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro", **kw))
        assert scores["macro_precision"] == pytest.approx(precision_score(refs, preds, average="macro", **kw))
        assert scores["macro_recall"] == pytest.approx(recall_score(refs, preds, average="macro", **kw))
        assert scores["per_class_f1"] == pytest.approx(f1_score(refs, preds, average=None, **kw).tolist())


def test_multilabel_scores_by_hand_and_against_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    # label 0: tp 1 -> F1 1; label 1: tp 1, fp 1 -> F1 2/3; label 2: never on -> 0/0 -> 0
    # micro: tp 2, fp 1, fn 0 -> F1 4/5; subset accuracy 1/2
    scores = multilabel_scores([[0, 1, 0], [1, 0, 0]], [[0, 1, 0], [1, 1, 0]])
    assert scores["per_label_f1"] == pytest.approx([1.0, 2 / 3, 0.0])
    assert scores["macro_f1"] == pytest.approx(5 / 9)
    assert scores["micro_f1"] == pytest.approx(0.8)
    assert scores["subset_accuracy"] == pytest.approx(0.5)

    rng = np.random.default_rng(1)
    refs = (rng.random((200, 6)) < 0.3).astype(int)
    preds = np.where(rng.random((200, 6)) < 0.8, refs, 1 - refs)
    preds[:, 5] = 0
    scores = multilabel_scores(refs, preds)
    assert scores["micro_f1"] == pytest.approx(f1_score(refs, preds, average="micro", zero_division=0))
    assert scores["macro_f1"] == pytest.approx(f1_score(refs, preds, average="macro", zero_division=0))
    assert scores["subset_accuracy"] == pytest.approx(accuracy_score(refs, preds))


def test_regression_scores():
    scores = regression_scores([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    assert scores["mse"] == pytest.approx((1 + 4 + 9) / 3)
    assert scores["pearson"] == pytest.approx(1.0)
    assert regression_scores([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])["pearson"] == pytest.approx(-1.0)
    assert math.isnan(regression_scores([1.0, 2.0], [5.0, 5.0])["pearson"])


# ---------------------------------------------------------------------------------------------------
# Trainer compute_metrics

NER_ID2LABEL = {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC", "4": "I-LOC"}  # string keys, as from config.json


def _one_hot_logits(ids, num_labels):
    ids = np.asarray(ids)
    logits = np.full(ids.shape + (num_labels,), -1.0, dtype=np.float32)
    np.put_along_axis(logits, ids[..., None], 3.0, axis=-1)
    return logits


def test_token_classification_compute_metrics_skips_minus_100():
    from transformers import EvalPrediction

    labels = np.array([[-100, 1, 2, 0, 3, -100], [-100, 3, 4, 0, -100, -100]])
    # the -100 positions hold B-PER / I-PER guesses that would add wrong entities if they were scored
    pred_ids = np.array([[1, 1, 0, 0, 3, 2], [1, 3, 4, 0, 1, 1]])
    # kept: [B-PER I-PER O B-LOC] vs [B-PER O O B-LOC]; [B-LOC I-LOC O] vs the same
    # gold PER, LOC, LOC; predicted PER[0:1] (wrong), LOC, LOC -> P = R = F1 = 2/3; 6 of 7 tags right
    compute = token_classification_compute_metrics(NER_ID2LABEL, scheme="bio")
    metrics = compute(EvalPrediction(predictions=_one_hot_logits(pred_ids, 5), label_ids=labels))
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(6 / 7)
    assert metrics["PER_f1"] == 0.0 and metrics["PER_number"] == 1.0
    assert metrics["LOC_f1"] == 1.0 and metrics["LOC_number"] == 2.0
    assert all(isinstance(v, float) for v in metrics.values())
    # argmax already taken by preprocess_logits_for_metrics, and a plain tuple, give the same
    assert compute((pred_ids, labels)) == metrics


def test_token_classification_compute_metrics_bmes():
    id2label = {0: "B", 1: "M", 2: "E", 3: "S"}
    labels = np.array([[-100, 0, 2, 3, 0, 1, 2, -100]])  # B E S B M E
    pred_ids = np.array([[3, 1, 2, 2, 0, 0, 1, 3]])  # kept: M E E B B M (the ill-formed case above)
    metrics = token_classification_compute_metrics(id2label, scheme="bmes")((_one_hot_logits(pred_ids, 4), labels))
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(4 / 7)
    assert metrics["accuracy"] == pytest.approx(2 / 6)  # E/E and B/B right
    with pytest.raises(ValueError):
        token_classification_compute_metrics(id2label, scheme="bilou")


IOBES_ID2LABEL = dict(enumerate(["O", "B-ORG", "M-ORG", "E-ORG", "S-ORG", "S-PER"]))


def test_detect_label_scheme():
    assert detect_label_scheme(["B", "M", "E", "S"]) == "bmes"
    assert detect_label_scheme(["O", "B-ORG", "M-ORG", "E-ORG", "S-ORG"]) == "iobes"
    assert detect_label_scheme(["O", "B-PER", "I-PER", "L-PER", "U-PER"]) == "iobes"
    assert detect_label_scheme(["O", "B-PER", "I-PER", "B-MISC", "I-MISC"]) == "bio"  # MISC is not an M- tag


def test_iobes_scheme_is_strict_unterminated_entity_is_not_a_match():
    # gold B-ORG E-ORG, S-PER; predicted B-ORG M-ORG (never closed), S-PER
    labels = np.array([[-100, 1, 3, 0, 5]])
    pred_ids = np.array([[0, 1, 2, 0, 5]])
    bio = token_classification_compute_metrics(IOBES_ID2LABEL, scheme="bio")((pred_ids, labels))
    strict = token_classification_compute_metrics(IOBES_ID2LABEL, scheme="iobes")((pred_ids, labels))
    assert bio["f1"] == 1.0  # IOB2 decoding reads B-ORG M-ORG as a whole ORG: the false match of issue #8
    assert strict["precision"] == pytest.approx(1 / 1) and strict["recall"] == pytest.approx(1 / 2)
    assert strict["ORG_f1"] == 0.0 and strict["PER_f1"] == 1.0
    # a well-formed prediction scores 1 in strict mode too; M- reads as I-
    assert token_classification_compute_metrics(IOBES_ID2LABEL, scheme="iobes")((np.array([[0, 1, 2, 3, 5]]), np.array([[-100, 1, 2, 3, 5]])))["f1"] == 1.0


def test_tags_to_entities_follow_the_scheme():
    assert tags_to_entities(["B-ORG", "M-ORG", "E-ORG", "O", "S-PER"], "iobes") == [("ORG", 0, 3), ("PER", 4, 5)]
    assert tags_to_entities(["B-ORG", "M-ORG", "O"], "iobes") == []  # unterminated: no entity
    assert tags_to_entities(["B-PER", "I-PER", "O", "I-LOC"], "bio") == [("PER", 0, 2), ("LOC", 3, 4)]
    assert tags_to_entities(list("BESBME"), "bmes") == [("", 0, 2), ("", 2, 3), ("", 3, 6)]


def test_merge_windows_scores_whole_examples():
    """One example split into two windows that share words: each word is scored once, from the window that
    owns it, and an entity crossing the cut is one entity."""
    names = NER_ID2LABEL
    # example 0 = [B-PER I-PER I-PER O B-LOC]; window A = words 0..3 (owns 0..2), window B = words 2..5 (owns 2..5,
    # counted within B as positions 1..3); example 1 fits one window
    labels = np.array([[-100, 1, 2, 2, 0, -100], [-100, 2, 2, 0, 3, -100], [-100, 3, 4, -100, -100, -100]])
    preds = np.array([[0, 1, 2, 0, 0, 0], [0, 0, 2, 0, 3, 0], [0, 3, 4, 0, 0, 0]])  # A's guess for word 2 is not used
    plan = [(0, 0, 2), (0, 1, 4), (1, 0, 2)]
    true_ids, pred_ids = merge_windows(preds, labels, plan)
    assert true_ids == [[1, 2, 2, 0, 3], [3, 4]]
    assert pred_ids == [[1, 2, 2, 0, 3], [3, 4]]
    metrics = token_classification_compute_metrics(names, scheme="bio", windows=plan)((preds, labels))
    assert metrics["f1"] == 1.0 and metrics["PER_number"] == 1.0 and metrics["LOC_number"] == 2.0
    # scored row by row instead, the PER crossing the cut counts twice and A's wrong guess is scored
    assert token_classification_compute_metrics(names, scheme="bio")((preds, labels))["PER_number"] == 2.0


def test_sequence_classification_compute_metrics():
    from transformers import EvalPrediction

    id2label = {0: "negative", 1: "neutral", 2: "positive"}
    logits = _one_hot_logits(PREDS, 3)
    expected = {"accuracy": 5 / 7, "macro_f1": 0.7, "f1_negative": 0.5, "f1_neutral": 0.8, "f1_positive": 0.8}
    for problem_type in ("single_label_classification", None):
        metrics = sequence_classification_compute_metrics(problem_type, id2label=id2label)(
            EvalPrediction(predictions=logits, label_ids=np.array(REFS))
        )
        assert metrics == pytest.approx(expected)

    multi_labels = np.array([[0, 1, 0], [1, 0, 0]], dtype=np.float32)
    multi_logits = np.array([[-2.0, 0.5, -0.1], [3.0, 0.2, -1.0]])  # > 0 -> [0 1 0], [1 1 0]
    for problem_type in ("multi_label_classification", None):
        metrics = sequence_classification_compute_metrics(problem_type)((multi_logits, multi_labels))
        assert metrics == pytest.approx({"micro_f1": 0.8, "macro_f1": 5 / 9, "subset_accuracy": 0.5})

    for problem_type in ("regression", None):
        compute = sequence_classification_compute_metrics(problem_type)
        metrics = compute((np.array([[2.0], [4.0], [6.0]]), np.array([1.0, 2.0, 3.0])))
        assert metrics == pytest.approx({"mse": 14 / 3, "pearson": 1.0})


# ---------------------------------------------------------------------------------------------------
# evaluate modules, offline

_LOAD_SCRIPT = textwrap.dedent(
    """
    from hf_charlm.metrics import load_metric

    def load_and_compute():
        out = {}
        out["seqeval"] = load_metric("charlm_seqeval").compute(
            predictions=[["B-PER", "O", "O", "B-LOC"]], references=[["B-PER", "I-PER", "O", "B-LOC"]]
        )
        out["cws"] = load_metric("charlm_cws").compute(
            predictions=[["M", "E", "E", "B", "B", "M"]], references=[["B", "E", "S", "B", "M", "E"]]
        )
        out["cws_words"] = load_metric("charlm_cws").compute(
            predictions=[["我们", "是中国", "人"]], references=[["我们", "是", "中国人"]], input_format="words"
        )
        out["classification"] = load_metric("charlm_classification").compute(
            predictions=PREDS, references=REFS
        )
        out["multilabel"] = load_metric("charlm_classification", "multilabel").compute(
            predictions=[[0, 1, 0], [1, 1, 0]], references=[[0, 1, 0], [1, 0, 0]]
        )
        out["regression"] = load_metric("charlm_classification", "regression").compute(
            predictions=[2.0, 4.0, 6.0], references=[1.0, 2.0, 3.0]
        )
        return out
    """
).replace("PREDS", repr(PREDS)).replace("REFS", repr(REFS))

_NO_NETWORK = textwrap.dedent(
    """
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    """
)


def _expected_module_results():
    return {
        "seqeval": entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]]),
        "cws": segmentation_scores([["B", "E", "S", "B", "M", "E"]], [["M", "E", "E", "B", "B", "M"]]),
        "cws_words": segmentation_scores_from_words([["我们", "是", "中国人"]], [["我们", "是中国", "人"]]),
        "classification": classification_scores(REFS, PREDS),
        "multilabel": multilabel_scores([[0, 1, 0], [1, 0, 0]], [[0, 1, 0], [1, 1, 0]]),
        "regression": regression_scores([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),
    }


def test_load_metric_offline_fresh_process_and_in_process(tmp_path, monkeypatch):
    # a fresh process with an empty HF cache and HF_HUB_OFFLINE=1, and this process without forcing
    # offline mode; sockets are disabled in both, so any Hub access would fail
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1")
    script = _NO_NETWORK + _LOAD_SCRIPT + '\nimport json\nprint("RESULT" + json.dumps(load_and_compute()))\n'
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    expected = json.loads(json.dumps(_expected_module_results()))

    import socket

    def no_network(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    namespace = {}
    exec(_LOAD_SCRIPT, namespace)
    in_process = json.loads(json.dumps(namespace["load_and_compute"]()))

    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-3000:]
    fresh = json.loads(stdout.split("RESULT", 1)[1])
    assert any((tmp_path / "hf_home").rglob("charlm_seqeval.py"))  # the module was copied into the fresh cache
    for result in (fresh, in_process):
        assert result == expected
        assert result["cws"]["f1"] == pytest.approx(4 / 7)
        assert result["seqeval"]["overall_f1"] == pytest.approx(0.5)


def test_load_metric_unknown_name():
    assert available_metrics() == ["charlm_classification", "charlm_cws", "charlm_seqeval"]
    with pytest.raises(ValueError, match="charlm_seqeval"):
        load_metric("seqeval")
