"""Our fine-tuned char models on the Chinese tasks, as rows for benchmarks/chinese_tasks.py.

For each task (ner, cws, sentiment) and variant it runs the real fine-tuning script in a subprocess and reads the
test-split metrics it wrote, with the wall and CPU time of the fine-tuning run (pretraining not included; the
pretrained model's own cost is in the README's quickstart numbers):
- `pretrained`: from the default pretrained model (`--pretrained`), bidirectional attention under the head;
- `pretrained-causal`: the same, but the heads read the left context only (`classifier_attention=causal`);
- `scratch`: the same architecture (tiny preset) with random weights and a tokenizer trained on the task data.

    python benchmarks/finetune_runs.py --pretrained outputs/charlm-pretrain --output benchmarks/results/charlm_rows.json
    python benchmarks/chinese_tasks.py --tasks ner,cws,sentiment --extra_results benchmarks/results/charlm_rows.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from chinese_tasks import make_result  # noqa: E402

from hf_charlm.data import load_builtin  # noqa: E402

SCRIPTS = {"ner": "finetune_token_classification.py", "cws": "finetune_token_classification.py",
           "sentiment": "finetune_sequence_classification.py"}
BUILTIN = {"ner": "peoples_daily_ner", "cws": "peoples_daily_cws", "sentiment": "review_sentiment"}
METRICS = {"ner": ("precision", "recall", "f1"), "cws": ("precision", "recall", "f1"), "sentiment": ("accuracy", "macro_f1")}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_one(task: str, variant: str, args: argparse.Namespace) -> dict:
    out = Path(args.workdir) / f"{task}-{variant}"
    cmd = [sys.executable, str(ROOT / "scripts" / SCRIPTS[task]), "--task_name", BUILTIN[task], "--output_dir", str(out),
           "--overwrite_output_dir", "true", "--num_train_epochs", str(args.epochs), "--disable_tqdm", "true"]
    if variant.startswith("pretrained"):
        cmd += ["--model_name_or_path", args.pretrained, "--learning_rate", str(args.lr_pretrained)]
    else:
        cmd += ["--preset", "tiny", "--learning_rate", str(args.lr_scratch)]
    if variant.endswith("causal"):
        cmd += ["--config_overrides", "classifier_attention=causal"]
    cmd += args.extra
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cpu0, wall0 = children_cpu(), time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    cpu, wall = children_cpu() - cpu0, time.time() - wall0
    if proc.returncode:
        sys.exit(f"error: {task}/{variant} failed:\n{proc.stderr[-3000:]}")
    results = json.loads((out / "all_results.json").read_text())
    metrics = {m: results[f"test_{m}"] for m in METRICS[task]}
    config = json.loads((out / "config.json").read_text())
    command = " ".join(Path(c).name if c.endswith(".py") else c for c in cmd[1:])
    print(f"[{task}] {variant}: {metrics} in {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    return make_result(
        task, f"hf_charlm {config['backbone']} ({variant}, {args.epochs} epochs max)", metrics,
        num_examples=load_builtin(BUILTIN[task])["test"].num_rows,
        cpu_seconds={"load": None, "train": round(cpu, 1), "test": None},
        model_size_bytes=(out / "model.safetensors").stat().st_size,
        model_size_note="model.safetensors (float32)",
        notes=(f"fine-tuning wall {wall:.0f} s on {os.cpu_count()} cores, CPU {cpu:.0f} s (train + eval + test); "
               f"pretraining not included; epochs run {results.get('epoch', '?')}"),
        command=f"python scripts/{command}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", default="outputs/charlm-pretrain")
    parser.add_argument("--tasks", default="ner,cws,sentiment")
    parser.add_argument("--variants", default="pretrained,scratch,pretrained-causal")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--lr_pretrained", type=float, default=5e-4)
    parser.add_argument("--lr_scratch", type=float, default=1e-3)
    parser.add_argument("--workdir", default="outputs/finetune_runs")
    parser.add_argument("--output", default="benchmarks/results/charlm_rows.json")
    parser.add_argument("extra", nargs="*", help="further script arguments, after --")
    args = parser.parse_args()
    rows = []
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks.split(","):
        for variant in args.variants.split(","):
            rows.append(run_one(task, variant, args))
            out.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")  # partial results survive
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
