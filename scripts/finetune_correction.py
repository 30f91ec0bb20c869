"""Fine-tune a masked char LM as a same-length spelling corrector (MacBERT4CSC style): the model reads the erroneous
text and predicts the correct character at every position; Trainer-based, in the manner of the other fine-tuning
scripts. Scored with the SIGHAN-style measures of `hf_charlm.metrics.correction_scores`.

Built-in People's Daily spelling errors, from a masked char LM (scripts/pretrain.py --objective mlm):

    python scripts/finetune_correction.py --model_name_or_path outputs/charlm-mlm \
        --task_name peoples_daily_csc --output_dir outputs/charlm-csc

Local files with source / target columns of the same length (.jsonl / .json / .csv / .parquet, or .tsv with a
header): `--train_file train.jsonl --validation_file dev.jsonl --source_column src --target_column tgt`.

Evaluate on SIGHAN 2015 (evaluation only: training on it is refused), without training (writes
predictions.jsonl and generated_predictions.txt):

    python scripts/finetune_correction.py --model_name_or_path outputs/charlm-csc --do_predict \
        --task_name sighan2015_test --output_dir outputs/charlm-csc-sighan
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import (
    AutoModelForMaskedLM,
    DataCollatorForTokenClassification,
    EarlyStoppingCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import IntervalStrategy

from hf_charlm import CharLMForMaskedLM
from hf_charlm.correction import apply_edits, char_vocabulary, encode_correction_examples, gate_by_detection, merge_predictions
from hf_charlm.correction_data import CORRECTION_DATASETS, EVALUATION_ONLY
from hf_charlm.hub import write_model_card
from hf_charlm.metrics import correction_scores
from hf_charlm.trainers import CharLMTrainer
from hf_charlm.training import (
    DATA_SEED,
    FINETUNE_DEFAULTS,
    ModelArguments,
    UsageError,
    card_hyperparameters,
    check_output_dir,
    hub_base_model,
    limit_splits,
    load_classifier,
    load_finetune_splits,
    parse_finetune_args,
    push_output,
    resolve_resume,
    run_main,
    seq2seq_pairs,
    setup_logging,
    take_push_flag,
    train_then_evaluate,
    with_fresh_errors,
)

logger = logging.getLogger("finetune_correction")
TASKS = ("peoples_daily_csc", "sighan2015_test")
FILE_FORMATS = ("auto", "json", "csv", "parquet", "tsv")
SHOWN = 3


@dataclass
class DataArguments:
    task_name: str = field(default="peoples_daily_csc", metadata={"help": f"Built-in task: {', '.join(TASKS)} (evaluation only: {', '.join(sorted(EVALUATION_ONLY))})."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with source and target columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    train_file: str | None = field(default=None, metadata={"help": "A .jsonl / .json / .csv / .parquet file, or a .tsv table with a header row."})
    validation_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file."})
    test_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file; its targets may be missing (prediction only)."})
    file_format: str = field(default="auto", metadata={"help": f"One of {', '.join(FILE_FORMATS)} (auto: by extension)."})
    source_column: str = field(default="source", metadata={"help": "Column of the erroneous texts."})
    target_column: str = field(default="target", metadata={"help": "Column of the corrected texts (same length as the source)."})
    max_seq_length: int | None = field(default=None, metadata={"help": "Longest window in tokens (default: the model's limit); longer texts are read in overlapping windows."})
    stride: int | None = field(default=None, metadata={"help": "Tokens shared by consecutive windows (default: a quarter of max_seq_length)."})
    skip_train_samples: int = field(default=0, metadata={"help": "Leave out the first N training examples (before --max_train_samples), e.g. the pairs a noisy-channel reranker learns from (scripts/build_corrector.py --reranker_examples N), which a corrector it weighs must not have seen."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation examples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only this many test examples."})
    validation_split_percentage: int = field(default=10, metadata={"help": "Validation share of train when there is none."})
    early_stopping_patience: int | None = field(default=2, metadata={"help": "Evaluations without improvement before stopping."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card (default zh for the built-in tasks)."})
    error_copies: int = field(default=0, metadata={"help": "Add this many copies of each training target with fresh synthetic errors (Chinese confusion sets, drawn as peoples_daily_csc's are: about half of the copies carry 1-3 substitutions): new errors at every pass instead of the same ones each epoch. Needs the correction extra. E.g. 4."})
    detection_loss_weight: float | None = field(default=None, metadata={"help": "Add an error-detection head (MacBERT4CSC): the loss is (1 - w) * correction + w * detection; characters the head finds right (p < 0.5) are left alone. E.g. 0.3."})

    def __post_init__(self) -> None:
        if self.dataset_name is None and not (self.train_file or self.validation_file or self.test_file) and self.task_name not in TASKS:
            hint = " (english_typos changes lengths: train it with scripts/finetune_seq2seq.py)" if self.task_name in CORRECTION_DATASETS else ""
            raise UsageError(f"--task_name {self.task_name!r} is unknown: choose one of {', '.join(TASKS)}{hint}.")
        if self.file_format not in FILE_FORMATS:
            raise UsageError(f"--file_format {self.file_format!r}: choose one of {', '.join(FILE_FORMATS)}.")
        if self.max_seq_length is not None and self.max_seq_length < 3:
            raise UsageError(f"--max_seq_length={self.max_seq_length} must be >= 3 (two special tokens and a character).")
        if self.stride is not None and self.stride < 0:
            raise UsageError(f"--stride={self.stride} must be 0 or more.")
        if self.error_copies < 0:
            raise UsageError(f"--error_copies={self.error_copies} must be 0 or more.")
        if self.skip_train_samples < 0:
            raise UsageError(f"--skip_train_samples={self.skip_train_samples} must be 0 or more.")
        weight = self.detection_loss_weight
        if weight is not None and not 0.0 < weight < 1.0:
            raise UsageError(f"--detection_loss_weight={weight} must be in (0, 1).")
        for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name}={getattr(self, name)} must be >= 1.")


def check_same_length(pairs: datasets.DatasetDict, origins: dict) -> None:
    """Same-length correction needs one target character per source character: a pair that differs in length is
    an error naming its file and line (or split and index)."""
    from hf_charlm.formats import SOURCE_COLUMN

    for split, d in pairs.items():
        if "target" not in d.column_names:
            continue
        for row, source, target in zip(d[SOURCE_COLUMN], d["source"], d["target"]):
            if len(source) != len(target):
                raise UsageError(
                    f"{origins[split].name(row)}: the source has {len(source)} characters but the target {len(target)}; "
                    "same-length correction replaces characters one for one (for insertions and deletions use "
                    "scripts/finetune_seq2seq.py)."
                )


def correction_compute_metrics(sources: list[str], targets: list[str], plan: list, vocabulary: dict[int, str]):
    """`compute_metrics` over the windows of one split: predicted ids back to texts, then `correction_scores`."""

    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions = eval_pred.predictions[0] if isinstance(eval_pred.predictions, tuple) else eval_pred.predictions
        edits = merge_predictions(sources, plan, predictions, None, vocabulary)
        outputs = [apply_edits(s, e) for s, e in zip(sources, edits)]
        scores = correction_scores(sources, targets, outputs)
        return {k: v for k, v in scores.items() if k not in ("sentences", "erroneous_sentences")}

    return compute_metrics


def corrected_ids(logits, labels):
    """`preprocess_logits_for_metrics`: the predicted ids, -1 (no edit) where a detection head finds the input
    character right; not the (B, T, V) logits."""
    detection = None
    if isinstance(logits, tuple):
        logits, rest = logits[0], logits[1:]
        detection = next((t for t in rest if t is not None and t.ndim == 2), None)  # (B, T): the detection logits
    return gate_by_detection(logits.argmax(dim=-1), detection)


def main() -> None:
    model_args, data_args, training_args, choices = parse_finetune_args(
        (ModelArguments, DataArguments, TrainingArguments),
        {**FINETUNE_DEFAULTS, "output_dir": "outputs/charlm-correction", "metric_for_best_model": "sentence_correction_f1"},
    )
    setup_logging(training_args)
    for note in choices.notes:
        logger.info(note)
    resume = resolve_resume(training_args)
    builtin = not (data_args.train_file or data_args.validation_file or data_args.test_file or data_args.dataset_name)

    raw, data_name, dataset_ids, origins = load_finetune_splits(
        data_args.task_name, data_args.dataset_name, data_args.dataset_config_name,
        {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file},
        data_args.file_format, data_args.validation_split_percentage, DATA_SEED, token_task=False,
        carve_validation=not (builtin and data_args.task_name in EVALUATION_ONLY),
    )
    if builtin and data_args.task_name in EVALUATION_ONLY and choices.phases(training_args, list(raw))[0]:
        raise UsageError(f"--task_name {data_args.task_name} is for evaluation only (real learner errors, never trained or "
                         "tuned on): pass --do_predict with a fine-tuned --model_name_or_path.")
    do_train, do_eval, do_predict, evaluate_during_training, raw = choices.plan(training_args, raw, model_args.model_name_or_path)
    if do_train:
        check_output_dir(training_args.output_dir, data_args.overwrite_output_dir, resume is not None)
    set_seed(training_args.seed)

    if do_train and data_args.skip_train_samples:
        if data_args.skip_train_samples >= raw["train"].num_rows:
            raise UsageError(f"--skip_train_samples={data_args.skip_train_samples} leaves none of the "
                             f"{raw['train'].num_rows} training examples.")
        raw["train"] = raw["train"].select(range(data_args.skip_train_samples, raw["train"].num_rows))
    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_test_samples}
    raw = limit_splits(raw, limits, DATA_SEED, sample=False)
    pairs = seq2seq_pairs(raw, origins, data_args.source_column, data_args.target_column)
    check_same_length(pairs, origins)
    if do_train and data_args.error_copies:
        before = pairs["train"].num_rows
        pairs["train"] = with_fresh_errors(pairs["train"], data_args.error_copies, language="zh")
        logger.info(f"--error_copies {data_args.error_copies}: {before} training pairs -> {pairs['train'].num_rows}")

    head = {"detection_loss_weight": data_args.detection_loss_weight} if data_args.detection_loss_weight is not None else {}
    model, tokenizer = load_classifier(
        model_args, CharLMForMaskedLM, AutoModelForMaskedLM,
        lambda: list(pairs["train"]["source"]) + list(pairs["train"]["target"]), head,
    )
    if model.config.backbone != "transformer":
        raise UsageError(f"--backbone {model.config.backbone}: a recurrent masked LM never reads the character it predicts "
                         "(its left and right stacks see the neighbours only), so it cannot correct; use the transformer.")
    limit = model.config.max_position_embeddings
    max_len = data_args.max_seq_length or limit
    if max_len > limit:
        raise UsageError(f"--max_seq_length={max_len} is larger than the model's max_position_embeddings={limit}.")
    tokenizer.model_max_length = max_len
    vocabulary = char_vocabulary(tokenizer)

    encoded, plans = {}, {}
    with training_args.main_process_first(desc="tokenizing"):
        for split, d in pairs.items():
            targets = d["target"] if "target" in d.column_names else None
            columns, plans[split] = encode_correction_examples(tokenizer, d["source"], targets, max_len, data_args.stride)
            encoded[split] = datasets.Dataset.from_dict(columns)
    if not do_train:
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
    callbacks = []
    if evaluate_during_training and data_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))

    def metrics_for(split: str):
        d = pairs[split]
        return correction_compute_metrics(d["source"], d["target"], plans[split], vocabulary)

    if do_train:  # the saved config says what the model is for (the demo app's correction tab reads it)
        model.config.finetuning_task = "text-correction"
    trainer = CharLMTrainer(
        model=model,
        args=training_args,
        train_dataset=encoded.get("train"),
        eval_dataset=encoded.get("validation"),
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=metrics_for("validation") if "validation" in pairs else None,
        preprocess_logits_for_metrics=corrected_ids,
        callbacks=callbacks,
    )
    push = take_push_flag(training_args) if do_train else False
    metrics = train_then_evaluate(trainer, do_train, resume, encoded["validation"] if do_eval else None)
    if do_train:  # as transformers' run_*.py scripts record it (pairs, --error_copies included)
        metrics["train_samples"] = pairs["train"].num_rows
    outputs = None
    if do_predict:
        test = pairs["test"]
        labelled = "target" in test.column_names
        trainer.compute_metrics = metrics_for("test") if labelled else None
        output = trainer.predict(encoded["test"], metric_key_prefix="test")
        metrics.update(output.metrics if labelled else {k: v for k, v in output.metrics.items() if k != "test_loss"})
        edits = merge_predictions(test["source"], plans["test"], output.predictions, None, vocabulary)
        outputs = [apply_edits(s, e) for s, e in zip(test["source"], edits)]
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)

    if trainer.is_world_process_zero():
        if outputs is not None:
            from hf_charlm.formats import SOURCE_COLUMN

            out_dir = Path(training_args.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            test = pairs["test"]
            with open(out_dir / "generated_predictions.txt", "w", encoding="utf-8") as txt, \
                    open(out_dir / "predictions.jsonl", "w", encoding="utf-8") as jsonl:
                for row, source, output_text, text_edits in zip(test[SOURCE_COLUMN], test["source"], outputs, edits):
                    txt.write(output_text + "\n")
                    jsonl.write(json.dumps({"source_row": origins["test"].name(row), "source": source,
                                            "prediction": output_text, "edits": text_edits}, ensure_ascii=False) + "\n")
            for source, output_text in list(zip(test["source"], outputs))[:SHOWN]:
                print(f"\n{source[:120]}\n-> {output_text[:120]}")
        if do_train:
            first = next(iter(pairs.values()))
            write_model_card(
                training_args.output_dir,
                task="text_correction",
                model_name=Path(training_args.output_dir).name,
                hyperparameters=card_hyperparameters(
                    trainer.model, training_args, task=data_args.task_name if builtin else data_name,
                    max_seq_length=max_len, **({"error_copies": data_args.error_copies} if data_args.error_copies else {}),
                    **({"skip_train_samples": data_args.skip_train_samples} if data_args.skip_train_samples else {}),
                    started_from=model_args.model_name_or_path or f"scratch ({model_args.preset} preset)",
                    epochs_run=round(trainer.state.epoch or 0, 2),
                ),
                results={k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))},
                datasets=dataset_ids,
                language=data_args.language.split(",") if data_args.language else (["zh"] if builtin else []),
                base_model=hub_base_model(model_args.model_name_or_path),
                dataset_name=data_name,
                extra={"example": first["source"][0][:60]},
            )
        keys = ("sentence_correction_f1", "sentence_detection_f1", "char_correction_f1", "false_positive_rate")
        print(json.dumps({k: round(float(v), 4) for k, v in metrics.items() if k.endswith(keys)}))
        if push:
            push_output(training_args)


if __name__ == "__main__":
    run_main(main)
