"""Pinyin to characters with char models: the input-method decoder.

A `pinyin_to_hanzi` source has exactly one space-separated token per target character (a toneless syllable, or a
non-Chinese character as it is), so the target is a choice among the characters each token can stand for. The
`PinyinDecoder` makes that choice with a causal hf_charlm language model of Chinese text, by beam search in
`generate()`: at step t only the characters the syllable table lists for token t are allowed
(`SyllableConstraintLogitsProcessor`), so the model only has to rank homophones by their left context, and no
alignment has to be learnt. Three optional helpers join with a weight each, chosen on validation pairs (`tune`):

- `ngram`: a character n-gram model (`hf_charlm.ngram.KneserNeyLM`, counted from the training text in seconds)
  whose log-probabilities are added inside the beam search (shallow fusion): counts remember the exact phrases of
  the training text, which a small neural model learns slowly;
- `backward`: a causal model of the same text read right to left (`scripts/pretrain.py --reverse_text`) that
  rescores the beam's n-best, so the choice also sees the right context;
- `tagger`: a token-classification model over the pinyin characters (one class per character; it reads the whole
  pinyin sentence) whose log-probabilities are added inside the beam search.

    from hf_charlm.ngram import KneserNeyLM
    from hf_charlm.pinyin import PinyinDecoder, syllable_table
    table = syllable_table(train["source"], train["target"])
    decoder = PinyinDecoder.from_pretrained("outputs/pd-lm", table, backward="outputs/pd-lm-reversed",
                                            ngram=KneserNeyLM(train["target"], order=4))
    decoder(["wo men ai bei jing"])

May import the package, `torch` and public `transformers` names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from .lm_eval import sequence_log_probs
from .ngram import EOS, KneserNeyLM

# the tagger score of a character it has no class for: far below any class it has, yet finite
PRIOR_FLOOR = -30.0

__all__ = ["syllable_table", "syllable_spans", "syllable_pieces", "syllable_log_probs", "SyllableConstraintLogitsProcessor",
           "PinyinDecoder"]


def syllable_table(sources: Iterable[str], targets: Iterable[str]) -> dict[str, dict[str, int]]:
    """token -> {character: count} from aligned pairs (one space-separated source token per target character):
    the input method's dictionary, read off training pairs."""
    table: dict[str, dict[str, int]] = {}
    for n, (source, target) in enumerate(zip(sources, targets)):
        tokens = source.split(" ")
        if len(tokens) != len(target):
            raise ValueError(f"pair {n}: {len(tokens)} pinyin tokens for {len(target)} characters: {source[:60]!r}")
        for token, char in zip(tokens, target):
            entry = table.setdefault(token, {})
            entry[char] = entry.get(char, 0) + 1
    return table


