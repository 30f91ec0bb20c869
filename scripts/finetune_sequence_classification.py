"""Fine-tune a char model for sequence classification (sentiment, topics, scores), in the manner of run_glue.py.

Built-in product-review sentiment from the default pretrained model (run scripts/pretrain.py first):

    python scripts/finetune_sequence_classification.py --model_name_or_path outputs/charlm-pretrain \
        --output_dir outputs/charlm-sentiment

Any dataset with text and label columns: `--train_file train.csv --validation_file dev.csv --text_column text
--label_column label` (`.tsv` with a header row is read too); multi-label (a list of labels per text) and regression
(a float) through `--problem_type`.

Evaluate or predict with a fine-tuned model, without training (writes predictions.txt and predictions.jsonl):

    python scripts/finetune_sequence_classification.py --model_name_or_path outputs/charlm-sentiment --do_predict \
        --test_file test.tsv --output_dir outputs/charlm-sentiment-test
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import IntervalStrategy

from hf_charlm import CharLMForSequenceClassification
from hf_charlm.formats import SOURCE_COLUMN
from hf_charlm.hub import write_model_card
from hf_charlm.metrics import sequence_classification_compute_metrics
from hf_charlm.trainers import CharLMTrainer
from hf_charlm.training import (
    DATA_SEED,
    FINETUNE_DEFAULTS,
    HPSearchArguments,
    ModelArguments,
    UsageError,
    card_hyperparameters,
    check_columns,
    check_output_dir,
    count_cut,
    hub_base_model,
    limit_splits,
    load_classifier,
    load_finetune_splits,
    model_after_search,
    parse_finetune_args,
    push_output,
    resolve_resume,
    run_main,
    setup_logging,
    take_push_flag,
    train_then_evaluate,
)

logger = logging.getLogger("finetune_sequence_classification")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
METRIC_FOR_BEST = {"single_label_classification": "accuracy", "multi_label_classification": "macro_f1", "regression": "mse"}
FILE_FORMATS = ("auto", "json", "csv", "parquet", "tsv")


@dataclass
class DataArguments(HPSearchArguments):
    task_name: str = field(default="review_sentiment", metadata={"help": "Built-in task: review_sentiment."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with text and label columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    train_file: str | None = field(default=None, metadata={"help": ".jsonl / .json / .csv / .parquet / .tsv (a header row)"})
    validation_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file."})
    test_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file; its labels may be missing (prediction only)."})
    file_format: str = field(default="auto", metadata={"help": f"One of {', '.join(FILE_FORMATS)} (auto: by extension)."})
    text_column: str = field(default="text", metadata={"help": "Column of texts."})
    label_column: str = field(default="label", metadata={"help": "Column of labels (a class, a list of classes, or a float)."})
    problem_type: str | None = field(default=None, metadata={"help": f"One of {', '.join(PROBLEM_TYPES)} (default: from the labels)."})
    label_list: str | None = field(default=None, metadata={"help": "Comma-separated label set for string or integer labels."})
    max_seq_length: int | None = field(default=None, metadata={"help": "Truncate to this many tokens (default: the model's limit)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples (a sample drawn with a fixed seed: the same for every --seed)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation examples (a seeded sample)."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only this many test examples (a seeded sample)."})
    validation_split_percentage: int = field(default=10, metadata={"help": "Validation share of train when there is none."})
    early_stopping_patience: int | None = field(default=2, metadata={"help": "Evaluations without improvement before stopping."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card."})

    def __post_init__(self) -> None:
        self.check_hp_search()
        if self.dataset_name is None and not (self.train_file or self.validation_file or self.test_file) and self.task_name != "review_sentiment":
            raise UsageError(f"--task_name {self.task_name!r} is unknown: the built-in task is review_sentiment.")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise UsageError(f"--problem_type {self.problem_type!r}: choose one of {', '.join(PROBLEM_TYPES)}.")
        if self.file_format not in FILE_FORMATS:
            raise UsageError(f"--file_format {self.file_format!r}: choose one of {', '.join(FILE_FORMATS)}.")


def prepare_labels(
    raw: datasets.DatasetDict, args: DataArguments, origins: dict, model_labels: tuple[list[str], str] | None = None
) -> tuple[datasets.DatasetDict, str, list[str], bool]:
    """Returns the data with a `labels` column the head reads, the problem type, the label names, and whether the
    test split has labels. `model_labels` (a fine-tuned model's names and problem type) fixes the label set."""
    ref = "train" if "train" in raw else next(s for s in raw if s != "test" or len(raw) == 1)
    feature = raw[ref].features.get(args.label_column)
    first = raw[ref][0][args.label_column] if args.label_column in raw[ref].column_names else None
    if model_labels is not None:
        names, problem = model_labels
    else:
        problem = args.problem_type or (
            "multi_label_classification" if isinstance(first, list) else "regression" if isinstance(first, float) else "single_label_classification"
        )
        if problem == "regression":
            names = ["score"]
        elif isinstance(feature, datasets.ClassLabel):
            names = list(feature.names)
        elif isinstance(getattr(feature, "feature", None), datasets.ClassLabel):
            names = list(feature.feature.names)
        elif args.label_list:
            names = args.label_list.split(",")
        else:
            values = {v for row in raw[ref][args.label_column] for v in (row if isinstance(row, list) else [row])}
            names = [str(v) for v in sorted(values, key=lambda v: (isinstance(v, str), v))]
    index = {n: i for i, n in enumerate(names)}

    def to_id(value, where: str, class_names: list[str] | None) -> int:
        """A class id: ClassLabel data holds ids (of its own names); other labels are looked up by name."""
        if isinstance(value, bool) or value is None:
            raise UsageError(f"{where}: label {value!r} in {args.label_column!r} is not a class.")
        if class_names is not None and isinstance(value, int):
            if not 0 <= value < len(class_names):
                raise UsageError(f"{where}: label {value} in {args.label_column!r} is outside the label set {class_names}.")
            value = class_names[value]
        if str(value) not in index:
            raise UsageError(f"{where}: label {value!r} in {args.label_column!r} is outside the label set {names}.")
        return index[str(value)]

    def convert(batch, split, class_names):
        labels = []
        for row, text, value in zip(batch[SOURCE_COLUMN], batch[args.text_column], batch[args.label_column]):
            where = origins[split].name(row)
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"{where}: the text in {args.text_column!r} is empty.")
            if problem == "regression":
                try:  # a .tsv holds numbers as text
                    labels.append(float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else float("nan"))
                except ValueError:
                    labels.append(float("nan"))
                if labels[-1] != labels[-1]:
                    raise UsageError(f"{where}: label {value!r} in {args.label_column!r} is not a number.")
            elif problem == "multi_label_classification":
                out = [0.0] * len(names)
                for v in value if isinstance(value, list) else [value]:
                    out[to_id(v, where, class_names)] = 1.0
                labels.append(out)
            else:
                labels.append(to_id(value, where, class_names))
        return {"labels": labels}

    test_labelled = "test" in raw
    for split in list(raw):
        d = raw[split]
        if args.label_column not in d.column_names or all(v is None or v == -1 for v in d[args.label_column]):
            if split == "test":
                logger.warning("the test split has no labels (GLUE-style -1 or no %r column): predicted, not scored", args.label_column)
                test_labelled = False
                bad = [r for r, t in zip(d[SOURCE_COLUMN], d[args.text_column]) if not isinstance(t, str) or not t.strip()]
                if bad:
                    raise UsageError(f"{origins[split].name(bad[0])}: the text in {args.text_column!r} is empty.")
                continue
            if args.label_column not in d.column_names:
                continue  # check_columns names the missing column
            logger.warning("the %s split has no labels (GLUE-style -1): it is not evaluated", split)
            del raw[split]
            continue
        feature = d.features[args.label_column]
        class_label = feature if isinstance(feature, datasets.ClassLabel) else getattr(feature, "feature", None)
        class_names = list(class_label.names) if isinstance(class_label, datasets.ClassLabel) else None
        raw[split] = d.map(convert, batched=True, fn_kwargs={"split": split, "class_names": class_names}, desc=f"Labels ({split})")
    return raw, problem, names, test_labelled


