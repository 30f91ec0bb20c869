"""Pretrain a character-level language model with the HF Trainer.

With no arguments it trains the `tiny` transformer on the built-in People's Daily text (2 CPU cores, < 10 min),
then prints validation bits per character and sample generations:

    python scripts/pretrain.py

A masked char model (the starting point for NER, word segmentation and sentiment), on both built-in corpora:

    python scripts/pretrain.py --objective mlm --masking span --builtin peoples_daily_text,reviews_text \
        --output_dir outputs/charlm-mlm

Any other data / size (arguments as in transformers' run_clm.py; a single .json file works as the whole config):

    python scripts/pretrain.py --train_file my.txt --backbone lstm --preset small --block_size 256 \
        --output_dir outputs/my-lstm --max_steps 20000 --per_device_train_batch_size 64
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

# Only what parsing the command line needs is imported up front (`--help` and a usage error answer without
# loading datasets, the Trainer or the model); the rest is imported in main(), once the arguments are known good.
from transformers import TrainingArguments

from hf_charlm.collators import MASKING_SCHEMES
from hf_charlm.training import DATA_SEED, ModelArguments, UsageError, parse_script_args, run_main

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger("pretrain")

TEXT_BUILTINS = ("peoples_daily_text", "reviews_text")
OBJECTIVES = ("clm", "mlm")
# The seed's recipe, sized so that the no-argument run fits 10 minutes on 2 CPU cores (see README).
TRAINING_DEFAULTS = dict(
    output_dir="outputs/charlm-pretrain",
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    learning_rate=3e-3,
    weight_decay=0.1,
    adam_beta2=0.99,
    warmup_steps=50,
    lr_scheduler_type="cosine",
    max_grad_norm=1.0,
    max_steps=900,
    eval_strategy="steps",
    eval_steps=300,
    save_strategy="steps",
    save_steps=300,
    save_total_limit=2,
    logging_steps=50,
    seed=42,
    report_to="none",
    dataloader_num_workers=0,
)


@dataclass
class DataArguments:
    builtin: str | None = field(
        default="peoples_daily_text",
        metadata={"help": f"Built-in corpus ({', '.join(TEXT_BUILTINS)}), or several separated by commas (their "
                  "train and validation splits are concatenated); ignored with --dataset_name / --train_file."},
    )
    objective: str = field(
        default="clm",
        metadata={"help": "'clm': next-character prediction (CharLMForCausalLM, generates text); 'mlm': masked "
                  "characters restored from both sides (CharLMForMaskedLM, the start for classifiers)."},
    )
    masking: str = field(
        default="char",
        metadata={"help": f"--objective mlm: what is masked together, one of {', '.join(MASKING_SCHEMES)}: single "
                  "characters, spans of geometric length (--mean_span_length), or whole words of the People's Daily "
                  "segmentation train split's lexicon."},
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "--objective mlm: share of characters masked."})
    reverse_text: bool = field(
        default=False,
        metadata={"help": "Read every text right to left (train and validation): with --objective clm, a backward "
                  "model, e.g. the right-context rescorer of hf_charlm.pinyin.PinyinDecoder."},
    )
    mean_span_length: float = field(default=3.0, metadata={"help": "--masking span: mean span length in characters."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset (needs network)."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    text_column: str = field(default="text", metadata={"help": "The column holding the text."})
    train_file: str | None = field(default=None, metadata={"help": ".txt (one text per line), .jsonl, .csv or .parquet"})
    validation_file: str | None = field(default=None, metadata={"help": "Same formats as --train_file."})
    sample_by: str = field(
        default="line", metadata={"help": ".txt files: one text per 'line', 'paragraph', or the whole 'document'."}
    )
    validation_split_percentage: int = field(default=5, metadata={"help": "Validation share of train when there is no validation split."})
    block_size: int = field(default=128, metadata={"help": "Training block length in tokens (<= the model's positions)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training texts."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation texts."})
    max_eval_blocks_during_training: int = field(
        default=256,
        metadata={"help": "Evaluations during training (--eval_steps, early stopping, best model) score the first N "
                  "validation blocks, the same ones each time; 0 = all. The evaluation at the end scores all the "
                  "validation text, once."},
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without a better eval_loss (keeps the best)."}
    )
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    sample_prompts: str | None = field(default=None, metadata={"help": "Prompts for the final samples, separated by '|'."})
    sample_max_new_tokens: int = field(default=60, metadata={"help": "Characters per sample."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card, comma-separated."})

    def __post_init__(self) -> None:
        if self.dataset_name is None and self.train_file is None:
            for name in (self.builtin or "").split(","):
                if name not in TEXT_BUILTINS:
                    raise UsageError(f"--builtin {name!r} is not a text corpus: choose from {', '.join(TEXT_BUILTINS)}.")
        if self.objective not in OBJECTIVES:
            raise UsageError(f"--objective {self.objective!r} is invalid: choose one of {', '.join(OBJECTIVES)}.")
        if self.masking not in MASKING_SCHEMES:
            raise UsageError(f"--masking {self.masking!r} is invalid: choose one of {', '.join(MASKING_SCHEMES)}.")
        if not 0.0 < self.mlm_probability < 1.0:
            raise UsageError(f"--mlm_probability={self.mlm_probability} must be in (0, 1).")
        if self.mean_span_length < 1.0:
            raise UsageError(f"--mean_span_length={self.mean_span_length} must be >= 1.")
        if self.block_size < 2:
            raise UsageError(f"--block_size={self.block_size} must be at least 2.")
        for name in ("max_train_samples", "max_eval_samples", "preprocessing_num_workers", "early_stopping_patience",
                     "sample_max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name}={getattr(self, name)} must be >= 1.")
        if self.max_eval_blocks_during_training < 0:
            raise UsageError(f"--max_eval_blocks_during_training={self.max_eval_blocks_during_training} must be >= 0 (0: all).")


def load_text(data_args: DataArguments, seed: int) -> tuple[datasets.DatasetDict, str, list[str]]:
    """The train / validation texts, a name for the model card and the Hub dataset ids."""
    import datasets

    from hf_charlm.training import limit_splits, load_splits, text_only

    builtins = (data_args.builtin or "").split(",") if not (data_args.dataset_name or data_args.train_file) else [data_args.builtin]
    parts, names = [], []
    for builtin in builtins:
        raw, name, ids = load_splits(
            builtin, data_args.dataset_name, data_args.dataset_config_name, data_args.train_file,
            data_args.validation_file, None, data_args.validation_split_percentage, seed, sample_by=data_args.sample_by,
        )
        parts.append(text_only(datasets.DatasetDict({k: v for k, v in raw.items() if k in ("train", "validation")}),
                               data_args.text_column))
        names.append(name)
    texts = datasets.DatasetDict(
        {split: datasets.concatenate_datasets([p[split] for p in parts]) for split in ("train", "validation")}
    )
    name = " + ".join(names)
    if data_args.reverse_text:
        texts = texts.map(lambda batch: {"text": [t[::-1] for t in batch["text"]]}, batched=True)
        name += ", reversed"
    return limit_splits(texts, {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}, seed, sample=False), name, ids


def masked_accuracy(eval_pred) -> dict[str, float]:
    """The share of masked characters (labels other than -100) the model restores exactly."""
    predictions, labels = eval_pred.predictions, eval_pred.label_ids
    scored = labels != -100
    return {"masked_accuracy": float((predictions[scored] == labels[scored]).mean())}


def text_source(data_args: DataArguments, split: str) -> str:
    """Where a split's text came from, for error messages."""
    def file_size(path: str) -> str:
        return f"{path} ({Path(path).stat().st_size:,} bytes)"

    if split == "validation" and data_args.validation_file:
        return f"--validation_file {file_size(data_args.validation_file)}"
    if data_args.train_file:
        part = "" if split == "train" else f" (the {data_args.validation_split_percentage}% set aside for validation)"
        return f"--train_file {file_size(data_args.train_file)}{part}"
    if data_args.dataset_name:
        return f"the {split} split of --dataset_name {data_args.dataset_name}"
    return f"the {split} split of --builtin {data_args.builtin}"


