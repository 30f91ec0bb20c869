"""`evaluate` module for entity-level NER scores: a thin wrapper around `hf_charlm.metrics.entity_scores`
(seqeval, default conlleval-like mode), with the output layout of the Hub's `seqeval` metric. Load it
offline with `hf_charlm.metrics.load_metric("charlm_seqeval")`. `evaluate` copies this file into its
module cache before importing it, so the logic stays in the installed package and is imported from
there; keep one import per line (evaluate's dependency scanner reads them line by line)."""

import datasets
import evaluate
from hf_charlm.metrics import entity_scores

_DESCRIPTION = """Entity-level precision, recall and F1 (overall and per entity type) of IOB tag sequences,
computed with seqeval; `overall_accuracy` is token accuracy."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of predicted tag sequences, e.g. [["B-PER", "I-PER", "O"]].
    references: list of reference tag sequences of the same lengths.
    scheme: optional seqeval scheme name ("IOB2", "IOBES", ...), used with mode="strict".
    mode: None (default, conlleval-like) or "strict".
    suffix: True when the type comes before the tag ("PER-B").
Returns:
    overall_precision, overall_recall, overall_f1, overall_accuracy, and for each entity type a dict
    {"precision", "recall", "f1", "number"}.
Examples:
    >>> metric = hf_charlm.metrics.load_metric("charlm_seqeval")
    >>> metric.compute(predictions=[["B-PER", "I-PER", "O"]], references=[["B-PER", "I-PER", "O"]])["overall_f1"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CharlmSeqeval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string", id="label"), id="sequence"),
                    "references": datasets.Sequence(datasets.Value("string", id="label"), id="sequence"),
                }
            ),
            reference_urls=["https://github.com/chakki-works/seqeval"],
        )

    def _compute(self, predictions, references, scheme=None, mode=None, suffix=False):
        return entity_scores(references, predictions, scheme=scheme, mode=mode, suffix=suffix)
