"""Pretraining on Tiny Shakespeare: the whole `scripts/pretrain.py` command against a minimal nanoGPT-style loop.

Both sides train the same size of model (4 layers, hidden 128, 4 heads, MLP 512, context 64, no dropout) on the
same characters (the first 90% of tinyshakespeare.txt; the last 10% is the validation text, as nanoGPT's
shakespeare_char split), with the same optimizer and schedule: AdamW, lr 1e-3, betas (0.9, 0.99), weight decay 0.1,
gradient clipping 1.0, batch 12, `--warmup_steps` linear warm-up then cosine decay to 1e-4 at `--steps` (the formula
of transformers' `cosine_with_min_lr`, written out in the reference). During training both evaluate every
`--eval_steps` steps on the same number of fixed validation blocks (`--eval_blocks`); after training each scores the
whole validation text once in windows of 64 characters every 32 (each character scored once, with at least 32
characters of context), in nats per character.

- ours: `python scripts/pretrain.py ...` as a user runs it, in a subprocess: import, tokenizer training, packing,
  the Trainer loop, saving, the final evaluation (`hf_charlm.lm_eval.evaluate_lm`), the samples and the model card.
- reference: this file with `--reference_run`, in a subprocess: nanoGPT's `model.py` reduced to what this size
  needs (learned positions, LayerNorm without bias, one fused `c_attn` projection, `F.scaled_dot_product_attention`,
  GELU MLP, tied embeddings), its 65-character vocabulary, random 64-character windows per step (nanoGPT's
  `get_batch`), its optimizer groups (decay on the matrices only).

With `--our_steps N` (N < `--steps`) our side trains N steps (its warm-up the same, its cosine ending at step N),
the reference `--steps`: the time our command takes to reach the reference's loss (a time-to-target comparison, as
speed runs measure it), reported with whether every run of ours ends at or below every run of the reference.

Reported: wall time of each whole command, its training-loop time and the validation loss, over `--repeats`
interleaved runs (median, min-max); then the training step alone (forward, backward, clipping, AdamW step) of both
models in this process, interleaved in rounds of `--step_block` steps (median, min-max ms per step), and with
`--torch_compile` also both compiled (compile time reported apart). Differences that remain: our vocabulary has 328
entries (65 characters, 7 special tokens, 256 byte tokens) against 65; the Trainer decays the norm weights too; our
final evaluation also scores the end-of-text token (one of ~111k predictions); our batches are shuffled packed
blocks, the reference's random windows.

    python benchmarks/pretrain_vs_nanogpt.py --threads 1 --steps 2000 --repeats 2 --output_dir benchmarks/results
    python benchmarks/pretrain_vs_nanogpt.py --threads 1 --steps 2000 --our_steps 1100 --repeats 2  # time to its loss
    python benchmarks/pretrain_vs_nanogpt.py --threads 1 --steps 20 --repeats 1 --eval_steps 10 --output_dir /tmp/p  # quick
    python benchmarks/pretrain_vs_nanogpt.py --device cuda --steps 2000 --repeats 2
    python benchmarks/pretrain_vs_nanogpt.py --threads 1 --step_only --step_rounds 10  # the training step alone

Needs torch, transformers, datasets, tokenizers, accelerate, numpy and hf_charlm; no network.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing (the subprocesses get it as PYTHONPATH)
# ../shared/data/tinyshakespeare.txt beside the checkout (or beside a folder above it: git worktrees)
DEFAULT_DATA = next((p / "shared" / "data" / "tinyshakespeare.txt" for p in ROOT.parents
                     if (p / "shared" / "data" / "tinyshakespeare.txt").is_file()),
                    ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")
SIZE = dict(layers=4, hidden=128, heads=4, mlp=512, block=64, batch=12)
LR, MIN_LR, BETA2, WEIGHT_DECAY, CLIP = 1e-3, 1e-4, 0.99, 0.1, 1.0
EVAL_WINDOW, EVAL_STRIDE = 64, 32


# ------------------------------------------------------------------------------------------------ the reference


def reference_model(vocab_size: int, device: str):
    """nanoGPT's GPT at this size (bias=False, dropout 0), fused c_attn, sdpa."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, n_embd: int, n_head: int, n_inner: int):
            super().__init__()
            self.n_head = n_head
            self.ln_1 = nn.LayerNorm(n_embd, bias=False)
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
            self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
            self.ln_2 = nn.LayerNorm(n_embd, bias=False)
            self.c_fc = nn.Linear(n_embd, n_inner, bias=False)
            self.mlp_proj = nn.Linear(n_inner, n_embd, bias=False)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab_size, SIZE["hidden"])
            self.wpe = nn.Embedding(SIZE["block"], SIZE["hidden"])
            self.h = nn.ModuleList([Block(SIZE["hidden"], SIZE["heads"], SIZE["mlp"]) for _ in range(SIZE["layers"])])
            self.ln_f = nn.LayerNorm(SIZE["hidden"], bias=False)
            self.lm_head = nn.Linear(SIZE["hidden"], vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight  # tied, as nanoGPT
            for name, p in self.named_parameters():
                if p.ndim >= 2:
                    std = 0.02 / math.sqrt(2 * SIZE["layers"]) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02
                    nn.init.normal_(p, mean=0.0, std=std)

        def forward(self, idx, targets=None):
            T = idx.shape[1]
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            if targets is None:
                return logits, None
            return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT().to(device)


def cosine_with_min_lr(step: int, warmup: int, total: int) -> float:
    """transformers' `cosine_with_min_lr` schedule (its lr multiplier times the peak lr)."""
    if step < warmup:
        return LR * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    rate = MIN_LR / LR
    return LR * (rate + (1 - rate) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def reference_optimizer(model):
    import torch

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=LR, betas=(0.9, BETA2))


def sliding_window_nats(score, ids, device: str, batch_size: int = 64) -> float:
    """Summed negative log-likelihood of ids[1:], each predicted once, in windows of 64 every 32 (hf_charlm.lm_eval's
    plan), batched like it; `score(x)` returns (B, T, V) logits."""
    import torch
    from torch.nn import functional as F

    jobs, first, b, n = [], 1, 0, len(ids)
    while True:
        e = min(b + EVAL_WINDOW, n)
        if e > first:
            jobs.append((b, e, first))
            first = e
        if e == n:
            break
        b += EVAL_STRIDE
    total = 0.0
    with torch.no_grad():
        for width in sorted({e - b for b, e, _ in jobs}):  # the full windows, then the short last one
            same = [job for job in jobs if job[1] - job[0] == width]
            for i in range(0, len(same), batch_size):
                chunk = same[i : i + batch_size]
                logits = score(torch.stack([ids[b:e] for b, e, _ in chunk]).to(device))
                for row, (b, e, first) in enumerate(chunk):
                    logp = F.log_softmax(logits[row, first - 1 - b : e - 1 - b].float(), dim=-1)
                    total -= float(logp.gather(-1, ids[first:e].to(device)[:, None]).sum())
    return total


def reference_run(config: dict) -> None:
    """The whole reference command: data, model, training with periodic evaluation, the final evaluation."""
    import torch

    torch.set_num_threads(config["threads"])
    device = config["device"]
    torch.manual_seed(0)
    train_text = Path(config["train"]).read_text(encoding="utf-8")
    valid_text = Path(config["valid"]).read_text(encoding="utf-8")
    chars = sorted(set(train_text + valid_text))  # nanoGPT's prepare.py: the vocabulary of the whole file
    stoi = {c: i for i, c in enumerate(chars)}
    train_ids = torch.tensor([stoi[c] for c in train_text], dtype=torch.long)
    valid_ids = torch.tensor([stoi[c] for c in valid_text], dtype=torch.long)
    block, batch = SIZE["block"], SIZE["batch"]
    model = reference_model(len(chars), device)
    optimizer = reference_optimizer(model)
    # the fixed evaluation subset: the first eval_blocks non-overlapping windows of the validation text
    starts = torch.arange(0, len(valid_ids) - block - 1, block)[: config["eval_blocks"]]
    eval_x = torch.stack([valid_ids[s : s + block] for s in starts]).to(device)
    eval_y = torch.stack([valid_ids[s + 1 : s + 1 + block] for s in starts]).to(device)
    step_fn = model
    if config.get("torch_compile"):
        step_fn = torch.compile(model)
    evals = []
    start = time.perf_counter()
    for step in range(config["steps"]):
        for group in optimizer.param_groups:
            group["lr"] = cosine_with_min_lr(step, config["warmup_steps"], config["steps"])
        ix = torch.randint(len(train_ids) - block, (batch,))
        x = torch.stack([train_ids[i : i + block] for i in ix]).to(device)
        y = torch.stack([train_ids[i + 1 : i + 1 + block] for i in ix]).to(device)
        _, loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % config["eval_steps"] == 0:
            model.eval()
            with torch.no_grad():
                losses = [model(eval_x[i : i + 64], eval_y[i : i + 64])[1].item() for i in range(0, len(eval_x), 64)]
            evals.append({"step": step + 1, "loss": statistics.fmean(losses)})
            model.train()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - start
    model.eval()
    nats = sliding_window_nats(lambda x: model(x)[0], valid_ids, device)
    Path(config["out"]).write_text(json.dumps({
        "train_seconds": train_seconds, "val_nats_per_char": nats / (len(valid_ids) - 1), "evals": evals,
        "final_train_loss": loss.item(), "vocab_size": len(chars),
    }))


# ----------------------------------------------------------------------------------------------------- ours


def script_command(train: Path, valid: Path, out: Path, args: argparse.Namespace) -> list[str]:
    overrides = (f"hidden_size={SIZE['hidden']},num_hidden_layers={SIZE['layers']},num_attention_heads={SIZE['heads']},"
                 f"intermediate_size={SIZE['mlp']},max_position_embeddings={SIZE['block']},hidden_dropout_prob=0.0,"
                 "attention_dropout=0.0,embedding_dropout=0.0")
    command = [
        sys.executable, str(ROOT / "scripts" / "pretrain.py"), "--train_file", str(train), "--validation_file", str(valid),
        "--sample_by", "document", "--config_overrides", overrides, "--block_size", str(SIZE["block"]),
        "--per_device_train_batch_size", str(SIZE["batch"]), "--per_device_eval_batch_size", "64",
        "--learning_rate", str(LR), "--lr_scheduler_type", "cosine_with_min_lr",
        "--lr_scheduler_kwargs", json.dumps({"min_lr": MIN_LR}), "--warmup_steps", str(args.warmup_steps),
        "--weight_decay", str(WEIGHT_DECAY), "--adam_beta2", str(BETA2), "--max_grad_norm", str(CLIP),
        "--max_steps", str(args.our_steps), "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps),
        "--max_eval_blocks_during_training", str(args.eval_blocks), "--save_strategy", "no",
        "--logging_steps", str(args.eval_steps), "--output_dir", str(out), "--overwrite_output_dir", "true",
        "--disable_tqdm", "true", "--seed", "0", "--dataloader_num_workers", "0",
    ]
    if args.device == "cpu":
        command += ["--use_cpu", "true"]
    if args.torch_compile:
        command += ["--torch_compile", "true"]
    return command


# ------------------------------------------------------------------------------------------------ the harness


def run_timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"error: {' '.join(command[:3])} ... failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def step_times(args: argparse.Namespace, vocab_ours: int, compiled: bool) -> dict:
    """ms per training step of both models in this process, interleaved in rounds of --step_block steps."""
    import torch

    from hf_charlm import CharLMConfig, CharLMForCausalLM

    torch.manual_seed(0)
    device = args.device
    ours = CharLMForCausalLM(CharLMConfig(
        vocab_size=vocab_ours, hidden_size=SIZE["hidden"], num_hidden_layers=SIZE["layers"], num_attention_heads=SIZE["heads"],
        intermediate_size=SIZE["mlp"], max_position_embeddings=SIZE["block"], hidden_dropout_prob=0.0,
        attention_dropout=0.0, embedding_dropout=0.0,
    )).to(device).train()
    reference = reference_model(65, device).train()
    sides = {
        "hf_charlm": (ours, reference_optimizer(ours), vocab_ours, lambda m, x: m(input_ids=x, labels=x).loss),
        "reference": (reference, reference_optimizer(reference), 65, lambda m, x: m(x[:, :-1], x[:, 1:])[1]),
    }
    if compiled:
        sides = {name: (torch.compile(m), opt, v, f) for name, (m, opt, v, f) in sides.items()}
    out: dict[str, dict] = {}
    per_step: dict[str, list[float]] = {name: [] for name in sides}
    for round_ in range(args.step_rounds + 1):  # round 0 is the warm-up (and the compilation)
        order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
        for name in order:
            model, optimizer, vocab, loss_fn = sides[name]
            for _ in range(args.step_block):
                # ours shifts its labels itself: one extra column so that both predict 64 targets from 64 inputs
                width = SIZE["block"] + (1 if name == "reference" else 0)
                x = torch.randint(0, vocab, (SIZE["batch"], width), device=device)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                loss = loss_fn(model, x)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - start
                if round_ == 0:
                    out.setdefault(name, {}).setdefault("warmup_ms", []).append(seconds * 1e3)
                else:
                    per_step[name].append(seconds * 1e3)
    for name in sides:
        out[name]["ms_per_step"] = summary(per_step[name])
        warm = out[name].pop("warmup_ms")
        # the first step's excess over a steady step: the compile time when compiled
        out[name]["first_step_ms"] = warm[0]
    out["ratio"] = out["hf_charlm"]["ms_per_step"]["median"] / out["reference"]["ms_per_step"]["median"]
    return out


def cell(s: dict[str, float], fmt: str = ".1f") -> str:
    """A summary as 'median (min-max)'."""
    return f"{s['median']:{fmt}} ({s['min']:{fmt}}-{s['max']:{fmt}})"


def step_only_times(args: argparse.Namespace, vocab_ours: int) -> dict:
    """`step_times` (uncompiled) with the load average before and after."""
    load = os.getloadavg()
    out = step_times(args, vocab_ours, compiled=False)
    out.update(loadavg_before=load, loadavg_after=os.getloadavg())
    return out


def write_step_only(results: dict, args: argparse.Namespace) -> None:
    """`--step_only`: the training-step row alone, as JSON and markdown in --output_dir."""
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pretrain_vs_nanogpt_step_only.json").write_text(json.dumps(results, indent=2))
    s = results["step_only"]
    lines = [
        f"Training step only (forward, backward, clipping, AdamW), Tiny Shakespeare model: {SIZE['layers']} layers x "
        f"{SIZE['hidden']}, context {SIZE['block']}, batch {SIZE['batch']}; our vocabulary {results['vocab_size']['hf_charlm']}, "
        f"the reference's 65; {results['date']}, {args.device} ({results['device_name']}), {args.threads} thread(s), "
        f"{args.step_rounds} interleaved rounds of {args.step_block} steps per side, median (min-max); torch "
        f"{results['torch']}, transformers {results['transformers']}.",
        f"Command: `{results['command']}`",
        "",
        "| | hf_charlm (ms per step) | nanoGPT-style reference (ms per step) | ratio (medians) | load average before / after |",
        "|---|---:|---:|---:|---|",
        f"| training step only | {cell(s['hf_charlm']['ms_per_step'], '.2f')} | {cell(s['reference']['ms_per_step'], '.2f')} | {s['ratio']:.2f} | {s['loadavg_before'][0]:.2f} / {s['loadavg_after'][0]:.2f} |",
    ]
    (out_dir / "pretrain_vs_nanogpt_step_only.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every side (torch.set_num_threads, OMP_NUM_THREADS)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--our_steps", type=int, help="steps of our side (default: --steps); fewer steps than the "
                        "reference measure the time to reach its loss (its schedule then ends at that step)")
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--eval_steps", type=int, default=250, help="evaluate on the fixed subset every N steps")
    parser.add_argument("--eval_blocks", type=int, default=256, help="validation blocks of 64 characters in that subset")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved whole runs of each side")
    parser.add_argument("--step_rounds", type=int, default=6, help="rounds of the training-step comparison (after one warm-up round)")
    parser.add_argument("--step_block", type=int, default=20, help="steps per side per round")
    parser.add_argument("--torch_compile", action="store_true", help="also compare both sides compiled (torch.compile)")
    parser.add_argument("--step_only", action="store_true", help="only the training-step comparison (no whole runs)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare.txt")
    parser.add_argument("--output_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--reference_run", help=argparse.SUPPRESS)  # internal: one reference run, config as JSON
    args = parser.parse_args()
    if args.reference_run:
        reference_run(json.loads(args.reference_run))
        return
    for name in ("threads", "steps", "eval_steps", "eval_blocks", "repeats", "step_rounds", "step_block"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.our_steps is None:
        args.our_steps = args.steps
    if args.our_steps < 1:
        parser.error("--our_steps must be >= 1")
    if not 0 <= args.warmup_steps < min(args.steps, args.our_steps):
        parser.error("--warmup_steps must be in [0, min(--steps, --our_steps))")
    data = Path(args.data)
    if not data.is_file():
        parser.error(f"--data {data}: no such file (Tiny Shakespeare, e.g. karpathy/char-rnn's input.txt)")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    torch.set_num_threads(args.threads)
    threads = str(args.threads)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    results = {
        "command": " ".join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "threads": args.threads, "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "size": SIZE, "steps": args.steps, "our_steps": args.our_steps, "warmup_steps": args.warmup_steps, "eval_steps": args.eval_steps,
        "eval_blocks": args.eval_blocks, "torch_compile": args.torch_compile, "runs": [],
    }
    text = data.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train, valid = work / "train.txt", work / "valid.txt"
        train.write_text(text[:cut], encoding="utf-8")
        valid.write_text(text[cut:], encoding="utf-8")
        for repeat in range(0 if args.step_only else args.repeats):
            for side in (("ours", "reference") if repeat % 2 == 0 else ("reference", "ours")):
                load = os.getloadavg()
                if side == "ours":
                    out = work / f"ours-{repeat}"
                    wall = run_timed(script_command(train, valid, out, args), env)
                    trained = json.loads((out / "train_results.json").read_text())
                    evaluated = json.loads((out / "eval_results.json").read_text())
                    run = {"side": side, "wall_seconds": wall, "train_seconds": trained["train_runtime"],
                           "val_nats_per_char": evaluated["eval_nats_per_char"]}
                else:
                    out = work / f"reference-{repeat}.json"
                    config = {"train": str(train), "valid": str(valid), "out": str(out), "threads": args.threads,
                              "device": args.device, "steps": args.steps, "warmup_steps": args.warmup_steps,
                              "eval_steps": args.eval_steps, "eval_blocks": args.eval_blocks, "torch_compile": args.torch_compile}
                    wall = run_timed([sys.executable, str(Path(__file__).resolve()), "--reference_run", json.dumps(config)], env)
                    ref = json.loads(out.read_text())
                    run = {"side": side, "wall_seconds": wall, "train_seconds": ref["train_seconds"],
                           "val_nats_per_char": ref["val_nats_per_char"]}
                run.update(repeat=repeat, loadavg_before=load, loadavg_after=os.getloadavg())
                results["runs"].append(run)
                print(f"{side} run {repeat + 1}: wall {wall:.1f} s, training {run['train_seconds']:.1f} s, "
                      f"val {run['val_nats_per_char']:.4f} nats/char", flush=True)
        from hf_charlm import train_char_tokenizer

        vocab_ours = len(train_char_tokenizer([text[:cut]]))
    results["vocab_size"] = {"hf_charlm": vocab_ours, "reference": 65}
    if args.step_only:
        results["step_only"] = step_only_times(args, vocab_ours)
        write_step_only(results, args)
        return
    for side in ("ours", "reference"):
        runs = [r for r in results["runs"] if r["side"] == side]
        results[side] = {key: summary([r[key] for r in runs]) for key in ("wall_seconds", "train_seconds", "val_nats_per_char")}
    results["wall_ratio"] = results["ours"]["wall_seconds"]["median"] / results["reference"]["wall_seconds"]["median"]
    # time to the reference's loss: every run of ours at or below the best run of the reference
    results["reaches_reference_loss"] = (results["ours"]["val_nats_per_char"]["max"]
                                         <= results["reference"]["val_nats_per_char"]["min"])
    results["step_only"] = step_only_times(args, vocab_ours)
    if args.torch_compile:
        results["step_only_compiled"] = step_times(args, vocab_ours, compiled=True)
    results["loadavg_end"] = os.getloadavg()

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "pretrain_vs_nanogpt.json").write_text(json.dumps(results, indent=2))

    o, r = results["ours"], results["reference"]
    lines = [
        f"Tiny Shakespeare, {SIZE['layers']} layers x {SIZE['hidden']}, context {SIZE['block']}, batch {SIZE['batch']}, "
        + (f"{args.steps} steps" if args.our_steps == args.steps else
           f"ours {args.our_steps} steps, the reference {args.steps} (each schedule ends at its last step)")
        + f", lr {LR} cosine to {MIN_LR} after {args.warmup_steps} warm-up steps, evaluation every "
        f"{args.eval_steps} steps on {args.eval_blocks} blocks; {results['date']}, {args.device} ({results['device_name']}), "
        f"{args.threads} thread(s), {args.repeats} interleaved run(s) per side, median (min-max); torch {results['torch']}, "
        f"transformers {results['transformers']}{', torch.compile' if args.torch_compile else ''}.",
        f"Command: `{results['command']}`",
        "",
        f"| | `scripts/pretrain.py` (whole command, {args.our_steps} steps) | nanoGPT-style reference loop "
        f"({args.steps} steps) | ratio (medians) |",
        "|---|---:|---:|---:|",
        f"| wall time (s) | {cell(o['wall_seconds'])} | {cell(r['wall_seconds'])} | {results['wall_ratio']:.2f} |",
        f"| training loop (s) | {cell(o['train_seconds'])} | {cell(r['train_seconds'])} | "
        f"{o['train_seconds']['median'] / r['train_seconds']['median']:.2f} |",
        f"| validation (nats/char) | {cell(o['val_nats_per_char'], '.4f')} | {cell(r['val_nats_per_char'], '.4f')} | "
        f"{'ours at or below the reference in every run' if results['reaches_reference_loss'] else 'ours above the reference'} |",
    ]
    s = results["step_only"]
    lines.append(f"| training step only (ms) | {cell(s['hf_charlm']['ms_per_step'], '.2f')} | "
                 f"{cell(s['reference']['ms_per_step'], '.2f')} | {s['ratio']:.2f} |")
    if args.torch_compile:
        c = results["step_only_compiled"]
        lines.append(f"| training step only, compiled (ms) | {cell(c['hf_charlm']['ms_per_step'], '.2f')} | "
                     f"{cell(c['reference']['ms_per_step'], '.2f')} | {c['ratio']:.2f} |")
        lines.append(f"| first compiled step (s, includes compilation) | {c['hf_charlm']['first_step_ms'] / 1e3:.1f} | "
                     f"{c['reference']['first_step_ms'] / 1e3:.1f} | |")
    lines += ["", "Load average (1 min) before each whole run: " + ", ".join(
        f"{x['side']} {x['loadavg_before'][0]:.2f}" for x in results["runs"])]
    (out_dir / "pretrain_vs_nanogpt.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
