"""Classical baselines for the Chinese tasks of benchmarks/chinese_tasks.py, the ones a practitioner would try
first: a linear-chain CRF (CRFsuite through sklearn-crfsuite) on character n-gram features for word
segmentation (B/M/E/S) and NER (BIO), and TF-IDF over character 1-3-grams with a linear SVM or logistic
regression (scikit-learn) for review sentiment. Each model trains on a train split only; its one
regularisation knob is chosen on the validation split (`tune_crf`, `tune_linear`), never on test. For
`pinyin_to_hanzi` (benchmarks/seq2seq_tasks.py), the classical input method: a Kneser-Ney character n-gram model
(`hf_charlm.ngram`) over the syllable table of the train pairs, by beam search (`ngram_pinyin_decode`).

Importable on its own (tests/test_baselines.py loads it by path). It may import numpy, safetensors,
scikit-learn, sklearn-crfsuite and hf_charlm; scikit-learn and sklearn-crfsuite are imported where they are
used, so that the module loads without them (they are the `bench` extra).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hf_charlm.ngram import KneserNeyLM

if TYPE_CHECKING:
    import sklearn_crfsuite
    from sklearn.pipeline import Pipeline

# Stand-ins for the characters before the start and after the end of a sentence. Longer than one character,
# so no real character (nor bigram of real characters) can take their value.
BOS, EOS = "<s>", "</s>"

# The settings of issue #9 (what a new user tried) are in each grid, so the tuned row can only match or beat them.
CRF_MAX_ITERATIONS = 100
# the lexicon features' settings: those of the neural recipe's `--lexicon train` (words of 2-4 characters, 5 folds)
LEXICON_MAX_LENGTH, LEXICON_FOLDS = 4, 5
CRF_GRID: tuple[tuple[float, float], ...] = ((0.05, 0.01), (0.2, 0.01), (0.01, 0.01), (0.05, 0.1))
SVM_C_GRID: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)
LOGREG_C_GRID: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0)
TFIDF_SETTINGS: dict[str, Any] = {"analyzer": "char", "ngram_range": (1, 3), "sublinear_tf": True, "min_df": 2}


# ----------------------------------------------------------------------------------------------------------
# CRF


def crf_features(text: str, i: int) -> dict[str, str | bool]:
    """CRFsuite attributes of character `i` of `text`: the characters at offsets -2..2, the bigrams
    (-2,-1) (-1,0) (0,1) (1,2) and (-1,1), and whether the character is a digit (`str.isdigit`, so
    full-width digits count). Positions outside the sentence read as `BOS` / `EOS`.
    A string value becomes the binary attribute `name=value`; a bool becomes `name` with weight 1 / 0."""
    if not 0 <= i < len(text):
        raise IndexError(f"position {i} is outside a text of {len(text)} characters")

    def char(offset: int) -> str:
        j = i + offset
        return BOS if j < 0 else EOS if j >= len(text) else text[j]

    c = {offset: char(offset) for offset in (-2, -1, 0, 1, 2)}
    return {
        "c-2": c[-2],
        "c-1": c[-1],
        "c0": c[0],
        "c1": c[1],
        "c2": c[2],
        "c-2c-1": c[-2] + c[-1],
        "c-1c0": c[-1] + c[0],
        "c0c1": c[0] + c[1],
        "c1c2": c[1] + c[2],
        "c-1c1": c[-1] + c[1],
        "digit": text[i].isdigit(),
    }


def lexicon_features(text: str, lexicon: set[str] | frozenset[str], max_length: int = LEXICON_MAX_LENGTH) -> list[dict[str, bool]]:
    """The lexicon features of each character (those of `hf_charlm`'s `CharLMLexiconFeatures`, as CRF attributes):
    for each length l in 2..max_length, `B<l>` / `I<l>` / `E<l>` when a word of `lexicon` of l characters begins at,
    continues through or ends at the character."""
    out: list[dict[str, bool]] = [{} for _ in text]
    for start in range(len(text)):
        for length in range(2, max_length + 1):
            end = start + length
            if end <= len(text) and text[start:end] in lexicon:
                out[start][f"B{length}"] = True
                out[end - 1][f"E{length}"] = True
                for inside in range(start + 1, end - 1):
                    out[inside][f"I{length}"] = True
    return out


def sentence_features(text: str, lexicon: set[str] | frozenset[str] | None = None) -> list[dict[str, str | bool]]:
    features = [crf_features(text, i) for i in range(len(text))]
    if lexicon is not None:
        for own, extra in zip(features, lexicon_features(text, lexicon)):
            own.update(extra)
    return features


def span_words(text: str, tags: Sequence[str]) -> list[str]:
    """The spans of a sentence's tags as strings: the words of B/M/E/S tags, the entities of BIO tags."""
    from hf_charlm.metrics import bmes_to_spans, tags_to_entities

    if set(tags) <= {"B", "M", "E", "S"}:
        spans = bmes_to_spans(list(tags))
    else:
        spans = [(start, end) for _, start, end in tags_to_entities(list(tags), "bio")]
    return [text[start:end] for start, end in spans]


def fold_lexicons(
    texts: Sequence[str], tags: Sequence[Sequence[str]], folds: int = LEXICON_FOLDS, max_length: int = LEXICON_MAX_LENGTH
) -> tuple[list[frozenset[str]], frozenset[str]]:
    """Lexicons of the train split's spans of 2..max_length characters, jackknifed as `finetune_token_classification.py
    --lexicon train` does: sentence i (fold i mod `folds`) gets the words of the other folds; and the whole lexicon,
    for validation and test."""
    per_fold: list[dict[str, None]] = [{} for _ in range(folds)]
    for i, (text, seq) in enumerate(zip(texts, tags)):
        for word in span_words(text, seq):
            if 2 <= len(word) <= max_length:
                per_fold[i % folds][word] = None
    whole = frozenset(w for fold in per_fold for w in fold)
    others = [frozenset(w for j, fold in enumerate(per_fold) if j != k for w in fold) for k in range(folds)]
    return [others[i % folds] for i in range(len(texts))], whole


def train_crf(
    texts: Sequence[str],
    tags: Sequence[Sequence[str]],
    c1: float,
    c2: float,
    max_iterations: int = CRF_MAX_ITERATIONS,
    model_filename: str | None = None,
    lexicons: Sequence[set[str] | frozenset[str]] | None = None,
) -> sklearn_crfsuite.CRF:
    """L-BFGS CRF (CRFsuite's defaults otherwise) on `crf_features`, one tag string per character.
    The features of a sentence are built as CRFsuite reads it and dropped after, so the whole train split
    never sits in Python memory as dicts. The model is written to `model_filename` (a temp file if None).
    `lexicons`: one lexicon per sentence (`fold_lexicons`) whose words give it the `lexicon_features` too."""
    import sklearn_crfsuite

    if len(texts) != len(tags):
        raise ValueError(f"{len(texts)} texts but {len(tags)} tag sequences")
    for n, (text, seq) in enumerate(zip(texts, tags)):
        if len(text) != len(seq):
            raise ValueError(f"sentence {n}: {len(text)} characters but {len(seq)} tags")
    crf = sklearn_crfsuite.CRF(
        algorithm="lbfgs", c1=c1, c2=c2, max_iterations=max_iterations, model_filename=model_filename
    )
    if lexicons is not None and len(lexicons) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(lexicons)} lexicons")
    crf.fit((sentence_features(text, lexicons[n] if lexicons is not None else None) for n, text in enumerate(texts)),
            [list(seq) for seq in tags])
    return crf


