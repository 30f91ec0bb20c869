"""The `Trainer` classes of the scripts: transformers' own, with evaluation and prediction kept in dataset order.

A module of its own so that `hf_charlm.training` (which the scripts import before parsing their arguments) does
not import the Trainer. May import the package, `torch` and public `transformers` names.
"""

import torch
from transformers import Seq2SeqTrainer, Trainer
from transformers.trainer_utils import has_length


class _EvaluatesInOrder:
    """Evaluation and prediction in dataset order, whatever the training sampler.

    With `train_sampling_strategy="group_by_length"` transformers (since 4.45) also groups the *evaluation* batches
    by length (`Trainer._get_eval_sampler` returns a shuffled `LengthGroupedSampler`), so `predict()` returns its
    rows in that order. The scripts pair predictions with their examples (the windows of a long text, the sources
    written next to the predictions, the references of the metrics): evaluation keeps the order it has without
    grouping (sequential on one process; the distributed sampler otherwise). Training is still grouped."""

    def _get_eval_sampler(self, eval_dataset):
        if getattr(self.args, "train_sampling_strategy", None) != "group_by_length":
            return super()._get_eval_sampler(eval_dataset)
        if eval_dataset is None or not has_length(eval_dataset):  # (as transformers' own: no sampler to give)
            return None
        return torch.utils.data.SequentialSampler(eval_dataset) if self.args.world_size <= 1 else None


class CharLMTrainer(_EvaluatesInOrder, Trainer):
    """The scripts' `Trainer`: predictions in dataset order also with `train_sampling_strategy="group_by_length"`."""


class CharLMSeq2SeqTrainer(_EvaluatesInOrder, Seq2SeqTrainer):
    """The seq2seq script's `Seq2SeqTrainer`, with the same evaluation order as `CharLMTrainer`."""


__all__ = ["CharLMTrainer", "CharLMSeq2SeqTrainer"]
