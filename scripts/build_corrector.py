"""Builds, tunes and saves the noisy-channel Chinese spelling corrector (`hf_charlm.correction.LanguageModelCorrector`),
so that `pipeline("text-correction", model=output_dir)` and `LanguageModelCorrector.from_pretrained(output_dir)` use
it as tuned, without reading the training pairs again.

A character n-gram of the People's Daily train text proposes confusion-set changes; the models given judge them
(`--mlm`: a masked char LM, which with `--masked_proposals T` also proposes changes off the n-gram's best path;
`--lm` / `--backward_lm`: causal char LMs read forward and on reversed text; `--corrector`: a same-length corrector
of `scripts/finetune_correction.py`, which with `--corrector_proposals T` also proposes; it needs the reranker, and
must have been fine-tuned without the reranker's pairs). With `--reranker_examples N` a logistic
regression learns from the first N `peoples_daily_csc` train pairs which proposed edits are right (those pairs read
by an n-gram counted without their texts); without it the weights come from a grid. Either way the margin (and the
grid's weights) are chosen on the first `--tune_examples` validation pairs; the test splits are never read.
`--evaluate_examples N` then scores the saved corrector, loaded back through the pipeline, on the first N sentences
of the `peoples_daily_csc` test split and of SIGHAN 2015 (`hf_charlm.metrics.correction_scores`). `--lexicon` gives
the reranker the words around each change (`hf_charlm.correction.Lexicon`, saved in the folder): `peoples_daily`
(the segmentation's train words; the reranker's pairs read by one counted without their sentences), `pycorrector`
(the dictionary and name lists its own corrector reads, from its installed data) or a file of `word count` lines.

    python scripts/build_corrector.py --mlm outputs/charlm-mlm --lm outputs/pd-lm --backward_lm outputs/pd-lm-reversed \\
        --masked_proposals 3 --reranker_examples 4000 --output_dir outputs/csc-corrector
    python -c "from transformers import pipeline; import hf_charlm; \\
        print(pipeline('text-correction', model='outputs/csc-corrector')('我们去学效上课。'))"

Needs the `correction` extra (pycorrector's confusion sets, pypinyin).
"""

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser

import hf_charlm  # noqa: F401  (registers the Auto classes and the text-correction pipeline)
from hf_charlm.correction_data import LEXICONS
from hf_charlm.training import UsageError, run_main

@dataclass
class BuildArguments:
    output_dir: str = field(default="outputs/csc-corrector", metadata={"help": "Where the corrector is saved."})
    mlm: str | None = field(default=None, metadata={"help": "A masked char LM (scripts/pretrain.py --objective mlm)."})
    lm: str | None = field(default=None, metadata={"help": "A causal char LM of People's Daily text (scripts/pretrain.py)."})
    backward_lm: str | None = field(default=None, metadata={"help": "The same on reversed text (--reverse_text)."})
    masked_proposals: float | None = field(
        default=None, metadata={"help": "With --mlm: also propose, off the n-gram's best path, each confusable "
                                "candidate the masked LM prefers by more than this many nats (3 measured best)."})
    corrector: str | None = field(
        default=None, metadata={"help": "A same-length corrector (scripts/finetune_correction.py) as a judge: fine-tuned "
                                "without the first --reranker_examples train pairs (its --skip_train_samples)."})
    corrector_proposals: list[float] | None = field(
        default=None, metadata={"help": "With --corrector: also propose each confusable candidate it prefers by more "
                                "than this many nats, off the proposals so far; several values: the one of the best "
                                "validation F1 (one reading serves all), e.g. 1 2 3 4 6.", "nargs": "+"})
    lexicon: str | None = field(
        default=None, metadata={"help": "Words whose presence around a change the reranker reads (needs "
                                "--reranker_examples): 'peoples_daily' (the peoples_daily_cws train words), 'pycorrector' "
                                "(the dictionary and name lists of pycorrector's data, jieba's words: not People's Daily "
                                "only), or a file of `word count` lines."})
    ngram_order: int = field(default=4, metadata={"help": "Order of the character n-gram."})
    proposal_penalty: float = field(default=1.5, metadata={"help": "The n-gram search's cost per change (nats)."})
    reranker_examples: int = field(default=0, metadata={"help": "Learn the reranker from the first N train pairs (0: grid)."})
    tune_examples: int = field(default=1000, metadata={"help": "Validation pairs for the margin (and grid weights)."})
    evaluate_examples: int = field(default=0, metadata={"help": "Then score the saved corrector on N test sentences."})

    def __post_init__(self) -> None:
        for flag in ("mlm", "lm", "backward_lm", "corrector"):
            path = getattr(self, flag)
            if path is not None and not (Path(path) / "config.json").is_file():
                raise UsageError(f"--{flag} {path}: no model folder there (no config.json)")
        if self.masked_proposals is not None and self.mlm is None:
            raise UsageError("--masked_proposals reads the masked LM's candidates: give --mlm")
        if self.corrector_proposals is not None and self.corrector is None:
            raise UsageError("--corrector_proposals reads the fine-tuned corrector's candidates: give --corrector")
        if self.ngram_order < 1:
            raise UsageError(f"--ngram_order={self.ngram_order} must be >= 1")
        for name in ("reranker_examples", "evaluate_examples"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name}={getattr(self, name)} must be >= 0")
        if self.corrector is not None and not self.reranker_examples:
            raise UsageError("--corrector is weighed by the learned reranker: give --reranker_examples (the weight grid "
                             "holds the n-gram, the channel and the LMs)")
        if self.lexicon is not None and not self.reranker_examples:
            raise UsageError("--lexicon is read by the learned reranker: give --reranker_examples (the weight grid "
                             "holds the gains only)")
        if self.lexicon not in (None, *LEXICONS) and not Path(self.lexicon).is_file():
            raise UsageError(f"--lexicon {self.lexicon}: not 'peoples_daily', 'pycorrector' or a file of `word count` lines")
        if self.tune_examples < 1:
            raise UsageError(f"--tune_examples={self.tune_examples} must be >= 1")
        if Path(self.output_dir).is_file():
            raise UsageError(f"--output_dir {self.output_dir} is a file")


