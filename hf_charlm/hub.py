"""Model cards and Hub uploads for hf_charlm checkpoints; imports the package, `huggingface_hub` and PyYAML.

    write_model_card(output_dir: str | Path, *, task: str, model_name: str, hyperparameters: dict,
                     results: dict[str, float], datasets: list[str], language: list[str],
                     base_model: str | None = None, dataset_name: str | None = None, repo_id: str | None = None,
                     revision: str | None = None, extra: dict | None = None) -> Path

Renders `model_cards/<task>.md` into `output_dir/README.md` and returns its path. `task` is "causal_lm", "masked_lm",
"token_classification", "sequence_classification", "seq2seq", "text_correction" (a same-length corrector) or
"noisy_channel" (a saved `LanguageModelCorrector`) (aliases: "pretrain"/"text-generation", "fill-mask"/"mlm",
"ner"/"cws"/"token-classification", "sentiment"/"text-classification"). `results` are the run's final metrics as
Trainer names them ("eval_loss", "eval_bits_per_char", "eval_f1", "test_accuracy", ...): the prefix gives the split
(eval_/validation_ -> validation, test_ -> test, none -> validation); bookkeeping keys (runtime, samples,
*_per_second, epoch) and non-finite or non-numeric values are left out; every other number becomes a row of the
evaluation table and a metric of the card's `model-index`. For a causal LM, bits per character and perplexity are
derived from the loss when the run did not report them. `datasets` are Hub dataset ids for the metadata (may be
empty); `dataset_name` is the human name shown in the model-index (defaults to the first id, else "custom").
`base_model` is the Hub id a fine-tuned model started from. `repo_id` and `revision` go into the usage snippet
(revision defaults to "main" with a comment saying to pin a sha). `config.json` in `output_dir`, when present,
supplies the architecture line and the label set. `extra` keys: "license" (default "mit"), "tags" (added to the
template's), "description" (a paragraph under the title), "example" (the snippet's input text); any other key is
listed in an "Additional information" table. The YAML metadata is written by `huggingface_hub.ModelCardData`, so its
`model-index` round-trips through `model_index_to_eval_results`.

    push_folder(output_dir, repo_id, *, private=False, revision=None, commit_message=None, token=None,
                dry_run=False) -> PushResult

`PushResult` is a `list[str]` of the paths that are (or, with `dry_run`, would be) uploaded, with `.commit_info`
(the `huggingface_hub.CommitInfo`, None on a dry run) and `.fixed` (paths whose uploaded content differs from the
folder). It creates the repo if missing (a repo that exists stays as it is: asking for `private=True` on an existing
public repo is an error), creates branch `revision` from main if missing, and makes one commit. The folder must hold
a charlm `config.json` and `*.safetensors` weights. What is uploaded:
- excluded silently (Trainer state and caches): `checkpoint-*/`, `runs/`, `__pycache__/`, `.ipynb_checkpoints/`,
  `.cache/`, `training_args.bin`, `optimizer.pt`, `scheduler.pt`, `scaler.pt`, `rng_state*.pth`, `*.pyc`;
- refused with a ValueError naming every offending file: pickle-based weights (`*.bin`, `*.pt`, `*.pth`, `*.pkl`,
  `*.pickle`, `*.ckpt`, `*.joblib`), secrets (`.env*`, `token`, `*.token`, `stored_tokens`, `.netrc`,
  `.git-credentials`, `*.pem`, `*.key`, `id_rsa*`/`id_ed25519*`/`id_ecdsa*`/`id_dsa*`, anything under `.git/`,
  `.huggingface/` or `.ssh/`), files whose contents hold a credential (`find_secrets`: every text file up to
  SCAN_MAX_BYTES except weights; Hugging Face, AWS, GitHub, OpenAI-style, Slack and Google keys and tokens, private
  key blocks, `api_key`/`secret`/`password`/`*_token` names given a real value; the message names file, kind and
  line, never the secret) and symlinks that leave the folder (or dangle);
- fixed on the way up, the folder itself untouched: `config.json` gets the full `auto_map`, and
  `configuration_charlm.py` / `modeling_charlm.py` are added from the installed package when missing; a text
  corrector (`finetuning_task` "text-correction") also gets its `custom_pipelines` entry and `pipeline_charlm.py` /
  `spans_charlm.py`, so that `pipeline(model=repo, trust_remote_code=True)` runs without hf_charlm;
- remote `*.safetensors` / `*.safetensors.index.json` that the new upload does not contain are deleted in the
  same commit, so an old shard index cannot shadow the new weights.
The token is `token` or, when None, huggingface_hub's usual lookup (HF_TOKEN, then the saved login);
HF_ENDPOINT selects the Hub. A `repo_id` without a namespace gets the token owner's. No token at all, or one the
Hub rejects (checked with whoami before the repo is touched), raises `HubAuthenticationError` (a
`PermissionError`) saying how to log in; the token is never part of a message.

    push_space(space_id, models, *, title=None, app_file=None, private=False, token=None, dry_run=False) -> PushResult

A Gradio Space that shows Hub `models` with the demo page (`plan_space` lists its files): app.py, a Space card
(`model_cards/space.md`; sdk gradio, sdk_version, app_file, models), requirements.txt and the hf_charlm source.
`scripts/push_to_hub.py --space` calls it after the model upload.

    resolve_token(token=None) -> (token, source)          find_secrets(path) -> list[str]

The first is push_folder's token lookup, for a training script to call before training; the second is the
content check of one file.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import (
    CommitInfo,
    CommitOperationAdd,
    CommitOperationDelete,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    get_token,
)
from huggingface_hub.errors import HfHubHTTPError
from transformers.utils import logging

from .configuration_charlm import AUTO_MAP, CORRECTION_PIPELINE_FILES, correction_pipelines
from .metrics import bits_per_char, perplexity

logger = logging.get_logger(__name__)

# ------------------------------------------------------------------------------------------------ model cards
TASKS: dict[str, dict[str, str]] = {
    "causal_lm": {"template": "causal_lm.md", "task_name": "Causal language modeling"},
    "masked_lm": {"template": "masked_lm.md", "task_name": "Masked language modeling"},
    "token_classification": {"template": "token_classification.md", "task_name": "Token classification"},
    "sequence_classification": {"template": "sequence_classification.md", "task_name": "Text classification"},
    "seq2seq": {"template": "seq2seq.md", "task_name": "Sequence to sequence"},
    "text_correction": {"template": "text_correction.md", "task_name": "Text correction"},
    "noisy_channel": {"template": "noisy_channel.md", "task_name": "Text correction"},
}
TASK_ALIASES = {
    "pretrain": "causal_lm", "text-generation": "causal_lm", "causal-lm": "causal_lm",
    "fill-mask": "masked_lm", "masked-lm": "masked_lm", "mlm": "masked_lm",
    "ner": "token_classification", "cws": "token_classification", "token-classification": "token_classification",
    "sentiment": "sequence_classification", "text-classification": "sequence_classification",
}
# metric key (prefix stripped) -> (model-index type, display name, args)
METRICS: dict[str, tuple[str, str, dict | None]] = {
    "loss": ("loss", "Loss", None),
    "bits_per_char": ("bits_per_character", "Bits per character", None),
    "bpc": ("bits_per_character", "Bits per character", None),
    "nats_per_char": ("nats_per_character", "Nats per character", None),
    "perplexity": ("perplexity", "Perplexity", None),
    "precision": ("precision", "Precision", None),
    "recall": ("recall", "Recall", None),
    "f1": ("f1", "F1", None),
    "accuracy": ("accuracy", "Accuracy", None),
    "macro_f1": ("f1", "Macro F1", {"average": "macro"}),
    "masked_accuracy": ("accuracy", "Masked-character accuracy", None),
    "masked_bits_per_char": ("bits_per_character", "Bits per masked character", None),
    "f1_macro": ("f1", "Macro F1", {"average": "macro"}),
    # text correction (hf_charlm.metrics.correction_scores)
    "sentence_detection_f1": ("f1", "Sentence detection F1", None),
    "sentence_correction_precision": ("precision", "Sentence correction precision", None),
    "sentence_correction_recall": ("recall", "Sentence correction recall", None),
    "sentence_correction_f1": ("f1", "Sentence correction F1", None),
    "char_correction_f1": ("f1", "Character correction F1", None),
    "false_positive_rate": ("false_positive_rate", "False-positive rate", None),
}
SPLIT_PREFIXES = {"eval_": "validation", "validation_": "validation", "test_": "test", "train_": "train"}
BOOKKEEPING = ("runtime", "samples", "samples_per_second", "steps_per_second", "epoch", "jit_compilation_time",
               "model_preparation_time", "total_flos", "num_input_tokens_seen")
HUB_ID_RE = re.compile(r"^[\w.\-]+(/[\w.\-]+)?$")
EXAMPLES = {"zh": "今天天气很好，我们", "en": "The weather today is"}
MASK_EXAMPLES = {"zh": "今天天<mask>很好。", "en": "The weather to<mask>ay is fine."}


def template_dir() -> Path:
    """The card templates: shipped inside the installed package, or top-level `model_cards/` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "model_cards", here.parent / "model_cards"):
        if (candidate / "causal_lm.md").is_file():
            return candidate
    raise FileNotFoundError(f"hf_charlm's model card templates are missing (looked in {here}/model_cards and "
                            f"{here.parent}/model_cards)")


