"""Chinese task benchmark: NER (peoples_daily_ner), word segmentation (peoples_daily_cws) and review sentiment
(review_sentiment), scored on the TEST splits of hf_charlm's built-in datasets with hf_charlm.metrics, side by side.

Baselines measured here (the classical models of benchmarks/baselines.py come first: they are the reference):
- ner, cws: a linear-chain CRF (sklearn-crfsuite, L-BFGS, 100 iterations) on character uni/bigram features,
  trained on the train split; c1/c2 picked on the validation split from `baselines.CRF_GRID`, each setting
  trained on a fixed sample of `--crf_tune_train_size` train sentences; entity P / R / F1 (seqeval, as the
  fine-tuning script) or word-level P / R / F1;
- cws: jieba (default dictionary, HMM on, `cut(text, HMM=True)`), word-level P / R / F1 against the gold words;
- sentiment: TF-IDF of character 1-3-grams + LinearSVC, and + logistic regression, C picked on the validation
  split (macro-F1) from `baselines.SVM_C_GRID` / `LOGREG_C_GRID`; snownlp's naive Bayes sentiment classifier
  (`snownlp.sentiment.Sentiment`, which segments with snownlp's own model and drops stop words), retrained
  in-process on our train split; accuracy and macro-F1.
A tuned system is retrained on the whole train split with the chosen setting and scored on validation and test;
its row also holds `validation_metrics` and `tuning` (every setting tried, its validation score, CPU seconds).
CPU time is `time.process_time()` (this process, all threads), split into load / train / test; tuning CPU is
reported apart, in `tuning`. Model size is the size on disk of the files the system needs.

Adding a system (e.g. a fine-tuned char LM): write `run_<system>(split_data, args) -> dict` that returns
`make_result(...)` and append it to `SYSTEMS[task]`, or write rows in the same layout to a JSON file and pass
it with `--extra_results`. The first system of each task is the reference of the "vs first" column.

    python benchmarks/chinese_tasks.py --tasks ner,cws,sentiment \
        --extra_results benchmarks/results/charlm_rows.json --output_dir benchmarks/results

Writes `chinese_tasks.json` (the `results` list) and `chinese_tasks.md` (the table) to --output_dir and
prints the table. `--limit N` scores the first N examples of a fixed shuffle of each split (a quick run).
It may import hf_charlm, datasets, numpy, jieba, snownlp, scikit-learn, sklearn-crfsuite and baselines.py (its
sibling; run as a script, this file's folder is on sys.path).
"""

import argparse
import importlib.metadata
import json
import logging
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import baselines
from hf_charlm.data import load_builtin
from hf_charlm.metrics import (
    bmes_to_spans,
    classification_scores,
    entity_scores,
    segmentation_scores,
    segmentation_scores_from_words,
)

TASKS = {
    # task -> (built-in dataset, metrics shown in the table, main metric of the "vs first" column)
    "ner": ("peoples_daily_ner", ("precision", "recall", "f1"), "f1"),
    "cws": ("peoples_daily_cws", ("precision", "recall", "f1"), "f1"),
    "sentiment": ("review_sentiment", ("accuracy", "macro_f1"), "macro_f1"),
}