LEXICON_SOURCES = {
    "peoples_daily": "peoples_daily (the words of the peoples_daily_cws train split)",
    "pycorrector": "pycorrector (word_freq.txt, person_name.txt and place_name.txt of the pycorrector package's data, "
                   "Apache-2.0)",
}


def write_card(args: BuildArguments, corrector, report: dict) -> None:
    """The folder's model card (`README.md`, `hf_charlm.hub.write_model_card`, task `noisy_channel`): how it was
    built, the validation score the margin was chosen by and, with --evaluate_examples, the test scores."""
    from hf_charlm.hub import write_model_card

    models = {"masked": args.mlm, "forward": args.lm, "backward": args.backward_lm, "fine-tuned corrector": args.corrector}
    hyperparameters = {
        "n-gram": f"order {args.ngram_order}, People's Daily train text (Kneser-Ney)",
        "proposal_penalty": args.proposal_penalty, "beam": corrector.beam, "context": corrector.context,
        **{name if name == "fine-tuned corrector" else f"{name} LM": path for name, path in models.items() if path},
        "masked_proposals": args.masked_proposals, "corrector_proposals": corrector.corrector_proposals,
        "lexicon": (f"{LEXICON_SOURCES.get(args.lexicon, args.lexicon)} ({len(corrector.lexicon):,} words)"
                    if corrector.lexicon is not None else None),
        "scoring": (f"learned reranker, {report['reranker']['edits']:,} proposed edits of the first "
                    f"{args.reranker_examples:,} peoples_daily_csc train pairs ({report['reranker']['right']:,} right)"
                    if args.reranker_examples else f"weights {json.dumps(corrector.weights)} (grid, validation)"),
        "margin": corrector.margin, "tune_examples": args.tune_examples,
    }
    results = {"eval_sentence_correction_f1": report["chosen"]["f1"]}
    extra: dict = {}
    for name, scores in report.get("test", {}).items():
        if name == "peoples_daily_csc":
            results.update({f"test_{key}": scores[key] for key in
                            ("sentence_detection_f1", "sentence_correction_precision", "sentence_correction_recall",
                             "sentence_correction_f1", "char_correction_f1", "false_positive_rate")})
        else:  # the model index holds one dataset; SIGHAN's scores go to the table beside it
            extra[f"{name} ({scores['examples']} sentences): sentence correction P / R / F1"] = (
                f"{scores['sentence_correction_precision']:.4f} / {scores['sentence_correction_recall']:.4f} / "
                f"{scores['sentence_correction_f1']:.4f}")
    if "test" in report:
        extra["test sentences"] = report["test"]["peoples_daily_csc"]["examples"]
    write_model_card(
        args.output_dir, task="noisy_channel", model_name=Path(args.output_dir).name, hyperparameters=hyperparameters,
        results=results, datasets=[], dataset_name="peoples_daily_csc", language=["zh"],
        extra={**extra, "example": "我们去学效上课。"},
    )


