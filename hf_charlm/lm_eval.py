"""Bits per character of a causal char LM on any text: sliding windows for the transformer, the recurrent
state carried across chunks for LSTM / GRU, so every character is scored once with long left context.

What counts: each text is encoded as `<s> text </s>` and the texts are concatenated. Every token after the
first is predicted; the `<s>` tokens (trivially predictable after `</s>`) are not scored. The total in nats is
divided by the number of characters (after the tokenizer's normalisation) plus one per text for `</s>`, the
end-of-text symbol, as enwik8-style evaluations count the newline. Characters outside the vocabulary cost the
sum of their byte tokens. May import torch, the package and the HF libraries.
"""

import math
from collections.abc import Iterable

import torch
from torch.nn import functional as F
from transformers.utils import logging as hf_logging


def _token_stream(tokenizer, texts: Iterable[str]) -> tuple[torch.Tensor, int, int]:
    normalizer = tokenizer.backend_tokenizer.normalizer
    ids: list[int] = []
    n_chars = n_texts = 0
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("No text to evaluate: every text is empty.")
    for enc, text in zip(tokenizer(texts, add_special_tokens=True, verbose=False, split_special_tokens=True)["input_ids"], texts):
        ids.extend(enc)
        ids.append(tokenizer.eos_token_id)
        n_chars += len(normalizer.normalize_str(text) if normalizer is not None else text)
        n_texts += 1
    return torch.tensor(ids, dtype=torch.long), n_chars, n_texts


