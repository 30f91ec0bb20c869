"""Text correction side by side: Chinese spelling correction on `peoples_daily_csc` test and SIGHAN 2015 test,
English typo correction on `english_typos` test, every system scored by `hf_charlm.metrics.correction_scores`
(SIGHAN sentence- and character-level precision / recall / F1, false-positive rate) plus word accuracy and CER.

Systems (each only where its input is given or its package installed):
- no-op: the input unchanged (what every score is measured against);
- pycorrector's offline correctors, the ones that run from the wheel's own data with no download: `ProperCorrector`
  (proper names and idioms, `proper_name.txt` + `stroke.txt`) for Chinese, `EnSpellCorrector` (Norvig, `en.json.gz`)
  for English. Its default `Corrector` needs the kenlm package and a 2.8 GB language model download, and the
  MacBERT / T5 / ERNIE correctors download their models: those are not run;
- `pyspellchecker` (word frequency list shipped in the wheel) and `symspellpy` (SymSpell, its wheel's 82,765-word
  frequency dictionary, edit distance up to 2) for English, both word by word (a known word is kept, an unknown one
  replaced by the best candidate, its capital kept);
- `--mlm DIR`: the zero-shot corrector (`hf_charlm.correction.ZeroShotCorrector`) on a pretrained masked char LM,
  its margin chosen on `peoples_daily_csc` validation (`--tune_examples` sentences);
- `--lm DIR` (with `--backward_lm DIR`, and `--mlm` where given): the zero-shot noisy-channel corrector
  (`hf_charlm.correction.LanguageModelCorrector`): a character n-gram of the People's Daily train text proposes
  confusion-set changes, the causal char LMs read both ways (and the masked LM) score them; its weights and margin
  chosen on `peoples_daily_csc` validation, and the same with the n-gram and the channel alone (the neural
  models' weights held at 0) for comparison; `--masked_proposals T` (with `--mlm`): the masked LM proposes too,
  off the n-gram's best path, each candidate that beats its character by more than T nats (not in the n-gram-alone
  rows);
- `--reranker_examples N`: the same corrector with a learned reranker (`LanguageModelCorrector.fit_reranker`, a
  logistic regression over each proposed edit's gains and n-gram counts) in place of the weights, learned from the
  first N `peoples_daily_csc` train pairs as read by an n-gram counted without their texts, its margin chosen on
  the validation sentences; with the n-gram alone and, with `--lm` / `--backward_lm`, with the LMs' gains too
  (runs the n-gram rows without any LM as well); given both causal and masked LMs, also with only the causal
  LMs' gains and with only the masked LM's (its proposals with it), all fitted on one reading of the pairs;
  `--lexicon` (`peoples_daily`, `pycorrector` or a file): every reranker row again with the lexicon's features
  (`hf_charlm.correction.Lexicon`: which words cover the changed character, with the change and without);
- `--corrector DIR`: the same-length corrector of `scripts/finetune_correction.py`, its `min_score` chosen on the
  same validation sentences; and the same model held to the confusion sets (`ConfusionSetCorrector`: only a
  confusable character may replace one, when it beats it by a margin chosen on those sentences); with
  `--reranker_examples` it is also a judge of the noisy channel (its gain, read on the erroneous text as it is)
  and, with `--corrector_proposals T`, a proposer off the path (reranker rows with it, alone beside the n-gram
  and beside every LM). Its training pairs must not include the reranker's (the first N train pairs): fine-tune
  it on the others (`scripts/finetune_correction.py --skip_train_samples N`), or it knows their answers;
- `--seq2seq DIR`: an encoder-decoder trained on `english_typos` by `scripts/finetune_seq2seq.py`, through the
  `text-correction` pipeline.
SIGHAN 2015 is only ever scored: nothing is chosen on it.

    python benchmarks/correction.py --mlm outputs/charlm-mlm --corrector outputs/charlm-csc \
        --seq2seq outputs/charlm-typos --max_examples 500 --output benchmarks/results/correction.json
"""