def predict_crf(crf: sklearn_crfsuite.CRF, texts: Iterable[str], lexicon: set[str] | frozenset[str] | None = None) -> list[list[str]]:
    return [crf.predict_single(sentence_features(text, lexicon)) for text in texts]


def crf_model_size(crf: sklearn_crfsuite.CRF) -> tuple[int, int]:
    """(bytes of the CRFsuite model file, number of features in it). CRFsuite writes only the features
    with a non-zero weight, so the count is what the L1 term left: state (attribute, label) pairs plus
    label transitions."""
    size = Path(crf.modelfile.name).stat().st_size
    info = crf.tagger_.info()  # its header's num_features reads 0 (CRFsuite 0.12), so count the tables
    return size, len(info.state_features) + len(info.transitions)


def subsample(n: int, size: int | None, seed: int = 0) -> list[int]:
    """Indices of a fixed random sample of `size` of `range(n)`, in order (all of them if size is None)."""
    if size is None or size >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), size))


def tune_crf(
    train: tuple[Sequence[str], Sequence[Sequence[str]]],
    validation: tuple[Sequence[str], Sequence[Sequence[str]]],
    score: Callable[[list[list[str]], list[list[str]]], float],
    grid: Sequence[tuple[float, float]] = CRF_GRID,
    train_size: int | None = None,
    max_iterations: int = CRF_MAX_ITERATIONS,
    lexicon: bool = False,
) -> tuple[tuple[float, float], list[dict[str, float]]]:
    """Trains one CRF per (c1, c2) of `grid` on a fixed sample of `train_size` train sentences (all if None)
    and scores each on the whole validation split with `score(references, predictions)`. Returns the best
    (c1, c2) (the first of a tie, so the grid's first entry is the default) and one record per setting.
    `lexicon`: with the lexicon features of the sample's spans (`fold_lexicons` of the sample)."""
    texts, tags = train
    keep = subsample(len(texts), train_size)
    sample_texts, sample_tags = [texts[i] for i in keep], [tags[i] for i in keep]
    lexicons, whole = fold_lexicons(sample_texts, sample_tags) if lexicon else (None, None)
    records = []
    for c1, c2 in grid:
        start = time.process_time()
        crf = train_crf(sample_texts, sample_tags, c1=c1, c2=c2, max_iterations=max_iterations, lexicons=lexicons)
        value = score([list(t) for t in validation[1]], predict_crf(crf, validation[0], whole))
        records.append(
            {"c1": c1, "c2": c2, "validation": value, "cpu_seconds": time.process_time() - start}
        )
    best = max(records, key=lambda r: r["validation"])  # max keeps the first of equal scores
    return (best["c1"], best["c2"]), records


