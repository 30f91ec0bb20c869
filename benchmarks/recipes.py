"""Training recipes per task and budget, run end to end with the package's scripts and scored like every other
row of benchmarks/chinese_tasks.py (test split, hf_charlm.metrics).

A recipe is one shared pretraining run (`scripts/pretrain.py`) and one fine-tuning run per task and system
(`scripts/finetune_token_classification.py`, `scripts/finetune_sequence_classification.py`), each given a wall-clock
budget. Each run's number of steps is fitted to its budget by a short timing run of the same command on the same
machine (`--probe_steps` steps, run under the same concurrency), so the learning-rate schedule ends where the budget
ends; the fitted steps are written next to the results. Validation is scored during training (the curve that
`--plot` draws); the test split is scored once, at the end, and never used for any choice.

    # one GPU: a 2.5-minute shared MLM pretraining run, then every fine-tuning run at once, 2 minutes each
    python benchmarks/recipes.py --budget gpu --output_dir benchmarks/results
    # 2 CPU cores: 60 minutes of pretraining, then 30 minutes per fine-tuning run, one at a time
    python benchmarks/recipes.py --budget cpu --output_dir benchmarks/results

Writes `recipes_<budget>.json` (rows in the layout of chinese_tasks.py's `--extra_results`, plus the curves and the
fitted steps) and, with matplotlib, `recipes_<budget>_curves.png` (validation score against training seconds).
The command lines of every run are in the JSON (`command`) and in the README's recipe table.
"""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from chinese_tasks import make_result  # noqa: E402
from finetune_runs import BUILTIN, METRICS, SCRIPTS  # noqa: E402  (the same scripts, datasets and metrics)

from hf_charlm.data import load_builtin  # noqa: E402

MAIN = {"ner": "f1", "cws": "f1", "sentiment": "accuracy"}
PRETRAINED = "{pretrained}"  # replaced by the shared pretraining run's output folder

# what every budget shares: the pretraining corpus is the train splits of the built-in texts only (the
# validation and test sentences of every task stay out: tests/test_data.py checks it)
PRETRAIN_COMMON = ["--objective", "mlm", "--masking", "char", "--builtin", "peoples_daily_text,reviews_text",
                   "--lr_scheduler_type", "cosine", "--warmup_steps", "0.05", "--logging_steps", "100",
                   "--eval_strategy", "no", "--save_strategy", "no"]
# 2**18 buckets of 32-dim bigram embeddings: the CWS train split has 247k distinct character bigrams
BIGRAMS = "bigram_buckets=262144,bigram_embedding_size=32"
FINETUNE_COMMON = ["--eval_strategy", "steps", "--save_strategy", "no", "--load_best_model_at_end", "false",
                   "--lr_scheduler_type", "linear", "--warmup_steps", "0.06", "--logging_steps", "50"]

# hashed n-gram indicator features read straight into the scores (config.feature_buckets): the CRF baseline's
# window for the token heads, character 1-3-grams for sentiment; 2**20 rows of per-label weights
FEATURES = "feature_buckets=1048576"
# batches of similar lengths: the built-in sentences are 94 characters on average, the longest of a random batch of
# 32 is 385 on average, so a random batch is three quarters padding
GROUPED = ["--train_sampling_strategy", "group_by_length"]

# dropout on the embeddings (characters + bigrams) and on every block's output
DROPOUT = "hidden_dropout_prob=0.1,embedding_dropout=0.1"