def main() -> None:
    model_args, data_args, training_args = parse_script_args((ModelArguments, DataArguments, TrainingArguments), TRAINING_DEFAULTS)
    import datasets
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        EarlyStoppingCallback,
        default_data_collator,
        set_seed,
    )

    from hf_charlm import CharLMForCausalLM, CharLMForMaskedLM, train_char_tokenizer
    from hf_charlm.collators import CharLMMaskingCollator
    from hf_charlm.data import cws_lexicon, tokenize_and_pack
    from hf_charlm.hub import write_model_card
    from hf_charlm.lm_eval import evaluate_lm, evaluate_masked_lm
    from hf_charlm.trainers import CharLMTrainer
    from hf_charlm.training import (
        argmax_logits,
        build_config,
        check_output_dir,
        check_vocab,
        load_char_tokenizer,
        push_output,
        resolve_resume,
        sample_fill_masks,
        sample_generations,
        save_training_curves,
        setup_logging,
        take_push_flag,
    )

    setup_logging(training_args)
    resume = resolve_resume(training_args)
    check_output_dir(training_args.output_dir, data_args.overwrite_output_dir, resume is not None)
    set_seed(training_args.seed)

    texts, data_name, dataset_ids = load_text(data_args, DATA_SEED)
    logger.info("train texts: %d, validation texts: %d", texts["train"].num_rows, texts["validation"].num_rows)

    # tokenizer: loaded, or trained on the training text only
    if model_args.tokenizer_name or model_args.model_name_or_path:
        tokenizer = load_char_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path)
    else:
        tokenizer = train_char_tokenizer(
            texts["train"]["text"], min_frequency=model_args.min_char_frequency, max_vocab_size=model_args.max_vocab_size
        )
    logger.info("vocabulary: %d tokens", len(tokenizer))

    mlm = data_args.objective == "mlm"
    if model_args.model_name_or_path:
        auto = AutoModelForMaskedLM if mlm else AutoModelForCausalLM
        model = auto.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code)
    else:
        config = build_config(model_args, len(tokenizer), tokenizer)
        if mlm and config.is_recurrent and not config.bidirectional:
            raise UsageError("--objective mlm needs right context: drop bidirectional=False from --config_overrides.")
        if not mlm and config.bigram_buckets:
            raise UsageError("Bigram features (bigram_buckets in --config_overrides) are for --objective mlm: a causal "
                             "LM's cached generation step does not see the previous character.")
        model = (CharLMForMaskedLM if mlm else CharLMForCausalLM)(config)
    config = model.config
    check_vocab(tokenizer, config)
    if config.backbone == "transformer" and data_args.block_size > config.max_position_embeddings:
        raise UsageError(
            f"--block_size={data_args.block_size} is larger than the model's max_position_embeddings="
            f"{config.max_position_embeddings}; lower it or raise max_position_embeddings (--config_overrides)."
        )
    tokenizer.model_max_length = config.max_position_embeddings if config.backbone == "transformer" else int(1e6)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("model: %s backbone, %.2fM parameters", config.backbone, n_params / 1e6)

    with training_args.main_process_first(desc="tokenizing and packing"):
        lm_data = datasets.DatasetDict()
        for split, d in texts.items():
            try:
                # torch format: the collator stacks ready tensors instead of converting lists each step
                lm_data[split] = tokenize_and_pack(
                    d, tokenizer, data_args.block_size, "text", data_args.preprocessing_num_workers
                ).with_format("torch")
            except ValueError as err:
                if "0 blocks" not in str(err):
                    raise UsageError(str(err)) from err
                raise UsageError(f"{text_source(data_args, split)}: too short for one block: {err}. Use more text or "
                                 "a smaller --block_size.") from err
    logger.info("blocks of %d tokens: train %d, validation %d", data_args.block_size, len(lm_data["train"]), len(lm_data["validation"]))
    collator, compute_metrics, preprocess_logits = default_data_collator, None, None
    if mlm:
        lexicon = cws_lexicon() if data_args.masking == "word" else None
        masking = dict(tokenizer=tokenizer, mlm_probability=data_args.mlm_probability, scheme=data_args.masking,
                       mean_span_length=data_args.mean_span_length, lexicon=lexicon)
        collator = CharLMMaskingCollator(**masking, seed=training_args.seed)
        # the validation blocks are masked once, with a fixed seed: every evaluation scores the same masks
        fixed = CharLMMaskingCollator(**masking, seed=training_args.seed + 1)
        blocks = [{"input_ids": ids} for ids in lm_data["validation"].with_format(None)["input_ids"]]
        masked = fixed(blocks)  # blocks all have block_size tokens: one batch, no padding
        lm_data["validation"] = datasets.Dataset.from_dict({k: v.tolist() for k, v in masked.items()}).with_format("torch")
        preprocess_logits = argmax_logits  # keeps evaluation memory at B x T
        compute_metrics = masked_accuracy
    eval_blocks = lm_data["validation"]
    if 0 < data_args.max_eval_blocks_during_training < len(eval_blocks):
        eval_blocks = eval_blocks.select(range(data_args.max_eval_blocks_during_training))

    push = take_push_flag(training_args)
    callbacks = []
    if data_args.early_stopping_patience:
        training_args.load_best_model_at_end = True
        training_args.metric_for_best_model = "eval_loss"
        training_args.greater_is_better = False
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))

    trainer = CharLMTrainer(
        model=model,
        args=training_args,
        train_dataset=lm_data["train"],
        eval_dataset=eval_blocks,
        processing_class=tokenizer,
        data_collator=collator,
        callbacks=callbacks,
        compute_metrics=compute_metrics,
        preprocess_logits_for_metrics=preprocess_logits,
    )
    start = time.time()
    train_result = trainer.train(resume_from_checkpoint=resume)
    train_seconds = time.time() - start
    trainer.save_model()
    save_training_curves(trainer)  # trainer_state.json and training_curves.png, shown in the model card
    metrics = dict(train_result.metrics)
    metrics["train_tokens_per_second"] = metrics.get("train_samples_per_second", 0.0) * data_args.block_size
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)

    if trainer.is_world_process_zero():
        # One full evaluation at the end (not the Trainer's evaluate() and then this): the saved folder, reloaded
        # whole (FSDP / DeepSpeed keep only shards in trainer.model), scored in sliding windows over all the
        # validation text. eval_loss is that pass's cross-entropy per predicted token; the forward LM only for a
        # bidirectional RNN (whose Trainer loss during training averages both directions).
        start = time.time()
        if mlm:
            final = CharLMForMaskedLM.from_pretrained(training_args.output_dir).to(training_args.device)
            scores = evaluate_masked_lm(final, lm_data["validation"], batch_size=training_args.per_device_eval_batch_size)
            eval_metrics = {
                "epoch": trainer.state.epoch,
                "eval_loss": scores["nats_per_masked_char"],
                "eval_masked_bits_per_char": scores["masked_bits_per_char"],
                "eval_masked_accuracy": scores["masked_accuracy"],
                "eval_masked_chars": scores["masked_chars"],
            }
        else:
            final = CharLMForCausalLM.from_pretrained(training_args.output_dir).to(training_args.device)
            scores = evaluate_lm(
                final, tokenizer, texts["validation"]["text"], block_size=data_args.block_size,
                batch_size=training_args.per_device_eval_batch_size, progress=False if training_args.disable_tqdm else None,
            )
            eval_metrics = {
                "epoch": trainer.state.epoch,
                "eval_loss": scores["nats_per_token"],
                **{f"eval_{k}": scores[k] for k in ("bits_per_char", "perplexity", "nats_per_char")},
            }
        eval_metrics["eval_runtime"] = round(time.time() - start, 4)
        eval_metrics["eval_samples"] = texts["validation"].num_rows  # texts, as --max_eval_samples counts them
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)

        if mlm:
            samples = sample_fill_masks(final, tokenizer, [t[:40] for t in texts["validation"]["text"][:3]],
                                        share=data_args.mlm_probability, seed=training_args.seed)
        else:
            prompts = (
                data_args.sample_prompts.split("|")
                if data_args.sample_prompts
                else (["中国", "北京市", "经济发展"] if data_args.builtin == "peoples_daily_text" and not (data_args.train_file or data_args.dataset_name)
                      else [t[:12] for t in texts["validation"]["text"][:3]])
            )
            samples = sample_generations(final, tokenizer, prompts, max_new_tokens=data_args.sample_max_new_tokens, seed=training_args.seed)
        language = (
            data_args.language.split(",") if data_args.language
            else (["zh"] if not (data_args.train_file or data_args.dataset_name) else [])
        )
        hyper = {
            "backbone": config.backbone,
            "parameters": f"{n_params / 1e6:.2f}M",
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads if config.backbone == "transformer" else "-",
            "vocab_size": config.vocab_size,
            "block_size": data_args.block_size,
            "per_device_train_batch_size": training_args.per_device_train_batch_size,
            "world_size": training_args.world_size,
            "learning_rate": training_args.learning_rate,
            "lr_scheduler_type": str(training_args.lr_scheduler_type.value if hasattr(training_args.lr_scheduler_type, "value") else training_args.lr_scheduler_type),
            "warmup_steps": training_args.warmup_steps,
            "weight_decay": training_args.weight_decay,
            "max_grad_norm": training_args.max_grad_norm,
            "steps": trainer.state.global_step,
            "seed": training_args.seed,
            "training_time_seconds": round(train_seconds, 1),
            "objective": data_args.objective,
        }
        if mlm:
            hyper.update(masking=data_args.masking, mlm_probability=data_args.mlm_probability)
        write_model_card(
            training_args.output_dir,
            task="masked_lm" if mlm else "causal_lm",
            model_name=Path(training_args.output_dir).name,
            hyperparameters=hyper,
            results={k: v for k, v in eval_metrics.items()},
            datasets=dataset_ids,
            language=language,
            dataset_name=data_name,
            extra={("sample restorations" if mlm else "sample generations"): " / ".join(s.replace("\n", " ") for s in samples),
                   **({"masking": f"{data_args.masking} masking of {data_args.mlm_probability:.0%} of the characters"} if mlm else {})},
        )
        if mlm:
            print(f"\nvalidation: loss {eval_metrics['eval_loss']:.4f} nats per masked char, "
                  f"{eval_metrics['eval_masked_bits_per_char']:.4f} bits per masked char, "
                  f"masked accuracy {eval_metrics['eval_masked_accuracy']:.4f} ({eval_metrics['eval_masked_chars']} chars)")
        else:
            print(f"\nvalidation: loss {eval_metrics['eval_loss']:.4f} nats/token, "
                  f"{eval_metrics['eval_bits_per_char']:.4f} bits/char, perplexity {eval_metrics['eval_perplexity']:.2f}")
        print(f"trained {trainer.state.global_step} steps in {train_seconds:.0f} s; model saved to {training_args.output_dir}\n")
        print("restorations ([model's choice] at masked characters):" if mlm else "samples (temperature 0.8, top-k 50):")
        for text in samples:
            print(f"  {text!r}")

    if push and trainer.is_world_process_zero():
        push_output(training_args)


if __name__ == "__main__":
    run_main(main)
