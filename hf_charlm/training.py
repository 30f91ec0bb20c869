"""What the training scripts share: clear usage errors (exit status 2), output-dir checks, loading text / labelled
data from the built-in corpora, local files or the Hub, the model-building arguments, and sample generation.

May import the package, `datasets`, `transformers` and `torch`.
"""

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import PreTrainedTokenizerBase, TrainingArguments

from .configuration_charlm import BACKBONES, CharLMConfig
from .presets import PRESETS

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


class UsageError(ValueError):
    """Bad input from the command line: reported as one clear line, exit status 2, nothing written."""


def run_main(main: Callable[[], object]) -> None:
    """Runs a script's `main`, turning a `UsageError` (and a bad argument) into a message and exit status 2."""
    try:
        main()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def check_output_dir(output_dir: str, overwrite: bool, resuming: bool) -> None:
    """Refuses to train into a folder that already holds another model, unless asked to overwrite or resume."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {output_dir} exists and is not a directory.")
    if resuming or overwrite or not path.is_dir():
        return
    held = [name for name in MODEL_FILES if (path / name).exists()]
    checkpoints = sorted(p.name for p in path.glob("checkpoint-*"))
    if held or checkpoints:
        what = ", ".join(held + checkpoints[:3])
        raise UsageError(
            f"--output_dir {output_dir} already holds a model ({what}). Pass --overwrite_output_dir to replace it, "
            "--resume_from_checkpoint to continue it, or choose another --output_dir."
        )


def check_file(path: str | None, flag: str) -> None:
    if path is None:
        return
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{flag} {path}: no such file.")
    if p.stat().st_size == 0:
        raise UsageError(f"{flag} {path}: the file is empty.")
    if p.suffix.lower() not in FILE_BUILDERS:
        raise UsageError(f"{flag} {path}: unsupported extension {p.suffix!r}; use one of {', '.join(FILE_BUILDERS)}.")


def load_files(train_file: str | None, validation_file: str | None, test_file: str | None = None) -> datasets.DatasetDict:
    """Loads local files (.txt: one example per line; .jsonl/.json, .csv, .parquet: columns) as a DatasetDict."""
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    for split, path in files.items():
        check_file(path, f"--{split}_file")
    files = {k: v for k, v in files.items() if v is not None}
    builders = {FILE_BUILDERS[Path(p).suffix.lower()] for p in files.values()}
    if len(builders) > 1:
        raise UsageError(f"The data files are of different kinds ({', '.join(sorted(builders))}); use one format.")
    try:
        return datasets.load_dataset(builders.pop(), data_files=files)
    except Exception as err:  # a malformed file: say which and why
        raise UsageError(f"Could not read {', '.join(files.values())}: {err}") from err


def load_hub_dataset(name: str, config_name: str | None) -> datasets.DatasetDict:
    try:
        return datasets.load_dataset(name, config_name)
    except Exception as err:
        raise UsageError(f"Could not load dataset {name!r} (config {config_name!r}): {err}") from err


def ensure_validation(ds: datasets.DatasetDict, percent: int, seed: int) -> datasets.DatasetDict:
    """Carves a validation split out of train (seeded) when the data has none."""
    if "validation" in ds:
        return ds
    if "train" not in ds:
        raise UsageError(f"The dataset has no 'train' split (it has {', '.join(ds)}).")
    if not 0 < percent < 100:
        raise UsageError(f"--validation_split_percentage={percent} must be between 1 and 99.")
    parts = ds["train"].train_test_split(test_size=percent / 100, seed=seed)
    out = datasets.DatasetDict({"train": parts["train"], "validation": parts["test"]})
    if "test" in ds:
        out["test"] = ds["test"]
    return out


def check_columns(ds: datasets.DatasetDict, columns: dict[str, str]) -> None:
    """`columns` maps a flag to the column it names; every split must have it."""
    for split, d in ds.items():
        for flag, column in columns.items():
            if column not in d.column_names:
                raise UsageError(
                    f"{flag}={column!r}: the {split} split has no such column; its columns are {d.column_names}."
                )


def text_only(ds: datasets.DatasetDict, text_column: str) -> datasets.DatasetDict:
    """Keeps the text column (renamed `text`) and drops empty texts; refuses a split left with no text."""
    check_columns(ds, {"--text_column": text_column})
    out = {}
    for split, d in ds.items():
        d = d.select_columns([text_column])
        if text_column != "text":
            d = d.rename_column(text_column, "text")
        d = d.filter(lambda batch: [isinstance(t, str) and t.strip() != "" for t in batch["text"]], batched=True)
        if d.num_rows == 0:
            raise UsageError(f"The {split} split has no text: every value of column {text_column!r} is empty.")
        out[split] = d
    return datasets.DatasetDict(out)


@dataclass
class ModelArguments:
    """How to get the model: continue a checkpoint, a config file, or a preset size and backbone."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A model dir or Hub id to start from (continues pretraining / fine-tunes it)."}
    )
    config_name: str | None = field(default=None, metadata={"help": "A config.json (or dir / Hub id) to train from scratch."})
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "A tokenizer dir or Hub id; by default one is trained on the training text."}
    )
    preset: str = field(default="tiny", metadata={"help": f"Model size when training from scratch: {', '.join(PRESETS)}."})
    backbone: str = field(default="transformer", metadata={"help": f"One of {', '.join(BACKBONES)}."})
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Config fields to override, e.g. 'hidden_size=256,num_hidden_layers=6,hidden_dropout_prob=0.1'."},
    )
    min_char_frequency: int = field(default=1, metadata={"help": "Tokenizer training: keep characters seen this often."})
    max_vocab_size: int | None = field(default=None, metadata={"help": "Tokenizer training: at most this many tokens."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow custom code from a Hub model."})

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise UsageError(f"--backbone {self.backbone!r} is unknown: choose one of {', '.join(BACKBONES)}.")
        if self.preset not in PRESETS:
            raise UsageError(f"--preset {self.preset!r} is unknown: choose one of {', '.join(PRESETS)}.")

    def overrides(self) -> dict:
        """`config_overrides` parsed to typed values (JSON literals where they parse, else strings)."""
        if not self.config_overrides:
            return {}
        out = {}
        for item in self.config_overrides.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--config_overrides: {item!r} is not of the form key=value.")
            try:
                out[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                out[key.strip()] = value
        return out


def build_config(args: ModelArguments, vocab_size: int, tokenizer: PreTrainedTokenizerBase, **fields) -> CharLMConfig:
    """The config for a model trained from scratch: `--config_name`, or a preset, then overrides."""
    special = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    try:
        if args.config_name:
            config = CharLMConfig.from_pretrained(args.config_name)
            for key, value in {**special, "vocab_size": vocab_size, **fields, **args.overrides()}.items():
                setattr(config, key, value)
            config._check()
            return config
        from .presets import config_from_preset

        return config_from_preset(args.preset, backbone=args.backbone, vocab_size=vocab_size, **special, **fields, **args.overrides())
    except (ValueError, OSError, TypeError) as err:
        raise UsageError(str(err)) from err


def is_main_process(training_args: TrainingArguments) -> bool:
    return training_args.process_index == 0


def setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, stream=sys.stdout)
    level = training_args.get_process_log_level()
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(min(level, logging.WARNING))


@torch.no_grad()
def sample_generations(
    model,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    max_new_tokens: int = 60,
    temperature: float = 0.8,
    top_k: int = 50,
    seed: int = 0,
) -> list[str]:
    """A few sampled continuations (seeded), for the end-of-training printout and the model card."""
    was_training = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    for prompt in prompts:
        torch.manual_seed(seed)
        enc = tokenizer(prompt, return_tensors="pt").to(device)
        room = getattr(model.config, "max_position_embeddings", 10**9) - enc.input_ids.shape[1]
        if model.config.backbone == "transformer":
            new = max(0, min(max_new_tokens, room))
        else:
            new = max_new_tokens
        ids = model.generate(
            **enc, do_sample=True, temperature=temperature, top_k=top_k, max_new_tokens=new,
            pad_token_id=tokenizer.pad_token_id,
        )
        out.append(tokenizer.decode(ids[0], skip_special_tokens=True))
    if was_training:
        model.train()
    return out


def disable_progress_bars_when_not_tty(training_args: TrainingArguments) -> None:
    if not sys.stdout.isatty() and os.environ.get("HF_CHARLM_PROGRESS") != "1":
        training_args.disable_tqdm = True
