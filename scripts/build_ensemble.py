"""Builds an output ensemble of fine-tuned classifiers (`from_members` of `CharLMForTokenClassification` or
`CharLMForSequenceClassification`, whichever the members are) and saves it as one model. Token classification: the
mean of the members' per-character scores, with a CRF the mean of their transition scores, one Viterbi path.
Sequence classification: the mean of the members' logits. The members are runs of one recipe
(`scripts/finetune_token_classification.py`, `scripts/finetune_sequence_classification.py`) with different seeds or
learning rates: the same architecture, labels and tokenizer. The folder loads like any classifier of its kind
(`AutoModelForTokenClassification` / `AutoModelForSequenceClassification`, `pipeline("token-classification")` /
`pipeline("text-classification")`, remote code), at the members' summed cost.

    python scripts/finetune_token_classification.py --task_name peoples_daily_ner ... --seed 42 --output_dir outputs/ner-a
    python scripts/finetune_token_classification.py --task_name peoples_daily_ner ... --seed 43 --output_dir outputs/ner-b
    python scripts/build_ensemble.py --members outputs/ner-a outputs/ner-b --output_dir outputs/ner-ensemble
    # its validation and test scores (no training: the script evaluates and predicts with the folder as it is)
    python scripts/finetune_token_classification.py --task_name peoples_daily_ner --model_name_or_path outputs/ner-ensemble \\
        --do_train false --do_eval true --do_predict true --output_dir outputs/ner-ensemble-scores

`benchmarks/recipes.py --ensemble K` trains the members side by side and scores the ensemble.
"""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoTokenizer, HfArgumentParser

import hf_charlm  # (also registers the Auto classes)
from hf_charlm.training import UsageError, check_output_dir, run_main


@dataclass
class EnsembleArguments:
    members: list[str] = field(metadata={"help": "Two or more fine-tuned token- or sequence-classification model folders "
                                                  "of one recipe.", "nargs": "+"})
    output_dir: str = field(metadata={"help": "Where the ensemble is saved (a new or empty folder)."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace what --output_dir holds."})

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise UsageError(f"--members: an ensemble needs at least two models, got {len(self.members)}")
        for path in self.members:
            if not (Path(path) / "config.json").is_file():
                raise UsageError(f"--members {path}: no model folder there (no config.json)")
        out = Path(self.output_dir).resolve()
        for path in self.members:
            if Path(path).resolve() == out:
                raise UsageError(f"--output_dir {self.output_dir} is one of the --members: the ensemble would overwrite it")


# the head a member's config names -> (model card task, the scores its fine-tuning run records)
HEADS = {
    "CharLMForTokenClassification": ("token_classification", ("f1",)),
    "CharLMForSequenceClassification": ("sequence_classification", ("accuracy", "macro_f1")),
}


def member_head(path: str) -> str:
    """The classification head a member folder holds (its config's `architectures`), refused if not one of HEADS."""
    architectures = json.loads((Path(path) / "config.json").read_text()).get("architectures") or []
    head = next((a for a in architectures if a in HEADS), None)
    if head is None:
        raise UsageError(f"--members {path}: it holds {', '.join(architectures) or 'no named architecture'}; ensembles "
                         f"are of {' or '.join(HEADS)} models")
    return head


def member_scores(path: str, metrics: tuple[str, ...]) -> dict[str, float]:
    """The validation / test scores a member's fine-tuning run recorded (all_results.json), if any."""
    results = Path(path) / "all_results.json"
    if not results.is_file():
        return {}
    values = json.loads(results.read_text())
    wanted = {f"{split}_{m}" for split in ("eval", "test") for m in metrics}
    return {k: round(float(v), 4) for k, v in values.items() if k in wanted}


def member_card(path: str) -> tuple[str | None, list[str], list[str]]:
    """The dataset name, Hub dataset ids and languages of a member's model card (README.md), where it has one."""
    from huggingface_hub import ModelCard

    card = Path(path) / "README.md"
    if not card.is_file():
        return None, [], []
    data = ModelCard.load(card).data
    results = data.eval_results or []
    return (results[0].dataset_name if results else None), list(data.datasets or []), list(data.language or [])


def main() -> Path:
    (args,) = HfArgumentParser(EnsembleArguments).parse_args_into_dataclasses()
    from hf_charlm.hub import write_model_card

    check_output_dir(args.output_dir, args.overwrite_output_dir, False)
    heads = [member_head(path) for path in args.members]
    for path, head in zip(args.members[1:], heads[1:]):
        if head != heads[0]:
            raise UsageError(f"--members {path}: a {head}, while {args.members[0]} is a {heads[0]}; the members of an "
                             "ensemble are runs of one recipe")
    card_task, metrics = HEADS[heads[0]]
    tokenizers = [AutoTokenizer.from_pretrained(path) for path in args.members]
    for path, tokenizer in zip(args.members[1:], tokenizers[1:]):
        if tokenizer.backend_tokenizer.to_str() != tokenizers[0].backend_tokenizer.to_str():
            raise UsageError(f"--members {path}: its tokenizer differs from that of {args.members[0]}; the members of an "
                             "ensemble read the same ids (fine-tune them from the same pretrained model)")
    try:
        model = getattr(hf_charlm, heads[0]).from_members(args.members)
    except ValueError as err:
        raise UsageError(f"--members: {err}") from err
    model.save_pretrained(args.output_dir)
    tokenizers[0].save_pretrained(args.output_dir)
    config = model.config
    dataset_name, dataset_ids, language = member_card(args.members[0])
    how = ("mean of their scores" + (", mean CRF transition scores, one Viterbi path" if config.use_crf else "")
           if card_task == "token_classification" else "mean of their logits")
    scored_by = ("scripts/finetune_token_classification.py" if card_task == "token_classification"
                 else "scripts/finetune_sequence_classification.py")
    write_model_card(
        args.output_dir,
        task=card_task,
        model_name=Path(args.output_dir).name,
        hyperparameters={
            "ensemble": f"{config.ensemble_size} members, {how}",
            **{f"member {i}": f"{path} {json.dumps(member_scores(path, metrics))}" for i, path in enumerate(args.members)},
            "parameters": f"{model.num_parameters():,}",
        },
        results={},
        datasets=dataset_ids,
        language=language,
        dataset_name=dataset_name,
        extra={"description": "An output ensemble built by `scripts/build_ensemble.py` (its members' own validation / "
                              f"test scores beside their paths; score the ensemble itself with `{scored_by} "
                              "--do_train false`)."},
    )
    print(f"saved an ensemble of {config.ensemble_size} to {args.output_dir} ({model.num_parameters():,} parameters)",
          flush=True)
    return Path(args.output_dir)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