import argparse
import importlib.util
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hf_charlm.correction import (  # noqa: E402
    GAINS,
    ConfusionSetCorrector,
    LanguageModelCorrector,
    ZeroShotCorrector,
    apply_edits,
    corrector_proposals_above,
    predict_same_length,
    weight_grid,
)
from hf_charlm.data import load_builtin  # noqa: E402
from hf_charlm.metrics import character_error_rate, correction_scores, word_accuracy  # noqa: E402

SHOWN = ("sentence_detection_f1", "sentence_correction_precision", "sentence_correction_recall",
         "sentence_correction_f1", "char_correction_f1", "false_positive_rate")
ENGLISH_SHOWN = ("word_accuracy", "sentence_accuracy", "cer", "sentence_correction_f1", "false_positive_rate")
MIN_SCORES = (0.0, 0.3, 0.5, 0.7, 0.9)


def with_gains(features: list[list[dict]], kept: set[str], corrector_proposals: float | None = None) -> list[list[dict]]:
    """The noisy channel's `features` with only the gains named in `kept` (the n-gram alone reads no LM's gain);
    without the masked LM's gain, without its proposals either (`masked_proposals`: the edits marked
    `masked_only`), the same for the fine-tuned corrector's (`corrector_only`), each text's edit count taken
    again: what the n-gram alone reads. `corrector_proposals`: of the corrector's proposals, only those whose gain
    beats it (`corrector_proposals_above`: what a reading at that threshold proposes, from one at a lower one)."""
    out = []
    for row in corrector_proposals_above(features, corrector_proposals):
        row = [e for e in row if all(name in kept or not e.get("context", {}).get(f"{name}_only")
                                     for name in ("masked", "corrector"))]
        out.append([{**e, "gains": {k: v for k, v in e["gains"].items() if k in kept},
                     **({"context": {**e["context"], "edits_in_text": float(len(row))}} if "context" in e else {})}
                    for e in row])
    return out


def score(sources: list[str], targets: list[str], outputs: list[str], seconds: float) -> dict:
    row = correction_scores(sources, targets, outputs)
    row["word_accuracy"] = word_accuracy(targets, outputs)
    row["cer"] = character_error_rate(targets, outputs)
    row["seconds"] = round(seconds, 1)
    return row


def timed(fn, *args):
    start = time.time()
    out = fn(*args)
    return out, time.time() - start


def load_mlm(path: str):
    from transformers import AutoModelForMaskedLM

    from hf_charlm.training import load_char_tokenizer

    return AutoModelForMaskedLM.from_pretrained(path), load_char_tokenizer(path)


def pycorrector_outputs(kind: str, texts: list[str]) -> list[str]:
    if kind == "zh":
        from pycorrector.proper_corrector import ProperCorrector

        corrector = ProperCorrector()
    else:
        from pycorrector.en_spell_corrector import EnSpellCorrector

        corrector = EnSpellCorrector()
    return [corrector.correct(t)["target"] for t in texts]


WORD = r"[A-Za-z]+(?:'[a-z]+)?"  # a word for the dictionary correctors, its apostrophe ending included


def word_by_word(texts: list[str], known, best) -> list[str]:
    """A dictionary corrector applied word by word: a word `known(lower-cased word)` accepts stays, another becomes
    `best(lower-cased word)` (None: unchanged), its capital kept."""

    def fix(match: re.Match) -> str:
        word = match.group(0)
        if known(word.lower()):
            return word
        found = best(word.lower())
        if not found:
            return word
        return found.capitalize() if word[0].isupper() else found

    return [re.sub(WORD, fix, t) for t in texts]


def spellchecker_outputs(texts: list[str]) -> list[str]:
    """pyspellchecker word by word: a word it does not know is replaced by its best candidate, case kept."""
    from spellchecker import SpellChecker

    checker = SpellChecker()
    return word_by_word(texts, checker.__contains__, checker.correction)