def syllable_spans(source: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the space-separated tokens of a pinyin source: one per target character."""
    spans, start = [], None
    for i, c in enumerate(source + " "):
        if c == " " and start is not None:
            spans.append((start, i))
            start = None
        elif c != " " and start is None:
            start = i
    return spans


def syllable_pieces(source: str, limit: int) -> list[str]:
    """A source cut at spaces into pieces of at most `limit` characters (a token longer than that stays whole)."""
    pieces, current = [], []
    for token in source.split(" "):
        if current and len(" ".join(current + [token])) > limit:
            pieces.append(" ".join(current))
            current = []
        current.append(token)
    return pieces + [" ".join(current)]


@torch.no_grad()
def syllable_log_probs(tagger: Any, tokenizer: Any, sources: Sequence[str], batch_size: int = 16) -> list[torch.Tensor]:
    """A token classifier's reading of pinyin sources: per source a [tokens, classes] tensor, each row the
    log-probabilities summed over that token's characters. Sources longer than the classifier's positions are read
    in pieces cut at token boundaries (`syllable_pieces`), `batch_size` pieces at a time."""
    limit = tagger.config.max_position_embeddings - 2  # <s> and </s>
    pieces = [(n, piece) for n, source in enumerate(sources) for piece in syllable_pieces(source, limit)]
    rows: list[list[torch.Tensor]] = [[] for _ in sources]
    tagger.eval()
    for b in range(0, len(pieces), batch_size):
        batch = pieces[b:b + batch_size]
        enc = tokenizer([p for _, p in batch], return_offsets_mapping=True, padding=True, return_tensors="pt")
        offsets = enc.pop("offset_mapping")
        logp = tagger(**enc).logits.log_softmax(-1)
        for row, (n, piece) in enumerate(batch):
            token_at = {s: t for t, (s, e) in enumerate(offsets[row].tolist()) if e > s}  # one token per character
            for start, end in syllable_spans(piece):
                rows[n].append(logp[row, [token_at[i] for i in range(start, end) if i in token_at]].sum(0))
    return [torch.stack(r) for r in rows]


class SyllableConstraintLogitsProcessor(LogitsProcessor):
    """At generation step t (tokens after the prompt) of batch item b, only `allowed[b][t]` (a 1-d tensor of token
    ids) may follow, and each gets `weight * prior[b][t]` (same shape, e.g. a tagger's log-probabilities) added to
    its score; after the last step only `eos_token_id`. With `ngram` (an `hf_charlm.ngram.KneserNeyLM` of the
    same text) and `chars` (token id -> character), each allowed id also gets `ngram_weight * log P_ngram(char |
    the row's characters after the first prompt token)`, `</s>` for eos. Rows are batch items times `num_beams`, in
    generate()'s order. Scores outside the allowed ids become -inf."""

    def __init__(self, allowed: Sequence[Sequence[torch.Tensor]], prompt_length: int, eos_token_id: int,
                 num_beams: int = 1, prior: Sequence[Sequence[torch.Tensor]] | None = None, weight: float = 0.0,
                 ngram: KneserNeyLM | None = None, ngram_weight: float = 0.0, chars: dict[int, str] | None = None):
        self.allowed, self.prompt_length, self.eos_token_id = allowed, prompt_length, eos_token_id
        self.num_beams, self.prior, self.weight = num_beams, prior, weight
        self.ngram, self.ngram_weight, self.chars = ngram, ngram_weight, chars or {}
        if ngram is not None and ngram_weight and not chars:
            raise ValueError("an n-gram model needs `chars`, the token id -> character map")

    def _ngram_scores(self, history: list[int], ids: torch.Tensor) -> torch.Tensor:
        keep = self.ngram.order - 1
        context = [self.chars.get(i, "?") for i in history[-keep:]] if keep else []
        return torch.tensor([math.log(self.ngram.prob(context, EOS if i == self.eos_token_id else self.chars.get(i, "?")))
                             for i in ids.tolist()])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        out = torch.full_like(scores, -math.inf)
        fuse = self.ngram is not None and self.ngram_weight
        for row in range(scores.shape[0]):
            item = row // self.num_beams
            ids = self.allowed[item][step] if step < len(self.allowed[item]) else torch.tensor([self.eos_token_id])
            value = scores[row, ids]
            if self.prior is not None and self.weight and step < len(self.allowed[item]):
                value = value + self.weight * self.prior[item][step]
            if fuse:
                value = value + self.ngram_weight * self._ngram_scores(input_ids[row, 1:].tolist(), ids)
            out[row, ids] = value
        return out


class PinyinDecoder:
    """Pinyin sources -> character strings, one character per token (see the module docstring).

    `model` / `tokenizer`: a causal hf_charlm language model of the target text; `table`: `syllable_table` of
    training pairs. A token the table never saw stands for itself when it is one character the model knows
    (punctuation, digits), else the model's unknown token, read back as `?`; characters the model's vocabulary
    lacks are dropped from a token's choices. `tagger` / `tagger_tokenizer`: an optional
    `CharLMForTokenClassification` over the pinyin characters whose labels are characters; a token's tagger score
    is the log-softmax of its characters' summed log-probabilities. Sources longer than the language model's
    positions are decoded in windows, each prompted with the last `context` characters decoded before it (default: 32, at
    most a quarter of the positions). `num_beams` defaults to 32, wider than 16 on the validation pairs of
    `pinyin_to_hanzi` (README, "Sequence to sequence side by side")."""

    def __init__(self, model: Any, tokenizer: Any, table: dict[str, dict[str, int]], tagger: Any = None,
                 tagger_tokenizer: Any = None, tagger_weight: float = 1.0, ngram: KneserNeyLM | None = None,
                 ngram_weight: float = 1.0, backward: Any = None, backward_tokenizer: Any = None,
                 backward_weight: float = 1.0, num_beams: int = 32, batch_size: int = 8, context: int | None = None):
        if (tagger is None) != (tagger_tokenizer is None):
            raise ValueError("pass both tagger and tagger_tokenizer, or neither")
        self.model, self.tokenizer, self.table = model.eval(), tokenizer, table
        self.tagger, self.tagger_tokenizer = (tagger.eval() if tagger is not None else None), tagger_tokenizer
        self.tagger_weight, self.num_beams, self.batch_size = tagger_weight, num_beams, batch_size
        self.ngram, self.ngram_weight = ngram, ngram_weight
        if (backward is None) != (backward_tokenizer is None):
            raise ValueError("pass both backward and backward_tokenizer, or neither")
        self.backward = backward.eval() if backward is not None else None
        self.backward_tokenizer, self.backward_weight = backward_tokenizer, backward_weight
        vocab = tokenizer.get_vocab()
        self._vocab = vocab
        self._id_char = {i: c for c, i in vocab.items() if len(c) == 1}
        self._choices: dict[str, torch.Tensor] = {}
        if tagger is not None:
            labels = tagger.config.id2label
            self._label_ids = torch.tensor([vocab.get(labels[i], -1) for i in range(len(labels))])
        positions = getattr(model.config, "max_position_embeddings", None) or 1024
        self.context = context = min(32, positions // 4) if context is None else context
        self.window = positions - 2 - context  # <s>, the context, the window's tokens and </s>
        if self.window < 1:
            raise ValueError(f"context={context} leaves no room in the model's {positions} positions")

    @classmethod
    def from_pretrained(cls, model_path: str, table: dict[str, dict[str, int]], tagger: str | None = None,
                        backward: str | None = None, **kwargs):
        """Loads the language model (and the optional tagger and backward model) from folders or Hub ids."""
        from transformers import AutoModelForCausalLM, AutoModelForTokenClassification, AutoTokenizer

        model, tokenizer = AutoModelForCausalLM.from_pretrained(model_path), AutoTokenizer.from_pretrained(model_path)
        if tagger is not None:
            kwargs.update(tagger=AutoModelForTokenClassification.from_pretrained(tagger),
                          tagger_tokenizer=AutoTokenizer.from_pretrained(tagger))
        if backward is not None:
            kwargs.update(backward=AutoModelForCausalLM.from_pretrained(backward),
                          backward_tokenizer=AutoTokenizer.from_pretrained(backward))
        return cls(model, tokenizer, table, **kwargs)

    def choices(self, token: str) -> torch.Tensor:
        """The token ids a pinyin token may become, most frequent first."""
        if token not in self._choices:
            seen = sorted(self.table.get(token, {}).items(), key=lambda kv: -kv[1])
            ids = [self._vocab[c] for c, _ in seen if c in self._vocab]
            if not ids:
                ids = [self._vocab.get(token, self.tokenizer.unk_token_id)] if len(token) == 1 else [self.tokenizer.unk_token_id]
            self._choices[token] = torch.tensor(ids)
        return self._choices[token]

    def tagger_scores(self, sources: Sequence[str]) -> list[list[torch.Tensor]]:
        """Per source, per token: the tagger's log-probabilities (`syllable_log_probs`, renormalised) over the
        language model's vocabulary ids, -inf for a character it has no class for."""
        known = self._label_ids >= 0
        result = []
        for summed in syllable_log_probs(self.tagger, self.tagger_tokenizer, sources, self.batch_size):
            rows = torch.full((summed.shape[0], len(self._vocab)), -math.inf)
            rows[:, self._label_ids[known]] = summed.log_softmax(-1)[:, known]
            result.append(list(rows))
        return result

    @torch.no_grad()
    def __call__(self, sources: Sequence[str]) -> list[str]:
        """One string of characters per source, one character per space-separated token."""
        if isinstance(sources, str):
            raise TypeError("PinyinDecoder takes a list of sources; wrap a single source in a list")
        tokens = [source.split(" ") for source in sources]
        for n, source_tokens in enumerate(tokens):
            if "" in source_tokens:
                raise ValueError(f"source {n} has an empty token (an empty source, or two spaces in a row): "
                                 f"{sources[n][:60]!r}")
        priors = self.tagger_scores(sources) if self.tagger is not None else None
        decoded: list[list[int]] = [[] for _ in sources]
        while True:
            todo = [n for n, t in enumerate(tokens) if len(decoded[n]) < len(t)]
            if not todo:
                break
            todo.sort(key=lambda n: len(tokens[n]) - len(decoded[n]))
            for b in range(0, len(todo), self.batch_size):
                batch = todo[b:b + self.batch_size]
                # every row of a batch gets the same prompt length: <s> + the last `context` decoded ids (a first
                # window has none; a later one always has `context`, since a window is longer than the context)
                prompts = [[self.tokenizer.bos_token_id] + decoded[n][-self.context:] if decoded[n] else
                           [self.tokenizer.bos_token_id] for n in batch]
                groups: dict[int, list[int]] = {}
                for n, prompt in zip(batch, prompts):
                    groups.setdefault(len(prompt), []).append(n)
                for length, group in groups.items():
                    self._decode_window(group, tokens, decoded, priors, length)
        return ["".join(self._id_char.get(i, "?") for i in ids) for ids in decoded]

    def _decode_window(self, group: list[int], tokens: list[list[str]], decoded: list[list[int]],
                       priors: list[list[torch.Tensor]] | None, prompt_length: int) -> None:
        window = self.window if prompt_length > 1 else self.window + self.context
        spans = [(len(decoded[n]), min(len(tokens[n]), len(decoded[n]) + window)) for n in group]
        allowed = [[self.choices(t) for t in tokens[n][a:b]] for n, (a, b) in zip(group, spans)]
        prior = None
        if priors is not None:
            # a choice the tagger has no class for (a token standing for itself) gets a floor, not -inf
            prior = [[priors[n][k][ids].clamp(min=PRIOR_FLOOR) for k, ids in zip(range(a, b), allowed_n)]
                     for n, (a, b), allowed_n in zip(group, spans, allowed)]
        prompt = torch.tensor([[self.tokenizer.bos_token_id] + (decoded[n][-self.context:] if prompt_length > 1 else [])
                               for n in group])
        processor = SyllableConstraintLogitsProcessor(allowed, prompt_length, self.tokenizer.eos_token_id,
                                                      self.num_beams, prior, self.tagger_weight, self.ngram,
                                                      self.ngram_weight, self._id_char)
        steps = max(b - a for a, b in spans)
        n_best = self.num_beams if self.backward is not None and self.backward_weight else 1
        out = self.model.generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=steps + 1, num_beams=self.num_beams,
            do_sample=False, length_penalty=0.0, early_stopping=True, logits_processor=LogitsProcessorList([processor]),
            eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id,
            num_return_sequences=n_best, return_dict_in_generate=True, output_scores=n_best > 1,
        )
        sequences = out.sequences.view(len(group), n_best, -1)
        picks = [0] * len(group)
        if n_best > 1:
            # the n-best of each item, rescored: fused forward score + backward_weight * the backward model's
            # log-probability of the window read right to left
            hypotheses = [sequences[i, k, prompt_length:prompt_length + b - a].tolist()
                          for i, (a, b) in enumerate(spans) for k in range(n_best)]
            total = out.sequences_scores.view(len(group), n_best) + self.backward_weight * self.backward_logprob(
                hypotheses).view(len(group), n_best)
            picks = total.argmax(1).tolist()
        for row, (n, (a, b)) in enumerate(zip(group, spans)):
            decoded[n].extend(sequences[row, picks[row], prompt_length:prompt_length + b - a].tolist())

    def backward_logprob(self, hypotheses: Sequence[Sequence[int]]) -> torch.Tensor:
        """log P_backward(reversed text) of each hypothesis (ids of the forward model), `</s>` included."""
        tok = self.backward_tokenizer
        rows = [[tok.bos_token_id] + tok.convert_tokens_to_ids([self._id_char.get(i, tok.unk_token) for i in ids[::-1]])
                + [tok.eos_token_id] for ids in hypotheses]
        return torch.tensor(sequence_log_probs(self.backward, rows, tok.pad_token_id))

    def tune(self, sources: Sequence[str], targets: Sequence[str], grid: Sequence[dict[str, float]]) -> dict[str, Any]:
        """Tries each setting of `grid` (dicts of `tagger_weight` / `ngram_weight`) on (validation) pairs and keeps
        the one with the best character accuracy (the first of equals); returns {"best": setting, "records":
        [{**setting, "char_accuracy"}]}."""
        records = []
        for setting in grid:
            unknown = set(setting) - {"tagger_weight", "ngram_weight", "backward_weight"}
            if unknown:
                raise ValueError(f"tune: unknown setting(s) {sorted(unknown)}; tagger_weight, ngram_weight and "
                                 "backward_weight are tuned")
            for key, value in setting.items():
                setattr(self, key, value)
            predictions = self(sources)
            right = sum(p == r for prediction, target in zip(predictions, targets) for p, r in zip(prediction, target))
            records.append({**setting, "char_accuracy": right / max(1, sum(len(t) for t in targets))})
        best = max(records, key=lambda r: r["char_accuracy"])
        for key in grid[0]:
            setattr(self, key, best[key])
        return {"best": {k: best[k] for k in grid[0]}, "records": records}