def _cell(value) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _py_str(text: str) -> str:
    """`text` escaped for the inside of a double-quoted Python string in the usage snippet."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _table(header: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _eval_rows(results: dict[str, float], task: str) -> list[tuple[str, str, str, float, dict | None]]:
    """(split, metric key, display name, value, args) for each reportable number in `results`."""
    rows: dict[tuple[str, str], tuple] = {}
    for key, value in results.items():
        split, name = "validation", key
        for prefix, prefix_split in SPLIT_PREFIXES.items():
            if key.startswith(prefix):
                split, name = prefix_split, key[len(prefix):]
                break
        if name in BOOKKEEPING or isinstance(value, bool):
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isfinite(value):
            continue
        _, display, args = METRICS.get(name, (name, name, None))
        if task == "causal_lm" and name == "loss":
            display = "Loss (nats per token)"
        elif task == "masked_lm" and name == "loss":
            display = "Loss (nats per masked character)"
        rows[(split, name)] = (split, name, display, value, args)
    if task == "causal_lm":  # bits per char and perplexity follow from the loss in nats
        for split, name, _, value, _ in list(rows.values()):
            if name == "loss":
                if (split, "bits_per_char") not in rows and (split, "bpc") not in rows:
                    rows[(split, "bits_per_char")] = (split, "bits_per_char", "Bits per character",
                                                      bits_per_char(value), None)
                if (split, "perplexity") not in rows and value < 700:
                    rows[(split, "perplexity")] = (split, "perplexity", "Perplexity", perplexity(value), None)
    return list(rows.values())


def _architecture(config: dict) -> str:
    if not config:
        return "see `config.json`"
    backbone = config.get("backbone", "transformer")
    parts = [f"{backbone} backbone"]
    formats = {"num_hidden_layers": "{} layers", "hidden_size": "hidden size {}", "num_attention_heads": "{} heads",
               "vocab_size": "{} tokens in the vocabulary", "max_position_embeddings": "context of {} characters"}
    transformer_only = ("num_attention_heads", "max_position_embeddings")
    for key, fmt in formats.items():
        if key in config and (backbone == "transformer" or key not in transformer_only):
            parts.append(fmt.format(config[key]))
    return ", ".join(parts)


def write_model_card(
    output_dir: str | Path,
    *,
    task: str,
    model_name: str,
    hyperparameters: dict,
    results: dict[str, float],
    datasets: list[str],
    language: list[str],
    base_model: str | None = None,
    dataset_name: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    extra: dict | None = None,
) -> Path:
    """Writes `output_dir/README.md` for a finished run (see the module docstring) and returns its path."""
    task = TASK_ALIASES.get(task, task)
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: use one of {', '.join(TASKS)} (or {', '.join(TASK_ALIASES)}).")
    if isinstance(language, str) or isinstance(datasets, str):
        raise TypeError("`language` and `datasets` are lists of strings, e.g. language=['zh'].")
    if base_model is not None and not HUB_ID_RE.match(base_model):
        raise ValueError(f"base_model={base_model!r} must be a Hub model id such as 'user/charlm-tiny', not a path.")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    extra = dict(extra or {})
    config_path = output_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    spec = TASKS[task]
    template = string.Template((template_dir() / spec["template"]).read_text(encoding="utf-8"))

    # the body: every placeholder filled (substitute raises on a missing one)
    rows = _eval_rows(results, task)
    id2label = config.get("id2label") or {}
    labels = ", ".join(f"`{id2label[k]}`" for k in sorted(id2label, key=int)) if id2label else "see `config.json`"
    known = {"license", "tags", "description", "example", "masking"}
    others = {k: v for k, v in extra.items() if k not in known}
    repo_for_snippet = repo_id or f"your-username/{model_name}"
    body = template.substitute(
        model_name=model_name,
        description=f"\n{extra['description'].strip()}\n" if extra.get("description") else "",
        language_list=", ".join(language) if language else "unspecified",
        dataset_list=", ".join(f"`{d}`" for d in datasets) if datasets else (dataset_name or "a custom corpus"),
        base_model_line=f"\n- **Fine-tuned from:** `{base_model}`" if base_model else "",
        architecture=_architecture(config),
        labels=labels,
        repo_id=_py_str(repo_for_snippet),
        revision=_py_str(revision or "main"),
        revision_comment="" if revision else "  # replace with a commit sha from the repo's history to pin it",
        example=_py_str(extra.get("example") or EXAMPLES.get(language[0] if language else "en", EXAMPLES["en"])),
        mask_example=_py_str(MASK_EXAMPLES.get(language[0] if language else "en", MASK_EXAMPLES["en"])),
        masking=extra.get("masking", "15% of the characters masked"),
        hyperparameters_table=_table(("Hyperparameter", "Value"), sorted(hyperparameters.items()))
        if hyperparameters else "No hyperparameters were recorded.",
        results_table=_table(("Split", "Metric", "Value"), [(s, n, v) for s, _, n, v, _ in rows])
        if rows else "No evaluation results were recorded.",
        extra_section=(f"\n## Additional information\n\n{_table(('Key', 'Value'), sorted(others.items()))}\n"
                       if others else "")
        # the picture that training.save_training_curves draws at the end of a run
        + ("\n## Training curves\n\n![Loss and metrics during training](training_curves.png)\n"
           if (output_dir / "training_curves.png").is_file() else ""),
    )

    # the metadata: the template's static keys plus this run's, serialized by huggingface_hub
    static = ModelCard(body).data.to_dict()
    tags = list(dict.fromkeys(static.pop("tags", []) + list(extra.get("tags", []))))
    dataset_type = datasets[0] if datasets else (dataset_name or "custom")
    eval_results = [
        EvalResult(task_type=static["pipeline_tag"], task_name=spec["task_name"], dataset_type=dataset_type,
                   dataset_name=dataset_name or dataset_type, dataset_split=split,
                   metric_type=METRICS.get(key, (key,))[0], metric_name=name, metric_value=value, metric_args=args)
        for split, key, name, value, args in rows
    ]
    data = ModelCardData(
        language=list(language) or None,
        license=extra.get("license", "mit"),
        library_name=static.pop("library_name", "transformers"),
        pipeline_tag=static.pop("pipeline_tag"),
        tags=tags,
        datasets=list(datasets) or None,
        base_model=base_model,
        metrics=list(dict.fromkeys(r.metric_type for r in eval_results)) or None,
        model_name=model_name,
        eval_results=eval_results or None,
        **static,
    )
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{ModelCard(body).text}")  # parses back, or raises
    path = output_dir / "README.md"
    path.write_text(card.content, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------------ upload
IGNORED_DIRS = ("checkpoint-*", "runs", "__pycache__", ".ipynb_checkpoints", ".cache")
IGNORED_FILES = ("training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "*.pyc")
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.joblib")
SECRET_FILES = (".env", ".env.*", "*.env", "token", "*.token", "stored_tokens", ".netrc", ".git-credentials",
                "*.pem", "*.key", "id_rsa*", "id_ed25519*", "id_ecdsa*", "id_dsa*")
SECRET_DIRS = (".git", ".huggingface", ".ssh")
REMOTE_CODE = ("configuration_charlm.py", "modeling_charlm.py", "generation_charlm.py", "modeling_charlm_seq2seq.py")

# Contents: every uploaded file up to this size that is text (no NUL byte near the start) is scanned, except weights.
SCAN_MAX_BYTES = 2 * 1024 * 1024
SECRET_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("an AWS access key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("an AWS secret access key", re.compile(r"(?i)aws_secret_access_key[\"']?\s*[=:]\s*[\"']?[A-Za-z0-9/+=]{40}")),
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    # real keys mix letters and digits; the lookahead keeps words such as "sk-learn-compatible-..." out
    ("an OpenAI-style API key", re.compile(r"\bsk-(?:proj-|ant-|svcacct-)?(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
)
# `api_key = "..."`, `"password": "..."`, `SECRET=...`: a credential-like name given a value. Quoted values count
# anywhere; bare ones only as a whole `KEY = value` line outside code (in code they are expressions).
SECRET_ASSIGNMENT = re.compile(
    r"""(?<![A-Za-z0-9])(?P<key>[A-Za-z0-9_.-]*?(?:api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|secret
        |password|passwd|passphrase|access[_-]?token|auth[_-]?token|bearer[_-]?token|private[_-]?key
        |(?:hf|hub|github|gh|gitlab|openai|slack|wandb)[_-]?token))
        ["']?[ \t]*[:=][ \t]*(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"',;#]+)[ \t]*(?:\#.*)?$)""",
    re.IGNORECASE | re.MULTILINE | re.VERBOSE,
)
CODE_SUFFIXES = (".py", ".ipynb", ".js", ".ts", ".java", ".go", ".rs", ".c", ".cc", ".cpp", ".h", ".rb")
PLACEHOLDERS = {"null", "none", "nil", "true", "false", "undefined", "changeme", "redacted", "secret", "password",
                "token", "required", "optional"}