# keep the checkpoint of the best validation score (saved at every evaluation, `--save_steps` set to match)
BEST_ON_VALIDATION = ["--save_strategy", "steps", "--load_best_model_at_end", "true", "--save_total_limit", "1"]
RECIPES = {
    "gpu": {
        "where": "one GPU",
        "parallel": True,  # the small models leave the GPU mostly idle: every fine-tuning run at once
        "pretrain_seconds": 150,
        "finetune_seconds": 120,
        "pretrain": ["--preset", "small", "--block_size", "256", "--per_device_train_batch_size", "64",
                     "--learning_rate", "1e-3", "--bf16", "true", "--config_overrides", "hidden_dropout_prob=0.1"],
        "systems": {
            # name -> (tasks, arguments)
            "small transformer, MLM-pretrained, CRF": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "3e-4",
                "--per_device_train_batch_size", "32", "--tf32", "true"]),
            "small transformer, MLM-pretrained": (("ner", "cws", "sentiment"), [
                "--model_name_or_path", PRETRAINED, "--learning_rate", "3e-4", "--per_device_train_batch_size", "32",
                "--tf32", "true"]),
            "BiLSTM-CRF, scratch": (("ner", "cws"), [
                "--preset", "small", "--backbone", "lstm", "--config_overrides", "num_hidden_layers=2,hidden_dropout_prob=0.2",
                "--use_crf", "true", "--learning_rate", "2e-3", "--per_device_train_batch_size", "32", "--tf32", "true"]),
        },
    },
    "cpu": {
        "where": "2 CPU cores",
        "parallel": False,
        "pretrain_seconds": 3600,
        "finetune_seconds": 1800,
        # the masked LM learns the bigram table too; the systems without bigrams drop it (bigram_buckets=0)
        "pretrain": ["--preset", "tiny", "--block_size", "128", "--per_device_train_batch_size", "32",
                     "--learning_rate", "3e-3", "--config_overrides", BIGRAMS],
        "systems": {
            "tiny transformer, MLM-pretrained, CRF": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "1e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", "bigram_buckets=0"]),
            "tiny transformer, MLM-pretrained": (("sentiment",), [
                "--model_name_or_path", PRETRAINED, "--learning_rate", "1e-3", "--per_device_train_batch_size", "32",
                "--config_overrides", "bigram_buckets=0"]),
            "BiLSTM-CRF, scratch": (("ner", "cws"), [
                "--preset", "tiny", "--backbone", "lstm", "--config_overrides", "num_hidden_layers=1,hidden_dropout_prob=0.2",
                "--use_crf", "true", "--learning_rate", "3e-3", "--per_device_train_batch_size", "32"]),
            # hashed character-bigram features (config.bigram_buckets), the n-gram features the CRF baseline reads
            "tiny transformer, MLM-pretrained, CRF, bigrams": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "1e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", BIGRAMS]),
            "tiny transformer, MLM-pretrained, bigrams": (("sentiment",), [
                "--model_name_or_path", PRETRAINED, "--learning_rate", "1e-3", "--per_device_train_batch_size", "32",
                "--config_overrides", BIGRAMS]),
            "BiLSTM-CRF, bigrams, scratch": (("ner", "cws"), [
                "--preset", "tiny", "--backbone", "lstm", "--config_overrides",
                f"num_hidden_layers=1,hidden_dropout_prob=0.2,{BIGRAMS}",
                "--use_crf", "true", "--learning_rate", "3e-3", "--per_device_train_batch_size", "32"]),
            "BiLSTM-CRF, bigrams, n-gram features, scratch": (("ner", "cws"), [
                "--preset", "tiny", "--backbone", "lstm", "--config_overrides",
                f"num_hidden_layers=1,hidden_dropout_prob=0.2,{BIGRAMS},{FEATURES}",
                "--use_crf", "true", "--learning_rate", "3e-3", "--per_device_train_batch_size", "32", *GROUPED]),
            "BiLSTM, bigrams, n-gram features, scratch": (("sentiment",), [
                "--preset", "tiny", "--backbone", "lstm", "--config_overrides",
                f"num_hidden_layers=1,hidden_dropout_prob=0.2,{BIGRAMS},{FEATURES}",
                "--learning_rate", "3e-3", "--per_device_train_batch_size", "32", *GROUPED, *BEST_ON_VALIDATION]),
            # sentiment's validation accuracy peaks early and swings by 0.02-0.03 between evaluations: the checkpoint
            # of the best validation accuracy is the model (chosen on validation only)
            "tiny transformer, MLM-pretrained, bigrams, best on validation": (("sentiment",), [
                "--model_name_or_path", PRETRAINED, "--learning_rate", "1e-3", "--per_device_train_batch_size", "32",
                "--config_overrides", BIGRAMS, *BEST_ON_VALIDATION]),
            # dropout in fine-tuning (the presets have none): the token runs above reach a training loss of 0.002-0.003
            # per token by their third epoch while validation F1 stays flat (measured 2026-12-01: lower than the same
            # command without dropout on both tasks, validation and test; kept as a row of the table, not a default)
            "tiny transformer, MLM-pretrained, CRF, bigrams, dropout 0.1": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "1e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", f"{BIGRAMS},{DROPOUT}"]),
            # the n-gram features on the pretrained transformer (their weights start at zero: the pretrained model's
            # scores at step 0); the token systems with grouped batches, as the BiLSTM ones
            "tiny transformer, MLM-pretrained, bigrams, n-gram features, best on validation": (("sentiment",), [
                "--model_name_or_path", PRETRAINED, "--learning_rate", "1e-3", "--per_device_train_batch_size", "32",
                "--config_overrides", f"{BIGRAMS},{FEATURES}", *BEST_ON_VALIDATION]),
            "tiny transformer, MLM-pretrained, CRF, bigrams, n-gram features": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "1e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", f"{BIGRAMS},{FEATURES}", *GROUPED]),
            # the learning rate of the token recipe, doubled (a grid with the 1e-3 above, chosen on validation)
            "tiny transformer, MLM-pretrained, CRF, bigrams, lr 2e-3": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "2e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", BIGRAMS]),
            # and tripled: the third point of that grid (chosen on validation)
            "tiny transformer, MLM-pretrained, CRF, bigrams, lr 3e-3": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "3e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", BIGRAMS]),
            # lexicon features from the train split's spans (words for segmentation, entities for NER), jackknifed
            # over 5 folds (each sentence sees the words of the other folds only), words of 2-4 characters
            "tiny transformer, MLM-pretrained, CRF, bigrams, lexicon, lr 3e-3": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "3e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", BIGRAMS, "--lexicon", "train"]),
            # with the lexicon the runs peak on validation within a quarter of the 30 minutes and early stopping ends
            # them at about half: the checkpoint of the best validation score is kept, and more members fit
            "tiny transformer, MLM-pretrained, CRF, bigrams, lexicon, lr 3e-3, best on validation": (("ner", "cws"), [
                "--model_name_or_path", PRETRAINED, "--use_crf", "true", "--learning_rate", "3e-3",
                "--per_device_train_batch_size", "32", "--config_overrides", BIGRAMS, "--lexicon", "train",
                *BEST_ON_VALIDATION]),
        },
    },
}