def main() -> dict:
    (args,) = HfArgumentParser(BuildArguments).parse_args_into_dataclasses()
    from transformers import pipeline

    from hf_charlm import correction_data
    from hf_charlm.correction import LanguageModelCorrector, weight_grid
    from hf_charlm.data import load_builtin
    from hf_charlm.metrics import correction_scores
    from hf_charlm.ngram import KneserNeyLM

    started = time.time()
    texts = load_builtin("peoples_daily_text")["train"]["text"]
    csc = load_builtin("peoples_daily_csc")
    validation = csc["validation"].select(range(min(args.tune_examples, csc["validation"].num_rows)))
    train = csc["train"].select(range(min(args.reranker_examples, csc["train"].num_rows)))
    held_out = set(train["target"])  # what the reranker learns from: no count model may have read these texts
    lexicon = held_out_lexicon = None
    if args.lexicon is not None:
        lexicon = correction_data.load_lexicon(args.lexicon)
        if args.lexicon == "peoples_daily":  # counted from the train text: the reranker's pairs read without theirs
            held_out_lexicon = correction_data.load_lexicon(args.lexicon, exclude=held_out)
    corrector = LanguageModelCorrector.from_pretrained(
        KneserNeyLM(texts, order=args.ngram_order), forward=args.lm, backward=args.backward_lm, masked=args.mlm,
        corrector=args.corrector, proposal_penalty=args.proposal_penalty, masked_proposals=args.masked_proposals,
        corrector_proposals=min(args.corrector_proposals) if args.corrector_proposals else None, lexicon=lexicon)
    report: dict = {"arguments": vars(args)}
    if args.reranker_examples:
        print(f"reading {train.num_rows:,} train pairs for the reranker ...", file=sys.stderr, flush=True)
        with corrector.with_ngram(KneserNeyLM([t for t in texts if t not in held_out], order=args.ngram_order),
                                  held_out_lexicon):
            train_features = corrector.features(train["source"])
        print(f"reading {validation.num_rows:,} validation pairs ...", file=sys.stderr, flush=True)
        fitted = corrector.fit_reranker_and_tune(train["source"], train["target"], train_features, validation["source"],
                                                 validation["target"], corrector.features(validation["source"]),
                                                 args.corrector_proposals)
        best, report["reranker"] = fitted["best"], fitted["counts"]
        if fitted["corrector_proposals"] is not None:
            report["validation_f1_by_corrector_proposals"] = fitted["by_threshold"]
            print(f"validation F1 by the corrector's proposal threshold: {fitted['by_threshold']}", file=sys.stderr, flush=True)
    else:
        grid = weight_grid([name for name in ("forward", "backward", "masked") if name in corrector.models])
        print(f"tuning on {validation.num_rows:,} validation pairs ...", file=sys.stderr, flush=True)
        best = corrector.tune(validation["source"], validation["target"], weights=grid)["best"]
    report["chosen"] = best
    print(f"chosen: {json.dumps(best)}", file=sys.stderr, flush=True)
    corrector.save_pretrained(args.output_dir)
    report["build_seconds"] = round(time.time() - started, 1)
    print(f"saved to {args.output_dir} ({report['build_seconds']} s)", file=sys.stderr, flush=True)
    neural = bool(corrector.models)  # a corrector of the n-gram alone has no model for a pipeline to load
    if args.evaluate_examples:
        pipe = (pipeline("text-correction", model=args.output_dir) if neural
                else LanguageModelCorrector.from_pretrained(args.output_dir))  # (answers as the pipeline would)
        report["test"] = {}
        for name, data in (("peoples_daily_csc", csc["test"]), ("sighan2015_test", load_builtin("sighan2015_test")["test"])):
            data = data.select(range(min(args.evaluate_examples, data.num_rows)))
            start = time.time()
            outputs = [answer["corrected_text"] for answer in pipe(list(data["source"]))]
            scores = correction_scores(data["source"], data["target"], outputs)
            report["test"][name] = {"examples": data.num_rows, "seconds": round(time.time() - start, 1), **scores}
            print(f"{name} ({data.num_rows} sentences, through the {'pipeline' if neural else 'corrector'}): "
                  f"sentence correction F1 {scores['sentence_correction_f1']:.4f}", file=sys.stderr, flush=True)
        report["example"] = pipe("我们去学效上课。")
    if neural:
        write_card(args, corrector, report)
    else:
        print("no model card: a corrector of the n-gram alone is loaded by LanguageModelCorrector.from_pretrained, "
              "not by the pipeline the card shows", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    (Path(args.output_dir) / "build_report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return report


if __name__ == "__main__":
    run_main(main)