def _is_placeholder(value: str) -> bool:
    """An empty, masked, templated or looked-up value: `""`, `****`, `<your key>`, `${API_KEY}`, `os.environ[...]`."""
    value = value.strip()
    return (len(value) < 6 or value.lower() in PLACEHOLDERS or re.fullmatch(r"[*xX.\-_<>]+", value) is not None
            or value[0] in "<${%[(" or value.lower().startswith(("your", "os.environ", "os.getenv", "env(")))


def _secret_kind(key: str) -> str:
    key = key.lower()
    if "pass" in key:
        return "a password"
    if "api" in key:
        return "an API key"
    if "token" in key:
        return "an access token"
    if "private" in key:
        return "a private key"
    return "a secret"


def find_secrets(path: str | Path) -> list[str]:
    """What kinds of credentials the text file `path` seems to hold, each with its first line (`"a GitHub token,
    line 3"`); empty for a clean, binary, weights or larger-than-SCAN_MAX_BYTES file. Never includes the secret."""
    path = Path(path)
    if path.name.endswith(".safetensors") or path.stat().st_size > SCAN_MAX_BYTES:
        return []
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", errors="replace")
    found: dict[str, int] = {}
    for kind, pattern in SECRET_PATTERNS:
        match = pattern.search(text)
        if match:
            found.setdefault(kind, text.count("\n", 0, match.start()) + 1)
    is_code = path.suffix.lower() in CODE_SUFFIXES
    for match in SECRET_ASSIGNMENT.finditer(text):
        value = match.group("dq") if match.group("dq") is not None else match.group("sq")
        if value is None:
            value = match.group("bare")
            line_start = text.rfind("\n", 0, match.start()) + 1
            prefix = text[line_start:match.start()].strip()
            if is_code or prefix not in ("", "export", "-"):  # bare values: only `KEY=value` lines in non-code files
                continue
        if not _is_placeholder(value):
            found.setdefault(f"{_secret_kind(match.group('key'))} (`{match.group('key')}` is set)",
                             text.count("\n", 0, match.start()) + 1)
    return [f"{kind}, line {line}" for kind, line in sorted(found.items(), key=lambda kv: kv[1])]


