"""Train a char encoder-decoder (CharLMForConditionalGeneration) on source -> target pairs, in the manner of
transformers' run_translation.py: Seq2SeqTrainer, generated outputs scored with BLEU / chrF (sacrebleu), character
error rate, exact match and, for same-length tasks, character accuracy.

Built-in pinyin-to-characters from scratch with a small transformer:

    python scripts/finetune_seq2seq.py --task_name pinyin_to_hanzi --preset tiny \
        --max_target_length 64 --output_dir outputs/charlm-pinyin

English to Chinese (Tatoeba), warm-started from a pretrained causal char LM (encoder and decoder start from its
backbone; cross-attention is new): `--task_name tatoeba_en_zh --model_name_or_path outputs/charlm-pretrain`. An
LSTM with Luong attention: `--backbone lstm --config_overrides attention_type=dot`. Local files (.jsonl / .json /
.csv / .parquet / .tsv with a header): `--train_file train.jsonl --validation_file dev.jsonl --source_column src
--target_column tgt`; run_translation-style data with a `translation` column: `--source_lang en --target_lang zh`.

Evaluate or predict with a trained model, without training (writes generated_predictions.txt and predictions.jsonl):

    python scripts/finetune_seq2seq.py --model_name_or_path outputs/charlm-pinyin --do_predict \
        --task_name pinyin_to_hanzi --num_beams 4 --output_dir outputs/charlm-pinyin-test
"""

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    EarlyStoppingCallback,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)
from transformers.trainer_utils import IntervalStrategy