def make_result(
    task: str,
    system: str,
    metrics: dict[str, float],
    num_examples: int,
    cpu_seconds: dict[str, float | None],
    model_size_bytes: int | None,
    model_size_note: str = "",
    notes: str = "",
    command: str | None = None,
    validation_metrics: dict[str, float] | None = None,
    tuning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of `results`: what was scored, by which system, with what numbers and cost.
    `cpu_seconds` has the keys `load`, `train`, `test` (None where a phase does not apply);
    `validation_metrics` are the same metrics on the validation split, `tuning` what was tried there."""
    dataset, _, main_metric = TASKS[task]
    return {
        "task": task,
        "dataset": dataset,
        "split": "test",
        "num_examples": num_examples,
        "system": system,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "main_metric": main_metric,
        "cpu_seconds": {phase: cpu_seconds.get(phase) for phase in ("load", "train", "test")},
        "model_size_bytes": model_size_bytes,
        "model_size_note": model_size_note,
        "command": command if command is not None else _this_command(),
        "notes": notes,
        "validation_metrics": (
            None if validation_metrics is None else {k: float(v) for k, v in validation_metrics.items()}
        ),
        "tuning": tuning,
    }


def _this_command() -> str:
    return shlex.join(["python"] + sys.argv)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _file_size(path: Path) -> int:
    return path.stat().st_size


def _mb(num_bytes: int) -> str:
    return f"{num_bytes / 1e6:.1f} MB" if num_bytes >= 1e5 else f"{num_bytes / 1e3:.1f} kB"


# ----------------------------------------------------------------------------------------------------------
# baselines: classical models (benchmarks/baselines.py)


def _token_split(split: Any, column: str) -> tuple[list[str], list[list[str]]]:
    names = split.features[column].feature.names
    return ["".join(chars) for chars in split["tokens"]], [[names[i] for i in ids] for ids in split[column]]


def _ner_metrics(references: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    # entity_scores with its defaults: the scoring of token_classification_compute_metrics (fine-tuning rows)
    scores = entity_scores(references, predictions)
    metrics = {"precision": scores["overall_precision"], "recall": scores["overall_recall"], "f1": scores["overall_f1"]}
    metrics.update({f"f1_{k}": v["f1"] for k, v in sorted(scores.items()) if isinstance(v, dict)})
    return metrics


def _cws_metrics(references: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    return segmentation_scores(references, predictions)


def _run_crf(task: str, column: str, splits: dict[str, Any], args: argparse.Namespace, lexicon: bool = False) -> dict[str, Any]:
    score_all = _ner_metrics if task == "ner" else _cws_metrics
    main = TASKS[task][2]
    train, validation, test = (_token_split(splits[name], column) for name in ("train", "validation", "test"))

    start = time.process_time()
    (c1, c2), records = baselines.tune_crf(
        train, validation, lambda refs, preds: score_all(refs, preds)[main], train_size=args.crf_tune_train_size, lexicon=lexicon
    )
    tuning_seconds = time.process_time() - start
    tuned_on = min(args.crf_tune_train_size, len(train[0]))

    with tempfile.TemporaryDirectory() as tmp_dir:
        start = time.process_time()
        lexicons, whole = baselines.fold_lexicons(*train) if lexicon else (None, None)
        crf = baselines.train_crf(*train, c1=c1, c2=c2, model_filename=os.path.join(tmp_dir, "model.crfsuite"), lexicons=lexicons)
        train_seconds = time.process_time() - start

        start = time.process_time()
        predictions = baselines.predict_crf(crf, test[0], whole)
        test_seconds = time.process_time() - start

        validation_metrics = score_all(validation[1], baselines.predict_crf(crf, validation[0], whole))
        model_bytes, num_features = baselines.crf_model_size(crf)

    metrics = score_all(test[1], predictions)
    label_scheme = "BIO" if task == "ner" else "B/M/E/S"
    tried = ", ".join(f"({r['c1']:g}, {r['c2']:g}) {r['validation']:.4f}" for r in records)
    return make_result(
        task=task,
        system=(
            f"CRF{' + lexicon' if lexicon else ''}, sklearn-crfsuite {_version('sklearn-crfsuite')} "
            f"(L-BFGS {baselines.CRF_MAX_ITERATIONS} it., c1 {c1:g}, c2 {c2:g}, tuned on validation)"
        ),
        metrics={k: v for k, v in metrics.items() if not k.startswith("num_")},
        num_examples=len(test[0]),
        cpu_seconds={"load": None, "train": train_seconds, "test": test_seconds},
        model_size_bytes=model_bytes,
        model_size_note=f"CRFsuite model file, {num_features} non-zero features",
        notes=(
            f"{label_scheme} tags; features: chars at -2..2, bigrams (-2,-1) (-1,0) (0,1) (1,2) (-1,1), is-digit; "
            + (f"lexicon features (a train {'word' if task == 'cws' else 'entity'} of 2-{baselines.LEXICON_MAX_LENGTH} "
               f"characters begins / continues / ends here; jackknifed over {baselines.LEXICON_FOLDS} folds of the train "
               f"split, {len(whole)} words for validation and test); " if lexicon else "")
            + f"trained on {len(train[0])} train sentences; validation {main} {validation_metrics[main]:.4f}; "
            f"(c1, c2) -> validation {main} with {tuned_on} train sentences: {tried} "
            f"(tuning CPU {tuning_seconds:.0f} s)"
        ),
        validation_metrics={k: v for k, v in validation_metrics.items() if not k.startswith("num_")},
        tuning={
            "parameter": "(c1, c2)",
            "chosen": {"c1": c1, "c2": c2},
            "selected_by": f"validation {main}",
            "train_sentences": tuned_on,
            "records": records,
            "cpu_seconds": tuning_seconds,
        },
    )


def run_crf_ner(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return _run_crf("ner", "ner_tags", splits, args)


def run_crf_cws(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return _run_crf("cws", "tags", splits, args)


def run_crf_lexicon_cws(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return _run_crf("cws", "tags", splits, args, lexicon=True)


def _run_tfidf(kind: str, splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    label_names = splits["train"].features["label"].names
    train, validation, test = (
        (list(splits[name]["text"]), list(splits[name]["label"])) for name in ("train", "validation", "test")
    )

    def score_all(refs: list[int], preds: list[int]) -> dict[str, float]:
        scores = classification_scores(refs, preds, num_labels=len(label_names))
        return {
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            **{f"f1_{name}": f1 for name, f1 in zip(label_names, scores["per_class_f1"])},
        }

    grid = baselines.SVM_C_GRID if kind == "svm" else baselines.LOGREG_C_GRID
    start = time.process_time()
    C, records = baselines.tune_linear(
        train, validation, lambda refs, preds: score_all(refs, preds)["macro_f1"], kind=kind, grid=grid
    )
    tuning_seconds = time.process_time() - start

    start = time.process_time()
    model = baselines.tfidf_linear(*train, kind=kind, C=C)
    train_seconds = time.process_time() - start

    start = time.process_time()
    predictions = [int(p) for p in model.predict(test[0])]
    test_seconds = time.process_time() - start

    validation_metrics = score_all(validation[1], [int(p) for p in model.predict(validation[0])])
    with tempfile.TemporaryDirectory() as tmp_dir:
        model_bytes, num_weights = baselines.save_linear_model(model, tmp_dir)
    num_ngrams = len(model.named_steps["tfidf"].vocabulary_)

    classifier = "LinearSVC" if kind == "svm" else "LogisticRegression"
    tried = ", ".join(f"{r['C']:g} {r['validation']:.4f}" for r in records)
    return make_result(
        task="sentiment",
        system=(
            f"TF-IDF char 1-3-grams + {classifier}, scikit-learn {_version('scikit-learn')} "
            f"(C={C:g}, tuned on validation)"
        ),
        metrics=score_all(test[1], predictions),
        num_examples=len(test[0]),
        cpu_seconds={"load": None, "train": train_seconds, "test": test_seconds},
        model_size_bytes=model_bytes,
        model_size_note=f"vocabulary.json + model.safetensors (float32): {num_ngrams} n-grams, {num_weights} weights",
        notes=(
            f"sublinear tf, min_df 2; trained on {len(train[0])} train reviews; "
            f"validation macro_f1 {validation_metrics['macro_f1']:.4f}; C -> validation macro_f1: {tried} "
            f"(tuning CPU {tuning_seconds:.0f} s)"
        ),
        validation_metrics=validation_metrics,
        tuning={
            "parameter": "C",
            "chosen": {"C": C},
            "selected_by": "validation macro_f1",
            "records": records,
            "cpu_seconds": tuning_seconds,
        },
    )


def run_tfidf_svm_sentiment(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return _run_tfidf("svm", splits, args)


def run_tfidf_logreg_sentiment(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return _run_tfidf("logreg", splits, args)


# ----------------------------------------------------------------------------------------------------------
# baselines: off-the-shelf Chinese toolkits


def run_jieba_cws(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import jieba
    import jieba.finalseg

    jieba.setLogLevel(logging.WARNING)
    test = splits["test"]
    tag_names = test.features["tags"].feature.names
    texts, gold_words = [], []
    for chars, tag_ids in zip(test["tokens"], test["tags"]):
        text = "".join(chars)
        texts.append(text)
        gold_words.append([text[s:e] for s, e in bmes_to_spans([tag_names[t] for t in tag_ids])])

    with tempfile.TemporaryDirectory() as tmp_dir:
        start = time.process_time()
        tokenizer = jieba.Tokenizer()  # the default dictionary; its cache goes to tmp_dir, so it is built here
        tokenizer.tmp_dir = tmp_dir
        tokenizer.initialize()
        load_seconds = time.process_time() - start

        start = time.process_time()
        predicted_words = [list(tokenizer.cut(text, HMM=True)) for text in texts]
        test_seconds = time.process_time() - start

    scores = segmentation_scores_from_words(gold_words, predicted_words)
    dict_bytes = _file_size(Path(jieba.__file__).parent / "dict.txt")
    hmm_dir = Path(jieba.finalseg.__file__).parent
    hmm_bytes = sum(_file_size(hmm_dir / f"prob_{name}.py") for name in ("start", "trans", "emit"))
    return make_result(
        task="cws",
        system=f"jieba {_version('jieba')} (default dict, HMM on)",
        metrics={k: scores[k] for k in ("precision", "recall", "f1")},
        num_examples=len(texts),
        cpu_seconds={"load": load_seconds, "train": None, "test": test_seconds},
        model_size_bytes=dict_bytes + hmm_bytes,
        model_size_note=f"dict.txt {_mb(dict_bytes)} + HMM tables {_mb(hmm_bytes)}",
        notes=(
            f"{scores['num_reference_words']} gold / {scores['num_predicted_words']} predicted words; "
            "no training on our split; jieba's dictionary follows its own segmentation conventions "
            "(and may have been derived partly from People's Daily text)"
        ),
    )


def run_snownlp_sentiment(splits: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    start = time.process_time()
    import snownlp
    from snownlp.sentiment import Sentiment  # import loads snownlp's segmenter and its shipped classifier

    load_seconds = time.process_time() - start

    train, test = splits["train"], splits["test"]
    label_names = train.features["label"].names
    negative, positive = label_names.index("negative"), label_names.index("positive")
    neg_docs = [text for text, label in zip(train["text"], train["label"]) if label == negative]
    pos_docs = [text for text, label in zip(train["text"], train["label"]) if label == positive]
    test_texts, test_labels = list(test["text"]), list(test["label"])

    start = time.process_time()
    classifier = Sentiment()  # a fresh, untrained classifier: nothing of the shipped model is used
    classifier.train(neg_docs, pos_docs)
    train_seconds = time.process_time() - start

    start = time.process_time()
    # classify() is P(positive); a tie (0.5) is negative, as in Bayes.classify
    predictions = [positive if classifier.classify(text) > 0.5 else negative for text in test_texts]
    test_seconds = time.process_time() - start

    scores = classification_scores(test_labels, predictions, num_labels=len(label_names))
    with tempfile.TemporaryDirectory() as tmp_dir:
        classifier.save(os.path.join(tmp_dir, "sentiment.marshal"))  # gzip'd marshal, snownlp's own format
        classifier_bytes = sum(_file_size(p) for p in Path(tmp_dir).iterdir())
    seg_bytes = _file_size(Path(snownlp.__file__).parent / "seg" / "seg.marshal.3")
    return make_result(
        task="sentiment",
        system=f"snownlp {_version('snownlp')} naive Bayes, retrained on our train split",
        metrics={
            "accuracy": scores["accuracy"],
            "macro_f1": scores["macro_f1"],
            **{f"f1_{name}": f1 for name, f1 in zip(label_names, scores["per_class_f1"])},
        },
        num_examples=len(test_texts),
        cpu_seconds={"load": load_seconds, "train": train_seconds, "test": test_seconds},
        model_size_bytes=classifier_bytes + seg_bytes,
        model_size_note=f"classifier {_mb(classifier_bytes)} (gzip marshal) + segmenter {_mb(seg_bytes)}",
        notes=(
            f"trained on {len(neg_docs)} negative + {len(pos_docs)} positive reviews; "
            "features: snownlp seg words minus stop words; snownlp's segmenter was trained on People's Daily"
        ),
    )


# Systems run for each task, in table order; the first one is the reference of the "vs first" column.
SYSTEMS: dict[str, list[Callable[[dict[str, Any], argparse.Namespace], dict[str, Any]]]] = {
    "ner": [run_crf_ner],
    "cws": [run_crf_cws, run_crf_lexicon_cws, run_jieba_cws],
    "sentiment": [run_tfidf_svm_sentiment, run_tfidf_logreg_sentiment, run_snownlp_sentiment],
}


# ----------------------------------------------------------------------------------------------------------
# table


def _fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """One row per result. 'vs first' divides the main metric and the test CPU time by those of the
    first row of the same task; 'validation' is the main metric on the validation split, where known."""
    lines = [
        "| task | dataset (split, n) | system | metrics | validation | vs first (main metric; test CPU) "
        "| CPU s load / train / test | model size | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first: dict[str, dict[str, Any]] = {}
    for row in results:
        reference = first.setdefault(row["task"], row)
        main = row["main_metric"]
        shown = TASKS[row["task"]][1] if row["task"] in TASKS else tuple(row["metrics"])
        metrics = ", ".join(f"{k} {row['metrics'][k]:.4f}" for k in shown if k in row["metrics"])
        if reference is row:
            versus = "reference"
        else:
            metric_ratio = row["metrics"][main] / reference["metrics"][main] if reference["metrics"][main] else math.nan
            ref_cpu, cpu = reference["cpu_seconds"].get("test"), row["cpu_seconds"].get("test")
            cpu_ratio = f"{cpu / ref_cpu:.2f}x" if cpu is not None and ref_cpu else "-"
            versus = f"{main} {metric_ratio:.3f}x; {cpu_ratio}"
        validation_metrics = row.get("validation_metrics") or {}
        validation = f"{main} {validation_metrics[main]:.4f}" if main in validation_metrics else "-"
        cpu = " / ".join(_fmt_seconds(row["cpu_seconds"].get(p)) for p in ("load", "train", "test"))
        size = "-" if row["model_size_bytes"] is None else _mb(row["model_size_bytes"])
        if row.get("model_size_note"):
            size += f" ({row['model_size_note']})"
        lines.append(
            f"| {row['task']} | {row['dataset']} ({row['split']}, {row['num_examples']}) | {row['system']} "
            f"| {metrics} | {validation} | {versus} | {cpu} | {size} | {row['notes']} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="ner,cws,sentiment", help=f"comma-separated, from {', '.join(TASKS)}")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="score (and train on) the first N examples of a fixed shuffle of each split",
    )
    parser.add_argument(
        "--crf_tune_train_size",
        type=int,
        default=3000,
        help="train sentences (a fixed sample) each CRF setting is trained on while c1/c2 are tuned on validation",
    )
    parser.add_argument("--output_dir", default="benchmarks/results", help="where chinese_tasks.json / .md go")
    parser.add_argument(
        "--extra_results", nargs="*", default=[], help="JSON files holding rows (a list of dicts) to add to the table"
    )
    args = parser.parse_args(argv)
    args.tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in args.tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {list(TASKS)}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.crf_tune_train_size < 1:
        parser.error(f"--crf_tune_train_size must be at least 1, got {args.crf_tune_train_size}")
    # read before any system runs, so that a bad file costs nothing
    args.extra_rows = []
    for path in args.extra_results:
        try:
            rows = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            parser.error(f"--extra_results {path}: cannot read a JSON list of rows ({exc})")
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "task" in r for r in rows):
            parser.error(f"--extra_results {path}: expected a JSON list of rows (dicts with a 'task' key)")
        args.extra_rows.extend(rows)
    return args


def load_splits(task: str, limit: int | None) -> dict[str, Any]:
    dataset = load_builtin(TASKS[task][0])
    if limit is not None:
        # the splits are ordered (e.g. all negative reviews first), so a prefix would be one-sided
        dataset = {name: split.shuffle(seed=0).select(range(min(limit, len(split)))) for name, split in dataset.items()}
    return dataset


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    results: list[dict[str, Any]] = []
    for task in args.tasks:
        splits = load_splits(task, args.limit)
        test = splits["test"]
        print(f"[{task}] {TASKS[task][0]}: test split, {len(test)} examples; train split {len(splits['train'])}")
        for run_system in SYSTEMS[task]:
            row = run_system(splits, args)
            print(f"[{task}] {row['system']}: {json.dumps(row['metrics'])} cpu_seconds={row['cpu_seconds']}")
            results.append(row)
    results.extend(args.extra_rows)
    order = {task: i for i, task in enumerate(TASKS)}
    results.sort(key=lambda row: order.get(row["task"], len(order)))  # stable: systems keep their order

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results)
    (output_dir / "chinese_tasks.json").write_text(
        json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (output_dir / "chinese_tasks.md").write_text(
        f"# Chinese tasks\n\nCommand: `{_this_command()}`\n\n{table}\n", encoding="utf-8"
    )
    print()
    print(table)
    print(f"\nwrote {output_dir / 'chinese_tasks.json'} and {output_dir / 'chinese_tasks.md'}")
    return results


if __name__ == "__main__":
    main()
