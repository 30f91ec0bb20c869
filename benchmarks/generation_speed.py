"""Greedy generation speed, batch 1: hf_charlm's transformer against transformers' GPT-2 of the same size.

Both models are built from config with random weights (the speed of a step does not depend on the values): 4 layers,
hidden 128, 4 heads, MLP 512, the same vocabulary size (328 = 7 special tokens + 65 characters + 256 byte tokens, as a
Tiny Shakespeare tokenizer), sdpa attention and the library's KV cache (`DynamicCache`) on both sides. Each prompt
(random in-vocabulary characters, 64 / 256 / 1024 by default) is continued by exactly `--new_tokens` tokens (the end
token is switched off on both models, so neither stops early); our model keeps its UTF-8 logits processor, part of
its generation step. The two models run interleaved (the order alternating between repeats), every run is timed
whole (`model.generate(...)` wall clock, prefill included), and the table gives the median and the min-max of the
new characters per second (one token is one character for in-vocabulary text), the ratio of the medians, the
median (min-max) of the ratio within each repeat (robust to a machine whose speed changes between repeats), the thread
count and the load average before and after. On the CPU each row also counts the top-level ATen operations per
generated token of both models (torch.profiler; `operations_per_token`): a count that a noisy shared machine does
not blur, for comparing the code of two versions.

    python benchmarks/generation_speed.py --threads 1 --repeats 5 --output_dir benchmarks/results
    python benchmarks/generation_speed.py --threads 1 --repeats 2 --prompts 64 --output_dir /tmp/gen   # a quick look
    python benchmarks/generation_speed.py --device cuda --repeats 5

Needs only torch, transformers and hf_charlm; no network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from hf_charlm import CharLMConfig, CharLMForCausalLM  # noqa: E402

SPECIALS, CHARS = 7, 65
VOCAB = SPECIALS + CHARS + 256
SIZE = dict(hidden=128, layers=4, heads=4, mlp=512)


def build_models(max_positions: int, device: str) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    ours = CharLMForCausalLM(CharLMConfig(
        vocab_size=VOCAB, hidden_size=SIZE["hidden"], num_hidden_layers=SIZE["layers"], num_attention_heads=SIZE["heads"],
        intermediate_size=SIZE["mlp"], max_position_embeddings=max_positions, byte_token_start=SPECIALS + CHARS,
        pad_token_id=0, bos_token_id=2, eos_token_id=3,
    ))
    gpt2 = GPT2LMHeadModel(GPT2Config(
        vocab_size=VOCAB, n_embd=SIZE["hidden"], n_layer=SIZE["layers"], n_head=SIZE["heads"], n_inner=SIZE["mlp"],
        n_positions=max_positions, bos_token_id=2, eos_token_id=3, pad_token_id=0,
    ))
    models = {"hf_charlm": ours, "gpt2": gpt2}
    for model in models.values():
        model.eval().to(device)
        model.generation_config.eos_token_id = None  # exactly --new_tokens tokens on both sides
        model.generation_config.pad_token_id = 0
    return models


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def timed_generate(model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, do_sample=False)
    sync(device)
    seconds = time.perf_counter() - start
    if out.shape[1] != prompt.shape[1] + new_tokens:
        raise RuntimeError(f"{type(model).__name__} generated {out.shape[1] - prompt.shape[1]} tokens, not {new_tokens}")
    return seconds


@torch.no_grad()
def operations_per_token(model: torch.nn.Module, prompt: torch.Tensor, steps: int = 32) -> float:
    """Top-level ATen operations (those not called by another ATen operation) per generated token, counted by
    torch.profiler: generate(1 + steps tokens) minus generate(1 token), over `steps`. A count, not a time: the same
    on any machine for the same code and library versions, where the wall clock of a shared machine is noisy."""
    from torch.profiler import ProfilerActivity, profile

    def count(new_tokens: int) -> int:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens, do_sample=False)
        return sum(
            1 for e in prof.events()
            if e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
        )

    return (count(1 + steps) - count(1)) / steps


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pool(paths: list[str]) -> None:
    """Per prompt length, the median and quartiles of the ratio within each repeat over all the runs' repeats."""
    ratios: dict[int, list[float]] = {}
    for path in paths:
        try:
            rows = json.loads(Path(path).read_text())["rows"]
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"--pool {path}: not a generation_speed.json ({e})")
        for r in rows:
            ratios.setdefault(r["prompt_chars"], []).extend(a / b for a, b in zip(r["hf_charlm_runs"], r["gpt2_runs"]))
    print(f"ratio per repeat, hf_charlm / GPT-2, pooled over {len(paths)} runs")
    for length, values in ratios.items():
        q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
        print(f"prompt {length}: median {statistics.median(values):.2f} (quartiles {q1:.2f}-{q3:.2f}, "
              f"min-max {min(values):.2f}-{max(values):.2f}, {len(values)} repeats)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for both models (CPU)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each model per prompt length")
    parser.add_argument("--prompts", default="64,256,1024", help="prompt lengths in characters, comma-separated")
    parser.add_argument("--new_tokens", type=int, default=100)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--output_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--pool", nargs="+", metavar="JSON", help="measure nothing: pool the per-repeat ratios of "
                        "these generation_speed.json files (several runs of one code version) and print their median "
                        "and quartiles per prompt length")
    args = parser.parse_args()
    if args.pool:
        pool(args.pool)
        return
    try:
        lengths = [int(x) for x in args.prompts.split(",")]
    except ValueError:
        parser.error(f"--prompts {args.prompts!r}: give prompt lengths as integers separated by commas")
    if args.repeats < 1 or args.new_tokens < 1 or args.threads < 1 or min(lengths) < 1:
        parser.error("--repeats, --new_tokens, --threads and every prompt length must be >= 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    torch.set_num_threads(args.threads)

    models = build_models(max(lengths) + args.new_tokens, args.device)
    generator = torch.Generator().manual_seed(0)
    results = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": args.threads, "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "model": {**SIZE, "vocab_size": VOCAB, "attention": "sdpa", "cache": "DynamicCache"},
        "new_tokens": args.new_tokens, "repeats": args.repeats, "loadavg_start": os.getloadavg(), "rows": [],
    }
    for length in lengths:
        prompt = torch.randint(SPECIALS, SPECIALS + CHARS, (1, length), generator=generator).to(args.device)
        for model in models.values():  # warm-up: first-call allocations and lazy initialisation, not timed
            timed_generate(model, prompt, args.new_tokens, args.device)
        speeds: dict[str, list[float]] = {name: [] for name in models}
        load_before = os.getloadavg()
        for repeat in range(args.repeats):
            order = list(models) if repeat % 2 == 0 else list(models)[::-1]
            for name in order:
                speeds[name].append(args.new_tokens / timed_generate(models[name], prompt, args.new_tokens, args.device))
        row = {"prompt_chars": length, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
               **{f"{name}_chars_per_s": summary(v) for name, v in speeds.items()},
               **{f"{name}_runs": v for name, v in speeds.items()}}
        row["ratio"] = row["hf_charlm_chars_per_s"]["median"] / row["gpt2_chars_per_s"]["median"]
        # the ratio within each repeat (the two runs next to each other): robust to a machine whose speed drifts or
        # switches between levels from one repeat to the next, which the ratio of the two medians is not
        row["pair_ratio"] = summary([ours / ref for ours, ref in zip(speeds["hf_charlm"], speeds["gpt2"])])
        if args.device == "cpu":
            row.update({f"{name}_ops_per_token": operations_per_token(model, prompt) for name, model in models.items()})
        results["rows"].append(row)
        print(f"prompt {length}: hf_charlm {row['hf_charlm_chars_per_s']['median']:.0f} chars/s, GPT-2 "
              f"{row['gpt2_chars_per_s']['median']:.0f} chars/s, ratio {row['ratio']:.2f}", flush=True)
    results["loadavg_end"] = os.getloadavg()

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "generation_speed.json").write_text(json.dumps(results, indent=2))

    def cell(s: dict[str, float]) -> str:
        return f"{s['median']:.0f} ({s['min']:.0f}-{s['max']:.0f})"

    lines = [
        f"Greedy generation, batch 1, {args.new_tokens} new characters; {results['date']}, {args.device} "
        f"({results['device_name']}), {args.threads} thread(s), {args.repeats} interleaved runs each, median (min-max). "
        f"torch {results['torch']}, transformers {results['transformers']}.",
        f"Command: `{results['command']}`",
        "",
        "| prompt (chars) | hf_charlm transformer (chars/s) | GPT-2, same size (chars/s) | ratio (medians) "
        "| ratio per repeat, median (min-max) | load avg before / after | ATen operations per token, ours / GPT-2 |",
        "|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results["rows"]:
        ops = (f"{r['hf_charlm_ops_per_token']:.1f} / {r['gpt2_ops_per_token']:.1f}" if "gpt2_ops_per_token" in r else "-")
        pair = f"{r['pair_ratio']['median']:.2f} ({r['pair_ratio']['min']:.2f}-{r['pair_ratio']['max']:.2f})"
        lines.append(f"| {r['prompt_chars']} | {cell(r['hf_charlm_chars_per_s'])} | {cell(r['gpt2_chars_per_s'])} | "
                     f"{r['ratio']:.2f} | {pair} | {r['loadavg_before'][0]:.2f} / {r['loadavg_after'][0]:.2f} | {ops} |")
    (out / "generation_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