LOGIN_HINT = ("log in with `hf auth login` or set HF_TOKEN to a token with write access "
              "(https://huggingface.co/settings/tokens)")


class HubAuthenticationError(PermissionError):
    """No Hub token (not given, HF_TOKEN unset, no saved login), or the Hub rejected the one found."""


def resolve_token(token: str | None = None) -> tuple[str, str]:
    """The token to upload with and where it came from ("the token argument", "HF_TOKEN", "the saved login"; for
    messages: the token itself is never printed). Raises `HubAuthenticationError` when there is none, so a training
    script can call it before training rather than find out at the end."""
    if token:
        return token, "the token argument"
    found = get_token()  # huggingface_hub's lookup: HF_TOKEN, then the login saved by `hf auth login`
    if not found:
        raise HubAuthenticationError(f"no Hugging Face token found (none given, HF_TOKEN unset, no saved login): "
                                     f"{LOGIN_HINT}.")
    from_env = found in (os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    return found, "HF_TOKEN" if from_env else "the saved login"


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass
class UploadPlan:
    """What `push_folder` would commit: path in repo -> local file or fixed bytes."""

    files: dict[str, Path | bytes] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)  # uploaded content differs from (or is absent in) the folder
    excluded: list[str] = field(default_factory=list)


class PushResult(list):
    """The uploaded paths (a `list[str]`), with `.commit_info` (None on a dry run) and `.fixed`."""

    def __init__(self, paths: list[str], commit_info: CommitInfo | None = None, fixed: list[str] | None = None):
        super().__init__(paths)
        self.commit_info = commit_info
        self.fixed = fixed or []


