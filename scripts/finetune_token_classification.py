"""Fine-tune a char model for token classification (NER, word segmentation), in the manner of run_ner.py.

Built-in People's Daily NER from the default pretrained model (run scripts/pretrain.py first):

    python scripts/finetune_token_classification.py --model_name_or_path outputs/charlm-pretrain \
        --task_name peoples_daily_ner --output_dir outputs/charlm-ner

Word segmentation from scratch: `--task_name peoples_daily_cws --preset tiny`. Any dataset with token and tag
columns: `--train_file train.jsonl --validation_file dev.jsonl --tokens_column tokens --tags_column ner_tags`
(word-level data such as CoNLL-2003 is aligned to characters; see README, "Label alignment"). Plain-text sets are read
as they come (`--file_format auto`): CoNLL column files (`token ... tag`, blank line between sentences), character-
per-line BIO / BMES / BIOES files, tab-separated columns, and space-segmented text (one sentence per line).

Evaluate or predict with a fine-tuned model, without training (writes predictions.txt and predictions.jsonl):

    python scripts/finetune_token_classification.py --model_name_or_path outputs/charlm-ner --do_predict \
        --test_file test.conll --output_dir outputs/charlm-ner-test
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    DataCollatorForTokenClassification,
    EarlyStoppingCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import IntervalStrategy

from hf_charlm import CharLMForTokenClassification
from hf_charlm.configuration_charlm import MAX_LEXICON_LENGTH
from hf_charlm.data import check_token_examples, tokenize_and_align_labels
from hf_charlm.formats import SOURCE_COLUMN
from hf_charlm.hub import write_model_card
from hf_charlm.metrics import (
    LABEL_SCHEMES,
    SEGMENTATION_TAGS,
    bmes_to_spans,
    detect_label_scheme,
    merge_windows,
    tags_to_entities,
    token_classification_compute_metrics,
)
from hf_charlm.trainers import CharLMTrainer
from hf_charlm.training import (
    DATA_SEED,
    FINETUNE_DEFAULTS,
    HPSearchArguments,
    ModelArguments,
    UsageError,
    argmax_logits,
    card_hyperparameters,
    check_columns,
    check_output_dir,
    count_cut,
    encode_token_windows,
    hub_base_model,
    limit_splits,
    load_classifier,
    load_finetune_splits,
    model_after_search,
    name_example_in_error,
    parse_finetune_args,
    predict_windows,
    push_output,
    resolve_resume,
    run_main,
    setup_logging,
    take_push_flag,
    train_then_evaluate,
)

logger = logging.getLogger("finetune_token_classification")
TASKS = ("peoples_daily_ner", "peoples_daily_cws")
FILE_FORMATS = ("auto", "json", "csv", "parquet", "conll", "segmented", "tsv")


@dataclass
class DataArguments(HPSearchArguments):
    task_name: str = field(default="peoples_daily_ner", metadata={"help": f"Built-in task: {', '.join(TASKS)}."})
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with token and tag columns."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "The Hub dataset's config."})
    train_file: str | None = field(default=None, metadata={"help": "A data file (see --file_format)."})
    validation_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file."})
    test_file: str | None = field(default=None, metadata={"help": "Same kind as --train_file; its tags may be missing (prediction only)."})
    file_format: str = field(
        default="auto",
        metadata={"help": "auto (by extension and content), json / csv / parquet (list columns), conll (token ... tag per line, "
                  "blank line between sentences; also char-per-line BIO/BMES/BIOES and tab-separated), segmented "
                  "(space-separated words, one sentence per line: B/M/E/S per character)."},
    )
    tokens_column: str = field(default="tokens", metadata={"help": "Column of words (or characters)."})
    tags_column: str | None = field(default=None, metadata={"help": "Column of tags (default: ner_tags, else tags)."})
    label_list: str | None = field(default=None, metadata={"help": "Comma-separated label set for string tags."})
    label_scheme: str = field(
        default="auto",
        metadata={"help": "How tags are scored: bio (conlleval), iobes (strict; B/I-or-M/E/S and BILOU tags), bmes "
                  "(untyped word segmentation, word F1), auto (from the label set)."},
    )
    word_separator: str = field(
        default="auto", metadata={"help": "Joins words into the model's text: 'auto' (space unless every token is one character), 'space', 'none'."}
    )
    label_all_tokens: bool = field(default=True, metadata={"help": "Train on every character of a word (B-X -> I-X)."})
    use_crf: bool = field(
        default=False,
        metadata={"help": "A linear-chain CRF on the per-character scores (NLL loss, Viterbi predictions), with the "
                  "transitions the BIO / BMES / BIOES scheme of the labels forbids made impossible."},
    )
    lexicon: str | None = field(
        default=None,
        metadata={"help": "Lexicon features (the dictionary features of neural word segmentation): 'train' builds the "
                  "lexicon from the spans of the train split's tags (the words of B/M/E/S segmentation, the entities "
                  "of BIO / BIOES tags), with --lexicon_folds folds so that each training sentence sees only the "
                  "words of the others; or a word list (UTF-8 lines `word [count]`, .gz read compressed). Saved with the model."},
    )
    lexicon_max_length: int = field(default=4, metadata={"help": "Longest lexicon word looked up, in characters (2-8)."})
    lexicon_folds: int = field(
        default=5,
        metadata={"help": "--lexicon train: the train split's folds (sentence i is in fold i mod K); a sentence's lexicon "
                  "features see only the words of the other folds (1: every word, the train words all known in training)."},
    )
    max_seq_length: int | None = field(default=None, metadata={"help": "Longest input in tokens (default: the model's limit); longer training examples are cut, longer evaluation texts read in windows."})
    stride: int | None = field(default=None, metadata={"help": "Tokens shared by consecutive windows of a long evaluation text (default: a quarter of max_seq_length)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many validation examples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only this many test examples."})
    validation_split_percentage: int = field(default=10, metadata={"help": "Validation share of train when there is none."})
    early_stopping_patience: int | None = field(default=2, metadata={"help": "Evaluations without improvement before stopping."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace a model already in --output_dir."})
    language: str | None = field(default=None, metadata={"help": "Language code(s) for the model card."})

    def __post_init__(self) -> None:
        self.check_hp_search()
        if self.dataset_name is None and not (self.train_file or self.validation_file or self.test_file) and self.task_name not in TASKS:
            raise UsageError(f"--task_name {self.task_name!r} is unknown: choose one of {', '.join(TASKS)}.")
        if self.word_separator not in ("auto", "space", "none"):
            raise UsageError(f"--word_separator {self.word_separator!r}: use auto, space or none.")
        if self.file_format not in FILE_FORMATS:
            raise UsageError(f"--file_format {self.file_format!r}: choose one of {', '.join(FILE_FORMATS)}.")
        self.label_scheme = self.label_scheme.lower()
        if self.label_scheme not in ("auto", *LABEL_SCHEMES):
            raise UsageError(f"--label_scheme {self.label_scheme!r}: choose one of auto, {', '.join(LABEL_SCHEMES)}.")
        if self.stride is not None and self.stride < 0:
            raise UsageError(f"--stride={self.stride} must be 0 or more.")
        if self.lexicon is not None:
            if self.lexicon != "train" and not Path(self.lexicon).is_file():
                raise UsageError(f"--lexicon {self.lexicon!r}: use 'train' or the path of a word list (no such file).")
            if not 2 <= self.lexicon_max_length <= MAX_LEXICON_LENGTH:
                raise UsageError(f"--lexicon_max_length={self.lexicon_max_length} must be from 2 to {MAX_LEXICON_LENGTH}.")
            if not 1 <= self.lexicon_folds <= 62:
                raise UsageError(f"--lexicon_folds={self.lexicon_folds} must be from 1 to 62.")


def label_set(
    raw: datasets.DatasetDict, tags_column: str, fixed: list[str] | None, origins: dict
) -> tuple[datasets.DatasetDict, list[str]]:
    """The label names (`fixed`: --label_list or a fine-tuned model's labels; else the data's) and the tags as ids
    in that order; an unknown tag is an error naming the file and line (or split and index) of its row."""
    labelled = [split for split in raw if tags_column in raw[split].column_names]
    if not labelled:  # prediction only, on untagged text
        if fixed:
            return raw, fixed
        raise UsageError(f"No split has the tags column {tags_column!r}.")
    feature = raw[labelled[0]].features[tags_column]
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        if fixed is None or fixed == list(inner.names):
            return raw, list(inner.names)
        data_names = list(inner.names)
        for split in labelled:  # ids -> names here, names -> the model's ids below
            features = raw[split].features.copy()
            features[tags_column] = datasets.List(datasets.Value("string"))
            raw[split] = raw[split].map(lambda b: {tags_column: [[data_names[t] for t in tags] for tags in b[tags_column]]},
                                        batched=True, features=features)
    first = next((t for tags in raw[labelled[0]][tags_column] for t in tags), None)
    if isinstance(first, str):
        names = fixed or sorted({t for tags in raw["train" if "train" in raw else labelled[0]][tags_column] for t in tags})
        index = {n: i for i, n in enumerate(names)}

        def to_ids(batch, split):
            out = []
            for row, tags in zip(batch[SOURCE_COLUMN], batch[tags_column]):
                unknown = [t for t in tags if t not in index]
                if unknown:
                    raise UsageError(f"{origins[split].name(row)}: tag {unknown[0]!r} in {tags_column!r} is not in the label set {names}.")
                out.append([index[t] for t in tags])
            return {tags_column: out}

        for split in labelled:
            raw[split] = raw[split].map(to_ids, batched=True, fn_kwargs={"split": split})
        return raw, names
    if fixed:
        return raw, fixed
    raise UsageError(f"--tags_column {tags_column!r} holds integer ids without label names: pass --label_list B-PER,I-PER,...")


def read_lexicon(path: str) -> list[str]:
    """The words of a word list (`hf_charlm.correction.Lexicon.from_file`: `word [count]` lines, UTF-8, `.gz` read
    compressed), of 2-8 characters."""
    from hf_charlm.correction import Lexicon

    try:
        words = list(Lexicon.from_file(path, max_length=MAX_LEXICON_LENGTH).counts)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"--lexicon {path}: {err}") from err
    if not words:
        raise UsageError(f"--lexicon {path}: the file has no words of 2 to {MAX_LEXICON_LENGTH} characters.")
    return words


def train_lexicon(examples: datasets.Dataset, tokens_column: str, tags_column: str, names: list[str], scheme: str,
                  separator: str, folds: int) -> dict[str, int]:
    """The spans of the examples' tags (words for bmes, entities otherwise) as lexicon words, each with the bitmask
    of the folds it occurs in (example i is in fold i mod `folds`)."""
    words: dict[str, int] = {}
    for i, (tokens, tags) in enumerate(zip(examples[tokens_column], examples[tags_column])):
        labels = [names[t] for t in tags]
        if scheme == "bmes":
            spans = bmes_to_spans(labels)
        else:
            spans = [(start, end) for _, start, end in tags_to_entities(labels, scheme)]
        for start, end in spans:
            word = separator.join(tokens[start:end])
            words[word] = words.get(word, 0) | (1 << (i % folds))
    return words


def write_predictions(output_dir: str, examples: datasets.Dataset, tokens_column: str, predicted: list[list[int]],
                      names: list[str], scheme: str, separator: str, origin) -> None:
    """run_ner's predictions.txt (the tags of each example on a line; for segmentation the words, space-separated,
    as the SIGHAN scorer reads them) and predictions.jsonl (source line, tokens, tags, entities or words)."""
    with open(Path(output_dir) / "predictions.txt", "w", encoding="utf-8") as txt, \
            open(Path(output_dir) / "predictions.jsonl", "w", encoding="utf-8") as jsonl:
        for words, row, ids in zip(examples[tokens_column], examples[SOURCE_COLUMN], predicted):
            tags = [names[i] for i in ids]
            record = {"source": origin.name(row), "tokens": words, "tags": tags}
            spans = tags_to_entities(tags, scheme)
            if scheme == "bmes":
                record["words"] = ["".join(words[s:e]) for _, s, e in spans]
                txt.write(" ".join(record["words"]) + "\n")
            else:
                record["entities"] = [{"type": t, "start": s, "end": e, "text": separator.join(words[s:e])} for t, s, e in spans]
                txt.write(" ".join(tags) + "\n")
            jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")


def show_sample(words: list[str], ids: list[int], names: list[str], scheme: str, separator: str) -> None:
    """The end-of-run sample, decoded the way it is scored: segmented words for segmentation, and entities made of
    whole input words (characters for Chinese, words for word-level data)."""
    tags = [names[i] for i in ids]
    print(f"\n{separator.join(words)[:200]}")
    spans = tags_to_entities(tags, scheme)
    if scheme == "bmes":
        print("  words: " + " ".join("".join(words[s:e]) for _, s, e in spans))
        return
    for entity_type, s, e in spans:
        print(f"  {entity_type:>6} {s:>3}-{e:<3} {separator.join(words[s:e])}")


def main() -> None:
    model_args, data_args, training_args, choices = parse_finetune_args(
        (ModelArguments, DataArguments, TrainingArguments),
        {**FINETUNE_DEFAULTS, "output_dir": "outputs/charlm-token-classification", "metric_for_best_model": "f1"},
    )
    setup_logging(training_args)
    for note in choices.notes:
        logger.info(note)
    resume = resolve_resume(training_args)

    raw, data_name, dataset_ids, origins = load_finetune_splits(
        data_args.task_name, data_args.dataset_name, data_args.dataset_config_name,
        {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file},
        data_args.file_format, data_args.validation_split_percentage, DATA_SEED, token_task=True,
    )
    do_train, do_eval, do_predict, evaluate_during_training, raw = choices.plan(training_args, raw, model_args.model_name_or_path)
    if do_train:
        check_output_dir(training_args.output_dir, data_args.overwrite_output_dir, resume is not None)
    set_seed(training_args.seed)

    limits = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_test_samples}
    raw = limit_splits(raw, limits, DATA_SEED, sample=False)
    first = next(iter(raw))
    tags_column = data_args.tags_column or ("ner_tags" if "ner_tags" in raw[first].column_names else "tags")
    check_columns(raw, {"--tokens_column": data_args.tokens_column})
    check_columns(datasets.DatasetDict({s: d for s, d in raw.items() if s != "test"}), {"--tags_column": tags_column})
    test_labelled = "test" in raw and tags_column in raw["test"].column_names

    fixed = data_args.label_list.split(",") if data_args.label_list else None
    if not do_train:
        try:
            config = AutoConfig.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code)
        except (OSError, ValueError) as err:
            raise UsageError(f"--model_name_or_path {model_args.model_name_or_path}: {err}") from err
        fixed = [config.id2label[i] for i in range(config.num_labels)]
    raw, names = label_set(raw, tags_column, fixed, origins)
    for split, d in raw.items():
        if tags_column not in d.column_names:
            continue
        try:
            check_token_examples(d, data_args.tokens_column, tags_column, len(names), split)
        except ValueError as err:
            raise name_example_in_error(err, d, split, origins[split]) from err
    scheme = detect_label_scheme(names) if data_args.label_scheme == "auto" else data_args.label_scheme
    if scheme == "bmes" and not set(names) <= set(SEGMENTATION_TAGS):
        raise UsageError(f"--label_scheme bmes is for untyped B/M/E/S segmentation tags; these labels are {names} (use iobes).")
    char_level = all(len(t) == 1 for tokens in raw[first][data_args.tokens_column][:1000] for t in tokens)
    separator = {"space": " ", "none": ""}.get(data_args.word_separator, "" if char_level else " ")
    id2label = dict(enumerate(names))
    label_fields = {"num_labels": len(names), "id2label": id2label, "label2id": {n: i for i, n in id2label.items()}}
    if data_args.use_crf:
        label_fields["use_crf"] = True
    lexicon = None
    if data_args.lexicon is not None:
        if not do_train:
            raise UsageError("--lexicon builds the lexicon of a model being trained; a fine-tuned model keeps its own.")
        label_fields["lexicon_max_length"] = data_args.lexicon_max_length
        lexicon = (train_lexicon(raw["train"], data_args.tokens_column, tags_column, names, scheme, separator, data_args.lexicon_folds)
                   if data_args.lexicon == "train" else read_lexicon(data_args.lexicon))

    model, tokenizer = load_classifier(
        model_args,
        CharLMForTokenClassification,
        AutoModelForTokenClassification,
        lambda: [separator.join(t) for t in raw["train"][data_args.tokens_column]],
        label_fields,
    )
    if lexicon is not None:
        entries = model.set_lexicon(lexicon, tokenizer)
        logger.info("lexicon features: %d words of 2-%d tokens (of %d) from %s", entries, data_args.lexicon_max_length, len(lexicon),
                    f"the train split, {data_args.lexicon_folds} folds" if data_args.lexicon == "train" else data_args.lexicon)
    # recurrent backbones have no position limit: nothing is cut unless --max_seq_length asks for it
    limit = model.config.max_position_embeddings if model.config.backbone == "transformer" else None
    max_len = data_args.max_seq_length or limit or 1_000_000
    if limit is not None and max_len > limit:
        raise UsageError(f"--max_seq_length={max_len} is larger than the model's max_position_embeddings={limit}.")
    tokenizer.model_max_length = max_len
    stride = data_args.stride if data_args.stride is not None else max_len // 4

    with training_args.main_process_first(desc="tokenizing"):
        train = None
        if do_train:
            cut = count_cut(raw["train"], data_args.tokens_column, tokenizer, max_len, separator)
            if cut:
                logger.warning("%d of %d training examples are longer than %d tokens and are cut for training "
                               "(evaluation and prediction read long texts whole, in overlapping windows)", cut, raw["train"].num_rows, max_len)
            train = raw["train"].map(
                tokenize_and_align_labels,
                batched=True,
                remove_columns=raw["train"].column_names,
                fn_kwargs=dict(
                    tokenizer=tokenizer, tokens_column=data_args.tokens_column, tags_column=tags_column, label_names=names,
                    max_length=max_len, word_separator=separator, label_all_tokens=data_args.label_all_tokens,
                ),
                desc="Aligning labels (train)",
            )
            if data_args.lexicon == "train" and data_args.lexicon_folds > 1:
                # each sentence's fold: its lexicon features see the words of the other folds only
                train = train.add_column("lexicon_fold", [i % data_args.lexicon_folds for i in range(train.num_rows)])
        # evaluation scores one label per word (its first token), every word of every example: long examples
        # become overlapping windows that are put back together before scoring
        windows = {}
        for split in ("validation", "test"):
            if split in raw:
                labelled = split != "test" or test_labelled
                windows[split] = encode_token_windows(raw[split], tokenizer, data_args.tokens_column, tags_column if labelled else None,
                                                      names, max_len, separator, stride)
                if windows[split][2]:
                    logger.warning("%d of %d %s examples are longer than %d tokens: read in overlapping windows (stride %d), "
                                   "every word scored", windows[split][2], raw[split].num_rows, split, max_len, stride)

    if not do_train:  # the Trainer only evaluates and predicts: no evaluation schedule, no best model to load
        training_args.eval_strategy = IntervalStrategy.NO
        training_args.load_best_model_at_end = False
    callbacks = []
    if evaluate_during_training and data_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience))
    trainer_kwargs = dict(
        train_dataset=train,
        eval_dataset=windows["validation"][0] if "validation" in windows else None,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=token_classification_compute_metrics(id2label, scheme=scheme, windows=windows["validation"][1]) if "validation" in windows else None,
        preprocess_logits_for_metrics=argmax_logits,
        callbacks=callbacks,
    )
    model, search = model_after_search(data_args, do_train, model, model_args, CharLMForTokenClassification, AutoModelForTokenClassification, tokenizer,
                                       label_fields, trainer_kwargs, training_args,
                                       prepare=(lambda m: m.set_lexicon(lexicon, tokenizer)) if lexicon is not None else None)
    trainer = CharLMTrainer(model=model, args=training_args, **trainer_kwargs)
    push = take_push_flag(training_args) if do_train else False
    metrics = train_then_evaluate(trainer, do_train, resume, windows["validation"][0] if do_eval else None)
    if search is not None:  # (every trial in hp_search.json)
        metrics.update({"hp_search_trials": len(search["trials"]), f"hp_search_best_{search['metric']}": search["best_objective"]})
    predicted = None
    if do_predict:
        test_windows, test_plan, _ = windows["test"]
        trainer.compute_metrics = token_classification_compute_metrics(id2label, scheme=scheme, windows=test_plan) if test_labelled else None
        output = predict_windows(trainer, test_windows, test_labelled, "test")
        metrics.update(output.metrics)
        _, predicted = merge_windows(output.predictions, output.label_ids, test_plan)
    trainer.log_metrics("all", metrics)
    trainer.save_metrics("all", metrics)

    sample_split = "test" if "test" in raw else "validation" if "validation" in raw else "train"
    if predicted is not None:
        sample_ids = predicted[0]
    else:  # every rank predicts (the Trainer gathers across ranks); rank 0 prints
        trainer.compute_metrics = None
        one = raw[sample_split].select([0])
        sample_windows, sample_plan, _ = encode_token_windows(one, tokenizer, data_args.tokens_column, None, names, max_len, separator, stride)
        output = predict_windows(trainer, sample_windows, False, "sample")
        sample_ids = merge_windows(output.predictions, output.label_ids, sample_plan)[1][0]

    if trainer.is_world_process_zero():
        if predicted is not None:
            write_predictions(training_args.output_dir, raw["test"], data_args.tokens_column, predicted, names, scheme, separator, origins["test"])
        if do_train:
            write_model_card(
                training_args.output_dir,
                task="token_classification",
                model_name=Path(training_args.output_dir).name,
                hyperparameters=card_hyperparameters(
                    trainer.model, training_args, task=data_args.task_name if not (data_args.train_file or data_args.dataset_name) else data_name,
                    scheme=scheme, max_seq_length=max_len, label_all_tokens=data_args.label_all_tokens,
                    started_from=model_args.model_name_or_path or f"scratch ({model_args.preset} preset)",
                    epochs_run=round(trainer.state.epoch or 0, 2),
                    **({"lexicon": f"{trainer.model.config.lexicon_size} words of 2-{data_args.lexicon_max_length} characters from "
                       + (f"the train split's spans, {data_args.lexicon_folds} folds" if data_args.lexicon == "train" else Path(data_args.lexicon).name)}
                       if lexicon is not None else {}),
                ),
                results={k: v for k, v in metrics.items() if k.startswith(("eval_", "test_"))},
                datasets=dataset_ids,
                language=data_args.language.split(",") if data_args.language else (["zh"] if not dataset_ids and not data_args.train_file else []),
                base_model=hub_base_model(model_args.model_name_or_path),
                dataset_name=data_name,
                extra={"example": separator.join(raw[sample_split][0][data_args.tokens_column])[:60]},
            )
        show_sample(raw[sample_split][0][data_args.tokens_column], sample_ids, names, scheme, separator)
        summary = {k: round(float(v), 4) for k, v in metrics.items() if k.endswith(("_f1", "_precision", "_recall")) and k.count("_") == 1}
        print(json.dumps(summary))
        if push:
            push_output(training_args)


if __name__ == "__main__":
    run_main(main)
