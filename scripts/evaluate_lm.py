"""Bits per character of a char LM on a text file or dataset (sliding window / carried recurrent state).

A `.txt` file is scored whole, as one text: its line breaks are characters like any other, and the token stream
is cut into overlapping windows of --block_size tokens every --stride tokens (transformer) or into chunks with the
recurrent state carried across (LSTM / GRU); a table file (.jsonl / .csv / .parquet) gives one text per row. A
progress bar shows on a terminal (--disable_tqdm true hides it, --disable_tqdm false forces it).

    python scripts/evaluate_lm.py --model outputs/charlm-pretrain --builtin peoples_daily_text --split validation
    python scripts/evaluate_lm.py --model outputs/charlm-pretrain --file ../shared/data/tinyshakespeare.txt
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoModelForCausalLM, HfArgumentParser

import hf_charlm  # noqa: F401  (registers the Auto classes)
from hf_charlm.data import load_builtin
from hf_charlm.lm_eval import evaluate_lm, window_plan
from hf_charlm.training import UsageError, check_columns, check_file, load_char_tokenizer, load_files, run_main


@dataclass
class EvalArguments:
    model: str = field(default="outputs/charlm-pretrain", metadata={"help": "A model folder or Hub id."})
    file: str | None = field(
        default=None,
        metadata={"help": "A .txt file, scored whole as one text (line breaks count as characters) in overlapping "
                  "windows of --block_size tokens every --stride tokens (RNN: chunks, state carried); or a "
                  ".jsonl/.csv/.parquet file, one text per row of --text_column."},
    )
    builtin: str | None = field(default=None, metadata={"help": "A built-in text corpus, e.g. peoples_daily_text."})
    split: str = field(default="validation", metadata={"help": "Split of --builtin to evaluate."})
    text_column: str = field(default="text", metadata={"help": "Text column of a table file."})
    block_size: int | None = field(default=None, metadata={"help": "Window (transformer) or chunk (RNN) in tokens."})
    stride: int | None = field(default=None, metadata={"help": "Transformer window stride (default: half a window)."})
    max_texts: int | None = field(default=None, metadata={"help": "Evaluate only the first N texts."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Load the Hub repo's own model code."})
    output_file: str | None = field(default=None, metadata={"help": "Also write the results as JSON here."})
    disable_tqdm: bool | None = field(
        default=None, metadata={"help": "Hide (true) or force (false) the progress bar; by default shown on a terminal."}
    )

    def __post_init__(self) -> None:
        if (self.file is None) == (self.builtin is None):
            raise UsageError("Pass exactly one of --file and --builtin.")
        for name in ("block_size", "stride", "max_texts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise UsageError(f"--{name}={getattr(self, name)} must be >= 1.")


def main() -> dict:
    (args,) = HfArgumentParser(EvalArguments).parse_args_into_dataclasses()
    if args.file is not None:
        check_file(args.file, "--file")
        if Path(args.file).suffix.lower() == ".txt":
            try:
                texts = [Path(args.file).read_text(encoding="utf-8")]
            except UnicodeDecodeError:
                load_files(args.file, None, sample_by="document", flags={"train": "--file"})  # raises, saying where
                raise
            what = f"{args.file}: the whole file as one text of {len(texts[0]):,} characters"
        else:
            ds = load_files(args.file, None, flags={"train": "--file"})
            check_columns(ds, {"--text_column": args.text_column})
            texts = [t for t in ds["train"][args.text_column] if isinstance(t, str) and t]
            what = f"{args.file}: {len(texts):,} texts (column {args.text_column!r}), scored one after another"
    else:
        try:
            ds = load_builtin(args.builtin)
        except ValueError as err:
            raise UsageError(str(err)) from err
        if args.split not in ds:
            raise UsageError(f"--split {args.split!r}: {args.builtin} has splits {', '.join(ds)}.")
        texts = ds[args.split]["text"]
        what = f"{args.builtin} {args.split}: {len(texts):,} texts, scored one after another"
    if args.max_texts and args.max_texts < len(texts):
        texts = texts[: args.max_texts]
        what += f", of which the first {len(texts):,}"
    try:
        tokenizer = load_char_tokenizer(args.model)
        model = AutoModelForCausalLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    except OSError as err:
        raise UsageError(f"--model {args.model}: {err}") from err
    try:
        _, _, plan = window_plan(model.config, args.block_size, args.stride)
        print(f"evaluating {what}; {plan}", file=sys.stderr, flush=True)
        progress = None if args.disable_tqdm is None else not args.disable_tqdm
        results = evaluate_lm(model, tokenizer, texts, block_size=args.block_size, stride=args.stride, progress=progress)
    except ValueError as err:
        raise UsageError(str(err)) from err
    print(json.dumps(results, indent=2))
    if args.output_file:
        Path(args.output_file).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    run_main(main)