def plan_upload(output_dir: str | Path) -> UploadPlan:
    """Walks `output_dir` and decides, file by file, what `push_folder` uploads (see the module docstring)."""
    root = Path(output_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{output_dir} is not a directory")
    real_root = root.resolve()
    plan, problems = UploadPlan(), []

    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        for name in sorted(dirnames):
            rel = (rel_dir / name).as_posix()
            full = Path(dirpath) / name
            if _matches(name, IGNORED_DIRS):
                plan.excluded.append(rel + "/")
                dirnames.remove(name)
            elif name in SECRET_DIRS:
                problems.append(f"{rel}/ (may hold credentials)")
                dirnames.remove(name)
            elif full.is_symlink():
                dirnames.remove(name)
                if not full.resolve().is_relative_to(real_root):
                    problems.append(f"{rel}/ (symlink to {os.readlink(full)}, outside the folder)")
                else:
                    logger.warning(f"push_folder: skipping {rel}/, a symlink to a folder inside the upload")
                    plan.excluded.append(rel + "/")
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            full = Path(dirpath) / name
            if _matches(name, IGNORED_FILES):
                plan.excluded.append(rel)
            elif full.is_symlink() and (not full.exists() or not full.resolve().is_relative_to(real_root)):
                problems.append(f"{rel} (symlink to {os.readlink(full)}, outside the folder or dangling)")
            elif _matches(name, PICKLE_WEIGHTS):
                problems.append(f"{rel} (pickle-based weights: save with safetensors instead)")
            elif _matches(name, SECRET_FILES):
                problems.append(f"{rel} (looks like a credential)")
            else:
                try:
                    secrets = find_secrets(full)
                except OSError as e:
                    problems.append(f"{rel} (cannot be read to check it for secrets: {e.strerror})")
                    continue
                if secrets:
                    problems.append(f"{rel} (contains {'; '.join(secrets)})")
                else:
                    plan.files[rel] = full
    if problems:
        raise ValueError(f"Refusing to upload {root}: " + "; ".join(problems) +
                         ". Remove these files (or move them out of the folder) and try again.")

    if "config.json" not in plan.files:
        raise ValueError(f"{root} has no config.json: it is not a saved hf_charlm model folder.")
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "charlm":
        raise ValueError(f"{root}/config.json has model_type={config.get('model_type')!r}, expected 'charlm'.")
    if not any(p.endswith(".safetensors") for p in plan.files):
        raise ValueError(f"{root} has no *.safetensors weights (save with `model.save_pretrained(dir)`).")
    fixed = {"auto_map": {**(config.get("auto_map") or {}), **AUTO_MAP}}
    code = list(REMOTE_CODE)
    if config.get("finetuning_task") == "text-correction":  # a corrector ships its pipeline (older folders lack it)
        fixed["custom_pipelines"] = {**(config.get("custom_pipelines") or {}),
                                     **correction_pipelines(bool(config.get("is_encoder_decoder")))}
        code += CORRECTION_PIPELINE_FILES
    if any(value != config.get(key) for key, value in fixed.items()):
        plan.files["config.json"] = (json.dumps({**config, **fixed}, indent=2, sort_keys=True,
                                                ensure_ascii=False) + "\n").encode("utf-8")
        plan.fixed.append("config.json")
    package_dir = Path(__file__).resolve().parent
    for name in code:
        if name not in plan.files:
            plan.files[name] = package_dir / name
            plan.fixed.append(name)
    for name, what in (("README.md", "a model card (hf_charlm.hub.write_model_card)"),
                       ("tokenizer.json", "the tokenizer (tokenizer.save_pretrained)")):
        if name not in plan.files:
            logger.warning(f"push_folder: {root} has no {name}; the repo will lack {what}.")
    plan.files = dict(sorted(plan.files.items()))
    return plan


def push_folder(
    output_dir: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    dry_run: bool = False,
) -> PushResult:
    """Uploads a saved model folder to `repo_id` in one commit (see the module docstring for what goes up)."""
    if not dry_run:  # a missing token is found before anything else is said or done
        token, token_source = resolve_token(token)
    plan = plan_upload(output_dir)
    if plan.excluded:
        logger.info(f"push_folder: not uploading {', '.join(plan.excluded)}")
    if dry_run:
        return PushResult(list(plan.files), None, plan.fixed)

    api = HfApi(token=token)
    try:  # checks the token once, before the repo is touched
        owner = api.whoami()["name"]
    except HfHubHTTPError as e:
        if e.response is None or e.response.status_code != 401:
            raise
        raise HubAuthenticationError(f"the Hub at {api.endpoint} rejected the token from {token_source} "
                                     f"(401 Unauthorized): {LOGIN_HINT}.") from None
    if "/" not in repo_id:
        repo_id = f"{owner}/{repo_id}"
    api.create_repo(repo_id, private=private, exist_ok=True)
    if private and not api.model_info(repo_id).private:
        raise ValueError(f"{repo_id} already exists and is public: refusing to upload what was meant to be private.")
    branch = revision or "main"
    if branch != "main":
        api.create_branch(repo_id, branch=branch, exist_ok=True)

    operations: list = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=src if isinstance(src, bytes) else str(src))
                        for p, src in plan.files.items()]
    for remote in api.list_repo_files(repo_id, revision=branch):
        if remote.endswith((".safetensors", ".safetensors.index.json")) and remote not in plan.files:
            operations.append(CommitOperationDelete(path_in_repo=remote))
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"Upload {Path(output_dir).resolve().name} with hf_charlm",
        revision=branch,
    )
    logger.info(f"push_folder: {len(plan.files)} files -> {info.commit_url}")
    return PushResult(list(plan.files), info, plan.fixed)