def symspell_outputs(texts: list[str]) -> list[str]:
    """SymSpell word by word (`lookup`, top suggestion within edit distance 2; a known word is kept)."""
    import importlib.resources

    from symspellpy import SymSpell, Verbosity

    checker = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    dictionary = importlib.resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    with importlib.resources.as_file(dictionary) as path:
        if not checker.load_dictionary(str(path), term_index=0, count_index=1, encoding="utf-8"):
            raise RuntimeError(f"symspellpy could not read its dictionary {path}")

    def best(word: str) -> str | None:
        found = checker.lookup(word, Verbosity.TOP, max_edit_distance=2)
        return found[0].term if found else None

    return word_by_word(texts, checker.words.__contains__, best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlm", help="a pretrained masked char LM (scripts/pretrain.py --objective mlm)")
    parser.add_argument("--lm", help="a causal char LM of People's Daily text (scripts/pretrain.py), for the noisy-channel corrector")
    parser.add_argument("--backward_lm", help="the same trained on reversed text (scripts/pretrain.py --reverse_text)")
    parser.add_argument("--ngram_order", type=int, default=4, help="the noisy-channel corrector's n-gram order")
    parser.add_argument("--proposal_penalty", type=float, default=1.5, help="its proposal cost per change (nats)")
    parser.add_argument("--masked_proposals", type=float,
                        help="with --mlm: the masked LM also proposes, off the n-gram's best path, each confusable "
                             "candidate that beats its character by more than this many nats")
    parser.add_argument("--reranker_examples", type=int, default=0,
                        help="also learn the noisy channel's reranker from the first N peoples_daily_csc train pairs "
                             "(with an n-gram counted without their texts); runs the n-gram rows without --lm too")
    parser.add_argument("--corrector", help="a same-length corrector (scripts/finetune_correction.py)")
    parser.add_argument("--corrector_proposals", type=float, nargs="+",
                        help="with --corrector and --reranker_examples: the corrector also proposes off the path, "
                             "candidates that beat their character by more than this (nats); several values: the "
                             "reranker rows with the corrector take the one of the best validation F1, e.g. 1 2 3 4 6")
    parser.add_argument("--lexicon",
                        help="with --reranker_examples: each reranker row again with a lexicon's features (the words "
                             "around each change): peoples_daily, pycorrector or a file of `word count` lines")
    parser.add_argument("--seq2seq", help="an encoder-decoder trained on english_typos (scripts/finetune_seq2seq.py)")
    parser.add_argument("--max_examples", type=int, default=500, help="first N sentences of each test set (0: all)")
    parser.add_argument("--tune_examples", type=int, default=300, help="peoples_daily_csc validation sentences for the thresholds")
    parser.add_argument("--skip_pycorrector", action="store_true", help="its ProperCorrector takes ~30 s to load (jieba)")
    parser.add_argument("--output", default="benchmarks/results/correction.json")
    args = parser.parse_args()
    for flag in ("mlm", "lm", "backward_lm", "corrector", "seq2seq"):
        path = getattr(args, flag)
        if path and not (Path(path) / "config.json").is_file():
            sys.exit(f"error: --{flag} {path}: no model folder (config.json) there")

    def first(split):
        return split.select(range(min(args.max_examples, split.num_rows))) if args.max_examples else split

    chinese = {"peoples_daily_csc": first(load_builtin("peoples_daily_csc")["test"]),
               "sighan2015_test": first(load_builtin("sighan2015_test")["test"])}
    validation = load_builtin("peoples_daily_csc")["validation"]
    validation = validation.select(range(min(args.tune_examples, validation.num_rows)))
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "load_average": os.getloadavg()[0],
              "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "max_examples": args.max_examples,
              "models": {k: getattr(args, k) for k in ("mlm", "lm", "backward_lm", "corrector", "seq2seq")},
              "chosen": {}, "results": {}}
    have_pycorrector = importlib.util.find_spec("pycorrector") is not None and not args.skip_pycorrector

    zero_shot = corrector = constrained = None
    if args.mlm:
        model, tokenizer = load_mlm(args.mlm)
        zero_shot = ZeroShotCorrector(model, tokenizer)
        tuning = zero_shot.tune(validation["source"], validation["target"])
        report["chosen"]["zero_shot_margin"] = {"margin": zero_shot.margin, "validation_sentence_correction_f1": tuning}
        print(f"zero-shot margin {zero_shot.margin} (validation F1 by margin: {tuning})", flush=True)
    noisy_channel = {}  # row name -> (weights, margin, reranker or None, the gains it reads)
    if args.masked_proposals is not None and not args.mlm:
        sys.exit("error: --masked_proposals reads the masked LM's candidates: give --mlm")
    if args.corrector_proposals is not None and not (args.corrector and args.reranker_examples):
        sys.exit("error: --corrector_proposals reads the fine-tuned corrector inside the reranked noisy channel: "
                 "give --corrector and --reranker_examples")
    if args.lexicon is not None and not args.reranker_examples:
        sys.exit("error: --lexicon is read by the learned reranker: give --reranker_examples")
    if args.lm or args.backward_lm or args.reranker_examples:
        from hf_charlm.correction_data import load_lexicon
        from hf_charlm.ngram import KneserNeyLM

        texts = load_builtin("peoples_daily_text")["train"]["text"]
        ngram = KneserNeyLM(texts, order=args.ngram_order)
        judge = args.corrector if args.reranker_examples else None  # the fine-tuned corrector: reranker rows only
        lm_corrector = LanguageModelCorrector.from_pretrained(
            ngram, forward=args.lm, backward=args.backward_lm, masked=args.mlm, corrector=judge,
            proposal_penalty=args.proposal_penalty, masked_proposals=args.masked_proposals,
            corrector_proposals=min(args.corrector_proposals) if args.corrector_proposals else None,
            lexicon=load_lexicon(args.lexicon) if args.lexicon else None)  # (the rows without it ignore its features)
        features = lm_corrector.features(validation["source"])
        shown = [n for n in ("forward", "backward", "masked") if n in lm_corrector.models]
        with_lms = f"zero-shot noisy channel: n-gram + {' + '.join(shown)} LMs"
        grids = {with_lms: (weight_grid(set(shown)), set(GAINS) - {"corrector"})} if shown else {}
        grids["zero-shot noisy channel: n-gram alone"] = (weight_grid(set()), {"ngram", "channel"})
        for row, (grid, kept) in grids.items():
            best = lm_corrector.tune(validation["source"], validation["target"], weights=grid,
                                     features=with_gains(features, kept))["best"]
            noisy_channel[row] = (best["weights"], best["margin"], None, kept, None)
            report["chosen"][row] = {**best, "grid_size": len(grid), "proposal_penalty": args.proposal_penalty,
                                     "ngram_order": args.ngram_order, "masked_proposals": args.masked_proposals}
            print(f"{row}: weights {best['weights']} margin {best['margin']} (validation F1 {best['f1']:.4f})", flush=True)
        if args.reranker_examples:
            train = load_builtin("peoples_daily_csc")["train"]
            train = train.select(range(min(args.reranker_examples, train.num_rows)))
            held_out = set(train["target"])  # the reranker's n-gram has not read the texts it learns from
            held_out_lexicon = load_lexicon(args.lexicon, exclude=held_out) if args.lexicon == "peoples_daily" else None
            with lm_corrector.with_ngram(KneserNeyLM([t for t in texts if t not in held_out], order=args.ngram_order),
                                         held_out_lexicon):
                train_features = lm_corrector.features(train["source"])
            variants = {"noisy channel, learned reranker: n-gram alone": {"ngram", "channel"}}
            if shown:
                variants[f"noisy channel, learned reranker: n-gram + {' + '.join(shown)} LMs"] = set(GAINS) - {"corrector"}
            if "masked" in shown and len(shown) > 1:  # each kind of LM alone beside the n-gram: what each adds
                causal = [n for n in shown if n != "masked"]
                variants[f"noisy channel, learned reranker: n-gram + {' + '.join(causal)} LMs"] = {"ngram", "channel", *causal}
                variants["noisy channel, learned reranker: n-gram + masked LMs"] = {"ngram", "channel", "masked"}
            if judge:  # the fine-tuned corrector beside the n-gram alone, and beside every LM
                variants["noisy channel, learned reranker: n-gram + fine-tuned corrector"] = {"ngram", "channel", "corrector"}
                if shown:
                    variants[f"noisy channel, learned reranker: n-gram + {' + '.join(shown)} LMs + fine-tuned corrector"] = set(GAINS)
            lowest = lm_corrector.corrector_proposals  # what every reading is made at
            lexicon = lm_corrector.lexicon
            if lexicon is not None:  # every row again with the lexicon's features
                variants.update({f"{row} + lexicon": kept for row, kept in variants.items()})
            for row, kept in variants.items():
                lm_corrector.lexicon = lexicon if row.endswith(" + lexicon") else None  # (the reranker's features)
                # where the corrector proposes, each threshold gets its reranker and margin: the best on validation
                fitted = lm_corrector.fit_reranker_and_tune(
                    train["source"], train["target"], with_gains(train_features, kept), validation["source"],
                    validation["target"], with_gains(features, kept),
                    args.corrector_proposals if "corrector" in kept else None)
                best, counts, threshold = fitted["best"], fitted["counts"], fitted["corrector_proposals"]
                reranker = lm_corrector.reranker
                noisy_channel[row] = (best["weights"], best["margin"], reranker, kept, threshold)
                report["chosen"][row] = {"margin": best["margin"], "f1": best["f1"], "train_pairs": train.num_rows,
                                         **counts, "features": list(reranker.names),
                                         "coefficients": [round(float(w), 4) for w in reranker.weight],
                                         **({"corrector_proposals": threshold,
                                             "validation_f1_by_corrector_proposals": fitted["by_threshold"]}
                                            if threshold is not None else {})}
                by_threshold = "" if threshold is None else f"; by the corrector's proposal threshold: {fitted['by_threshold']}"
                print(f"{row}: {counts} margin {best['margin']} (validation F1 {best['f1']:.4f}{by_threshold})", flush=True)
                lm_corrector.reranker, lm_corrector.corrector_proposals, lm_corrector.lexicon = None, lowest, lexicon
    if args.corrector:
        model, tokenizer = load_mlm(args.corrector)
        edits = predict_same_length(model, tokenizer, validation["source"])
        tuning = {}
        for m in MIN_SCORES:
            outputs = [apply_edits(s, [e for e in es if e["score"] >= m]) for s, es in zip(validation["source"], edits)]
            tuning[m] = correction_scores(validation["source"], validation["target"], outputs)["sentence_correction_f1"]
        min_score = max(tuning, key=lambda m: (tuning[m], m))
        corrector = (model, tokenizer, min_score)  # the test sets get the min_score chosen here
        report["chosen"]["corrector_min_score"] = {"min_score": min_score, "validation_sentence_correction_f1": tuning}
        print(f"corrector min_score {min_score} (validation F1: {tuning})", flush=True)
        constrained = ConfusionSetCorrector(model, tokenizer)
        tuning = constrained.tune(validation["source"], validation["target"])
        report["chosen"]["confusion_set_margin"] = {"margin": constrained.margin, "validation_sentence_correction_f1": tuning}
        print(f"fine-tuned + confusion sets margin {constrained.margin} (validation F1 by margin: {tuning})", flush=True)

    for name, data in chinese.items():
        sources, targets = data["source"], data["target"]
        rows = {"no-op": score(sources, targets, sources, 0.0)}
        if have_pycorrector:
            outputs, seconds = timed(pycorrector_outputs, "zh", sources)
            rows["pycorrector ProperCorrector"] = score(sources, targets, outputs, seconds)
        if zero_shot is not None:
            edits, seconds = timed(zero_shot.correct, sources)
            rows["zero-shot masked LM"] = score(sources, targets, [apply_edits(s, e) for s, e in zip(sources, edits)], seconds)
        if noisy_channel:
            features, seconds = timed(lm_corrector.features, sources)  # the rows share the models' reading
            for row, (weights, margin, reranker, kept, threshold) in noisy_channel.items():
                lm_corrector.weights, lm_corrector.margin, lm_corrector.reranker = weights, margin, reranker
                edits = lm_corrector.correct(sources, lm_corrector.score_features(with_gains(features, kept, threshold)))
                rows[row] = score(sources, targets, [apply_edits(s, e) for s, e in zip(sources, edits)], seconds)
        if corrector is not None:
            model, tokenizer, min_score = corrector
            edits, seconds = timed(lambda texts: predict_same_length(model, tokenizer, texts, min_score=min_score), sources)
            rows["fine-tuned same-length"] = score(sources, targets, [apply_edits(s, e) for s, e in zip(sources, edits)], seconds)
        if constrained is not None:
            edits, seconds = timed(constrained.correct, sources)
            rows["fine-tuned, confusion sets"] = score(sources, targets, [apply_edits(s, e) for s, e in zip(sources, edits)], seconds)
        report["results"][name] = {"examples": len(sources), "systems": rows}
        for system, row in rows.items():
            print(json.dumps({"set": name, "system": system, **{k: round(row[k], 4) for k in SHOWN}}), flush=True)

    typos = first(load_builtin("english_typos")["test"])
    sources, targets = typos["source"], typos["target"]
    rows = {"no-op": score(sources, targets, sources, 0.0)}
    if importlib.util.find_spec("spellchecker") is not None:
        outputs, seconds = timed(spellchecker_outputs, sources)
        rows["pyspellchecker"] = score(sources, targets, outputs, seconds)
    if importlib.util.find_spec("symspellpy") is not None:
        outputs, seconds = timed(symspell_outputs, sources)
        rows["symspellpy"] = score(sources, targets, outputs, seconds)
    if have_pycorrector:
        outputs, seconds = timed(pycorrector_outputs, "en", sources)
        rows["pycorrector EnSpellCorrector"] = score(sources, targets, outputs, seconds)
    if args.seq2seq:
        import hf_charlm  # noqa: F401  (registers the pipeline)
        from transformers import pipeline

        correct = pipeline("text-correction", model=args.seq2seq)
        results, seconds = timed(correct, list(sources))
        rows["seq2seq (hf_charlm)"] = score(sources, targets, [r["corrected_text"] for r in results], seconds)
    report["results"]["english_typos"] = {"examples": len(sources), "systems": rows}
    for system, row in rows.items():
        print(json.dumps({"set": "english_typos", "system": system, **{k: round(row[k], 4) for k in ENGLISH_SHOWN}}), flush=True)

    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    lines = [f"Text correction ({report['date']}, load {report['load_average']:.1f}; `{report['command']}`)", ""]
    for name, block in report["results"].items():
        shown = ENGLISH_SHOWN if name == "english_typos" else SHOWN
        lines += [f"**{name}** test, first {block['examples']} sentences", "",
                  "| system | " + " | ".join(shown) + " | seconds |", "|---" * (len(shown) + 2) + "|"]
        for system, row in block["systems"].items():
            lines.append(f"| {system} | " + " | ".join(f"{row[k]:.4f}" for k in shown) + f" | {row['seconds']} |")
        lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
