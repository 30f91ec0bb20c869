"""Small models that have learnt a handful of sentences by heart, for the demo-page tests: what the page must
show for those sentences is known (北京 is a location, 我们/在/北京/工作 are the words, 很好 is positive).

    make_demo_models(root) -> {"generation": dir, "ner": dir, "segmentation": dir, "sentiment": dir, "translation": dir,
                               "correction": dir}

Trained here with a plain loop (60 steps each, a few seconds in all); the models are ordinary saved hf_charlm folders.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hf_charlm import (CharLMConfig, CharLMForCausalLM, CharLMForConditionalGeneration, CharLMForMaskedLM,
                       CharLMForSequenceClassification, CharLMForTokenClassification, train_char_tokenizer)

LM_TEXT = "北京欢迎你。北京欢迎你。"
NER = [("我在北京工作。", [(2, 4, "LOC")]), ("张三去上海。", [(0, 2, "PER"), (3, 5, "LOC")]),
       ("今天天气很好。", [])]
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CWS = [["我们", "在", "北京", "工作", "。"], ["今天", "天气", "很", "好", "。"]]
SENTIMENT = [("这本书很好。", "positive"), ("这本书很差。", "negative"), ("服务很好。", "positive"),
             ("服务很差。", "negative")]
TRANSLATION = [("你好", "hello"), ("谢谢", "thanks")]
# same-length correction (a masked LM that predicts the right character at every position): 做 -> 作 after 工
CORRECTION = [("我在北京工做。", "我在北京工作。"), ("今天天气很好。", "今天天气很好。")]
CORPUS = [LM_TEXT, *(t for t, _ in NER), *("".join(w) for w in CWS), *(t for t, _ in SENTIMENT),
          *(s for pair in TRANSLATION for s in pair), *(s for pair in CORRECTION for s in pair),
          "0123456789abcdefghijklmnopqrstuvwxyz"]


def _config(tokenizer, **fields) -> CharLMConfig:
    return CharLMConfig(vocab_size=len(tokenizer), hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=96, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **fields)


def _fit(model, batch: dict, steps: int = 60, lr: float = 1e-2) -> float:
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return loss.item()


def _save(model, tokenizer, folder: Path) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _char_labels(text: str, spans: list[tuple[int, int, str]]) -> list[str]:
    tags = ["O"] * len(text)
    for start, end, kind in spans:
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def _token_batch(tokenizer, texts: list[str], char_tags: list[list[int]]) -> dict:
    enc = tokenizer(texts, padding=True, return_tensors="pt", return_offsets_mapping=True)
    labels = torch.full(enc["input_ids"].shape, -100)
    for row, tags in enumerate(char_tags):
        for k, (start, end) in enumerate(enc["offset_mapping"][row].tolist()):
            if end > start:
                labels[row, k] = tags[start]
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def make_demo_models(root: Path) -> dict[str, str]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: more threads only contend for the cores
    try:
        return _make(Path(root))
    finally:
        torch.set_num_threads(threads)


def _make(root: Path) -> dict[str, str]:
    torch.manual_seed(0)
    tokenizer = train_char_tokenizer(CORPUS)
    out = {}

    lm = CharLMForCausalLM(_config(tokenizer))
    ids = tokenizer([LM_TEXT], return_tensors="pt")["input_ids"]
    _fit(lm, {"input_ids": ids, "labels": ids})
    out["generation"] = _save(lm, tokenizer, root / "generation")

    def labelled(names):
        return dict(num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)})

    ner = CharLMForTokenClassification(_config(tokenizer, **labelled(NER_LABELS)))
    tags = [[NER_LABELS.index(t) for t in _char_labels(text, spans)] for text, spans in NER]
    _fit(ner, _token_batch(tokenizer, [t for t, _ in NER], tags))
    out["ner"] = _save(ner, tokenizer, root / "ner")

    bmes = ["B", "M", "E", "S"]
    cws = CharLMForTokenClassification(_config(tokenizer, **labelled(bmes)))
    tags = [[bmes.index(t) for w in words for t in (["S"] if len(w) == 1 else ["B", *"M" * (len(w) - 2), "E"])]
            for words in CWS]
    _fit(cws, _token_batch(tokenizer, ["".join(w) for w in CWS], tags))
    out["segmentation"] = _save(cws, tokenizer, root / "segmentation")

    names = ["negative", "positive"]
    sentiment = CharLMForSequenceClassification(_config(tokenizer, **labelled(names)))
    enc = tokenizer([t for t, _ in SENTIMENT], padding=True, return_tensors="pt")
    _fit(sentiment, {**enc, "labels": torch.tensor([names.index(label) for _, label in SENTIMENT])})
    out["sentiment"] = _save(sentiment, tokenizer, root / "sentiment")

    mt = CharLMForConditionalGeneration(_config(tokenizer))
    src = tokenizer([s for s, _ in TRANSLATION], padding=True, return_tensors="pt")
    tgt = tokenizer([t for _, t in TRANSLATION], add_special_tokens=False)["input_ids"]
    width = max(len(t) for t in tgt) + 1
    labels = torch.tensor([t + [tokenizer.eos_token_id] + [-100] * (width - len(t) - 1) for t in tgt])
    _fit(mt, {**src, "labels": labels})
    out["translation"] = _save(mt, tokenizer, root / "translation")

    # what scripts/finetune_correction.py trains and records: labels are the target's ids at every position
    corrector = CharLMForMaskedLM(_config(tokenizer, finetuning_task="text-correction"))
    src = tokenizer([s for s, _ in CORRECTION], padding=True, return_tensors="pt")
    tgt = tokenizer([t for _, t in CORRECTION], padding=True, return_tensors="pt")["input_ids"]
    _fit(corrector, {**src, "labels": tgt.masked_fill(src["attention_mask"] == 0, -100)})
    out["correction"] = _save(corrector, tokenizer, root / "correction")
    return out
