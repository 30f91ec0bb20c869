"""`evaluate` module for sequence classification, a thin wrapper around `hf_charlm.metrics`:
config `multiclass` (default; `classification_scores`: accuracy, macro-F1, per-class F1),
`multilabel` (`multilabel_scores` over 0/1 indicator rows) and `regression` (`regression_scores`:
MSE, Pearson). Load it offline with `hf_charlm.metrics.load_metric("charlm_classification", "multilabel")`.
`evaluate` copies this file into its module cache before importing it, so the logic stays in the
installed package and is imported from there; keep one import per line (evaluate's dependency scanner
reads them line by line)."""

import datasets
import evaluate
from hf_charlm.metrics import classification_scores
from hf_charlm.metrics import multilabel_scores
from hf_charlm.metrics import regression_scores

_DESCRIPTION = """Accuracy and macro-F1 for single-label classification, micro/macro-F1 for multi-label
classification, MSE and Pearson correlation for regression."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: class ids (multiclass), 0/1 rows (multilabel) or floats (regression).
    references: the same, for the gold labels.
    num_labels: (multiclass) score classes 0..num_labels-1 instead of the labels seen.
Returns:
    multiclass: accuracy, macro_precision, macro_recall, macro_f1, labels, per_class_f1;
    multilabel: micro_precision, micro_recall, micro_f1, macro_f1, per_label_f1, subset_accuracy;
    regression: mse, pearson.
Examples:
    >>> metric = hf_charlm.metrics.load_metric("charlm_classification")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])["accuracy"]
    0.6666666666666666
"""

_CONFIGS = ("multiclass", "multilabel", "regression")


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CharlmClassification(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS + ("default",):
            raise ValueError(f"config_name must be one of {_CONFIGS}, got {self.config_name!r}")
        if self.config_name == "multilabel":
            value = datasets.Sequence(datasets.Value("int32"))
        elif self.config_name == "regression":
            value = datasets.Value("float64")
        else:
            value = datasets.Value("int64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": value, "references": value}),
        )

    def _compute(self, predictions, references, num_labels=None):
        if self.config_name == "multilabel":
            return multilabel_scores(references, predictions)
        if self.config_name == "regression":
            return regression_scores(references, predictions)
        return classification_scores(references, predictions, num_labels=num_labels)
