"""`evaluate` module for Chinese word segmentation: word-level precision / recall / F1, a thin wrapper
around `hf_charlm.metrics.segmentation_scores` (B/M/E/S tags, default) and
`segmentation_scores_from_words` (`compute(..., input_format="words")`). Load it offline with
`hf_charlm.metrics.load_metric("charlm_cws")`. `evaluate` copies this file into its module cache before
importing it, so the logic stays in the installed package and is imported from there; keep one import
per line (evaluate's dependency scanner reads them line by line)."""

import datasets
import evaluate
from hf_charlm.metrics import segmentation_scores
from hf_charlm.metrics import segmentation_scores_from_words

_DESCRIPTION = """Word-level segmentation scores, micro-averaged over the corpus (SIGHAN style): a predicted
word is correct when its character span is a reference word's span. Ill-formed B/M/E/S sequences are
decoded by the rule documented in hf_charlm.metrics (a word starts at B/S, after E/S, or at position 0)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: per sentence, a list of B/M/E/S tags (one per character), or a list of words.
    references: the same, for the gold segmentation.
    input_format: "tags" (default) or "words".
Returns:
    precision, recall, f1, num_reference_words, num_predicted_words, num_correct_words.
Examples:
    >>> metric = hf_charlm.metrics.load_metric("charlm_cws")
    >>> metric.compute(predictions=[["S", "B", "E"]], references=[["S", "B", "E"]])["f1"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CharlmCws(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
        )

    def _compute(self, predictions, references, input_format="tags"):
        if input_format == "tags":
            return segmentation_scores(references, predictions)
        if input_format == "words":
            return segmentation_scores_from_words(references, predictions)
        raise ValueError(f"input_format must be 'tags' or 'words', got {input_format!r}")