from hf_charlm import CharLMForConditionalGeneration
from hf_charlm.formats import SOURCE_COLUMN
from hf_charlm.hub import write_model_card
from hf_charlm.metrics import bleu_tokenize_for, seq2seq_compute_metrics
from hf_charlm.tokenization_charlm import train_char_tokenizer
from hf_charlm.trainers import CharLMSeq2SeqTrainer
from hf_charlm.training import (
    DATA_SEED,
    FINETUNE_DEFAULTS,
    ModelArguments,
    UsageError,
    build_config,
    card_hyperparameters,
    check_output_dir,
    check_vocab,
    count_cut,
    encode_seq2seq,
    hub_base_model,
    limit_splits,
    load_char_tokenizer,
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

logger = logging.getLogger("finetune_seq2seq")
TASKS = ("tatoeba_en_zh", "tatoeba_zh_en", "pinyin_to_hanzi", "english_typos")
TASK_LANGUAGES = {"tatoeba_en_zh": ["en", "zh"], "tatoeba_zh_en": ["zh", "en"], "pinyin_to_hanzi": ["zh"], "english_typos": ["en"]}
FILE_FORMATS = ("auto", "json", "csv", "parquet", "tsv")
BLEU_TOKENIZERS = ("auto", "zh", "13a", "intl", "char", "none")
SHOWN = 3  # sample outputs printed at the end


@dataclass
class DataArguments:
    task_name: str = field(default="tatoeba_en_zh", metadata={"help": f"Built-in task: {', '.join(TASKS)}."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with source and target columns (or a translation column)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    train_file: str | None = field(default=None, metadata={"help": "A .jsonl / .json / .csv / .parquet file, or a .tsv table with a header row."})
    validation_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file."})
    test_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file; its targets may be missing (prediction only)."})
    file_format: str = field(default="auto", metadata={"help": f"One of {', '.join(FILE_FORMATS)} (auto: by extension)."})
    source_column: str = field(default="source", metadata={"help": "Column of source texts."})
    target_column: str = field(default="target", metadata={"help": "Column of target texts."})
    source_lang: str | None = field(default=None, metadata={"help": "With --target_lang: read a 'translation' column of {language: text} dicts (run_translation.py data)."})
    target_lang: str | None = field(default=None, metadata={"help": "The target language key of the 'translation' column."})
    max_source_length: int | None = field(default=None, metadata={"help": "Longest source in tokens, <s> included (default: the model's max_position_embeddings; recurrent models: no limit). Longer sources are cut, with a warning."})
    max_target_length: int = field(default=128, metadata={"help": "Longest target in tokens, </s> included: labels are cut to it and generation stops there."})
    num_beams: int | None = field(default=None, metadata={"help": "Beams for generation in evaluation and prediction (default 1: greedy)."})
    bleu_tokenize: str = field(default="auto", metadata={"help": f"sacrebleu tokenizer: {', '.join(BLEU_TOKENIZERS)} (auto: zh for Chinese targets, else 13a)."})
    char_accuracy: str = field(default="auto", metadata={"help": "Report character accuracy: true, false, auto (pinyin_to_hanzi, or data whose targets have one character per source character or per space-separated source token)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation examples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only this many test examples."})
    validation_split_percentage: int = field(default=10, metadata={"help": "Validation share of train when there is none."})
    early_stopping_patience: int | None = field(default=2, metadata={"help": "Evaluations without improvement before stopping."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card."})
    error_copies: int = field(default=0, metadata={"help": "Correction data (english_typos, or your own pairs of typed and correct English text): add this many copies of each training target with fresh keyboard typos, drawn as english_typos' are (about half of the copies carry 1-3): new typos at every pass instead of the same ones each epoch. E.g. 8."})
    max_train_minutes: float | None = field(default=None, metadata={"help": "Stop training once this many minutes of it have passed (wall clock, checked after each optimizer step); the learning-rate schedule is still that of --max_steps / --num_train_epochs. all_results.json records train_steps, the steps run."})

    @property
    def builtin(self) -> bool:
        """The data is the built-in `--task_name` (no files, no Hub dataset)."""
        return self.dataset_name is None and not (self.train_file or self.validation_file or self.test_file)

    def __post_init__(self) -> None:
        if self.builtin and self.task_name not in TASKS:
            raise UsageError(f"--task_name {self.task_name!r} is unknown: choose one of {', '.join(TASKS)}.")
        if self.file_format not in FILE_FORMATS:
            raise UsageError(f"--file_format {self.file_format!r}: choose one of {', '.join(FILE_FORMATS)}.")
        if (self.source_lang is None) != (self.target_lang is None):
            raise UsageError("--source_lang and --target_lang go together (they pick the two sides of a 'translation' column).")
        if self.num_beams is not None and self.num_beams < 1:
            raise UsageError(f"--num_beams={self.num_beams} must be >= 1.")
        if self.max_target_length < 1:
            raise UsageError(f"--max_target_length={self.max_target_length} must be >= 1 (the target's </s> counts).")
        if self.max_source_length is not None and self.max_source_length < 2:
            raise UsageError(f"--max_source_length={self.max_source_length} must be >= 2 (<s> and one character).")
        if self.bleu_tokenize not in BLEU_TOKENIZERS:
            raise UsageError(f"--bleu_tokenize {self.bleu_tokenize!r}: choose one of {', '.join(BLEU_TOKENIZERS)}.")
        self.char_accuracy = self.char_accuracy.lower()
        if self.char_accuracy not in ("auto", "true", "false"):
            raise UsageError(f"--char_accuracy {self.char_accuracy!r}: use auto, true or false.")
        for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name}={getattr(self, name)} must be >= 1.")
        if self.error_copies < 0:
            raise UsageError(f"--error_copies={self.error_copies} must be 0 or more.")
        if self.error_copies and self.builtin and self.task_name != "english_typos":
            raise UsageError(f"--error_copies adds typed copies of the targets, for correction data: --task_name "
                             f"{self.task_name} is not (use english_typos, or your own files of typed / correct text).")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise UsageError(f"--max_train_minutes={self.max_train_minutes} must be > 0.")


class TrainingTimeBudget(TrainerCallback):
    """Ends training after `minutes` of it (wall clock from the first step's start, checked after each optimizer
    step), for comparisons at an equal time budget (benchmarks/seq2seq_tasks.py). The schedule is not shortened:
    a run cut by the budget ends with the learning rate where the schedule had it."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.start: float | None = None
        self.stopped_at: int | None = None  # the global step at which the budget ran out

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.start is not None and time.monotonic() - self.start >= self.seconds and not control.should_training_stop:
            control.should_training_stop = True
            self.stopped_at = state.global_step
            logger.warning("--max_train_minutes=%g: training stops after step %d of %d", self.seconds / 60,
                           state.global_step, state.max_steps)


class Seq2SeqCollator(DataCollatorForSeq2Seq):
    """DataCollatorForSeq2Seq that leaves `labels` out of a batch without targets: transformers 5.24 returns
    `labels=None`, which Seq2SeqTrainer.prediction_step takes for labels and runs the loss on (a test file of sources
    only would fail)."""

    def __call__(self, features, return_tensors=None):
        batch = super().__call__(features, return_tensors)
        if "labels" in batch and batch["labels"] is None:
            del batch["labels"]
        return batch


def same_length_pairs(dataset: datasets.Dataset) -> bool:
    """Whether every target has one character per source character, or per space-separated source token (the
    pinyin_to_hanzi layout): the tasks for which character accuracy means something."""
    if "target" not in dataset.column_names or dataset.num_rows == 0:
        return False
    return all(len(t) == len(s) or len(t) == len(s.split(" ")) for s, t in zip(dataset["source"], dataset["target"]))


def load_model(model_args: ModelArguments, train_texts, needs_trained: bool):
    """The model and tokenizer: from `--model_name_or_path` (a seq2seq folder continues; a causal char LM is a warm
    start whose new tensors are reported) or from scratch (a tokenizer trained on the training texts, a preset or
    `--config_name`, then `--config_overrides`). Returns (model, tokenizer, new tensor names or None)."""
    path = model_args.model_name_or_path
    if path:
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=model_args.trust_remote_code)
            tokenizer = load_char_tokenizer(model_args.tokenizer_name or path)
        except (OSError, ValueError) as err:
            raise UsageError(f"--model_name_or_path {path}: {err}") from err
        warm = not getattr(config, "is_encoder_decoder", False)
        if warm and needs_trained:
            raise UsageError(f"--model_name_or_path {path} is not a sequence-to-sequence model (it is {config.architectures}): "
                             "evaluating or predicting needs one trained with this script; pass --do_train to warm-start from it.")
        try:
            model, info = AutoModelForSeq2SeqLM.from_pretrained(
                path, trust_remote_code=model_args.trust_remote_code, output_loading_info=True, **model_args.overrides()
            )
        except (OSError, TypeError) as err:
            raise UsageError(f"--model_name_or_path {path}: {err}") from err
        check_vocab(tokenizer, model.config)
        return model, tokenizer, (info["missing_keys"] if warm else None)
    if model_args.tokenizer_name:
        tokenizer = load_char_tokenizer(model_args.tokenizer_name)
    else:
        tokenizer = train_char_tokenizer(train_texts(), min_frequency=model_args.min_char_frequency, max_vocab_size=model_args.max_vocab_size)
    config = build_config(model_args, len(tokenizer), tokenizer)
    try:
        return CharLMForConditionalGeneration(config), tokenizer, None
    except ValueError as err:  # a config the encoder-decoder cannot be built from
        raise UsageError(str(err)) from err


def write_predictions(output_dir: str, examples: datasets.Dataset, predictions: list[str], origin) -> None:
    """run_translation's generated_predictions.txt (one output a line; a line break inside an output is written as
    a space so the lines stay aligned with the examples) and predictions.jsonl (row, source, reference, prediction)."""
    targets = examples["target"] if "target" in examples.column_names else [None] * examples.num_rows
    with open(Path(output_dir) / "generated_predictions.txt", "w", encoding="utf-8") as txt, \
            open(Path(output_dir) / "predictions.jsonl", "w", encoding="utf-8") as jsonl:
        for source, target, row, prediction in zip(examples["source"], targets, examples[SOURCE_COLUMN], predictions):
            txt.write(" ".join(prediction.splitlines()) + "\n")
            record = {"source_row": origin.name(row), "source": source, "prediction": prediction}
            if target is not None:
                record["reference"] = target
            jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")


@torch.no_grad()
def generate_texts(model, tokenizer, sources: list[str], max_source_length: int | None, max_new_tokens: int, num_beams: int) -> list[str]:
    """The model's outputs for a few sources (the end-of-run sample), generated as in evaluation."""
    was_training = model.training
    model.eval()
    enc = tokenizer(sources, return_tensors="pt", padding=True, truncation=max_source_length is not None,
                    max_length=max_source_length, split_special_tokens=True, return_token_type_ids=False).to(model.device)
    ids = model.generate(**enc, max_new_tokens=max_new_tokens, num_beams=num_beams)
    if was_training:
        model.train()
    return tokenizer.batch_decode(ids, skip_special_tokens=True)


def main() -> None:
    model_args, data_args, training_args, choices = parse_finetune_args(
        (ModelArguments, DataArguments, Seq2SeqTrainingArguments),
        {**FINETUNE_DEFAULTS, "output_dir": "outputs/charlm-seq2seq", "metric_for_best_model": "chrf", "predict_with_generate": True},
    )
    setup_logging(training_args)
    for note in choices.notes:
        logger.info(note)
    if not training_args.predict_with_generate:
        if "metric_for_best_model" not in choices.given:  # without generated outputs only the loss is measured
            training_args.metric_for_best_model, training_args.greater_is_better = "loss", False
        elif training_args.metric_for_best_model not in ("loss", "eval_loss"):
            raise UsageError(f"--metric_for_best_model {training_args.metric_for_best_model} needs generated outputs: "
                             "keep --predict_with_generate, or use --metric_for_best_model loss.")
    resume = resolve_resume(training_args)

    raw, data_name, dataset_ids, origins = load_finetune_splits(
        data_args.task_name, data_args.dataset_name, data_args.dataset_config_name,
        {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file},
        data_args.file_format, data_args.validation_split_percentage, DATA_SEED, token_task=False,
    )
    do_train, do_eval, do_predict, evaluate_during_training, raw = choices.plan(training_args, raw, model_args.model_name_or_path)
    if do_predict and not training_args.predict_with_generate:
        raise UsageError("--do_predict writes generated outputs: keep --predict_with_generate.")
    if do_train:
        check_output_dir(training_args.output_dir, data_args.overwrite_output_dir, resume is not None)
    set_seed(training_args.seed)

    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_test_samples}
    raw = limit_splits(raw, limits, DATA_SEED, sample=False)
    pairs = seq2seq_pairs(raw, origins, data_args.source_column, data_args.target_column, data_args.source_lang, data_args.target_lang)
    if do_train and data_args.error_copies:
        before = pairs["train"].num_rows
        pairs["train"] = with_fresh_errors(pairs["train"], data_args.error_copies, language="en")
        logger.info(f"--error_copies {data_args.error_copies}: {before} training pairs -> {pairs['train'].num_rows}")

    model, tokenizer, new_tensors = load_model(
        model_args, lambda: list(pairs["train"]["source"]) + list(pairs["train"]["target"]), needs_trained=not do_train
    )
    if new_tensors is not None:
        logger.info("warm start from the causal LM %s: %d tensors are new and trained from their initialisation: %s",
                    model_args.model_name_or_path, len(new_tensors), ", ".join(new_tensors))
    # a transformer has positions up to max_position_embeddings on both sides; a recurrent model has no limit
    limit = model.config.max_position_embeddings if model.config.backbone == "transformer" else None
    max_source = data_args.max_source_length or limit
    max_target = data_args.max_target_length
    for flag, value in (("--max_source_length", max_source), ("--max_target_length", max_target)):
        if limit is not None and value is not None and value > limit:
            raise UsageError(f"{flag}={value} is larger than the model's max_position_embeddings={limit}.")
    tokenizer.model_max_length = max_source or 1_000_000

    with training_args.main_process_first(desc="tokenizing"):
        for split, d in pairs.items():
            cut_sources = count_cut(d, "source", tokenizer, max_source) if max_source else 0
            cut_targets = count_cut(d, "target", tokenizer, max_target) if "target" in d.column_names else 0
            if cut_sources:
                logger.warning("%d of %d %s sources are longer than %d tokens (<s> included) and are cut to that length",
                               cut_sources, d.num_rows, split, max_source)
            if cut_targets:
                what = "their labels are cut" if split == "train" else "the loss sees them cut and generation stops there; they are scored whole"
                logger.warning("%d of %d %s targets are longer than %d tokens (</s> included): %s",
                               cut_targets, d.num_rows, split, max_target, what)
        encoded = {
            split: d.map(encode_seq2seq, batched=True, remove_columns=d.column_names, desc=f"Tokenizing ({split})",
                         fn_kwargs=dict(tokenizer=tokenizer, max_source_length=max_source, max_target_length=max_target))
            for split, d in pairs.items()
        }

    if data_args.char_accuracy == "auto":
        scored = [d for s, d in pairs.items() if s != "train" and "target" in d.column_names]
        char_accuracy = (data_args.builtin and data_args.task_name == "pinyin_to_hanzi") or (bool(scored) and all(same_length_pairs(d) for d in scored))
    else:
        char_accuracy = data_args.char_accuracy == "true"

    def metrics_for(split: str):
        if not training_args.predict_with_generate or "target" not in pairs[split].column_names:
            return None
        references = pairs[split]["target"]
        if data_args.bleu_tokenize != "auto":
            tokenize = data_args.bleu_tokenize
        elif data_args.target_lang is not None:
            tokenize = "zh" if data_args.target_lang.lower().startswith("zh") else "13a"
        else:
            tokenize = bleu_tokenize_for(references)
        return seq2seq_compute_metrics(tokenizer, references, tokenize=tokenize, char_accuracy=char_accuracy)

    num_beams = data_args.num_beams or training_args.generation_num_beams or 1
    training_args.generation_num_beams = num_beams
    training_args.generation_max_length = max_target + 1  # the decoder's <s> counts in generate's max_length
    # the saved model then generates as it was evaluated (generate() reads generation_config.json)
    model.generation_config.max_length = training_args.generation_max_length
    model.generation_config.num_beams = num_beams
    if not do_train:  # the Trainer only evaluates and predicts: no evaluation schedule, no best model to load
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
    if do_train and data_args.builtin and data_args.task_name == "english_typos":  # a corrector, not a translator (the demo app's tab)
        model.config.finetuning_task = "text-correction"
    callbacks = []
    if evaluate_during_training and data_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))
    if do_train and data_args.max_train_minutes is not None:
        callbacks.append(TrainingTimeBudget(data_args.max_train_minutes))
    trainer = CharLMSeq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=encoded.get("train"),
        eval_dataset=encoded.get("validation"),
        processing_class=tokenizer,
        # pads sources with <pad>, labels with -100, and builds decoder_input_ids from the labels (<s> + shifted)
        data_collator=Seq2SeqCollator(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=metrics_for("validation") if "validation" in pairs else None,
        callbacks=callbacks,
    )
    push = take_push_flag(training_args) if do_train else False
    metrics = train_then_evaluate(trainer, do_train, resume, encoded["validation"] if do_eval else None)
    if do_train:
        metrics["train_samples"] = pairs["train"].num_rows  # as transformers' run_*.py scripts record it (copies included)
        metrics["train_steps"] = trainer.state.global_step  # fewer than max_steps when a time budget or early stopping ended it
    predictions = None
    if do_predict:
        trainer.compute_metrics = metrics_for("test")
        output = trainer.predict(encoded["test"], metric_key_prefix="test")
        labelled = "target" in pairs["test"].column_names
        metrics.update(output.metrics if labelled else {k: v for k, v in output.metrics.items() if k != "test_loss"})
        ids = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        ids = ids.clip(min=0)  # -100 pads between batches of different lengths
        predictions = tokenizer.batch_decode(ids, skip_special_tokens=True)
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)

    if trainer.is_world_process_zero():
        sample_split = "test" if "test" in pairs else "validation" if "validation" in pairs else "train"
        shown = pairs[sample_split].select(range(min(SHOWN, pairs[sample_split].num_rows)))
        if predictions is not None:
            write_predictions(training_args.output_dir, pairs["test"], predictions, origins["test"])
            outputs = predictions[:SHOWN]
        else:
            outputs = generate_texts(trainer.model, tokenizer, list(shown["source"]), max_source, max_target, num_beams)
        references = list(shown["target"]) if "target" in shown.column_names else [None] * shown.num_rows
        if do_train:
            if data_args.language:
                language = data_args.language.split(",")
            elif data_args.source_lang:
                language = list(dict.fromkeys([data_args.source_lang, data_args.target_lang]))
            else:
                builtin = not (data_args.train_file or data_args.dataset_name)
                language = TASK_LANGUAGES.get(data_args.task_name, []) if builtin else []
            config = trainer.model.config
            write_model_card(
                training_args.output_dir,
                task="seq2seq",
                model_name=Path(training_args.output_dir).name,
                hyperparameters=card_hyperparameters(
                    trainer.model, training_args,
                    task=data_args.task_name if not (data_args.train_file or data_args.dataset_name) else data_name,
                    max_source_length=max_source or "no limit", max_target_length=max_target, num_beams=num_beams,
                    **({"error_copies": data_args.error_copies} if data_args.error_copies else {}),
                    **({"attention_type": config.attention_type} if config.backbone != "transformer" else {}),
                    started_from=(f"{model_args.model_name_or_path} (warm start from a causal LM, {len(new_tensors)} new tensors)"
                                  if new_tensors is not None else model_args.model_name_or_path or f"scratch ({model_args.preset} preset)"),
                    epochs_run=round(trainer.state.epoch or 0, 2),
                ),
                results={k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))},
                datasets=dataset_ids,
                language=language,
                base_model=hub_base_model(model_args.model_name_or_path),
                dataset_name=data_name,
                extra={"example": shown["source"][0][:60], "sample_source": shown["source"][0][:80],
                       "sample_reference": (references[0] or "")[:80], "sample_prediction": outputs[0][:80]},
            )
        for source, reference, prediction in zip(shown["source"], references, outputs):
            print(f"\nsource:     {source[:200]}")
            if reference is not None:
                print(f"reference:  {reference[:200]}")
            print(f"prediction: {prediction[:200]}")
        keys = ("bleu", "chrf", "cer", "char_accuracy", "exact_match")
        summary = {k: round(float(v), 4) for k, v in metrics.items() if k.split("_", 1)[-1] in keys and k.split("_", 1)[0] in ("eval", "test")}
        print(json.dumps(summary))
        if push:
            push_output(training_args)


if __name__ == "__main__":
    run_main(main)
