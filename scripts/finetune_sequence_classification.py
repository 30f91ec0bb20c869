"""Fine-tune a char model for sequence classification (sentiment, topics, scores), in the manner of run_glue.py.

Built-in product-review sentiment from the default pretrained model (run scripts/pretrain.py first):

    python scripts/finetune_sequence_classification.py --model_name_or_path outputs/charlm-pretrain \
        --output_dir outputs/charlm-sentiment

Any dataset with text and label columns: `--train_file train.csv --validation_file dev.csv --text_column text
--label_column label`; multi-label (a list of labels per text) and regression (a float) through `--problem_type`.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
    pipeline,
    set_seed,
)

from hf_charlm import CharLMForSequenceClassification
from hf_charlm.hub import write_model_card
from hf_charlm.metrics import sequence_classification_compute_metrics
from hf_charlm.training import (
    FINETUNE_DEFAULTS,
    ModelArguments,
    UsageError,
    card_hyperparameters,
    check_columns,
    check_output_dir,
    hub_base_model,
    load_classifier,
    limit_splits,
    load_splits,
    parse_script_args,
    push_output,
    resolve_resume,
    run_main,
    setup_logging,
    take_push_flag,
)

logger = logging.getLogger("finetune_sequence_classification")
PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
METRIC_FOR_BEST = {"single_label_classification": "accuracy", "multi_label_classification": "macro_f1", "regression": "mse"}


@dataclass
class DataArguments:
    task_name: str = field(default="review_sentiment", metadata={"help": "Built-in task: review_sentiment."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with text and label columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    train_file: str | None = field(default=None, metadata={"help": ".jsonl / .json / .csv / .parquet"})
    validation_file: str | None = field(default=None, metadata={"help": "Same format as --train_file."})
    test_file: str | None = field(default=None, metadata={"help": "Same format as --train_file."})
    text_column: str = field(default="text", metadata={"help": "Column of texts."})
    label_column: str = field(default="label", metadata={"help": "Column of labels (a class, a list of classes, or a float)."})
    problem_type: str | None = field(default=None, metadata={"help": f"One of {', '.join(PROBLEM_TYPES)} (default: from the labels)."})
    label_list: str | None = field(default=None, metadata={"help": "Comma-separated label set for string or integer labels."})
    max_seq_length: int | None = field(default=None, metadata={"help": "Truncate to this many tokens (default: the model's limit)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples (a seeded sample)."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation examples (a seeded sample)."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only this many test examples (a seeded sample)."})
    validation_split_percentage: int = field(default=10, metadata={"help": "Validation share of train when there is none."})
    early_stopping_patience: int | None = field(default=2, metadata={"help": "Evaluations without improvement before stopping."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card."})

    def __post_init__(self) -> None:
        if self.dataset_name is None and self.train_file is None and self.task_name != "review_sentiment":
            raise UsageError(f"--task_name {self.task_name!r} is unknown: the built-in task is review_sentiment.")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise UsageError(f"--problem_type {self.problem_type!r}: choose one of {', '.join(PROBLEM_TYPES)}.")


def prepare_labels(raw: datasets.DatasetDict, args: DataArguments) -> tuple[datasets.DatasetDict, str, list[str]]:
    """Returns the data with a `labels` column the head reads, the problem type and the label names."""
    feature = raw["train"].features[args.label_column]
    first = raw["train"][0][args.label_column]
    problem = args.problem_type or (
        "multi_label_classification" if isinstance(first, list) else "regression" if isinstance(first, float) else "single_label_classification"
    )
    class_label = isinstance(feature, datasets.ClassLabel) or isinstance(getattr(feature, "feature", None), datasets.ClassLabel)
    if problem == "regression":
        names = ["score"]
    elif isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
    elif isinstance(getattr(feature, "feature", None), datasets.ClassLabel):
        names = list(feature.feature.names)
    elif args.label_list:
        names = args.label_list.split(",")
    else:
        values = {v for row in raw["train"][args.label_column] for v in (row if isinstance(row, list) else [row])}
        names = [str(v) for v in sorted(values, key=lambda v: (isinstance(v, str), v))]
    index = {n: i for i, n in enumerate(names)}

    def to_id(value, i: int, split: str) -> int:
        """A class id: ClassLabel data holds ids already; other labels are looked up by name."""
        if isinstance(value, bool) or value is None:
            raise UsageError(f"{split} example {i}: label {value!r} in {args.label_column!r} is not a class.")
        if class_label and isinstance(value, int):
            if not 0 <= value < len(names):
                raise UsageError(f"{split} example {i}: label {value} in {args.label_column!r} is outside the label set {names}.")
            return value
        if str(value) not in index:
            raise UsageError(f"{split} example {i}: label {value!r} in {args.label_column!r} is outside the label set {names}.")
        return index[str(value)]

    def convert(batch, indices, split):
        labels = []
        for i, text, value in zip(indices, batch[args.text_column], batch[args.label_column]):
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"{split} example {i}: the text in {args.text_column!r} is empty.")
            if problem == "regression":
                if not isinstance(value, (int, float)):
                    raise UsageError(f"{split} example {i}: label {value!r} in {args.label_column!r} is not a number.")
                labels.append(float(value))
            elif problem == "multi_label_classification":
                row = [0.0] * len(names)
                for v in value if isinstance(value, list) else [value]:
                    row[to_id(v, i, split)] = 1.0
                labels.append(row)
            else:
                labels.append(to_id(value, i, split))
        return {"labels": labels}

    for split in list(raw):
        if split != "train" and all(v is None or v == -1 for v in raw[split][args.label_column]):
            logger.warning("the %s split has no labels (GLUE-style -1): it is not evaluated", split)
            del raw[split]
            continue
        raw[split] = raw[split].map(convert, batched=True, with_indices=True, fn_kwargs={"split": split}, desc=f"Labels ({split})")
    if "validation" not in raw:
        raise UsageError("The validation split has no labels: pass --validation_file or use --validation_split_percentage.")
    return raw, problem, names


def main() -> None:
    model_args, data_args, training_args = parse_script_args(
        (ModelArguments, DataArguments, TrainingArguments),
        {**FINETUNE_DEFAULTS, "output_dir": "outputs/charlm-sequence-classification"},
    )
    setup_logging(training_args)
    resume = resolve_resume(training_args)
    check_output_dir(training_args.output_dir, data_args.overwrite_output_dir, resume is not None)
    set_seed(training_args.seed)

    raw, data_name, dataset_ids = load_splits(
        data_args.task_name, data_args.dataset_name, data_args.dataset_config_name, data_args.train_file,
        data_args.validation_file, data_args.test_file, data_args.validation_split_percentage, training_args.seed,
    )
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_test_samples}
    # the built-in splits are ordered by label: sample, don't take a prefix
    raw = limit_splits(raw, limits, training_args.seed, sample=True)
    check_columns(raw, {"--text_column": data_args.text_column, "--label_column": data_args.label_column})
    raw, problem, names = prepare_labels(raw, data_args)
    if training_args.metric_for_best_model in (None, "loss"):
        training_args.metric_for_best_model = METRIC_FOR_BEST[problem]
        training_args.greater_is_better = problem != "regression"
    id2label = dict(enumerate(names))
    label_fields = {"num_labels": len(names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}, "problem_type": problem}

    model, tokenizer = load_classifier(
        model_args, CharLMForSequenceClassification, AutoModelForSequenceClassification,
        lambda: raw["train"][data_args.text_column], label_fields,
    )
    limit = model.config.max_position_embeddings if model.config.backbone == "transformer" else 4096
    max_len = data_args.max_seq_length or limit
    if max_len > limit:
        raise UsageError(f"--max_seq_length={max_len} is larger than the model's max_position_embeddings={limit}.")
    tokenizer.model_max_length = max_len

    def encode(split: str) -> datasets.Dataset:
        keep = ["labels"]
        return raw[split].map(
            lambda b: tokenizer(b[data_args.text_column], truncation=True, max_length=max_len),
            batched=True,
            remove_columns=[c for c in raw[split].column_names if c not in keep],
            desc=f"Tokenizing ({split})",
        )

    with training_args.main_process_first(desc="tokenizing"):
        encoded = {split: encode(split) for split in raw if split in ("train", "validation", "test")}

    callbacks = [EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience)] if data_args.early_stopping_patience else []
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=sequence_classification_compute_metrics(problem, id2label=id2label, num_labels=len(names)),
        callbacks=callbacks,
    )
    push = take_push_flag(training_args)
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    metrics = dict(train_result.metrics)
    for split in ("validation", "test"):
        if split in encoded:
            metrics.update(trainer.evaluate(encoded[split], metric_key_prefix="eval" if split == "validation" else "test"))
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)

    if trainer.is_world_process_zero():
        sample_split = "test" if "test" in raw else "validation"
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
        classify = pipeline("text-classification", model=trainer.model, tokenizer=tokenizer)
        for text in raw[sample_split][data_args.text_column][:3]:
            print(f"{classify(text, truncation=True, max_length=max_len)[0]}  {text[:40]!r}")
        print(json.dumps({k: round(float(v), 4) for k, v in metrics.items() if k.startswith(("eval_", "test_")) and "runtime" not in k and "per_second" not in k}))
        if push:
            push_output(training_args)


if __name__ == "__main__":
    run_main(main)