def window_plan(config, block_size: int | None = None, stride: int | None = None) -> tuple[int, int | None, str]:
    """The window (transformer) or chunk (LSTM / GRU) length in tokens, the stride (None for a recurrent model) and
    one line saying how the token stream is cut, for logs and `--help`."""
    if config.backbone in ("lstm", "gru"):
        chunk = block_size or 512
        return chunk, None, f"chunks of {chunk} tokens, the {config.backbone.upper()} state carried from one to the next"
    window = min(block_size or config.max_position_embeddings, config.max_position_embeddings)
    stride = stride or max(1, window // 2)
    if not 0 < stride < window:
        raise ValueError(f"stride={stride} must be in [1, block_size - 1 = {window - 1}]: windows must overlap.")
    return window, stride, (
        f"windows of {window} tokens every {stride} tokens (each character scored once; after the first window "
        f"with at least {window - stride} tokens of context)"
    )


@torch.no_grad()
def evaluate_lm(
    model,
    tokenizer,
    texts: Iterable[str],
    block_size: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool | None = None,
) -> dict[str, float]:
    """Returns `nats_per_char`, `bits_per_char`, `perplexity` (per character), `nats_per_token` (the mean
    cross-entropy of the scored tokens), `characters`, `tokens`.

    `block_size` defaults to the model's `max_position_embeddings` (transformer) or 512 (recurrent chunk);
    `stride` (transformer) to half a block: each scored token then sees at least `block_size - stride` tokens
    of context. `progress`: a tqdm bar over the tokens; None shows it when stderr is a terminal and the HF
    progress bars are on (`transformers.utils.logging.disable_progress_bar()`, `HF_HUB_DISABLE_PROGRESS_BARS=1`).
    """
    config = model.config
    stream, n_chars, n_texts = _token_stream(tokenizer, texts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    bos = tokenizer.bos_token_id
    targets_all = stream[1:]
    score_mask = targets_all != bos
    total_nats = 0.0
    window, stride, _ = window_plan(config, block_size, stride)
    bar = hf_logging.tqdm(
        total=len(stream) - 1, unit="tok", unit_scale=True, desc="bits per char", leave=False,
        disable=None if progress is None else not progress,
    )
    if config.backbone in ("lstm", "gru"):
        cache = None
        for start in range(0, len(stream) - 1, window):
            inp = stream[start : start + window][None].to(device)
            tgt = targets_all[start : start + window].to(device)
            out = model(input_ids=inp[:, : len(tgt)], cache=cache, use_cache=True)
            cache = out.cache
            logp = F.log_softmax(out.logits[0].float(), dim=-1)
            nll = -logp.gather(-1, tgt[:, None])[:, 0]
            total_nats += float(nll[score_mask[start : start + window].to(device)].sum())
            bar.update(len(tgt))
    else:
        # window k covers stream[b:e] and scores the targets t in [first, e) not scored by an earlier window
        n = len(stream)
        jobs, first, b = [], 1, 0
        while True:
            e = min(b + window, n)
            if e > first:
                jobs.append((b, e, first))
                first = e
            if e == n:
                break
            b += stride
        for i in range(0, len(jobs), batch_size):
            batch = jobs[i : i + batch_size]
            width = max(e - b for b, e, _ in batch)
            ids = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, (b, e, _) in enumerate(batch):
                ids[r, : e - b], mask[r, : e - b] = stream[b:e], 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            for r, (b, e, first) in enumerate(batch):
                # the position before each target predicts it
                logp = F.log_softmax(logits[r, first - 1 - b : e - 1 - b].float(), dim=-1)
                nll = -logp.gather(-1, stream[first:e].to(device)[:, None])[:, 0]
                total_nats += float(nll[score_mask[first - 1 : e - 1].to(device)].sum())
                bar.update(e - first)
    bar.close()
    if was_training:
        model.train()
    symbols = n_chars + n_texts
    nats = total_nats / symbols
    return {
        "nats_per_char": nats,
        "bits_per_char": nats / math.log(2),
        "perplexity": math.exp(nats),
        "nats_per_token": total_nats / int(score_mask.sum()),
        "characters": float(n_chars),
        "tokens": float(len(stream)),
    }


@torch.no_grad()
def evaluate_masked_lm(model, blocks, batch_size: int = 64) -> dict[str, float]:
    """Cross-entropy and accuracy of a masked char model on already-masked blocks (`input_ids`, `attention_mask`,
    `labels` with -100 where nothing is to be restored, as `CharLMMaskingCollator` makes them), over every masked
    character: `nats_per_masked_char`, `masked_bits_per_char`, `masked_accuracy`, `masked_chars`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, correct, count = 0.0, 0, 0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start : start + batch_size]
        labels = torch.as_tensor(batch["labels"]).to(device)
        logits = model(
            input_ids=torch.as_tensor(batch["input_ids"]).to(device),
            attention_mask=torch.as_tensor(batch["attention_mask"]).to(device),
        ).logits.float()
        scored = labels != -100
        total += F.cross_entropy(logits[scored], labels[scored], reduction="sum").item()
        correct += int((logits[scored].argmax(-1) == labels[scored]).sum())
        count += int(scored.sum())
    if was_training:
        model.train()
    if count == 0:
        raise ValueError("No masked character to evaluate: every label is -100.")
    nats = total / count
    return {"nats_per_masked_char": nats, "masked_bits_per_char": nats / math.log(2), "masked_accuracy": correct / count,
            "masked_chars": count}


@torch.no_grad()
def sequence_log_probs(model, rows, pad_token_id: int, batch_size: int = 64) -> list[float]:
    """log P of each row of token ids under a causal LM: the sum over every token after the first (the row's
    `<s>`). Rows of similar length are batched together, right-padded with `pad_token_id` and masked."""
    out = [0.0] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        width = max(len(rows[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for k, i in enumerate(chunk):
            ids[k, :len(rows[i])] = torch.tensor(rows[i])
            mask[k, :len(rows[i])] = 1
        ids, mask = ids.to(device), mask.to(device)
        logp = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float().log_softmax(-1)
        picked = (logp.gather(2, ids[:, 1:, None])[..., 0] * mask[:, 1:]).sum(1).cpu().tolist()
        for k, i in enumerate(chunk):
            out[i] = picked[k]
    return out
