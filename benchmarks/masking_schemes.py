"""Which pretraining objective makes the best starting point for the Chinese token tasks, at an equal budget?

For each objective (causal LM, and masked LM with char / span / whole-word masking) it pretrains the same `tiny`
transformer for the same number of steps on both built-in corpora (`peoples_daily_text,reviews_text`, train splits
only), then fine-tunes each checkpoint on the same task with the same recipe, and reports the task's **validation**
score (the choice of the default masking is made on validation; test is not looked at here). Everything runs
through the real scripts in subprocesses, one after the other; wall and CPU seconds are recorded per run with the
load average, so read timings as indicative on a shared machine.

    python benchmarks/masking_schemes.py --pretrain_steps 600 --task cws --finetune_epochs 1 \
        --output benchmarks/results/masking_schemes.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"cws": "peoples_daily_cws", "ner": "peoples_daily_ner"}
VARIANTS = {
    "clm": ["--objective", "clm"],
    "mlm-char": ["--objective", "mlm", "--masking", "char"],
    "mlm-span": ["--objective", "mlm", "--masking", "span"],
    "mlm-word": ["--objective", "mlm", "--masking", "word"],
}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str]) -> tuple[float, float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cpu0, wall0 = children_cpu(), time.time()
    proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.time() - wall0, children_cpu() - cpu0, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--pretrain_steps", type=int, default=600)
    parser.add_argument("--task", default="cws", choices=sorted(TASKS))
    parser.add_argument("--finetune_epochs", type=float, default=1.0)
    parser.add_argument("--max_train_samples", type=int, default=None, help="fine-tuning examples (default: all)")
    parser.add_argument("--workdir", default="outputs/masking_schemes")
    parser.add_argument("--output", default="benchmarks/results/masking_schemes.json")
    args = parser.parse_args()
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            parser.exit(2, f"error: unknown variant {v!r}: choose from {', '.join(VARIANTS)}\n")
    if args.pretrain_steps < 1 or args.finetune_epochs <= 0:
        parser.exit(2, "error: --pretrain_steps and --finetune_epochs must be positive\n")

    rows = []
    for variant in variants:
        pre = Path(args.workdir) / f"pretrain-{variant}"
        load_before = os.getloadavg()
        pre_wall, pre_cpu, _ = run([
            "scripts/pretrain.py", *VARIANTS[variant], "--builtin", "peoples_daily_text,reviews_text",
            "--output_dir", str(pre), "--overwrite_output_dir", "true", "--max_steps", str(args.pretrain_steps),
            "--eval_steps", str(args.pretrain_steps), "--save_steps", str(args.pretrain_steps), "--disable_tqdm", "true",
        ])
        pre_results = json.loads((pre / "eval_results.json").read_text())
        ft = Path(args.workdir) / f"{args.task}-{variant}"
        cmd = ["scripts/finetune_token_classification.py", "--task_name", TASKS[args.task], "--model_name_or_path", str(pre),
               "--output_dir", str(ft), "--overwrite_output_dir", "true", "--num_train_epochs", str(args.finetune_epochs),
               "--do_train", "--do_eval", "--disable_tqdm", "true"]
        if args.max_train_samples:
            cmd += ["--max_train_samples", str(args.max_train_samples)]
        ft_wall, ft_cpu, _ = run(cmd)
        results = json.loads((ft / "all_results.json").read_text())
        row = {
            "variant": variant,
            "pretrain_steps": args.pretrain_steps,
            "pretrain_eval": {k: v for k, v in pre_results.items() if k.startswith("eval_") and k not in ("eval_runtime", "eval_samples")},
            "pretrain_wall_s": round(pre_wall, 1), "pretrain_cpu_s": round(pre_cpu, 1),
            "task": args.task,
            "finetune_epochs": args.finetune_epochs,
            "validation_f1": results["eval_f1"],
            "validation_precision": results["eval_precision"], "validation_recall": results["eval_recall"],
            "finetune_wall_s": round(ft_wall, 1), "finetune_cpu_s": round(ft_cpu, 1),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv), "rows": rows}
    out.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Pretraining objective -> {args.task} validation F1 ({report['date']})", "", f"`{report['command']}`", "",
             "| pretraining | steps | pretrain wall s | fine-tune epochs | validation F1 | P | R | fine-tune wall s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['pretrain_steps']} | {r['pretrain_wall_s']} | {r['finetune_epochs']} | "
                     f"{r['validation_f1']:.4f} | {r['validation_precision']:.4f} | {r['validation_recall']:.4f} | {r['finetune_wall_s']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