def launch(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    proc.log, proc.started = log, time.time()  # type: ignore[attr-defined]
    return proc


def finished(proc: subprocess.Popen, status: int, usage) -> dict:
    """A run that has ended (`os.wait4`'s status and usage): its wall seconds and CPU seconds (its own process
    tree); a failed run stops the benchmark with the end of its log."""
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.time() - proc.started  # type: ignore[attr-defined]
    if proc.returncode:
        tail = proc.log.read_text()[-3000:]  # type: ignore[attr-defined]
        sys.exit(f"error: {shlex.join(proc.args)} failed ({proc.returncode}):\n{tail}")
    return {"wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}


def run_all(cmds: dict[str, list[str]], workdir: Path, parallel: bool, env: dict) -> dict[str, dict]:
    if parallel:
        procs = {name: launch(cmd, workdir / f"{name}.log", env) for name, cmd in cmds.items()}
        # collected as they end, each timed at its own end (waiting in launch order would time a run that ended
        # before an earlier one at that one's end)
        running = {proc.pid: name for name, proc in procs.items()}
        costs = {}
        while running:
            pid, status, usage = os.wait4(-1, 0)
            if pid in running:
                name = running.pop(pid)
                costs[name] = finished(procs[name], status, usage)
        return {name: costs[name] for name in cmds}
    out = {}
    for name, cmd in cmds.items():
        proc = launch(cmd, workdir / f"{name}.log", env)
        out[name] = finished(proc, *os.wait4(proc.pid, 0)[1:])
    return out


def fit_steps(cmds: dict[str, tuple[list[str], Path]], seconds: float, args, workdir: Path, parallel: bool, env: dict) -> dict[str, int]:
    """Steps each command trains in `seconds`: a timing run of `--probe_steps` steps of the same command and, for
    fine-tuning, one evaluation of the validation split (no prediction), the same runs side by side when they will
    run side by side. A fine-tuning run evaluates `--evaluations` times, at its last step, once more at the end and
    predicts the test split: that time is set aside (with a CRF about a seventh of a 30-minute budget), and
    `--step_margin` of the rest goes to training steps."""
    probes, probe_steps = {}, {}
    for name, (cmd, _) in cmds.items():
        # batches grouped by length come longest first within each mega-batch of 50 (transformers'
        # LengthGroupedSampler): a probe shorter than a mega-batch times the long ones only (the first grouped runs
        # of 2026-12-01 trained for 0.30-0.84 of their budget); 60 steps cover a whole one
        probe_steps[name] = max(args.probe_steps, 60) if "group_by_length" in cmd else args.probe_steps
        probes[name] = cmd + ["--output_dir", str(workdir / "probe" / name), "--max_steps", str(probe_steps[name]),
                              "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                              "--do_train", "true", "--overwrite_output_dir", "true"]
        finetuning = "pretrain.py" not in cmd[1]
        probes[name] += ["--do_eval", "true", "--do_predict", "false"] if finetuning else ["--do_eval", "false"]
    run_all(probes, workdir / "probe", parallel, env)
    steps = {}
    for name in cmds:
        results = json.loads((workdir / "probe" / name / "all_results.json").read_text())
        scoring = (args.evaluations + 3) * results.get("eval_runtime", 0.0)
        if scoring >= seconds / 2:  # (smoke runs) the run is then longer than its budget: say so
            print(f"warning: {name}: {args.evaluations + 3} evaluations of {results['eval_runtime']:.1f} s take "
                  f"{scoring:.0f} s of the {seconds:.0f} s budget", flush=True)
        # the probe's first steps carry warm-up costs (allocation, kernel selection): a slight underestimate of the rate
        rate = probe_steps[name] / results["train_runtime"]
        steps[name] = max(probe_steps[name], int(max(seconds - scoring, 0.0) * rate * args.step_margin))
    return steps


def curve(output_dir: Path, metric: str) -> list[tuple[float, float]]:
    """(training seconds, validation score) at each evaluation during training; seconds are the step times the
    run's mean step time (the Trainer logs steps, not clock times)."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    history = state["log_history"]
    runtime = next((h["train_runtime"] for h in history if "train_runtime" in h), None)
    total = state.get("global_step") or 1
    return [(round(h["step"] * runtime / total, 1), h[f"eval_{metric}"]) for h in history if f"eval_{metric}" in h and runtime]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=sorted(RECIPES), required=True)
    parser.add_argument("--tasks", default="ner,cws,sentiment")
    parser.add_argument("--systems", default=None,
                        help="system names of the recipe separated by ';' (the names contain commas; default: all)")
    parser.add_argument("--pretrained", default=None, help="skip the pretraining run and start from this folder")
    parser.add_argument("--pretrain_only", action="store_true",
                        help="run the shared pretraining only (its folder is WORKDIR/BUDGET/pretrain), then stop: the "
                             "fine-tuning runs can then start from it with --pretrained, side by side")
    parser.add_argument("--where", default=None, help="describe the machine in the rows and the table (default: the recipe's own words)")
    parser.add_argument("--seed", type=int, default=None,
                        help="the fine-tuning runs' seed (default: the scripts' own, 42), said in the rows' system names; "
                             "the shared pretraining keeps its own (a repeat of a run with another seed)")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="K > 1: each chosen system's fine-tuning runs K times side by side (seeds --seed, --seed + 1, "
                             "...; with OMP_NUM_THREADS=1 one thread each: K = 2 is a core each on the 2-core machine; "
                             "one task per command), then scripts/build_ensemble.py builds their output ensemble, "
                             "scored like the members (one row per member and one for the ensemble)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every budget (e.g. 0.02 for a smoke run)")
    parser.add_argument("--probe_steps", type=int, default=40)
    parser.add_argument("--step_margin", type=float, default=0.9,
                        help="share of the budget given to training steps, after the time of the run's evaluations "
                             "(timed by the probe) is set aside: the rest covers start-up, saving and slower steps")
    parser.add_argument("--evaluations", type=int, default=8, help="validation scores per fine-tuning run")
    parser.add_argument("--max_samples", type=int, default=None, help="cut every split (smoke runs only)")
    parser.add_argument("--workdir", default="outputs/recipes")
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument("--plot", default="true", choices=("true", "false"))
    parser.add_argument("--redraw", default=None, help="only redraw the table and plot of this recipes_<budget>.json")
    args = parser.parse_args()
    if args.redraw:
        finish(json.loads(Path(args.redraw).read_text()), Path(args.output_dir), args)
        return
    recipe = dict(RECIPES[args.budget])
    if args.where:
        recipe["where"] = args.where
    workdir = Path(args.workdir) / args.budget
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    python = sys.executable
    limit = [] if args.max_samples is None else ["--max_train_samples", str(args.max_samples),
                                                 "--max_eval_samples", str(args.max_samples)]
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report: dict = {"budget": args.budget, "where": recipe["where"], "started": started, "command": shlex.join(["python"] + sys.argv),
                    "load_average_start": os.getloadavg(), "cpu_count": os.cpu_count(), "rows": [], "runs": {}}
    result_path = out_dir / f"recipes_{args.budget}.json"

    def save() -> None:  # partial results survive a run cut short
        result_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")

    if args.ensemble < 1:
        parser.error(f"--ensemble={args.ensemble} must be >= 1")
    wanted = {name.strip() for name in args.systems.split(";")} if args.systems else None
    if wanted is not None and wanted - set(recipe["systems"]):
        parser.error(f"--systems: unknown {sorted(wanted - set(recipe['systems']))}; the {args.budget} recipe has "
                     + "; ".join(recipe["systems"]))
    chosen = {system: (tasks, extra) for system, (tasks, extra) in recipe["systems"].items()
              if (wanted is None or system in wanted) and set(tasks) & set(args.tasks.split(","))}

    if args.ensemble > 1 and not chosen:
        parser.error("--ensemble: no system of the recipe runs on --tasks " + args.tasks)

    # 1. the shared pretraining run (only if a chosen system starts from it)
    pretrained = args.pretrained
    if args.pretrain_only and pretrained is not None:
        parser.error("--pretrain_only runs the pretraining: it cannot start from --pretrained")
    if pretrained is None and (args.pretrain_only or any(PRETRAINED in extra for _, extra in chosen.values())):
        pretrained = str(workdir / "pretrain")
        cmd = [python, str(ROOT / "scripts" / "pretrain.py"), *PRETRAIN_COMMON, *recipe["pretrain"], *limit]
        seconds = recipe["pretrain_seconds"] * args.scale
        steps = fit_steps({"pretrain": (cmd, Path(pretrained))}, seconds, args, workdir, False, env)["pretrain"]
        cmd += ["--max_steps", str(steps), "--output_dir", pretrained, "--overwrite_output_dir", "true"]
        cost = run_all({"pretrain": cmd}, workdir, False, env)["pretrain"]
        results = json.loads((Path(pretrained) / "all_results.json").read_text())
        report["pretrain"] = {**cost, "steps": steps, "budget_s": seconds, "command": shlex.join(["python", *cmd[1:]]),
                              "eval": {k: v for k, v in results.items() if k.startswith("eval_")}}
        print(f"pretraining: {steps} steps, {cost}", flush=True)
        save()
        if args.pretrain_only:
            print(f"wrote {result_path} (pretraining only); fine-tune with --pretrained {pretrained}")
            return

    # 2. the fine-tuning runs (with --ensemble K, K runs of each token system, one seed each)
    cmds: dict[str, tuple[list[str], Path]] = {}
    runs_of: dict[str, tuple[str, str, int | None]] = {}  # run name -> (task, system, seed)
    groups: dict[tuple[str, str], list[str]] = {}  # (task, system) -> the member runs of its ensemble
    first_seed = 42 if args.seed is None else args.seed  # (the scripts' default seed)
    for system, (tasks, extra) in chosen.items():
        for task in tasks:
            if task not in args.tasks.split(","):
                continue
            name = f"{task}--{system.replace(', ', '--').replace(' ', '_')}"
            cmd = [python, str(ROOT / "scripts" / SCRIPTS[task]), "--task_name", BUILTIN[task], *FINETUNE_COMMON,
                   *[pretrained if a == PRETRAINED else a for a in extra], *limit, "--disable_tqdm", "true"]
            if args.max_samples is not None:
                cmd += ["--max_test_samples", str(args.max_samples)]
            if args.ensemble > 1:
                for seed in range(first_seed, first_seed + args.ensemble):
                    member = f"{name}--seed_{seed}"
                    cmds[member] = (cmd + ["--seed", str(seed)], workdir / member)
                    runs_of[member] = (task, system, seed)
                    groups.setdefault((task, system), []).append(member)
                continue
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
            cmds[name] = (cmd, workdir / name)
            runs_of[name] = (task, system, args.seed)
    # the members of an ensemble train side by side, as they would on a machine with a core per member
    parallel = recipe["parallel"] or args.ensemble > 1
    seconds = recipe["finetune_seconds"] * args.scale
    steps = fit_steps(cmds, seconds, args, workdir, parallel, env)
    full = {}
    for name, (cmd, output_dir) in cmds.items():
        every = str(max(1, steps[name] // args.evaluations))
        full[name] = cmd + ["--max_steps", str(steps[name]), "--eval_steps", every, "--save_steps", every,
                            "--output_dir", str(output_dir), "--overwrite_output_dir", "true"]
    costs = run_all(full, workdir, parallel, env)
    num_test = {task: (load_builtin(BUILTIN[task])["test"].num_rows if args.max_samples is None else args.max_samples)
                for task in BUILTIN}
    for name, (cmd, output_dir) in cmds.items():
        task, system, seed = runs_of[name]
        results = json.loads((output_dir / "all_results.json").read_text())
        config = json.loads((output_dir / "config.json").read_text())
        points = curve(output_dir, MAIN[task])
        cost = costs[name]
        pre = report.get("pretrain")
        seeded = "" if seed is None else f", seed {seed}"
        row = make_result(
            task, f"hf_charlm {system}{seeded} ({recipe['where']} recipe)", {m: results[f"test_{m}"] for m in METRICS[task]},
            num_examples=num_test[task],
            cpu_seconds={"load": None, "train": cost["cpu_s"], "test": None},
            model_size_bytes=(output_dir / "model.safetensors").stat().st_size,
            model_size_note=f"model.safetensors (float32, {config['backbone']}, hidden {config['hidden_size']} x {config['num_hidden_layers']} layers)",
            notes=(f"{recipe['where']}: fine-tuning {cost['wall_s']:.0f} s wall ({steps[name]} steps, budget "
                   f"{seconds:.0f} s), CPU {cost['cpu_s']:.0f} s (train + validation + test); test prediction "
                   f"{results.get('test_runtime', float('nan')):.1f} s wall"
                   + (f"; shared pretraining {pre['wall_s']:.0f} s wall, CPU {pre['cpu_s']:.0f} s ({pre['steps']} steps)"
                      if pre and PRETRAINED in recipe['systems'][system][1] else "")),
            command=shlex.join(["python", *full[name][1:]]),
            validation_metrics={MAIN[task]: points[-1][1]} if points else None,
        )
        row["curve"] = points
        row["budget"] = args.budget
        report["rows"].append(row)
        # the steps it trained: early stopping (the scripts' default patience) may end a run before --max_steps
        trained = json.loads((output_dir / "trainer_state.json").read_text())["global_step"]
        report["runs"][name] = {**cost, "steps": steps[name], "trained_steps": trained}
        print(f"[{task}] {system}{seeded}: test {MAIN[task]} {results[f'test_{MAIN[task]}']:.4f}; {cost}", flush=True)
        save()
    # (a smoke run cuts the ensemble's scoring as it cut its members')
    smoke = [] if args.max_samples is None else ["--max_eval_samples", str(args.max_samples), "--max_test_samples", str(args.max_samples)]
    for (task, system), members in groups.items():
        ensemble_row(report, task, system, members, cmds, costs, workdir, python, env, recipe["where"], num_test[task], smoke)
        save()
    report["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report["load_average_end"] = os.getloadavg()
    save()
    print(f"wrote {result_path}")
    finish(report, out_dir, args)


def ensemble_row(report: dict, task: str, system: str, members: list[str], cmds: dict, costs: dict, workdir: Path,
                 python: str, env: dict, where: str, num_test: int, limit: list[str]) -> None:
    """Builds the output ensemble of a system's member runs (scripts/build_ensemble.py), scores it on
    validation and test with the fine-tuning script (`--do_train false`), and adds its row: wall time the slowest
    member plus building and scoring (the members ran side by side), CPU time all of it."""
    name = f"{members[0].rsplit('--seed_', 1)[0]}--ensemble_of_{len(members)}"
    model_dir, score_dir = workdir / f"{name}-model", workdir / name
    build = [python, str(ROOT / "scripts" / "build_ensemble.py"), "--members",
             *[str(cmds[m][1]) for m in members], "--output_dir", str(model_dir), "--overwrite_output_dir", "true"]
    score = [python, str(ROOT / "scripts" / SCRIPTS[task]), "--task_name", BUILTIN[task], "--model_name_or_path",
             str(model_dir), "--do_train", "false", "--do_eval", "true", "--do_predict", "true", "--disable_tqdm", "true",
             *limit, "--output_dir", str(score_dir), "--overwrite_output_dir", "true"]
    after = run_all({f"{name}-build": build}, workdir, False, env)[f"{name}-build"]
    scored = run_all({f"{name}-score": score}, workdir, False, env)[f"{name}-score"]
    results = json.loads((score_dir / "all_results.json").read_text())
    config = json.loads((model_dir / "config.json").read_text())
    seeds = ", ".join(m.rsplit("--seed_", 1)[1] for m in members)
    wall = max(costs[m]["wall_s"] for m in members) + after["wall_s"] + scored["wall_s"]
    cpu = sum(costs[m]["cpu_s"] for m in members) + after["cpu_s"] + scored["cpu_s"]
    member_walls = ", ".join(format(costs[m]["wall_s"], ".0f") for m in members)
    row = make_result(
        task, f"hf_charlm {system}, ensemble of {len(members)} (seeds {seeds}) ({where} recipe)",
        {m: results[f"test_{m}"] for m in METRICS[task]},
        num_examples=num_test,
        cpu_seconds={"load": None, "train": round(cpu, 1), "test": None},
        model_size_bytes=(model_dir / "model.safetensors").stat().st_size,
        model_size_note=f"model.safetensors (float32, {len(members)} x {config['backbone']}, hidden {config['hidden_size']} x "
                        f"{config['num_hidden_layers']} layers)",
        notes=(f"{where}: the {len(members)} members fine-tuned side by side ({member_walls} s "
               f"wall), the ensemble built in {after['wall_s']:.0f} s and scored in {scored['wall_s']:.0f} s: {wall:.0f} s wall in "
               f"all, CPU {cpu:.0f} s; test prediction {results.get('test_runtime', float('nan')):.1f} s wall"),
        command=" ; ".join([shlex.join(["python", *build[1:]]), shlex.join(["python", *score[1:]])]),
        validation_metrics={MAIN[task]: results[f"eval_{MAIN[task]}"]},
    )
    row["curve"] = []  # (no training of its own: the plot draws its members' curves and its own validation score)
    row["member_curves"] = [next(r["curve"] for r in report["rows"] if r["command"].endswith(f"/{m} --overwrite_output_dir true"))
                            for m in members]
    row["budget"] = report["budget"]
    report["rows"].append(row)
    member_steps = " + ".join(str(report["runs"][m]["trained_steps"]) for m in members)
    report["runs"][name] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "steps": member_steps, "trained_steps": member_steps}
    print(f"[{task}] {system}, ensemble of {len(members)}: validation {MAIN[task]} {results[f'eval_{MAIN[task]}']:.4f}, "
          f"test {MAIN[task]} {results[f'test_{MAIN[task]}']:.4f}; wall {wall:.0f} s, CPU {cpu:.0f} s", flush=True)


def finish(report: dict, out_dir: Path, args: argparse.Namespace) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    # the classical rows: the results folder's own table, else the one committed with the package
    reference = out_dir / "chinese_tasks.json"
    if not reference.is_file():
        reference = ROOT / "benchmarks" / "results" / "chinese_tasks.json"
    write_table(report, out_dir / f"recipes_{report['budget']}.md", reference)
    if args.plot == "true":
        plot(report, out_dir / f"recipes_{report['budget']}_curves.png")
        plot(report, out_dir / f"recipes_{report['budget']}_best.png", best_only=True)


def steps_cell(run: dict) -> str:
    """The steps a run trained, with its --max_steps where early stopping ended it before (runs recorded before
    2026-12-01 give --max_steps only)."""
    trained = run.get("trained_steps", run["steps"])
    return str(trained) if trained == run["steps"] else f"{trained} of {run['steps']}"


def write_table(report: dict, path: Path, reference: Path) -> None:
    """The recipe's rows under the classical reference rows of `reference` (chinese_tasks.json), per task."""
    classical = json.loads(reference.read_text()) if reference.is_file() else []
    lines = [f"# Training recipes: {report['where']} ({report['started']} to {report.get('finished', '?')})", "",
             f"`{report['command']}`", "",
             f"Machine: {report['cpu_count']} CPU cores; load average at the start {report['load_average_start'][0]:.2f}. "
             "Test split of each built-in task, scored by hf_charlm.metrics; the classical rows are copied from "
             f"`{reference.name}` (same scoring code, 2 CPU cores).", ""]
    if "pretrain" in report:
        pre = report["pretrain"]
        lines += [f"Shared pretraining: {pre['steps']} steps, {pre['wall_s']:.0f} s wall, CPU {pre['cpu_s']:.0f} s; "
                  f"validation masked-char accuracy {pre['eval'].get('eval_masked_accuracy', float('nan')):.4f}. "
                  f"Command: `{pre['command']}`", ""]
    lines += ["| task | system | test score | last validation | steps (trained of max) | fine-tuning wall s | CPU s | model size |",
              "|---|---|---|---|---:|---:|---:|---:|"]
    for task in BUILTIN:
        for row in classical:
            if row["task"] == task and "hf_charlm" not in row["system"] and row["cpu_seconds"].get("train"):
                lines.append(f"| {task} | {row['system']} | {MAIN[task]} {row['metrics'][MAIN[task]]:.4f} | - | - | - | "
                             f"{row['cpu_seconds']['train']:.0f} (train) | {row['model_size_bytes'] / 1e6:.1f} MB |")
        for row in report["rows"]:
            if row["task"] != task:
                continue
            # a run is keyed by the end of its --output_dir (merged runs: the folder below outputs/)
            run = next((v for k, v in report["runs"].items() if row["command"].endswith(f"/{k} --overwrite_output_dir true")), None)
            if run is None:
                sys.exit(f"error: no entry of report['runs'] is keyed by the end of the --output_dir of the row "
                         f"{row['system']!r} (command: ...{row['command'][-120:]})")
            val = row["validation_metrics"] or {}
            lines.append(f"| {task} | {row['system']} | {MAIN[task]} {row['metrics'][MAIN[task]]:.4f} | "
                         f"{val.get(MAIN[task], float('nan')):.4f} | {steps_cell(run)} | {run['wall_s']:.0f} | "
                         f"{'-' if run['cpu_s'] is None else format(run['cpu_s'], '.0f')} | "
                         f"{row['model_size_bytes'] / 1e6:.1f} MB |")
    lines += ["", "Commands of the fine-tuning runs:", ""] + [f"- `{row['command']}`" for row in report["rows"]]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


# the pretraining a merged row names, as its legend says it
SHORT_SOURCES = {"People's Daily masked LM": "news MLM", "the recipe's masked LM with bigrams": "recipe MLM"}


def best_rows(report: dict) -> dict[str, dict]:
    """Per task, the row of the highest validation score (the table's validation column; chosen on validation only)."""
    def validation(row: dict) -> float | None:
        return (row.get("validation_metrics") or {}).get(MAIN[row["task"]])

    best: dict[str, dict] = {}
    for row in report["rows"]:
        task = row["task"]
        drawn = row["curve"] or row.get("member_curves")
        if drawn and validation(row) is not None and (task not in best or validation(row) > validation(best[task])):
            best[task] = row
    return best


def plot(report: dict, path: Path, best_only: bool = False) -> None:
    """Validation score against training seconds, one panel per task, one line per system (`best_only`: the system
    of the best validation score per task only)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    rows = list(best_rows(report).values()) if best_only else report["rows"]
    tasks = sorted({row["task"] for row in rows}, key=list(BUILTIN).index)
    # the legends go below the panels (inside, a long list of systems hides the curves)
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        if sum(row["task"] == task for row in rows) > 10:  # more lines than the default cycle has colours
            ax.set_prop_cycle(color=plt.cm.tab20.colors)
        for row in rows:
            if row["task"] == task and row.get("member_curves"):  # an ensemble: its members, then its own score
                label = row["system"].removeprefix("hf_charlm ").split(" (")[0]
                for i, member in enumerate(row["member_curves"] if best_only else ()):  # (all rows: drawn as their own)
                    xs, ys = zip(*member)
                    ax.plot(xs, ys, marker="o", ms=2, lw=1, ls="--", alpha=0.7, label=f"member {i + 1} (one core)")
                end = max(member[-1][0] for member in row["member_curves"])
                label += f"; validation {row['validation_metrics'][MAIN[task]]:.4f}"
                if best_only:
                    label += f", test {MAIN[task]} {row['metrics'][MAIN[task]]:.4f}"
                ax.plot([end], [row["validation_metrics"][MAIN[task]]], marker="*", ms=12, ls="none", label=label)
            if row["task"] == task and row["curve"]:
                xs, ys = zip(*row["curve"])
                label = row["system"].removeprefix("hf_charlm ").split(" (")[0]
                if "; pretrained: " in row["system"]:  # merged runs: which pretraining the system started from
                    described = row["system"].split("; pretrained: ")[1]
                    source = described.split(",")[0].rstrip(")")
                    rerun = re.search(r"\d{4}-(\d{2}-\d{2})", described)  # a later run of the same pretraining, dated
                    label += f" [{SHORT_SOURCES.get(source, source)}{' ' + rerun.group(1) if rerun else ''}]"
                if "2 threads" in row["system"]:  # a run that had both cores (the others: one core each)
                    label += ", 2 threads"
                if best_only:  # the one system of the panel: its test score, scored once at the end
                    label += f"; test {MAIN[task]} {row['metrics'][MAIN[task]]:.4f}"
                ax.plot(xs, ys, marker="o", ms=3, label=label)
        ax.set_title(f"{task}: validation {MAIN[task]}")
        ax.set_xlabel("training seconds")
        ax.grid(alpha=0.3)
    # (the machine once, above the panels: it can be a long phrase)
    fig.suptitle(("the best system per task on validation; " if best_only else "") + report["where"], fontsize=9)
    fig.tight_layout()  # before the legends: laid out with them, the panels would shrink to make room
    for ax in axes[0]:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
