"""Sequence-to-sequence benchmark: pinyin to characters (`pinyin_to_hanzi`) and Tatoeba translation
(`tatoeba_zh_en`, `tatoeba_en_zh`), systems side by side in one run, on the same data, with the same number of
training steps, batch size, learning-rate schedule and generation settings, scored by the same code
(`hf_charlm.metrics.seq2seq_scores`) on the first `--max_test_samples` test examples.

Systems (`--systems`):
- `transformer`: hf_charlm's `CharLMForConditionalGeneration`, transformer backbone, from scratch, trained by
  `scripts/finetune_seq2seq.py` in a subprocess (the numbers are the script's own run);
- `lstm`: the same script, LSTM backbone with additive (Bahdanau) attention, same width and depth;
- `marian`: transformers' own `MarianMTModel` built from scratch with a `MarianConfig` of the same size (d_model,
  encoder / decoder layers, heads, FFN width, positions, no dropout as hf_charlm's default) on the same char
  tokenizer (trained on the same training texts as the script trains it: same vocabulary, `<pad>` / `<s>` /
  `</s>` ids; `decoder_start_token_id` = `<s>`, the token hf_charlm's decoder starts from), the same encoded
  examples (`hf_charlm.training.encode_seq2seq`: sources `<s>` + characters, labels characters + `</s>`),
  `DataCollatorForSeq2Seq` and a `Seq2SeqTrainer` with the script's `Seq2SeqTrainingArguments` (its
  `FINETUNE_DEFAULTS` plus the same flags), in this process;
- `warm` (with `--warm_start DIR`): the `transformer` row warm-started from a causal hf_charlm checkpoint (the
  script's `--model_name_or_path`: encoder and decoder copied from it, cross-attention new); its size and
  tokenizer are the checkpoint's;
- `pinyin2hanzi` (pinyin_to_hanzi only): the `Pinyin2Hanzi` package's DAG engine, `dag(DefaultDagParams(),
  syllables, path_num=1)`, see `pinyin2hanzi_convert`.
- `tagger` (pinyin_to_hanzi only): the task as token classification, which its data allows (exactly one pinyin
  token per target character): hf_charlm's `CharLMForTokenClassification`, transformer of the same size, from
  scratch, reads the pinyin characters with bidirectional attention and predicts at every character of a syllable
  that syllable's Chinese character (one class per character of the training targets); a syllable's prediction is
  the argmax of the log-probabilities summed over its characters (`tag_pinyin`). No decoder and no alignment to
  learn; trained in this process by a `Trainer` with the flags of the other rows, at most 1,024 positions (longer
  test sources are read in pieces cut at syllable boundaries). Its model and train_results.json stay in
  `--workdir` (`pinyin_to_hanzi-tagger`).
- `ngram` (pinyin_to_hanzi only): the classical input method, trained here on the train split: an interpolated
  Kneser-Ney character n-gram model of the train targets and the syllable table of the train pairs (`baselines.py`),
  beam search; order and emission weight picked on validation at beam 16, then the beam (`baselines.NGRAM_BEAMS`).
- `lm` (pinyin_to_hanzi only, with `--lm DIR`): the input method with hf_charlm models,
  `hf_charlm.pinyin.PinyinDecoder`: a causal hf_charlm language model of People's Daily train text
  (scripts/pretrain.py) ranks by beam search (`--decoder_beams`, default 32) the characters the train pairs'
  syllable table allows. `--fuse` adds, each with a weight picked on the first `--tune_samples` validation pairs
  from `FUSION_WEIGHTS` (every combination): `ngram`, the `ngram` row's Kneser-Ney model (order `--ngram_order`,
  trained here on the train targets) inside the beam search; `backward`, a causal model of the reversed text
  (`--backward DIR`) rescoring the beam's n-best; `tagger`, a saved `tagger` row (`--tagger DIR`) inside the beam
  search. Train seconds are the models' own (`train_runtime` of their results files); the n-gram's counting is in
  the total.

Budget: `--max_steps` for every trained system (the linear schedule runs to it), and `--budget_minutes`, a cap on
each system's training wall time (the script's `--max_train_minutes`; the same callback for Marian): a capped run
stops early and its row says how many steps it ran. Generation: greedy (`--num_beams`), at most
`--max_target_length` tokens (`</s>` included) for every neural system. `--group_by_length` batches examples of
similar length for every trained system (the Trainer's `train_sampling_strategy="group_by_length"`: less padding
on the long pinyin sources).

Reported per row: BLEU and chrF (sacrebleu; BLEU with `tokenize="zh"` for Chinese targets, else `13a`), CER,
exact match, character accuracy (pinyin_to_hanzi), the training steps run, wall and CPU seconds (training and
test as the Trainer measures them, and the whole run: a subprocess's CPU from `getrusage(RUSAGE_CHILDREN)`, the
in-process Marian run's from `time.process_time()`), parameter counts. References are scored whole; a target cut
at `--max_target_length` bounds what a neural system can reach (the `ceiling` in the notes, the share of reference
characters within the limit), while Pinyin2Hanzi reads the whole source.

    python benchmarks/seq2seq_tasks.py --tasks pinyin_to_hanzi,tatoeba_zh_en,tatoeba_en_zh \\
        --max_steps 2000 --budget_minutes 30 --max_test_samples 300 --output_dir benchmarks/results

`--jobs N` runs up to N rows at once, each in its own process of this script pinned to its own core with one
thread, and merges them into one report (the per-row reports and logs stay in `seq2seq_tasks[_TAG]_parts/`): on
the 2-core machine, the hf_charlm row and Marian's train side by side with one core each.

Writes `seq2seq_tasks.json` (settings, command, dates, load averages, `results`) and `seq2seq_tasks.md` (the
table, also printed) to --output_dir (`--tag` adds a suffix to both names). May import hf_charlm, the HF
libraries, sacrebleu, and Pinyin2Hanzi (only for its system).
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from hf_charlm.data import load_builtin  # noqa: E402
from hf_charlm.metrics import seq2seq_scores  # noqa: E402
from hf_charlm.pinyin import syllable_log_probs, syllable_pieces, syllable_spans, syllable_table  # noqa: E402,F401 (tests read them here too)

SCRIPT = ROOT / "scripts" / "finetune_seq2seq.py"
TASKS = ("pinyin_to_hanzi", "tatoeba_zh_en", "tatoeba_en_zh")
SYSTEMS = ("transformer", "lstm", "marian", "warm", "pinyin2hanzi", "ngram", "tagger", "lm")
PINYIN_ONLY = ("pinyin2hanzi", "ngram", "tagger", "lm")
# the `lm` row's --fuse components and the weights tried for each on validation
FUSION_WEIGHTS = {"ngram": (0.5, 1.0), "backward": (0.0, 0.5, 1.0), "tagger": (0.0, 0.25, 0.5)}
# the tagger's position limit: longer test sources are read in pieces cut at syllable boundaries
TAGGER_POSITIONS = 1024
CHINESE_TARGET = {"pinyin_to_hanzi": True, "tatoeba_zh_en": False, "tatoeba_en_zh": True}
# the metric of the "vs marian" column
MAIN_METRIC = {"pinyin_to_hanzi": "char_accuracy", "tatoeba_zh_en": "chrf", "tatoeba_en_zh": "chrf"}
SHOWN = ("bleu", "chrf", "cer", "exact_match", "char_accuracy")


# ----------------------------------------------------------------------------------------------------------------
# Pinyin2Hanzi


@functools.lru_cache(maxsize=1)
def _dag_params() -> Any:
    from Pinyin2Hanzi import DefaultDagParams

    return DefaultDagParams()  # reads its dictionaries (a few seconds)


def pinyin2hanzi_convert(source: str, params: Any = None) -> str:
    """Pinyin2Hanzi's reading of one `pinyin_to_hanzi` source (space-separated tokens, one per target character).

    Each token is normalised with the package's own `simplify_pinyin` (lower case, tone marks removed, `ue` ->
    `ve`: pypinyin writes 略 / 学 as `lve` / `xue`, the package's syllable table has `lve` / `xve`); a maximal run
    of tokens that are syllables of its table (`is_pinyin`) goes to `dag(params, run, path_num=1)` and becomes
    the characters of its best path; every other token (punctuation, digits, Latin letters) is kept as it is. So
    the output has one character per token, aligned with the reference. (Every syllable of the table has
    characters in 0.1.1's dictionary, so a run always has a path; one without would keep a `?` per syllable.)"""
    from Pinyin2Hanzi import dag, is_pinyin, simplify_pinyin

    params = params if params is not None else _dag_params()
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            paths = dag(params, run, path_num=1)
            text = "".join(paths[0].path) if paths else ""
            out.append(text if len(text) == len(run) else "?" * len(run))
            run.clear()

    for token in source.split(" "):
        syllable = simplify_pinyin(token) if token.isascii() and token.isalpha() else token
        if is_pinyin(syllable):
            run.append(syllable)
        else:
            flush()
            out.append(token)
    flush()
    return "".join(out)


def run_pinyin2hanzi(task: str, args: argparse.Namespace) -> dict[str, Any]:
    from Pinyin2Hanzi import DefaultDagParams

    test = load_builtin(task)["test"].select(range(args.max_test_samples))
    cpu0, wall0 = time.process_time(), time.time()
    params = DefaultDagParams()  # loads its dictionaries
    load_cpu, load_wall = time.process_time() - cpu0, time.time() - wall0
    predictions = [pinyin2hanzi_convert(s, params) for s in test["source"]]
    test_cpu, test_wall = time.process_time() - cpu0 - load_cpu, time.time() - wall0 - load_wall
    return row(
        task, "Pinyin2Hanzi DAG (path_num=1)", scores(task, test["target"], predictions), args,
        steps=None, parameters=None,
        seconds={"train_wall": None, "test_wall": round(test_wall, 1), "total_wall": round(load_wall + test_wall, 1),
                 "total_cpu": round(load_cpu + test_cpu, 1)},
        command=f"pinyin2hanzi_convert(source) for the first {args.max_test_samples} test sources",
        notes=f"Pinyin2Hanzi {version('Pinyin2Hanzi')}, dictionary load {load_wall:.1f} s; no length limit",
        samples=list(zip(test["source"], test["target"], predictions))[:2],
    )


def run_ngram(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The classical input method trained on this task's own train split (`baselines.py`): an interpolated
    Kneser-Ney character n-gram model of the train targets and the token -> character table of the train pairs,
    beam search over the table's characters. Order and emission weight are picked at beam 16 on the first
    `--max_test_samples` validation pairs (`baselines.NGRAM_ORDERS` x `NGRAM_EMISSION_WEIGHTS`), then the beam
    (`NGRAM_BEAMS`), never on test."""
    import baselines

    cpu0, wall0 = time.process_time(), time.time()
    data = load_builtin(task)
    train = data["train"] if not args.max_train_samples else data["train"].select(range(min(args.max_train_samples, data["train"].num_rows)))
    table = syllable_table(train["source"], train["target"])
    validation = data["validation"].select(range(min(args.max_test_samples, data["validation"].num_rows)))
    records, models = [], {}
    for order in baselines.NGRAM_ORDERS:
        models[order] = baselines.KneserNeyLM(train["target"], order=order)
        for weight in baselines.NGRAM_EMISSION_WEIGHTS:
            predictions = [baselines.ngram_pinyin_decode(models[order], table, s, emission_weight=weight)
                           for s in validation["source"]]
            value = scores(task, list(validation["target"]), predictions)["char_accuracy"]
            records.append({"order": order, "emission_weight": weight, "validation_char_accuracy": value})
            print(f"[{task}] ngram order {order} emission weight {weight}: validation char accuracy {value}", flush=True)
    best = max(records, key=lambda r: r["validation_char_accuracy"])
    lm = models[best["order"]]
    beams = [{"beam": 16, "validation_char_accuracy": best["validation_char_accuracy"]}]
    for beam in baselines.NGRAM_BEAMS[1:]:
        predictions = [baselines.ngram_pinyin_decode(lm, table, s, beam=beam, emission_weight=best["emission_weight"])
                       for s in validation["source"]]
        value = scores(task, list(validation["target"]), predictions)["char_accuracy"]
        beams.append({"beam": beam, "validation_char_accuracy": value})
        print(f"[{task}] ngram order {best['order']} beam {beam}: validation char accuracy {value}", flush=True)
    beam = max(beams, key=lambda r: r["validation_char_accuracy"])["beam"]
    tuned_cpu, tuned_wall = time.process_time() - cpu0, time.time() - wall0
    test = data["test"].select(range(args.max_test_samples))
    predictions = [baselines.ngram_pinyin_decode(lm, table, s, beam=beam, emission_weight=best["emission_weight"])
                   for s in test["source"]]
    test_cpu, test_wall = time.process_time() - cpu0 - tuned_cpu, time.time() - wall0 - tuned_wall
    grams = sum(len(c) for c in lm.counts.values())
    grid = "; ".join(f"{r['order']}/{r['emission_weight']}: {r['validation_char_accuracy']:.4f}" for r in records)
    grid += "; then beams " + ", ".join(f"{r['beam']}: {r['validation_char_accuracy']:.4f}" for r in beams)
    return row(
        task, f"character {best['order']}-gram (Kneser-Ney) + syllable table, beam {beam}", scores(task, test["target"], predictions),
        args, steps=None, parameters=grams,
        seconds={"train_wall": round(tuned_wall, 1), "test_wall": round(test_wall, 1),
                 "total_wall": round(tuned_wall + test_wall, 1), "total_cpu": round(tuned_cpu + test_cpu, 1)},
        command=f"run_ngram({task!r}): baselines.KneserNeyLM + ngram_pinyin_decode, tuned on validation",
        notes=(f"trained on the train split in this process; order {best['order']} and emission weight "
               f"{best['emission_weight']} (at beam 16), then the beam, picked on the first {validation.num_rows} "
               f"validation pairs ({grid}); "
               "'parameters' = n-gram entries; train wall includes the tuning"),
        samples=list(zip(test["source"], test["target"], predictions))[:2],
    )


# ----------------------------------------------------------------------------------------------------------------
# shared pieces


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def scores(task: str, references: list[str], predictions: list[str]) -> dict[str, float]:
    """The one scoring of every system: `seq2seq_scores`, BLEU tokenized as Chinese for Chinese targets."""
    pinyin = task == "pinyin_to_hanzi"
    result = seq2seq_scores(references, predictions, tokenize="zh" if CHINESE_TARGET[task] else "13a", char_accuracy=pinyin)
    return {k: round(float(v), 4) for k, v in result.items()}


def ceiling(references: list[str], max_target_length: int) -> float:
    """Share of reference characters a system generating at most `max_target_length - 1` characters can reach
    (the `</s>` takes one token)."""
    total = sum(len(r) for r in references)
    return sum(min(len(r), max_target_length - 1) for r in references) / total if total else 1.0


def lengths(task: str, args: argparse.Namespace) -> tuple[int, int, int]:
    """(max_source_length, max_target_length, positions) of the neural systems for `task`."""
    pinyin = task == "pinyin_to_hanzi"
    source = args.max_source_length or (512 if pinyin else 128)
    target = args.max_target_length or (128 if pinyin else 64)
    return source, target, max(source, target)


def this_script() -> str:
    """sys.argv[0] relative to the repository root when it lies inside it, so the recorded command is the one to
    type there."""
    path = Path(sys.argv[0]).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else sys.argv[0]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def row(task: str, system: str, metrics: dict[str, float], args: argparse.Namespace, *, steps: int | None,
        parameters: int | None, seconds: dict[str, float | None], command: str, notes: str = "",
        samples: list | None = None) -> dict[str, Any]:
    return {
        "task": task, "system": system, "split": "test", "num_examples": args.max_test_samples,
        "metrics": metrics, "main_metric": MAIN_METRIC[task], "train_steps": steps, "parameters": parameters,
        "seconds": seconds, "command": command, "notes": notes,
        "samples": [{"source": s[:120], "reference": r[:120], "prediction": p[:120]} for s, r, p in (samples or [])],
    }


def training_flags(task: str, args: argparse.Namespace) -> dict[str, str]:
    """The flags every trained system shares (the script gets them on its command line, Marian in its
    Seq2SeqTrainingArguments): same steps, batch size, learning rate and schedule, seed, generation."""
    return {
        "max_steps": str(args.max_steps),
        "per_device_train_batch_size": str(args.batch_size),
        "per_device_eval_batch_size": str(args.eval_batch_size),
        "learning_rate": str(args.learning_rate),
        "warmup_steps": str(args.warmup),
        "lr_scheduler_type": "linear",
        "seed": str(args.seed),
        "eval_strategy": "no",
        "save_strategy": "no",
        "load_best_model_at_end": "false",
        "logging_steps": str(max(1, min(50, args.max_steps // 10))),
        "num_beams": str(args.num_beams),
        "train_sampling_strategy": "group_by_length" if args.group_by_length else "random",
    }


# ----------------------------------------------------------------------------------------------------------------
# hf_charlm through scripts/finetune_seq2seq.py


def run_charlm(task: str, system: str, args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.workdir) / f"{task}-{system}"
    source, target, positions = lengths(task, args)
    flags = {"task_name": task, "output_dir": str(out), "overwrite_output_dir": "true", "do_train": None,
             "do_predict": None, "max_test_samples": str(args.max_test_samples), "max_target_length": str(target),
             "disable_tqdm": "true", **training_flags(task, args)}
    if args.max_train_samples:
        flags["max_train_samples"] = str(args.max_train_samples)
    if args.budget_minutes:
        flags["max_train_minutes"] = str(args.budget_minutes)
    flags["max_source_length"] = str(source)  # the LSTM has no position limit, but gets the same cut as the others
    if system == "warm":
        flags["model_name_or_path"] = args.warm_start
    else:
        backbone = "lstm" if system == "lstm" else "transformer"
        overrides = f"hidden_size={args.hidden_size},num_hidden_layers={args.num_layers}"
        if backbone == "transformer":
            overrides += (f",num_attention_heads={args.num_heads},intermediate_size={args.intermediate_size},"
                          f"max_position_embeddings={positions}")
        else:
            overrides += ",attention_type=additive"
        flags.update({"backbone": backbone, "config_overrides": overrides})
    argv = []
    for key, value in flags.items():
        argv += [f"--{key}"] + ([] if value is None else [value])
    cmd = [sys.executable, str(SCRIPT), *argv]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    cpu0, wall0 = children_cpu(), time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    cpu, wall = children_cpu() - cpu0, time.time() - wall0
    if proc.returncode:
        sys.exit(f"error: {task}/{system}: scripts/finetune_seq2seq.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    results = json.loads((out / "all_results.json").read_text())
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    references, predictions = [r["reference"] for r in records], [r["prediction"] for r in records]
    metrics = scores(task, references, predictions)
    # the script scored the same outputs with the same function: a difference would mean the two disagree
    for key in ("bleu", "chrf", "cer", "exact_match", "char_accuracy"):
        if key in metrics and abs(results[f"test_{key}"] - metrics[key]) > 1e-3:
            sys.exit(f"error: {task}/{system}: the script's test_{key}={results[f'test_{key}']} differs from {metrics[key]}")
    from hf_charlm import CharLMForConditionalGeneration

    model = CharLMForConditionalGeneration.from_pretrained(out)
    config, parameters = model.config, model.num_parameters()
    if system == "warm":
        name = f"hf_charlm transformer, warm start from {Path(args.warm_start).name}"
    elif system == "lstm":
        name = "hf_charlm LSTM + additive attention"
    else:
        name = "hf_charlm transformer"
    shown = " ".join(shlex.quote(a) for a in ["python", "scripts/finetune_seq2seq.py", *argv])
    return row(
        task, name, metrics, args, steps=results.get("train_steps"), parameters=parameters,
        seconds={"train_wall": round(results["train_runtime"], 1), "test_wall": round(results["test_runtime"], 1),
                 "total_wall": round(wall, 1), "total_cpu": round(cpu, 1)},
        command=shown,
        notes=(f"hidden {config.hidden_size}, {config.num_hidden_layers}+{config.num_hidden_layers} layers, vocab "
               f"{config.vocab_size}; ceiling {ceiling(references, target):.3f}"),
        samples=[(r["source"], r["reference"], r["prediction"]) for r in records[:2]],
    )


# ----------------------------------------------------------------------------------------------------------------
# transformers' MarianMTModel from scratch


def run_marian(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """MarianMTModel at hf_charlm's size on hf_charlm's char tokenizer and encoded examples, trained by a
    Seq2SeqTrainer with the script's arguments, and its greedy outputs on the same test examples."""
    import torch
    from transformers import DataCollatorForSeq2Seq, MarianConfig, MarianMTModel, Seq2SeqTrainingArguments

    from finetune_seq2seq import TrainingTimeBudget
    from hf_charlm.tokenization_charlm import train_char_tokenizer
    from hf_charlm.trainers import CharLMSeq2SeqTrainer
    from hf_charlm.training import FINETUNE_DEFAULTS, encode_seq2seq

    cpu0, wall0 = time.process_time(), time.time()
    source, target, positions = lengths(task, args)
    data = load_builtin(task)
    train = data["train"] if not args.max_train_samples else data["train"].select(range(min(args.max_train_samples, data["train"].num_rows)))
    test = data["test"].select(range(args.max_test_samples))
    # the script's tokenizer: trained on the training sources then targets, every character kept
    tokenizer = train_char_tokenizer(list(train["source"]) + list(train["target"]), min_frequency=1)
    tokenizer.model_max_length = source
    charlm_tokenizer = Path(args.workdir) / f"{task}-transformer" / "tokenizer.json"
    if charlm_tokenizer.is_file():  # the same vocabulary as the hf_charlm rows, checked where they ran
        from transformers import PreTrainedTokenizerFast

        theirs = PreTrainedTokenizerFast(tokenizer_file=str(charlm_tokenizer))
        if theirs.get_vocab() != tokenizer.get_vocab():
            sys.exit(f"error: {task}/marian: the char tokenizer differs from the hf_charlm run's")
    encode = dict(tokenizer=tokenizer, max_source_length=source, max_target_length=target)
    columns = ["source", "target"]
    train_enc = train.select_columns(columns).map(encode_seq2seq, batched=True, remove_columns=columns, fn_kwargs=encode)
    test_enc = test.select_columns(columns).map(encode_seq2seq, batched=True, remove_columns=columns, fn_kwargs=encode)

    config = MarianConfig(
        vocab_size=len(tokenizer), d_model=args.hidden_size,
        encoder_layers=args.num_layers, decoder_layers=args.num_layers,
        encoder_attention_heads=args.num_heads, decoder_attention_heads=args.num_heads,
        encoder_ffn_dim=args.intermediate_size, decoder_ffn_dim=args.intermediate_size,
        max_position_embeddings=positions, activation_function="gelu",
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,  # hf_charlm's defaults
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=None,  # hf_charlm forces no </s> at the length limit either
        decoder_start_token_id=tokenizer.bos_token_id,  # labels begin with a character: the decoder starts from <s>
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
    )
    torch.manual_seed(args.seed)
    model = MarianMTModel(config)
    model.generation_config.decoder_start_token_id = tokenizer.bos_token_id
    model.generation_config.forced_eos_token_id = None
    model.generation_config.max_length = target + 1
    model.generation_config.num_beams = args.num_beams
    flags = training_flags(task, args)
    flags.pop("num_beams")
    training_args = Seq2SeqTrainingArguments(**{
        **FINETUNE_DEFAULTS,
        **{k: _typed(v) for k, v in flags.items()},
        "output_dir": str(Path(args.workdir) / f"{task}-marian"),
        "predict_with_generate": True, "generation_max_length": target + 1, "generation_num_beams": args.num_beams,
        "disable_tqdm": True, "num_train_epochs": 3,
    })
    budget = [TrainingTimeBudget(args.budget_minutes)] if args.budget_minutes else []
    # (transformers' Seq2SeqTrainer with predictions in test order also under --group_by_length, as the script's)
    trainer = CharLMSeq2SeqTrainer(
        model=model, args=training_args, train_dataset=train_enc, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100), callbacks=budget,
    )
    train_metrics = trainer.train().metrics
    output = trainer.predict(test_enc, metric_key_prefix="test")
    ids = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    predictions = tokenizer.batch_decode(ids.clip(min=0), skip_special_tokens=True)
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    references = list(test["target"])
    return row(
        task, "transformers MarianMTModel (scratch)", scores(task, references, predictions), args,
        steps=trainer.state.global_step, parameters=model.num_parameters(),
        seconds={"train_wall": round(train_metrics["train_runtime"], 1), "test_wall": round(output.metrics["test_runtime"], 1),
                 "total_wall": round(wall, 1), "total_cpu": round(cpu, 1)},
        command=(f"run_marian({task!r}) in this process: MarianConfig(d_model={args.hidden_size}, layers {args.num_layers}+"
                 f"{args.num_layers}, heads {args.num_heads}, ffn {args.intermediate_size}, positions {positions}), "
                 f"Seq2SeqTrainer with the flags of the script rows"),
        notes=f"vocab {len(tokenizer)}, sinusoidal positions, LayerNorm; ceiling {ceiling(references, target):.3f}",
        samples=list(zip(test["source"], references, predictions))[:2],
    )


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


# ----------------------------------------------------------------------------------------------------------------
# pinyin_to_hanzi as token classification


def tag_pinyin(model, tokenizer, sources: list[str], id2char: dict[int, str], batch_size: int) -> list[str]:
    """The character of each syllable: log-probabilities summed over the syllable's characters, argmax; sources
    longer than the model's positions are read in pieces cut at syllable boundaries (`syllable_log_probs`)."""
    return ["".join(id2char[int(i)] for i in rows.argmax(-1))
            for rows in syllable_log_probs(model, tokenizer, sources, batch_size)]


def run_tagger(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """pinyin_to_hanzi as token classification: each pinyin token becomes exactly one target character, so a
    bidirectional hf_charlm transformer (`CharLMForTokenClassification`, the benchmark's size, from scratch) reads the
    pinyin characters and predicts at every character of a syllable that syllable's Chinese character (classes: the
    characters of the training targets); prediction sums the log-probabilities over the syllable's characters. No
    decoder, no alignment to learn. Trained by a Trainer with the flags of the other rows."""
    import torch
    from transformers import DataCollatorForTokenClassification, Trainer, TrainingArguments

    from finetune_seq2seq import TrainingTimeBudget
    from hf_charlm import CharLMConfig, CharLMForTokenClassification
    from hf_charlm.tokenization_charlm import train_char_tokenizer
    from hf_charlm.training import FINETUNE_DEFAULTS

    cpu0, wall0 = time.process_time(), time.time()
    data = load_builtin(task)
    train = data["train"] if not args.max_train_samples else data["train"].select(range(min(args.max_train_samples, data["train"].num_rows)))
    test = data["test"].select(range(args.max_test_samples))
    tokenizer = train_char_tokenizer(list(train["source"]), min_frequency=1)
    chars = sorted({c for target in train["target"] for c in target})
    char_id = {c: i for i, c in enumerate(chars)}
    positions = TAGGER_POSITIONS

    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(batch["source"], return_offsets_mapping=True, truncation=True, max_length=positions)
        labels = []
        for source, target, offsets in zip(batch["source"], batch["target"], enc.pop("offset_mapping")):
            spans = syllable_spans(source)
            if len(spans) != len(target):
                raise ValueError(f"{len(spans)} pinyin tokens for {len(target)} characters: {source[:60]!r}")
            owner = {i: char_id[target[k]] for k, (s, e) in enumerate(spans) for i in range(s, e)}
            labels.append([owner.get(s, -100) if e > s else -100 for s, e in offsets])
        enc["labels"] = labels
        return enc

    train_enc = train.select_columns(["source", "target"]).map(encode, batched=True, remove_columns=["source", "target"])
    config = CharLMConfig(
        backbone="transformer", vocab_size=len(tokenizer), hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers, num_attention_heads=args.num_heads, intermediate_size=args.intermediate_size,
        max_position_embeddings=positions, num_labels=len(chars), id2label=dict(enumerate(chars)), label2id=char_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(args.seed)
    model = CharLMForTokenClassification(config)
    flags = training_flags(task, args)
    flags.pop("num_beams")
    training_args = TrainingArguments(**{
        **FINETUNE_DEFAULTS, **{k: _typed(v) for k, v in flags.items()},
        "output_dir": str(Path(args.workdir) / f"{task}-tagger"), "disable_tqdm": True,
    })
    budget = [TrainingTimeBudget(args.budget_minutes)] if args.budget_minutes else []
    trainer = Trainer(model=model, args=training_args, train_dataset=train_enc, processing_class=tokenizer,
                      data_collator=DataCollatorForTokenClassification(tokenizer), callbacks=budget)
    train_metrics = trainer.train().metrics
    # the tagger stays in --workdir (`{task}-tagger`, with its train_results.json) for `lm --fuse tagger`
    trainer.save_model()
    trainer.save_metrics("train", train_metrics)
    test0 = time.time()
    predictions = tag_pinyin(model, tokenizer, list(test["source"]), dict(enumerate(chars)), args.eval_batch_size)
    test_wall = time.time() - test0
    cpu, wall = time.process_time() - cpu0, time.time() - wall0
    references = list(test["target"])
    unseen = sum(c not in char_id for r in references for c in r) / sum(len(r) for r in references)
    return row(
        task, "hf_charlm transformer, one character per syllable (token classification)",
        scores(task, references, predictions), args, steps=trainer.state.global_step, parameters=model.num_parameters(),
        seconds={"train_wall": round(train_metrics["train_runtime"], 1), "test_wall": round(test_wall, 1),
                 "total_wall": round(wall, 1), "total_cpu": round(cpu, 1)},
        command=(f"run_tagger({task!r}) in this process: CharLMForTokenClassification, transformer, hidden "
                 f"{args.hidden_size}, {args.num_layers} layers, {len(chars)} classes, positions {positions}, Trainer "
                 f"with the flags of the script rows"),
        notes=(f"encoder only, {args.num_layers} layers, {len(chars)} character classes, source vocab {len(tokenizer)}; "
               f"{unseen:.4f} of the reference characters never occur in a training target; ceiling 1.000"),
        samples=list(zip(test["source"], references, predictions))[:2],
    )


def _train_seconds(directory: str) -> float | None:
    """train_runtime of a checkpoint folder's all_results.json / train_results.json (None if neither says)."""
    for name in ("all_results.json", "train_results.json"):
        path = Path(directory) / name
        if path.is_file():
            value = json.loads(path.read_text()).get("train_runtime")
            if value is not None:
                return float(value)
    return None


def fusion_weights(text: str) -> dict[str, tuple[float, ...]]:
    """`--fusion_weights` ("ngram=1;backward=0,0.5") as {component: weights}; raises ValueError on a bad entry."""
    result = {}
    for entry in filter(None, text.split(";")):
        name, _, values = entry.partition("=")
        if name.strip() not in FUSION_WEIGHTS or not values.strip():
            raise ValueError(f"{entry!r}: expected COMPONENT=W[,W...] with COMPONENT one of {', '.join(FUSION_WEIGHTS)}")
        try:
            result[name.strip()] = tuple(float(v) for v in values.split(","))
        except ValueError:
            raise ValueError(f"{entry!r}: the weights must be numbers") from None
    return result


def run_decoder(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The input method with hf_charlm models (`hf_charlm.pinyin.PinyinDecoder`): the causal language model of
    `--lm` ranks, by beam search, the characters the train pairs' syllable table allows for each token; the
    components of `--fuse` join with weights picked on validation (see the module docstring)."""
    import itertools

    import torch

    from hf_charlm.ngram import KneserNeyLM
    from hf_charlm.pinyin import PinyinDecoder

    cpu0, wall0 = time.process_time(), time.time()
    data = load_builtin(task)
    table = syllable_table(data["train"]["source"], data["train"]["target"])
    fuse = [f for f in args.fuse.split(",") if f]
    ngram = KneserNeyLM(data["train"]["target"], order=args.ngram_order) if "ngram" in fuse else None
    decoder = PinyinDecoder.from_pretrained(
        args.lm, table, tagger=args.tagger if "tagger" in fuse else None,
        backward=args.backward if "backward" in fuse else None, ngram=ngram, num_beams=args.decoder_beams)
    tuned = None
    if fuse:
        validation = data["validation"].select(range(min(args.tune_samples, data["validation"].num_rows)))
        weights = {**FUSION_WEIGHTS, **fusion_weights(args.fusion_weights)}
        grid = [dict(zip((f"{f}_weight" for f in fuse), values))
                for values in itertools.product(*(weights[f] for f in fuse))]
        tuned = decoder.tune(validation["source"], validation["target"], grid)
        print(f"[{task}] lm tuning: {tuned['records']}", flush=True)
    tune_wall = time.time() - wall0
    test = data["test"].select(range(args.max_test_samples))
    test0 = time.time()
    predictions = decoder(list(test["source"]))
    test_wall = time.time() - test0
    trained = {"lm": args.lm, **{f: getattr(args, f) for f in ("tagger", "backward") if f in fuse}}
    seconds = {name: _train_seconds(path) for name, path in trained.items()}
    train_wall = None if None in seconds.values() else sum(seconds.values())
    parameters = sum(m.num_parameters() for m in (decoder.model, decoder.tagger, decoder.backward) if m is not None)
    grid_text = "; ".join(", ".join(f"{k} {v}" for k, v in r.items() if k != "char_accuracy") + f": {r['char_accuracy']:.4f}"
                          for r in tuned["records"]) if tuned else ""
    parts = {"ngram": f"char {args.ngram_order}-gram", "backward": "backward LM rescoring", "tagger": "tagger"}
    name = " + ".join(["hf_charlm causal LM + syllable table", *(parts[f] for f in fuse)]) + f", beam {args.decoder_beams}"
    return row(
        task, name, scores(task, list(test["target"]), predictions), args, steps=None, parameters=parameters,
        seconds={"train_wall": None if train_wall is None else round(train_wall, 1), "test_wall": round(test_wall, 1),
                 "total_wall": round(time.time() - wall0, 1), "total_cpu": round(time.process_time() - cpu0, 1)},
        command=f"run_decoder({task!r}): PinyinDecoder.from_pretrained({args.lm!r}, table, ...), --fuse {args.fuse or '-'}",
        notes=("models' training seconds: " + ", ".join(f"{k} {Path(trained[k]).name} {v}" for k, v in seconds.items())
               + (f"; weights {tuned['best']} picked on the first {len(validation)} validation pairs ({grid_text}), "
                  f"tuning {tune_wall:.0f} s" if tuned else "")
               + f"; 'parameters' = the neural models'; {torch.get_num_threads()} thread(s) decoding"),
        samples=list(zip(test["source"], test["target"], predictions))[:2],
    )


# ----------------------------------------------------------------------------------------------------------------
# report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Sequence-to-sequence benchmark ({report['started']} -> {report['finished']} UTC)", "",
             f"Command: `{report['command']}`", "",
             f"Load average before: `{' '.join(report['loadavg_before'] or [])}`, after: "
             f"`{' '.join(report['loadavg_after'] or [])}` "
             f"({report['cpu_count']} cores). Settings: {json.dumps(report['settings'])}", ""]
    if report.get("placement"):
        cores = ", ".join(f"{tag} on core {core}" for tag, core in report["placement"]["core_of_row"].items())
        lines += [f"Rows ran {report['placement']['jobs']} at a time, each in its own process pinned to one core with "
                  f"one thread ({cores}): every system had one core of the machine to itself.", ""]
    for task in dict.fromkeys(r["task"] for r in report["results"]):
        rows = [r for r in report["results"] if r["task"] == task]
        main = MAIN_METRIC[task]
        marian = next((r for r in rows if r["system"].startswith("transformers Marian")), None)
        lines += [f"## {task} (test, first {rows[0]['num_examples']})", "",
                  f"| system | {' | '.join(k for k in SHOWN if k in rows[0]['metrics'])} | {main} vs Marian | steps | "
                  "train / test / total wall s | total CPU s | parameters | notes |",
                  "|---|" + "---|" * (len([k for k in SHOWN if k in rows[0]['metrics']]) + 6)]
        for r in rows:
            m = r["metrics"]
            cells = [f"{m[k]:.2f}" if k in ("bleu", "chrf") else f"{m[k]:.4f}" for k in SHOWN if k in m]
            ratio = f"{m[main] / marian['metrics'][main]:.2f}" if marian and marian["metrics"][main] else "-"
            s = r["seconds"]
            wall = " / ".join("-" if s[k] is None else f"{s[k]:.0f}" for k in ("train_wall", "test_wall", "total_wall"))
            lines.append(f"| {r['system']} | {' | '.join(cells)} | {ratio} | {r['train_steps'] or '-'} | {wall} | "
                         f"{s['total_cpu']:.0f} | {r['parameters'] or '-'} | {r['notes']} |")
        lines.append("")
    return "\n".join(lines)


def run_parallel(pairs: list[tuple[str, str]], args: argparse.Namespace, parts: Path) -> tuple[list[dict], dict]:
    """Each (task, system) row in its own process of this script (`--jobs 1`, one task, one system), up to
    `--jobs` at a time, each pinned to its own core of this process's affinity with one thread
    (OMP_NUM_THREADS=MKL_NUM_THREADS=1): every row gets one core to itself, the same for all systems. Returns the rows
    in the order of `pairs` and where each ran."""
    cores = sorted(os.sched_getaffinity(0))[: args.jobs]
    shared = []
    for key, value in vars(args).items():
        if key in ("tasks", "systems", "jobs", "output_dir", "tag") or value is None or value is False:
            continue
        shared += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    parts.mkdir(parents=True, exist_ok=True)
    waiting, running, placement = list(pairs), {}, {}
    while waiting or running:
        free = [c for c in cores if c not in running]
        while waiting and free:
            (task, system), core = waiting.pop(0), free.pop(0)
            tag = f"{task}-{system}"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--tasks", task, "--systems", system, "--jobs", "1",
                   "--output_dir", str(parts), "--tag", tag, *shared]
            log = open(parts / f"{tag}.log", "w")
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=functools.partial(os.sched_setaffinity, 0, {core}))
            running[core] = (proc, tag, log)
            placement[tag] = core
            print(f"[{task}] {system} on core {core} (log {parts / (tag + '.log')})", flush=True)
        time.sleep(2)
        for core, (proc, tag, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[core]
            if proc.returncode:
                for other, _, _ in running.values():
                    other.terminate()
                sys.exit(f"error: {tag} failed (exit {proc.returncode}); see {parts / (tag + '.log')}")
            print(f"[{tag}] done", flush=True)
    rows = []
    for task, system in pairs:
        rows += json.loads((parts / f"seq2seq_tasks_{task}-{system}.json").read_text())["results"]
    return rows, {"jobs": args.jobs, "threads_per_job": 1, "core_of_row": placement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--systems", default="transformer,lstm,marian,pinyin2hanzi",
                        help=f"comma-separated, from {', '.join(SYSTEMS)} (pinyin2hanzi runs on pinyin_to_hanzi only)")
    parser.add_argument("--max_steps", type=int, default=2000, help="training steps of every trained system")
    parser.add_argument("--budget_minutes", type=float, default=None, help="cap on each system's training wall time")
    parser.add_argument("--max_test_samples", type=int, default=300, help="the first N test examples are scored")
    parser.add_argument("--max_train_samples", type=int, default=None, help="train on the first N examples only")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--eval_batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.1, help="warmup steps (a number < 1: share of max_steps)")
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_layers", type=int, default=4, help="encoder layers = decoder layers")
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_size", type=int, default=512)
    parser.add_argument("--max_source_length", type=int, default=None, help="default 512 (pinyin) / 128 (tatoeba)")
    parser.add_argument("--max_target_length", type=int, default=None, help="default 128 (pinyin) / 64 (tatoeba)")
    parser.add_argument("--num_beams", type=int, default=1)
    parser.add_argument("--group_by_length", action="store_true",
                        help="batches of examples of similar length for every trained system "
                             "(train_sampling_strategy=group_by_length)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--warm_start", default=None, help="a causal hf_charlm checkpoint, for the `warm` system")
    parser.add_argument("--lm", default=None, help="a causal hf_charlm checkpoint of Chinese text, for `lm`")
    parser.add_argument("--fuse", default="", help="`lm` row: any of ngram, backward, tagger (comma-separated)")
    parser.add_argument("--backward", default=None, help="a causal hf_charlm checkpoint of reversed text, for --fuse backward")
    parser.add_argument("--tagger", default=None, help="a `tagger` row's saved model (WORKDIR/pinyin_to_hanzi-tagger), for --fuse tagger")
    parser.add_argument("--ngram_order", type=int, default=4, help="order of the n-gram model of --fuse ngram")
    parser.add_argument("--fusion_weights", default="",
                        help='weights tried on validation per --fuse component, replacing FUSION_WEIGHTS\'s, e.g. "ngram=1;backward=0,0.5"')
    parser.add_argument("--decoder_beams", type=int, default=32, help="beams of the `lm` row")
    parser.add_argument("--tune_samples", type=int, default=100, help="validation pairs the `lm` row's weights are picked on")
    parser.add_argument("--workdir", default="outputs/seq2seq_tasks")
    parser.add_argument("--output_dir", default="benchmarks/results")
    parser.add_argument("--tag", default="", help="suffix of the output file names")
    parser.add_argument("--jobs", type=int, default=1,
                        help="run up to N (task, system) rows at once, each in its own process of this script pinned "
                             "to one core with one thread (Linux), and merge their rows into one report")
    args = parser.parse_args()

    tasks = [t for t in args.tasks.split(",") if t]
    systems = [s for s in args.systems.split(",") if s]
    for name, given, valid in (("--tasks", tasks, TASKS), ("--systems", systems, SYSTEMS)):
        bad = [x for x in given if x not in valid]
        if bad or not given:
            parser.error(f"{name}: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(valid)}")
    if "warm" in systems and not (args.warm_start and (Path(args.warm_start) / "config.json").is_file()):
        parser.error("--systems warm needs --warm_start, a folder with a causal hf_charlm checkpoint (config.json)")
    if "lm" in systems and not (args.lm and (Path(args.lm) / "config.json").is_file()):
        parser.error("--systems lm needs --lm, a folder with a causal hf_charlm checkpoint (config.json)")
    fuse = [f for f in args.fuse.split(",") if f]
    if set(fuse) - set(FUSION_WEIGHTS):
        parser.error(f"--fuse: unknown {','.join(sorted(set(fuse) - set(FUSION_WEIGHTS)))}; choose from {', '.join(FUSION_WEIGHTS)}")
    try:
        fusion_weights(args.fusion_weights)
    except ValueError as err:
        parser.error(f"--fusion_weights: {err}")
    for part in ("backward", "tagger"):
        folder = getattr(args, part)
        if part in fuse and not (folder and (Path(folder) / "config.json").is_file()):
            parser.error(f"--fuse {part} needs --{part}, a folder with a saved model (config.json)")
    for flag in ("max_steps", "max_test_samples", "batch_size", "num_beams", "jobs", "decoder_beams", "tune_samples", "ngram_order"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be >= 1")
    if "pinyin2hanzi" in systems and "pinyin_to_hanzi" in tasks and importlib.util.find_spec("Pinyin2Hanzi") is None:
        parser.error('--systems pinyin2hanzi needs the Pinyin2Hanzi package: pip install Pinyin2Hanzi (or "hf_charlm[bench]")')
    if args.jobs > 1 and not hasattr(os, "sched_setaffinity"):
        parser.error("--jobs > 1 pins each process to a core, which needs Linux (os.sched_setaffinity)")
    if args.jobs > 1 and args.jobs > len(os.sched_getaffinity(0)):
        parser.error(f"--jobs {args.jobs}: this process may run on {len(os.sched_getaffinity(0))} cores only")

    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"seq2seq_tasks{'_' + args.tag if args.tag else ''}"
    report: dict[str, Any] = {
        "command": shlex.join(["python", this_script(), *sys.argv[1:]]),
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "versions": {p: version(p) for p in ("torch", "transformers", "sacrebleu", "Pinyin2Hanzi")},
        "settings": {k: v for k, v in vars(args).items() if k not in ("output_dir", "tag")},
        "results": [],
    }
    pairs = [(t, s) for t in tasks for s in systems if s not in PINYIN_ONLY or t == "pinyin_to_hanzi"]
    if args.jobs > 1:
        report["results"], report["placement"] = run_parallel(pairs, args, out_dir / f"{stem}_parts")
        report["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
        report["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        pairs = []
    for task, system in pairs:
        print(f"[{task}] {system} ...", flush=True)
        if system == "marian":
            result = run_marian(task, args)
        elif system == "pinyin2hanzi":
            result = run_pinyin2hanzi(task, args)
        elif system == "ngram":
            result = run_ngram(task, args)
        elif system == "tagger":
            result = run_tagger(task, args)
        elif system == "lm":
            result = run_decoder(task, args)
        else:
            result = run_charlm(task, system, args)
        report["results"].append(result)
        print(f"[{task}] {result['system']}: {result['metrics']} steps {result['train_steps']} {result['seconds']}", flush=True)
        report["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")
        report["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
        # partial results survive an interrupted run
        (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    text = markdown(report)
    (out_dir / f"{stem}.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out_dir / (stem + '.json')} and {out_dir / (stem + '.md')}")


if __name__ == "__main__":
    main()
