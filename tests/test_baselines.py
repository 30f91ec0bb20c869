"""The classical baselines of benchmarks/baselines.py (CRF features and training, TF-IDF + linear classifiers,
their safetensors export) and the input checks of benchmarks/chinese_tasks.py. Skipped where the `bench`
extra (scikit-learn, sklearn-crfsuite) is missing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf_charlm.data import load_builtin
from hf_charlm.metrics import classification_scores, entity_scores, segmentation_scores
from hf_charlm.ngram import KneserNeyLM
from hf_charlm.pinyin import syllable_table

from tests.conftest import run_script_in_process

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def baselines(monkeypatch):
    # benchmarks/ is a folder of scripts, not a package: import its module the way the scripts do
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import baselines

    return baselines


def token_split(name: str, column: str, split: str, n: int) -> tuple[list[str], list[list[str]]]:
    dataset = load_builtin(name)[split].select(range(n))
    names = dataset.features[column].feature.names
    return ["".join(chars) for chars in dataset["tokens"]], [[names[i] for i in ids] for ids in dataset[column]]


# ------------------------------------------------------------------------------------------------------------
# CRF features


def test_crf_features_on_a_hand_written_sentence(baselines):
    text = "我爱１９９８年"  # full-width digits, as in the People's Daily text
    assert baselines.crf_features(text, 0) == {
        "c-2": "<s>", "c-1": "<s>", "c0": "我", "c1": "爱", "c2": "１",
        "c-2c-1": "<s><s>", "c-1c0": "<s>我", "c0c1": "我爱", "c1c2": "爱１", "c-1c1": "<s>爱",
        "digit": False,
    }  # fmt: skip
    assert baselines.crf_features(text, 3) == {
        "c-2": "爱", "c-1": "１", "c0": "９", "c1": "９", "c2": "８",
        "c-2c-1": "爱１", "c-1c0": "１９", "c0c1": "９９", "c1c2": "９８", "c-1c1": "１９",
        "digit": True,
    }  # fmt: skip
    assert baselines.crf_features(text, 6) == {
        "c-2": "９", "c-1": "８", "c0": "年", "c1": "</s>", "c2": "</s>",
        "c-2c-1": "９８", "c-1c0": "８年", "c0c1": "年</s>", "c1c2": "</s></s>", "c-1c1": "８</s>",
        "digit": False,
    }  # fmt: skip
    assert baselines.crf_features("7", 0)["digit"] is True
    assert baselines.sentence_features(text)[3] == baselines.crf_features(text, 3)
    assert len(baselines.sentence_features(text)) == len(text)
    with pytest.raises(IndexError, match="position 7 is outside a text of 7 characters"):
        baselines.crf_features(text, 7)


def test_crf_feature_names_as_crfsuite_reads_them(baselines):
    pycrfsuite = pytest.importorskip("pycrfsuite")
    items = pycrfsuite.ItemSequence(baselines.sentence_features("北京")).items()
    # a string value is the binary attribute "name:value"; the bool is a weight on "digit"
    assert items[0] == {
        "c-2:<s>": 1.0, "c-1:<s>": 1.0, "c0:北": 1.0, "c1:京": 1.0, "c2:</s>": 1.0,
        "c-2c-1:<s><s>": 1.0, "c-1c0:<s>北": 1.0, "c0c1:北京": 1.0, "c1c2:京</s>": 1.0, "c-1c1:<s>京": 1.0,
        "digit": 0.0,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------------------
# CRF training on real sentences


def test_crf_segmenter_beats_all_single_characters(baselines, tmp_path):
    pytest.importorskip("sklearn_crfsuite")
    train = token_split("peoples_daily_cws", "tags", "train", 200)
    texts, gold = token_split("peoples_daily_cws", "tags", "validation", 100)
    crf = baselines.train_crf(*train, c1=0.05, c2=0.01, model_filename=str(tmp_path / "cws.crfsuite"))
    predicted = baselines.predict_crf(crf, texts)
    assert [len(p) for p in predicted] == [len(t) for t in texts]
    crf_f1 = segmentation_scores(gold, predicted)["f1"]
    all_single_f1 = segmentation_scores(gold, [["S"] * len(t) for t in texts])["f1"]
    assert all_single_f1 == pytest.approx(0.3503, abs=1e-4)  # the trivial baseline, pinned
    assert crf_f1 > 0.78 > all_single_f1 + 0.35  # 0.8107 with CRFsuite 0.12 (python-crfsuite 0.9.12)
    size, num_features = baselines.crf_model_size(crf)
    assert size == (tmp_path / "cws.crfsuite").stat().st_size > 0
    assert 1000 < num_features


def test_crf_tagger_beats_all_outside(baselines):
    pytest.importorskip("sklearn_crfsuite")
    train = token_split("peoples_daily_ner", "ner_tags", "train", 200)
    texts, gold = token_split("peoples_daily_ner", "ner_tags", "validation", 100)
    crf = baselines.train_crf(*train, c1=0.05, c2=0.01)
    predicted = baselines.predict_crf(crf, texts)
    all_outside = entity_scores(gold, [["O"] * len(t) for t in texts])
    assert all_outside["overall_f1"] == 0.0
    assert all_outside["overall_accuracy"] == pytest.approx(0.9334, abs=1e-4)
    scores = entity_scores(gold, predicted)
    assert scores["overall_f1"] > 0.45  # 0.5941 with CRFsuite 0.12 (python-crfsuite 0.9.12)
    assert scores["overall_accuracy"] > all_outside["overall_accuracy"]


def test_lexicon_features_and_jackknifed_lexicons(baselines):
    # 中国 (2), 国人民 (3) and 人民 (2) in 中国人民: begins / inside / ends per length
    assert baselines.lexicon_features("中国人民", {"中国", "人民", "国人民"}) == [
        {"B2": True}, {"E2": True, "B3": True}, {"I3": True, "B2": True}, {"E3": True, "E2": True},
    ]
    assert baselines.lexicon_features("中国人民银行", {"中国人民银行"}) == [{}] * 6  # longer than 4 characters
    assert baselines.span_words("张三在北京", ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]) == ["张三", "北京"]
    assert baselines.span_words("我爱北京", ["S", "S", "B", "E"]) == ["我", "爱", "北京"]
    texts = ["中国人", "人民", "中国", "银行人"]
    tags = [["B", "E", "S"], ["B", "E"], ["B", "E"], ["B", "E", "S"]]
    lexicons, whole = baselines.fold_lexicons(texts, tags, folds=2)
    # sentences 0 and 2 are fold 0, 1 and 3 fold 1: each sees the words of the other fold only
    assert lexicons == [frozenset({"人民", "银行"}), frozenset({"中国"}), frozenset({"人民", "银行"}), frozenset({"中国"})]
    assert whole == {"中国", "人民", "银行"}


def test_crf_with_lexicon_features_trains_and_reads_them(baselines):
    pytest.importorskip("sklearn_crfsuite")
    train = token_split("peoples_daily_cws", "tags", "train", 200)
    texts, gold = token_split("peoples_daily_cws", "tags", "validation", 100)
    lexicons, whole = baselines.fold_lexicons(*train)
    crf = baselines.train_crf(*train, c1=0.05, c2=0.01, lexicons=lexicons)
    attributes = {attribute for attribute, _label in crf.state_features_}
    assert {"B2", "E2", "I3", "B4"} <= attributes  # the lexicon features are in the model
    with_lexicon = segmentation_scores(gold, baselines.predict_crf(crf, texts, whole))["f1"]
    without = segmentation_scores(gold, baselines.predict_crf(crf, texts))["f1"]
    assert with_lexicon > without  # the model leans on them: taking the lexicon away costs it
    with pytest.raises(ValueError, match="200 texts but 3 lexicons"):
        baselines.train_crf(*train, c1=0.05, c2=0.01, lexicons=lexicons[:3])


def test_train_crf_rejects_misaligned_tags(baselines):
    pytest.importorskip("sklearn_crfsuite")
    with pytest.raises(ValueError, match="sentence 1: 2 characters but 1 tags"):
        baselines.train_crf(["我", "北京"], [["S"], ["B"]], c1=0.1, c2=0.1)
    with pytest.raises(ValueError, match="2 texts but 1 tag sequences"):
        baselines.train_crf(["我", "北京"], [["S"]], c1=0.1, c2=0.1)


def test_tune_crf_keeps_the_best_setting_on_validation(baselines):
    pytest.importorskip("sklearn_crfsuite")
    train = token_split("peoples_daily_cws", "tags", "train", 200)
    validation = token_split("peoples_daily_cws", "tags", "validation", 50)

    def f1(refs, preds):
        return segmentation_scores(refs, preds)["f1"]

    # an absurd L1 weight wipes out the features, so the reasonable setting must win
    best, records = baselines.tune_crf(train, validation, f1, grid=((50.0, 0.01), (0.05, 0.01)), train_size=100)
    assert best == (0.05, 0.01)
    assert [(r["c1"], r["c2"]) for r in records] == [(50.0, 0.01), (0.05, 0.01)]
    assert records[1]["validation"] > records[0]["validation"] + 0.2
    assert baselines.subsample(10, 3) == baselines.subsample(10, 3) != baselines.subsample(10, 3, seed=1)
    assert baselines.subsample(5, None) == baselines.subsample(5, 9) == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------------------------------------------------
# TF-IDF + linear classifiers


def review_split(split: str, n: int) -> tuple[list[str], list[int]]:
    dataset = load_builtin("review_sentiment")[split].shuffle(seed=0).select(range(n))  # the splits are label-ordered
    return list(dataset["text"]), list(dataset["label"])


@pytest.mark.parametrize("kind", ["svm", "logreg"])
def test_tfidf_classifier_beats_the_majority_class_and_exports_exactly(baselines, kind, tmp_path):
    pytest.importorskip("sklearn")
    from safetensors.numpy import load_file

    train, (texts, labels) = review_split("train", 1500), review_split("validation", 300)
    model = baselines.tfidf_linear(*train, kind=kind, C=0.5 if kind == "svm" else 4.0)
    scores = classification_scores(labels, [int(p) for p in model.predict(texts)], num_labels=2)
    majority = max(labels.count(0), labels.count(1)) / len(labels)
    assert scores["accuracy"] > majority + 0.15

    size, num_weights = baselines.save_linear_model(model, tmp_path)
    vocabulary = json.loads((tmp_path / "vocabulary.json").read_text(encoding="utf-8"))
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert size == sum(p.stat().st_size for p in tmp_path.iterdir())
    assert num_weights == len(vocabulary) + 1 == tensors["coef"].size + tensors["intercept"].size
    # the exported files alone reproduce the decision function: counts -> sublinear tf * idf -> l2 -> linear
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(analyzer="char", ngram_range=(1, 3), vocabulary=vocabulary).transform(texts)
    counts = counts.astype(np.float64)
    counts.data = 1 + np.log(counts.data)
    weighted = counts.multiply(tensors["idf"]).tocsr()
    weighted = weighted.multiply(1 / np.sqrt(weighted.multiply(weighted).sum(axis=1))).tocsr()
    decision = weighted @ tensors["coef"].T.astype(np.float64) + tensors["intercept"]
    np.testing.assert_allclose(decision.ravel(), model.decision_function(texts), atol=1e-5)


def test_tune_linear_picks_the_validation_best(baselines):
    pytest.importorskip("sklearn")
    train, validation = review_split("train", 800), review_split("validation", 200)

    def accuracy(refs, preds):
        return classification_scores(refs, preds, num_labels=2)["accuracy"]

    # C=1e-6 shrinks every weight to ~0: a one-class prediction, which the C=0.5 model beats
    best, records = baselines.tune_linear(train, validation, accuracy, kind="svm", grid=(1e-6, 0.5))
    assert best == 0.5
    one_class = {validation[1].count(0) / 200, validation[1].count(1) / 200}
    assert records[0]["validation"] in one_class
    assert records[1]["validation"] > records[0]["validation"] + 0.1
    with pytest.raises(ValueError, match="kind must be 'svm' or 'logreg', got 'tree'"):
        baselines.tfidf_linear(*train, kind="tree")


# ------------------------------------------------------------------------------------------------------------
# chinese_tasks.py input checks: exit status 2, a message naming the problem, nothing written


@pytest.mark.parametrize(
    "extra, expected",
    [
        (None, "--extra_results"),  # a missing file
        ("{not json", "cannot read a JSON list of rows"),
        ('{"task": "ner"}', "expected a JSON list of rows"),
    ],
)
def test_chinese_tasks_rejects_bad_extra_results_before_running(monkeypatch, capsys, tmp_path, extra, expected):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    path = tmp_path / "rows.json"
    if extra is not None:
        path.write_text(extra, encoding="utf-8")
    out = tmp_path / "out"
    code, message = run_script_in_process(
        BENCHMARKS / "chinese_tasks.py", ["--extra_results", str(path), "--output_dir", str(out)], capsys
    )
    assert code == 2
    assert expected in message and str(path) in message
    assert not out.exists()


def test_chinese_tasks_rejects_bad_numbers(monkeypatch, capsys, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    for argv, expected in (
        (["--limit", "0"], "--limit must be at least 1, got 0"),
        (["--crf_tune_train_size", "0"], "--crf_tune_train_size must be at least 1, got 0"),
        (["--tasks", "pos"], "unknown task(s) ['pos']"),
    ):
        code, message = run_script_in_process(
            BENCHMARKS / "chinese_tasks.py", [*argv, "--output_dir", str(tmp_path / "out")], capsys
        )
        assert code == 2 and expected in message, (argv, message)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------------------
# pinyin input method: a Kneser-Ney character n-gram model over a syllable table


def test_ngram_input_method_picks_the_homophone_its_context_wants(baselines):
    sources = ["wo shi xue sheng"] * 3 + ["gu shi hen hao"] * 3 + ["zhe ge gu shi"]
    targets = ["我是学生"] * 3 + ["故事很好"] * 3 + ["这个故事"]
    table = syllable_table(sources, targets)
    assert table["shi"] == {"是": 3, "事": 4}
    lm = KneserNeyLM(targets, order=3)
    assert baselines.ngram_pinyin_decode(lm, table, "wo shi") == "我是"
    assert baselines.ngram_pinyin_decode(lm, table, "gu shi") == "故事"
    # unseen tokens: one character stays itself, a longer one becomes "?"
    assert baselines.ngram_pinyin_decode(lm, table, "wo shi ！ zzz") == "我是！?"
    with pytest.raises(ValueError, match="pair 0: 2 pinyin tokens for 3 characters"):
        syllable_table(["wo shi"], ["我是的"])
