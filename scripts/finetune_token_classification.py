"""Fine-tune a char model for token classification (NER, word segmentation), in the manner of run_ner.py.

Built-in People's Daily NER from the default pretrained model (run scripts/pretrain.py first):

    python scripts/finetune_token_classification.py --model_name_or_path outputs/charlm-pretrain \
        --task_name peoples_daily_ner --output_dir outputs/charlm-ner

Word segmentation from scratch: `--task_name peoples_daily_cws --preset tiny`. Any dataset with token and tag
columns: `--train_file train.jsonl --validation_file dev.jsonl --tokens_column tokens --tags_column ner_tags`
(word-level data such as CoNLL-2003 is aligned to characters; see README, "Label alignment").
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import (
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    EarlyStoppingCallback,
    Trainer,
    TrainingArguments,
    pipeline,
    set_seed,
)

from hf_charlm import CharLMForTokenClassification
from hf_charlm.data import check_token_examples, tokenize_and_align_labels
from hf_charlm.hub import write_model_card
from hf_charlm.metrics import token_classification_compute_metrics
from hf_charlm.training import (
    FINETUNE_DEFAULTS,
    ModelArguments,
    UsageError,
    argmax_logits,
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

logger = logging.getLogger("finetune_token_classification")
TASKS = ("peoples_daily_ner", "peoples_daily_cws")


@dataclass
class DataArguments:
    task_name: str = field(default="peoples_daily_ner", metadata={"help": f"Built-in task: {', '.join(TASKS)}."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with token and tag columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    train_file: str | None = field(default=None, metadata={"help": ".jsonl / .json / .csv / .parquet with list columns."})
    validation_file: str | None = field(default=None, metadata={"help": "Same format as --train_file."})
    test_file: str | None = field(default=None, metadata={"help": "Same format as --train_file."})
    tokens_column: str = field(default="tokens", metadata={"help": "Column of words (or characters)."})
    tags_column: str | None = field(default=None, metadata={"help": "Column of tags (default: ner_tags, else tags)."})
    label_list: str | None = field(default=None, metadata={"help": "Comma-separated label set for string tags."})
    word_separator: str = field(
        default="auto", metadata={"help": "Joins words into the model's text: 'auto' (space unless every token is one character), 'space', 'none'."}
    )
    label_all_tokens: bool = field(default=True, metadata={"help": "Train on every character of a word (B-X -> I-X)."})
    max_seq_length: int | None = field(default=None, metadata={"help": "Truncate to this many tokens (default: the model's limit)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation examples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only this many test examples."})
    validation_split_percentage: int = field(default=10, metadata={"help": "Validation share of train when there is none."})
    early_stopping_patience: int | None = field(default=2, metadata={"help": "Evaluations without improvement before stopping."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card."})

    def __post_init__(self) -> None:
        if self.dataset_name is None and self.train_file is None and self.task_name not in TASKS:
            raise UsageError(f"--task_name {self.task_name!r} is unknown: choose one of {', '.join(TASKS)}.")
        if self.word_separator not in ("auto", "space", "none"):
            raise UsageError(f"--word_separator {self.word_separator!r}: use auto, space or none.")


def label_set(raw: datasets.DatasetDict, tags_column: str, label_names: str | None) -> tuple[datasets.DatasetDict, list[str]]:
    """The label names; string tags are mapped to ids (an unknown tag is an error naming the example)."""
    feature = raw["train"].features[tags_column]
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return raw, list(inner.names)
    first = next((t for tags in raw["train"][tags_column] for t in tags), None)
    if isinstance(first, str):
        names = label_names.split(",") if label_names else sorted({t for tags in raw["train"][tags_column] for t in tags})
        index = {n: i for i, n in enumerate(names)}

        def to_ids(batch, indices, split):
            out = []
            for i, tags in zip(indices, batch[tags_column]):
                unknown = [t for t in tags if t not in index]
                if unknown:
                    raise UsageError(f"{split} example {i}: tag {unknown[0]!r} in {tags_column!r} is not in the label set {names}.")
                out.append([index[t] for t in tags])
            return {tags_column: out}

        for split in raw:
            raw[split] = raw[split].map(to_ids, batched=True, with_indices=True, fn_kwargs={"split": split})
        return raw, names
    if label_names:
        return raw, label_names.split(",")
    raise UsageError(f"--tags_column {tags_column!r} holds integer ids without label names: pass --label_list B-PER,I-PER,...")


def main() -> None:
    model_args, data_args, training_args = parse_script_args(
        (ModelArguments, DataArguments, TrainingArguments),
        {**FINETUNE_DEFAULTS, "output_dir": "outputs/charlm-token-classification", "metric_for_best_model": "f1"},
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
    raw = limit_splits(raw, limits, training_args.seed, sample=False)
    tags_column = data_args.tags_column or ("ner_tags" if "ner_tags" in raw["train"].column_names else "tags")
    check_columns(raw, {"--tokens_column": data_args.tokens_column, "--tags_column": tags_column})
    raw, names = label_set(raw, tags_column, data_args.label_list)
    for split, d in raw.items():
        try:
            check_token_examples(d, data_args.tokens_column, tags_column, len(names), split)
        except ValueError as err:
            raise UsageError(str(err)) from err
    scheme = "bmes" if set(names) <= {"B", "M", "E", "S"} else "bio"
    char_level = all(len(t) == 1 for tokens in raw["train"][data_args.tokens_column][:1000] for t in tokens)
    separator = {"space": " ", "none": ""}.get(data_args.word_separator, "" if char_level else " ")
    id2label = dict(enumerate(names))
    label_fields = {"num_labels": len(names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}}

    model, tokenizer = load_classifier(
        model_args,
        CharLMForTokenClassification,
        AutoModelForTokenClassification,
        lambda: [separator.join(t) for t in raw["train"][data_args.tokens_column]],
        label_fields,
    )
    limit = model.config.max_position_embeddings if model.config.backbone == "transformer" else 4096
    max_len = data_args.max_seq_length or limit
    if max_len > limit:
        raise UsageError(f"--max_seq_length={max_len} is larger than the model's max_position_embeddings={limit}.")
    tokenizer.model_max_length = max_len

    def encode(split: str, label_all: bool) -> datasets.Dataset:
        return raw[split].map(
            tokenize_and_align_labels,
            batched=True,
            remove_columns=raw[split].column_names,
            fn_kwargs=dict(
                tokenizer=tokenizer, tokens_column=data_args.tokens_column, tags_column=tags_column, label_names=names,
                max_length=max_len, word_separator=separator, label_all_tokens=label_all,
            ),
            num_proc=None,
            desc=f"Aligning labels ({split})",
        )

    with training_args.main_process_first(desc="tokenizing"):
        train = encode("train", data_args.label_all_tokens)
        # evaluation scores one label per word: the first token of each word
        evals = {split: encode(split, False) for split in ("validation", "test") if split in raw}

    callbacks = [EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience)] if data_args.early_stopping_patience else []
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evals["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=token_classification_compute_metrics(id2label, scheme=scheme),
        preprocess_logits_for_metrics=argmax_logits,
        callbacks=callbacks,
    )
    push = take_push_flag(training_args)
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    metrics = dict(train_result.metrics)
    for split, d in evals.items():
        prefix = "eval" if split == "validation" else "test"
        metrics.update(trainer.evaluate(d, metric_key_prefix=prefix))
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)

    if trainer.is_world_process_zero():
        write_model_card(
            training_args.output_dir,
            task="token_classification",
            model_name=Path(training_args.output_dir).name,
            hyperparameters=card_hyperparameters(
                trainer.model, training_args, task=data_args.task_name if not (data_args.train_file or data_args.dataset_name) else data_name,
                scheme=scheme, max_seq_length=max_len, label_all_tokens=data_args.label_all_tokens,
                started_from=model_args.model_name_or_path or f"scratch ({model_args.preset} preset)",
                epochs_run=round(trainer.state.epoch or 0, 2),
            ),
            results={k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))},
            datasets=dataset_ids,
            language=data_args.language.split(",") if data_args.language else (["zh"] if not dataset_ids and not data_args.train_file else []),
            base_model=hub_base_model(model_args.model_name_or_path),
            dataset_name=data_name,
            extra={"example": separator.join(raw["test" if "test" in raw else "validation"][0][data_args.tokens_column])[:60]},
        )
        sample = separator.join(raw["test" if "test" in raw else "validation"][0][data_args.tokens_column])[:80]
        tagger = pipeline("token-classification", model=trainer.model, tokenizer=tokenizer, aggregation_strategy="simple")
        print(f"\n{sample}")
        for entity in tagger(sample):
            print(f"  {entity['entity_group']:>6} {entity['start']:>3}-{entity['end']:<3} {entity['word']}")
        summary = {k: round(float(v), 4) for k, v in metrics.items() if k.endswith(("_f1", "_precision", "_recall")) and k.count("_") == 1}
        print(json.dumps(summary))
        if push:
            push_output(training_args)


if __name__ == "__main__":
    run_main(main)
