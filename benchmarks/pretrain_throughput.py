"""Pretraining throughput of scripts/pretrain.py against a plain PyTorch loop, and a Tiny Shakespeare quality run.

1. Throughput: the same model (config, init seed), the same packed blocks of Tiny Shakespeare, the same optimizer
   recipe (AdamW, cosine decay, clipping), trained for the same number of steps by our script (HF Trainer) and by a
   plain `for batch in loader: loss.backward(); opt.step()` loop written here, the framework-overhead baseline.
   Characters per second of each (timed over the training loop only: the Trainer's `train_runtime`, the loop's
   own clock) and the ratio, for the transformer and the LSTM. Each side runs in its own process with the same
   thread count, one after the other.
2. Quality: our script on Tiny Shakespeare (first 90% train, last 10% validation, read in place from
   ../shared/data/tinyshakespeare.txt) with 4 layers, 4 heads, hidden 128, context 64, batch 12, 2000 steps,
   learning rate 1e-3, no dropout: validation loss in nats per character and wall time.

    python benchmarks/pretrain_throughput.py                       # both parts, writes benchmarks/results/
    python benchmarks/pretrain_throughput.py --steps 100 --skip_quality   # a quick look
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
MODEL = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
         "max_position_embeddings": 64, "hidden_dropout_prob": 0.0, "attention_dropout": 0.0, "embedding_dropout": 0.0}
BLOCK, BATCH, LR = 64, 12, 1e-3


def split_text(workdir: Path) -> tuple[Path, Path]:
    if not DATA.is_file():
        sys.exit(f"error: {DATA} not found (the benchmark reads ../shared/data/tinyshakespeare.txt in place)")
    text = DATA.read_text(encoding="utf-8")
    cut = int(len(text) * 0.9)
    train, valid = workdir / "train.txt", workdir / "valid.txt"
    train.write_text(text[:cut], encoding="utf-8")
    valid.write_text(text[cut:], encoding="utf-8")
    return train, valid


def script_args(train: Path, valid: Path, out: Path, backbone: str, steps: int, extra: list[str]) -> list[str]:
    overrides = ",".join(f"{k}={v}" for k, v in MODEL.items())
    return [sys.executable, str(ROOT / "scripts" / "pretrain.py"), "--train_file", str(train), "--validation_file", str(valid),
            "--sample_by", "document", "--backbone", backbone, "--config_overrides", overrides, "--block_size", str(BLOCK),
            "--per_device_train_batch_size", str(BATCH), "--learning_rate", str(LR), "--max_steps", str(steps),
            "--warmup_steps", "0", "--weight_decay", "0.1", "--output_dir", str(out), "--overwrite_output_dir", "true",
            "--disable_tqdm", "true", "--logging_steps", str(max(1, steps // 5)), "--seed", "0", *extra]


PLAIN_LOOP = r'''
import json, sys, time, torch
from torch.utils.data import DataLoader
from transformers import get_cosine_schedule_with_warmup
from hf_charlm import CharLMForCausalLM, train_char_tokenizer, config_from_preset
from hf_charlm.data import tokenize_and_pack
import datasets

train_file, backbone, steps, block, batch, lr, model_json, out = sys.argv[1:9]
steps, block, batch, lr = int(steps), int(block), int(batch), float(lr)
torch.manual_seed(0)
ds = datasets.load_dataset("text", data_files={"train": train_file}, sample_by="document", keep_linebreaks=True)["train"]
tok = train_char_tokenizer(ds["text"])
blocks = tokenize_and_pack(ds, tok, block).with_format("torch")
fields = json.loads(model_json)
config = config_from_preset("tiny", backbone=backbone, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **fields)
model = CharLMForCausalLM(config).train()
decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=lr)
sched = get_cosine_schedule_with_warmup(opt, 0, steps)
loader = DataLoader(blocks, batch_size=batch, shuffle=True, drop_last=True)
step, start = 0, time.perf_counter()
while step < steps:
    for b in loader:
        loss = model(input_ids=b["input_ids"], labels=b["labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        step += 1
        if step == steps:
            break
seconds = time.perf_counter() - start
json.dump({"seconds": seconds, "steps": steps, "final_loss": loss.item()}, open(out, "w"))
'''


def run(cmd: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: {' '.join(cmd[:3])} failed:\n{proc.stderr[-3000:]}")
    return proc


def throughput(train: Path, valid: Path, workdir: Path, backbone: str, steps: int, env: dict) -> dict:
    out = workdir / f"script-{backbone}"
    run(script_args(train, valid, out, backbone, steps, ["--eval_strategy", "no", "--save_strategy", "no"]), env)
    script = json.loads((out / "train_results.json").read_text())
    loop_out = workdir / f"loop-{backbone}.json"
    run([sys.executable, "-c", PLAIN_LOOP, str(train), backbone, str(steps), str(BLOCK), str(BATCH), str(LR),
         json.dumps(MODEL), str(loop_out)], env)
    loop = json.loads(loop_out.read_text())
    chars = steps * BATCH * BLOCK  # tokens per step; one token per character (Shakespeare is all in-vocabulary)
    script_cps = chars / script["train_runtime"]
    loop_cps = chars / loop["seconds"]
    return {"backbone": backbone, "steps": steps, "script_chars_per_s": script_cps, "plain_loop_chars_per_s": loop_cps,
            "ratio": script_cps / loop_cps, "script_seconds": script["train_runtime"], "loop_seconds": loop["seconds"],
            "script_train_loss": script["train_loss"], "loop_final_loss": loop["final_loss"]}


def quality(train: Path, valid: Path, workdir: Path, steps: int, env: dict) -> dict:
    out = workdir / "quality"
    start = time.time()
    run(script_args(train, valid, out, "transformer", steps, ["--eval_strategy", "steps", "--eval_steps", str(steps // 4),
                                                             "--save_strategy", "no", "--sample_prompts", "ROMEO:|JULIET:"]), env)
    wall = time.time() - start
    ev = json.loads((out / "eval_results.json").read_text())
    tr = json.loads((out / "train_results.json").read_text())
    return {"steps": steps, "val_nats_per_char": ev["eval_nats_per_char"], "val_bits_per_char": ev["eval_bits_per_char"],
            "val_loss_trainer_per_token": ev["eval_loss"], "train_seconds": tr["train_runtime"], "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="steps of each throughput run")
    parser.add_argument("--backbones", default="transformer,lstm")
    parser.add_argument("--quality_steps", type=int, default=2000)
    parser.add_argument("--skip_quality", action="store_true")
    parser.add_argument("--output_dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    results = {"command": " ".join(["python", *sys.argv]), "threads": os.cpu_count(), "throughput": [], "quality": None}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        train, valid = split_text(workdir)
        for backbone in args.backbones.split(","):
            row = throughput(train, valid, workdir, backbone, args.steps, env)
            results["throughput"].append(row)
            print(f"{backbone}: script {row['script_chars_per_s']:.0f} chars/s, plain loop {row['plain_loop_chars_per_s']:.0f} "
                  f"chars/s, ratio {row['ratio']:.3f}", flush=True)
        if not args.skip_quality:
            results["quality"] = quality(train, valid, workdir, args.quality_steps, env)
            q = results["quality"]
            print(f"Tiny Shakespeare, {q['steps']} steps: validation {q['val_nats_per_char']:.4f} nats/char "
                  f"({q['val_bits_per_char']:.4f} bits/char), train {q['train_seconds']:.0f} s, wall {q['wall_seconds']:.0f} s")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pretrain_throughput.json").write_text(json.dumps(results, indent=2))
    lines = [f"Command: `{results['command']}`", "",
             "| backbone | steps | our script (chars/s) | plain PyTorch loop (chars/s) | ratio |", "|---|---:|---:|---:|---:|"]
    for r in results["throughput"]:
        lines.append(f"| {r['backbone']} | {r['steps']} | {r['script_chars_per_s']:.0f} | {r['plain_loop_chars_per_s']:.0f} | {r['ratio']:.3f} |")
    if results["quality"]:
        q = results["quality"]
        lines += ["", "| Tiny Shakespeare run | steps | val nats/char | val bits/char | train time (s) | wall time (s) |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| 4 layers, 4 heads, hidden 128, ctx 64, batch 12, lr 1e-3 | {q['steps']} | {q['val_nats_per_char']:.4f} | "
                  f"{q['val_bits_per_char']:.4f} | {q['train_seconds']:.0f} | {q['wall_seconds']:.0f} |"]
    (out / "pretrain_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