# ----------------------------------------------------------------------------------------------------------
# TF-IDF + linear classifier


def _linear_classifier(kind: str, C: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if kind == "svm":
        return LinearSVC(C=C)
    if kind == "logreg":
        return LogisticRegression(C=C, max_iter=2000)
    raise ValueError(f"kind must be 'svm' or 'logreg', got {kind!r}")


def tfidf_linear(texts: Sequence[str], labels: Sequence[int], kind: str = "svm", C: float = 0.5) -> Pipeline:
    """TF-IDF of character 1-3-grams (sublinear tf, min_df 2) + LinearSVC (`kind="svm"`) or
    LogisticRegression (`kind="logreg"`), fitted on `texts` / `labels`."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    pipeline = Pipeline([("tfidf", TfidfVectorizer(**TFIDF_SETTINGS)), ("clf", _linear_classifier(kind, C))])
    return pipeline.fit(list(texts), list(labels))


def tfidf_svm(texts: Sequence[str], labels: Sequence[int], C: float = 0.5) -> Pipeline:
    return tfidf_linear(texts, labels, kind="svm", C=C)


def tfidf_logreg(texts: Sequence[str], labels: Sequence[int], C: float = 4.0) -> Pipeline:
    return tfidf_linear(texts, labels, kind="logreg", C=C)


def tune_linear(
    train: tuple[Sequence[str], Sequence[int]],
    validation: tuple[Sequence[str], Sequence[int]],
    score: Callable[[list[int], list[int]], float],
    kind: str,
    grid: Sequence[float],
) -> tuple[float, list[dict[str, float]]]:
    """Fits the TF-IDF vectorizer once on train, then one classifier per C of `grid`; scores each on the
    validation split with `score(references, predictions)`. Returns the best C (first of a tie) and one
    record per C."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(**TFIDF_SETTINGS)
    x_train = vectorizer.fit_transform(list(train[0]))
    x_validation = vectorizer.transform(list(validation[0]))
    records = []
    for C in grid:
        start = time.process_time()
        classifier = _linear_classifier(kind, C).fit(x_train, list(train[1]))
        value = score(list(validation[1]), [int(p) for p in classifier.predict(x_validation)])
        records.append({"C": C, "validation": value, "cpu_seconds": time.process_time() - start})
    best = max(records, key=lambda r: r["validation"])
    return best["C"], records


def save_linear_model(pipeline: Pipeline, directory: str | Path) -> tuple[int, int]:
    """Writes what prediction needs, without pickle: `vocabulary.json` (n-gram -> column) and
    `model.safetensors` (idf, coef, intercept). Returns (bytes written, number of weights in coef + intercept)."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vectorizer, classifier = pipeline.named_steps["tfidf"], pipeline.named_steps["clf"]
    vocabulary = {term: int(column) for term, column in vectorizer.vocabulary_.items()}
    (directory / "vocabulary.json").write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
    tensors = {
        "idf": np.ascontiguousarray(vectorizer.idf_, dtype=np.float32),
        "coef": np.ascontiguousarray(classifier.coef_, dtype=np.float32),
        "intercept": np.ascontiguousarray(classifier.intercept_, dtype=np.float32),
    }
    save_file(tensors, str(directory / "model.safetensors"))
    size = sum(path.stat().st_size for path in (directory / "vocabulary.json", directory / "model.safetensors"))
    return size, int(classifier.coef_.size + classifier.intercept_.size)


# ----------------------------------------------------------------------------------------------------------
# pinyin to characters: the classical input method, a character n-gram language model over a syllable table

NGRAM_ORDERS: tuple[int, ...] = (2, 3, 4)
NGRAM_EMISSION_WEIGHTS: tuple[float, ...] = (0.0, 0.5, 1.0)
NGRAM_BEAMS: tuple[int, ...] = (16, 32, 64, 128)  # tried for the best order and weight



def ngram_pinyin_decode(lm: KneserNeyLM, table: dict[str, dict[str, int]], source: str, beam: int = 16,
                        emission_weight: float = 0.0) -> str:
    """Beam search over the characters the table lists for each token of `source`, scored by
    log P_lm(character | previous characters) + emission_weight * log P(character | token) (the table's relative
    frequency), the sentence closed by `</s>`. A token the table never saw stands for itself when it is one
    character (punctuation, digits), else for `?`. Returns one character per token."""
    keep = lm.order - 1
    beams: list[tuple[float, tuple[str, ...], str]] = [(0.0, (), "")]
    for token in source.split(" "):
        options = table.get(token)
        if options:
            total = sum(options.values())
            choices = [(c, emission_weight * math.log(n / total)) for c, n in options.items()]
        else:
            choices = [(token if len(token) == 1 else "?", 0.0)]
        grown = [(score + math.log(lm.prob(history, c)) + bonus, (history + (c,))[-keep:] if keep else (), text + c)
                 for score, history, text in beams for c, bonus in choices]
        grown.sort(key=lambda b: -b[0])
        beams = grown[:beam]
    return max(beams, key=lambda b: b[0] + math.log(lm.prob(b[1], EOS)))[2]