def write_predictions(output_dir: str, examples: datasets.Dataset, text_column: str, logits: np.ndarray, problem: str,
                      names: list[str], origin) -> None:
    """run_glue's predictions.txt (index<TAB>prediction) and predictions.jsonl (source line, text, prediction)."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    with open(Path(output_dir) / "predictions.txt", "w", encoding="utf-8") as txt, \
            open(Path(output_dir) / "predictions.jsonl", "w", encoding="utf-8") as jsonl:
        txt.write("index\tprediction\n")
        for i, (row, text, scores) in enumerate(zip(examples[SOURCE_COLUMN], examples[text_column], logits)):
            record = {"source": origin.name(row), "text": text}
            if problem == "regression":
                record["score"] = float(scores.reshape(-1)[0])
                prediction = f"{record['score']:.4f}"
            elif problem == "multi_label_classification":
                record["labels"] = [names[k] for k in np.flatnonzero(scores > 0)]
                prediction = ",".join(record["labels"])
            else:
                probs = np.exp(scores - scores.max())
                probs /= probs.sum()
                record["label"], record["score"] = names[int(scores.argmax())], round(float(probs.max()), 4)
                prediction = record["label"]
            txt.write(f"{i}\t{prediction}\n")
            jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    model_args, data_args, training_args, choices = parse_finetune_args(
        (ModelArguments, DataArguments, TrainingArguments),
        {**FINETUNE_DEFAULTS, "output_dir": "outputs/charlm-sequence-classification"},
    )
    setup_logging(training_args)
    for note in choices.notes:
        logger.info(note)
    resume = resolve_resume(training_args)

    raw, data_name, dataset_ids, origins = load_finetune_splits(
        data_args.task_name, data_args.dataset_name, data_args.dataset_config_name,
        {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file},
        data_args.file_format, data_args.validation_split_percentage, DATA_SEED, token_task=False,
    )
    do_train, do_eval, do_predict, evaluate_during_training, raw = choices.plan(training_args, raw, model_args.model_name_or_path)
    if do_train:
        check_output_dir(training_args.output_dir, data_args.overwrite_output_dir, resume is not None)
    set_seed(training_args.seed)

    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_test_samples}
    # the built-in splits are ordered by label: sample, don't take a prefix
    raw = limit_splits(raw, limits, DATA_SEED, sample=True)
    check_columns(raw, {"--text_column": data_args.text_column})
    check_columns(datasets.DatasetDict({s: d for s, d in raw.items() if s != "test"}), {"--label_column": data_args.label_column})
    model_labels = None
    if not do_train:
        try:
            config = AutoConfig.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code)
        except (OSError, ValueError) as err:
            raise UsageError(f"--model_name_or_path {model_args.model_name_or_path}: {err}") from err
        model_labels = ([config.id2label[i] for i in range(config.num_labels)], config.problem_type or "single_label_classification")
    raw, problem, names, test_labelled = prepare_labels(raw, data_args, origins, model_labels)
    if (do_eval or evaluate_during_training) and "validation" not in raw:
        raise UsageError("The validation split has no labels: pass --validation_file or use --validation_split_percentage.")
    if training_args.metric_for_best_model in (None, "loss"):
        training_args.metric_for_best_model = METRIC_FOR_BEST[problem]
        training_args.greater_is_better = problem != "regression"
    id2label = dict(enumerate(names))
    label_fields = {"num_labels": len(names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}, "problem_type": problem}

    model, tokenizer = load_classifier(
        model_args, CharLMForSequenceClassification, AutoModelForSequenceClassification,
        lambda: raw["train"][data_args.text_column], label_fields,
    )
    # recurrent backbones have no position limit: nothing is cut unless --max_seq_length asks for it
    limit = model.config.max_position_embeddings if model.config.backbone == "transformer" else None
    max_len = data_args.max_seq_length or limit or 1_000_000
    if limit is not None and max_len > limit:
        raise UsageError(f"--max_seq_length={max_len} is larger than the model's max_position_embeddings={limit}.")
    tokenizer.model_max_length = max_len

    def encode(split: str) -> datasets.Dataset:
        cut = count_cut(raw[split], data_args.text_column, tokenizer, max_len)
        if cut:
            logger.warning("%d of %d %s texts are longer than %d tokens: the model reads their first %d tokens",
                           cut, raw[split].num_rows, split, max_len, max_len)
        keep = ["labels"]
        return raw[split].map(
            lambda b: tokenizer(b[data_args.text_column], truncation=True, max_length=max_len, split_special_tokens=True),
            batched=True,
            remove_columns=[c for c in raw[split].column_names if c not in keep],
            desc=f"Tokenizing ({split})",
        )

    with training_args.main_process_first(desc="tokenizing"):
        encoded = {split: encode(split) for split in raw if split in ("train", "validation", "test")}

    if not do_train:  # the Trainer only evaluates and predicts: no evaluation schedule, no best model to load
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
    callbacks = []
    if evaluate_during_training and data_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))
    trainer_kwargs = dict(
        train_dataset=encoded.get("train"),
        eval_dataset=encoded.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=sequence_classification_compute_metrics(problem, id2label=id2label, num_labels=len(names)),
        callbacks=callbacks,
    )
    model, search = model_after_search(data_args, do_train, model, model_args, CharLMForSequenceClassification, AutoModelForSequenceClassification, tokenizer,
                                       label_fields, trainer_kwargs, training_args)
    trainer = CharLMTrainer(model=model, args=training_args, **trainer_kwargs)
    push = take_push_flag(training_args) if do_train else False
    metrics = train_then_evaluate(trainer, do_train, resume, encoded["validation"] if do_eval else None)
    if search is not None:  # (every trial in hp_search.json)
        metrics.update({"hp_search_trials": len(search["trials"]), f"hp_search_best_{search['metric']}": search["best_objective"]})
    output = None
    if do_predict:
        if not test_labelled:
            trainer.compute_metrics = None
        output = trainer.predict(encoded["test"], metric_key_prefix="test")
        metrics.update(output.metrics if test_labelled else {k: v for k, v in output.metrics.items() if k != "test_loss"})
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)

    if trainer.is_world_process_zero():
        sample_split = "test" if "test" in raw else "validation" if "validation" in raw else "train"
        if output is not None:
            write_predictions(training_args.output_dir, raw["test"], data_args.text_column, output.predictions, problem, names, origins["test"])
        if do_train:
            write_model_card(
                training_args.output_dir,
                task="sequence_classification",
                model_name=Path(training_args.output_dir).name,
                hyperparameters=card_hyperparameters(
                    trainer.model, training_args, problem_type=problem, max_seq_length=max_len,
                    pooling=trainer.model.config.classifier_pooling,
                    started_from=model_args.model_name_or_path or f"scratch ({model_args.preset} preset)",
                    epochs_run=round(trainer.state.epoch or 0, 2),
                ),
                results={k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))},
                datasets=dataset_ids,
                language=data_args.language.split(",") if data_args.language else (["zh"] if not dataset_ids and not data_args.train_file else []),
                base_model=hub_base_model(model_args.model_name_or_path),
                dataset_name=data_name,
                extra={"example": raw[sample_split][0][data_args.text_column][:60]},
            )
        if output is not None and problem == "single_label_classification":
            logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
            for text, scores in list(zip(raw["test"][data_args.text_column], logits))[:3]:
                print(f"{names[int(scores.argmax())]:>12}  {text[:40]!r}")
        print(json.dumps({k: round(float(v), 4) for k, v in metrics.items() if k.startswith(("eval_", "test_")) and "runtime" not in k and "per_second" not in k}))
        if push:
            push_output(training_args)


if __name__ == "__main__":
    run_main(main)