# ------------------------------------------------------------------------------------------ a Space beside a model
SPACE_PACKAGE_SKIP = ("__pycache__", "*.pyc", "datasets")  # the Space reads no training data


def plan_space(models: list[str], *, title: str | None = None, app_file: str | Path | None = None) -> dict[str, Path | bytes]:
    """The files of a Gradio Space that shows `models` (Hub ids) with the demo page: `app.py`, `README.md` (a Space
    card: sdk, sdk_version, app_file, models), `requirements.txt` (hf_charlm's own requirements) and the `hf_charlm`
    package source that app.py imports. `app_file` defaults to the app.py of the checkout this package lives in."""
    from importlib import metadata

    from huggingface_hub import SpaceCardData

    if not models or not all(HUB_ID_RE.match(m) and "/" in m for m in models):
        raise ValueError(f"models={models!r}: a Space shows models on the Hub; give repo ids such as 'user/charlm-ner'.")
    package = Path(__file__).resolve().parent
    app = Path(app_file) if app_file else package.parent / "app.py"
    if not app.is_file():
        raise ValueError(f"{app}: no such file (the demo page is app.py at the top of the hf_charlm checkout).")
    try:
        requirements = [r for r in metadata.requires("hf_charlm") or [] if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        raise ValueError("hf_charlm is not installed (pip install -e .): its requirements are the Space's.") from None
    try:
        sdk_version = metadata.version("gradio")
    except metadata.PackageNotFoundError:
        sdk_version = "6.31.0"  # the version the demo was tested with (setup.py, extra "demo")
    title = title or f"{models[0].split('/')[-1]} demo"
    body = string.Template((template_dir() / "space.md").read_text(encoding="utf-8")).substitute(
        title=title, model_list=", ".join(f"[`{m}`](https://huggingface.co/{m})" for m in models),
        version=metadata.version("hf_charlm"), sdk_version=sdk_version,
        model_args=" ".join(f"--model {m}" for m in models))
    static = ModelCard(body).data.to_dict()
    data = SpaceCardData(title=title, sdk="gradio", sdk_version=sdk_version, app_file="app.py", license="mit",
                         models=list(models), short_description="Try hf_charlm character-level models", **static)
    files: dict[str, Path | bytes] = {
        "README.md": f"---\n{data.to_yaml()}\n---\n{ModelCard(body).text}".encode("utf-8"),
        "app.py": app,
        "requirements.txt": ("\n".join(requirements) + "\n").encode("utf-8"),
    }
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if path.is_file() and not any(_matches(part, SPACE_PACKAGE_SKIP) for part in rel.parts):
            files[f"hf_charlm/{rel.as_posix()}"] = path
    secrets = [f"{name} ({'; '.join(found)})" for name, src in files.items()
               if isinstance(src, Path) and (found := find_secrets(src))]
    if secrets:
        raise ValueError(f"Refusing to upload the Space: {', '.join(secrets)}.")
    return files


def push_space(
    space_id: str,
    models: list[str],
    *,
    title: str | None = None,
    app_file: str | Path | None = None,
    private: bool = False,
    token: str | None = None,
    dry_run: bool = False,
) -> PushResult:
    """Creates or updates the Gradio Space `space_id` with the files of `plan_space`, in one commit (package files
    the new upload lacks are deleted in it). Returns the paths, with `.commit_info` (None on a dry run)."""
    if not dry_run:
        token, _ = resolve_token(token)
    files = plan_space(models, title=title, app_file=app_file)
    if dry_run:
        return PushResult(list(files))
    api = HfApi(token=token)
    if "/" not in space_id:
        space_id = f"{api.whoami()['name']}/{space_id}"
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    operations: list = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=src if isinstance(src, bytes) else str(src))
                        for p, src in files.items()]
    operations += [CommitOperationDelete(path_in_repo=remote) for remote in api.list_repo_files(space_id, repo_type="space")
                   if remote.startswith("hf_charlm/") and remote not in files]
    info = api.create_commit(space_id, operations, repo_type="space",
                             commit_message=f"Demo of {', '.join(models)} with hf_charlm")
    logger.info(f"push_space: {len(files)} files -> {info.commit_url}")
    return PushResult(list(files), info)


__all__ = ["TASKS", "HubAuthenticationError", "PushResult", "UploadPlan", "find_secrets", "plan_space", "plan_upload",
           "push_folder", "push_space", "resolve_token", "template_dir", "write_model_card"]
