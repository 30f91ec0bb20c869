"""Builds and trains the character tokenizer; `tokenizer.json` does the rest. Also the fast ways to encode.

The tokenizer is a `tokenizers` BPE model with no merges and `byte_fallback=True`: every character in the
vocabulary is one token, any other character becomes its UTF-8 byte tokens `<0x00>`..`<0xFF>`, and the decoder
(`ByteFallback` + `Fuse`) puts the text back together. There is no pre-tokenizer (the per-character `Split` of
earlier versions took half of the Rust time and changed no id): offsets are characters, a plain text is one word,
and `is_split_into_words=True` gives each word its index. Wrapped in `PreTrainedTokenizerFast` it saves as a plain
`tokenizer.json` that `AutoTokenizer` loads with no custom code; a `tokenizer.json` with the old `Split` loads and
gives the same ids and offsets.

Two faster readings of the same `tokenizer.json`, equal id for id (tested): `encode_corpus`, the bulk encoder of
pretraining (one numpy array for a whole corpus), and the direct path of `CharLMTokenizerFast` for large batches.
May import `tokenizers`, `numpy` and public `transformers` names.
"""

import functools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, processors
from transformers import BatchEncoding, PreTrainedTokenizerFast

PAD, UNK, BOS, EOS, CLS, SEP, MASK = "<pad>", "<unk>", "<s>", "</s>", "<cls>", "<sep>", "<mask>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, CLS, SEP, MASK)
BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))
NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD", None)


class CharLMTokenizerFast(PreTrainedTokenizerFast):
    """The generic fast tokenizer plus a clear error for text that is not valid Unicode, and a direct path for
    large batches.

    A saved folder names the generic class, so `AutoTokenizer` loads it anywhere with no custom code
    (and without these two: the Rust library then rejects invalid text with its own message, and every batch goes
    through the Rust tokenizer, with the same results).

    The direct path: `tokenizer(list_of_texts, ...)` without padding, truncation or pairs, on at least
    `direct_min_characters` characters, is read with the code-point table of `encode_corpus` and the lists are made
    from numpy arrays, instead of one Rust `Encoding` per text converted list by list. It gives the same
    `input_ids`, `attention_mask`, `token_type_ids`, `special_tokens_mask`, `offset_mapping` and `length`; the Rust
    encodings behind `word_ids()`, `char_to_token()`, ... are made the first time one is asked for. A batch it does
    not cover (a text that the normaliser would change, a special token written in a text, another kind of
    tokenizer) takes the Rust path.
    """

    direct_min_characters = 10_000  # below this, the Rust path costs less than reading the tokenizer.json

    def _encode_plus(self, text, text_pair=None, *args, **kwargs):
        for name, item in (("text", text), ("text_pair", text_pair)):
            if isinstance(item, list) and all(type(t) is str for t in item) and not _SURROGATE.search("".join(item)):
                continue  # a batch of valid texts: one search instead of one per text
            for where, piece in _strings(item, name):
                found = _SURROGATE.search(piece)
                if found:
                    raise ValueError(
                        f"{where} is not valid Unicode: lone surrogate {found.group()!r} at character {found.start()}. "
                        "Decode bytes with errors='replace' (or fix the source) before tokenizing."
                    )
        if not args and text_pair is None and isinstance(text, (list, tuple)):
            direct = self._encode_directly(list(text), **kwargs)
            if direct is not None:
                return direct
        return super()._encode_plus(text, text_pair, *args, **kwargs)

    def _encode_directly(
        self,
        texts: list,
        add_special_tokens: bool = True,
        padding_strategy: str = "do_not_pad",  # transformers' PaddingStrategy / TruncationStrategy: str enums
        truncation_strategy: str = "do_not_truncate",
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors=None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
        **other,
    ) -> BatchEncoding | None:
        if (other or is_split_into_words or return_overflowing_tokens or padding_strategy != "do_not_pad"
                or truncation_strategy != "do_not_truncate" or not texts
                or any(type(t) is not str for t in texts)):
            return None
        joined = "".join(texts)
        if len(joined) < self.direct_min_characters:
            return None
        spec = self._tokenizer.to_str()
        table = _char_table(spec)
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        if table is None or table.type_ids or (not split and any(c in joined for c in table.added)):
            return None
        prefix, suffix = (table.prefix, table.suffix) if add_special_tokens else ([], [])
        encoded = _encode_texts(table, texts, None, 0, prefix, suffix, normalize=False, with_chars=return_offsets_mapping,
                                joined=joined)
        if encoded is None:
            return None
        ids, lengths, is_special, chars = encoded
        # the backend is left as the Rust path leaves it (no padding, no truncation, this split setting)
        self.set_truncation_and_padding(padding_strategy=padding_strategy, truncation_strategy=truncation_strategy,
                                        max_length=max_length, stride=stride, pad_to_multiple_of=pad_to_multiple_of,
                                        padding_side=padding_side)
        if self._tokenizer.encode_special_tokens != split:
            self._tokenizer.encode_special_tokens = split
        data = self._lists(ids, lengths, is_special, chars, return_token_type_ids, return_attention_mask,
                           return_special_tokens_mask, return_offsets_mapping, return_length)
        self._eventual_warn_about_too_long_sequence(data["input_ids"][int(np.argmax(lengths))], max_length, verbose)
        return _LaterEncodings(data, functools.partial(_rust_encodings, spec, texts, add_special_tokens, split),
                               tensor_type=return_tensors, n_sequences=1)

    def _lists(self, ids, lengths, is_special, chars, return_token_type_ids, return_attention_mask,
               return_special_tokens_mask, return_offsets_mapping, return_length) -> dict[str, list]:
        """The per-text lists of `_encode_directly`, in the order and form the Rust path gives them."""
        bounds = np.concatenate([[0], np.cumsum(lengths)]).tolist()
        spans = list(zip(bounds[:-1], bounds[1:]))
        sizes = lengths.tolist()

        def rows(flat: list) -> list[list]:
            return [flat[a:b] for a, b in spans]

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        data = {"input_ids": rows(ids.tolist())}
        if return_token_type_ids:
            data["token_type_ids"] = [[0] * n for n in sizes]
        if return_attention_mask:
            data["attention_mask"] = [[1] * n for n in sizes]
        if return_special_tokens_mask:
            special = np.zeros(len(ids), dtype=np.int64) if is_special is None else is_special.astype(np.int64)
            data["special_tokens_mask"] = rows(special.tolist())
        if return_offsets_mapping:  # a character's tokens span it, special tokens (0, 0): `spans[-1]`
            spans_of = [(i, i + 1) for i in range(int(chars.max(initial=-1)) + 1)] + [(0, 0)]  # shared, immutable
            data["offset_mapping"] = rows(list(map(spans_of.__getitem__, chars.tolist())))
        if return_length:
            data["length"] = sizes
        return data

    def save_pretrained(self, *args, **kwargs) -> tuple[str, ...]:
        cls = self.__class__
        self.__class__ = PreTrainedTokenizerFast  # the saved tokenizer_config names the generic class
        try:
            return PreTrainedTokenizerFast.save_pretrained(self, *args, **kwargs)
        finally:
            self.__class__ = cls


class _LaterEncodings(BatchEncoding):
    """A BatchEncoding whose Rust `Encoding`s (`word_ids()`, `char_to_token()`, `encodings`, ...) are made when
    first asked for."""

    def __init__(self, data: dict, make: Callable[[], list], tensor_type=None, n_sequences: int | None = None):
        self._make = make
        super().__init__(data, encoding=None, tensor_type=tensor_type, n_sequences=n_sequences)

    @property
    def _encodings(self):
        make = self.__dict__.get("_make")
        if make is not None:
            self.__dict__["_made"], self.__dict__["_make"] = make(), None
        return self.__dict__.get("_made")

    @_encodings.setter
    def _encodings(self, value) -> None:
        if value is not None:
            self.__dict__["_make"] = None
        self.__dict__["_made"] = value


def _rust_encodings(spec: str, texts: list[str], add_special_tokens: bool, split_special_tokens: bool) -> list:
    """The encodings the Rust path gives `texts`, from a copy of the tokenizer as it was when they were encoded."""
    backend = Tokenizer.from_str(spec)
    backend.no_truncation()
    backend.no_padding()
    backend.encode_special_tokens = split_special_tokens
    return backend.encode_batch(texts, add_special_tokens=add_special_tokens)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _strings(item, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a text / batch / pre-split input, with where it is (`text[1]`, `text[1][3]`, ...)."""
    if isinstance(item, str):
        yield where, item
    elif isinstance(item, (list, tuple)):
        for i, sub in enumerate(item):
            yield from _strings(sub, f"{where}[{i}]")


def _normalizer(normalization: str | None) -> normalizers.Normalizer | None:
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is invalid: must be one of {NORMALIZATIONS}.")
    return None if normalization is None else getattr(normalizers, normalization)()


def build_char_tokenizer(
    characters: Iterable[str], normalization: str | None = "NFC", model_max_length: int | None = None
) -> PreTrainedTokenizerFast:
    """A char tokenizer whose vocabulary is the special tokens, the 256 byte tokens, then `characters` in order.

    Every sequence starts with `<s>`; a pair is `<s> A <sep> B`. Padding is on the right by default
    (`tokenizer.padding_side = "left"` for batched generation). Special tokens written in a text are those tokens
    (also the ones added later with `add_special_tokens`); `tokenizer(text, split_special_tokens=True)` reads a
    text literally.
    """
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *BYTE_TOKENS):
        vocab[token] = len(vocab)
    for ch in characters:
        if len(ch) != 1:
            raise ValueError(f"Vocabulary entries must be single characters, got {ch!r}.")
        if ch not in vocab:
            vocab[ch] = len(vocab)

    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, byte_fallback=True, fuse_unk=False))
    norm = _normalizer(normalization)
    if norm is not None:
        tok.normalizer = norm
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A:0",
        pair=f"{BOS} $A:0 {SEP} $B:1",
        special_tokens=[(BOS, vocab[BOS]), (SEP, vocab[SEP])],
    )
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    kwargs = {} if model_max_length is None else {"model_max_length": model_max_length}
    return CharLMTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        cls_token=CLS,
        sep_token=SEP,
        mask_token=MASK,
        padding_side="right",
        clean_up_tokenization_spaces=False,
        # split_special_tokens stays at the library default (False), as in every built-in tokenizer: the Rust
        # tokenizer can only split all special tokens or none, and True would also break up the special tokens a
        # user adds (chat markers). Callers with untrusted text pass split_special_tokens=True per call.
        **kwargs,
    )


def count_characters(texts: Iterable[str], normalization: str | None = "NFC") -> Counter:
    """Character frequencies of `texts` after normalisation (the normaliser runs in Rust)."""
    norm = _normalizer(normalization)
    counts: Counter = Counter()
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"Texts must be str, got {type(text).__name__}.")
        counts.update(norm.normalize_str(text) if norm is not None else text)
    return counts


def train_char_tokenizer(
    texts: Iterable[str] | Iterator[str],
    min_frequency: int = 1,
    max_vocab_size: int | None = None,
    normalization: str | None = "NFC",
    model_max_length: int | None = None,
) -> PreTrainedTokenizerFast:
    """Trains a char tokenizer: the characters of `texts` seen at least `min_frequency` times, most frequent
    first (ties broken by code point, so the result does not depend on the order of the texts), at most
    `max_vocab_size` tokens in all (the 7 special and 256 byte tokens included). Other characters are encoded
    as their UTF-8 bytes, so nothing is ever unknown.
    """
    if min_frequency < 1:
        raise ValueError(f"min_frequency={min_frequency} is invalid: must be >= 1.")
    reserved = len(SPECIAL_TOKENS) + len(BYTE_TOKENS)
    if max_vocab_size is not None and max_vocab_size < reserved:
        raise ValueError(
            f"max_vocab_size={max_vocab_size} is invalid: must be >= {reserved} (special and byte tokens)."
        )
    counts = count_characters(texts, normalization)
    chars = sorted((c for c, n in counts.items() if n >= min_frequency), key=lambda c: (-counts[c], c))
    if max_vocab_size is not None:
        chars = chars[: max_vocab_size - reserved]
    return build_char_tokenizer(chars, normalization=normalization, model_max_length=model_max_length)


# ------------------------------------------------------------------------------------------------ bulk encoding
# `encode_corpus` gives the ids `tokenizer(texts, split_special_tokens=True)` gives, as one numpy array, without
# one Rust `Encoding` and one Python list per text: the texts are joined and read as UTF-32 code points, a
# code point -> id table maps the vocabulary characters, and the rare characters outside it are expanded into
# their UTF-8 byte tokens with array arithmetic. Normalisation: a text made only of characters that the
# normaliser cannot change, alone or next to any other such character (`_inert`), is already normalised; only
# the other texts go through the tokenizer's own (Rust) normaliser. A tokenizer this reading does not cover
# (merges, another model or pre-tokenizer, added non-special tokens, ...) is encoded by the tokenizer itself.

_PER_CHARACTER_SPLIT = {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated", "invert": False}
_UNICODE_FORMS = ("NFC", "NFD", "NFKC", "NFKD")
_CHUNK_TEXTS = 50_000  # texts per pass: bounds the memory of the joined text and its code-point arrays


@functools.cache
def _composition_seconds() -> frozenset[str]:
    """Characters that canonical composition can merge into the character before them (NFC_Quick_Check=Maybe)."""
    seconds = {chr(cp) for cp in (*range(0x1161, 0x1176), *range(0x11A8, 0x11C3))}  # Hangul V and T jamo
    for cp in range(0x30000):  # no canonical decomposition lies above the CJK compatibility supplement
        parts = unicodedata.decomposition(chr(cp)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            seconds.add(chr(int(parts[1], 16)))
    return frozenset(seconds)


@functools.cache
def _inert(char: str, form: str) -> bool:
    """Whether normalisation `form` leaves `char` as it is wherever it stands among other inert characters.

    Only characters assigned in Python's Unicode database qualify: normalisation stability guarantees that their
    decompositions and combining classes are the same in the (possibly newer) Unicode version of the Rust library.
    Inert: a starter (combining class 0) that the form maps to itself and whose decomposition neither starts with
    nor is a character that composes with the one before it (Hangul V/T jamo, the second half of a pair).
    """
    if unicodedata.category(char) in ("Cn", "Cs") or unicodedata.combining(char):
        return False
    if unicodedata.normalize(form, char) != char:
        return False
    if form in ("NFC", "NFKC"):
        seconds = _composition_seconds()
        return char not in seconds and unicodedata.normalize("NFD" if form == "NFC" else "NFKD", char)[0] not in seconds
    return True


class _CharTable:
    """What `encode_corpus` needs from a char tokenizer, read from its `tokenizer.json`; `None` from `of` when the
    tokenizer is not one this reading covers."""

    def __init__(self, ids: np.ndarray, unstable: np.ndarray, byte_ids: np.ndarray, form: str | None,
                 prefix: list[int], suffix: list[int], added: tuple[str, ...], type_ids: bool):
        self.ids, self.unstable, self.byte_ids, self.form = ids, unstable, byte_ids, form
        self.prefix, self.suffix = prefix, suffix
        self.added = added  # the added (special) tokens' texts
        self.type_ids = type_ids  # whether the single-text template gives any token a type id other than 0

    @staticmethod
    def of(backend: Tokenizer) -> "_CharTable | None":
        return _char_table(backend.to_str())  # keyed by the whole tokenizer.json: any change makes a new table

    @classmethod
    def from_json(cls, text: str) -> "_CharTable | None":
        spec = json.loads(text)
        model, norm, pre, post = spec["model"], spec["normalizer"], spec["pre_tokenizer"], spec["post_processor"]
        if (model.get("type") != "BPE" or model.get("merges") or not model.get("byte_fallback") or model.get("dropout")
                or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix")):
            return None
        if pre is not None and pre != _PER_CHARACTER_SPLIT:
            return None
        if norm is not None and norm.get("type") not in _UNICODE_FORMS:
            return None
        if any(not t["special"] for t in spec["added_tokens"]):  # matched even in text read literally
            return None
        prefix, suffix, type_ids = [], [], False
        if post is not None:
            if post.get("type") != "TemplateProcessing":
                return None
            pieces = [next(iter(p.items())) for p in post["single"]]
            if [kind for kind, _ in pieces].count("Sequence") != 1:
                return None
            type_ids = any(piece.get("type_id", 0) for _, piece in pieces)
            where = prefix
            for kind, piece in pieces:
                if kind == "Sequence":
                    where = suffix
                else:
                    where.extend(post["special_tokens"][piece["id"]]["ids"])
        vocab = model["vocab"]
        if any(f"<0x{b:02X}>" not in vocab for b in range(256)):  # a missing byte token would give <unk>
            return None
        byte_ids = np.array([vocab[f"<0x{b:02X}>"] for b in range(256)], dtype=np.int64)
        chars = {ord(token): i for token, i in vocab.items() if len(token) == 1}
        size = max(chars, default=0) + 2  # the last entry stands for every code point above the vocabulary
        ids = np.full(size, -1, dtype=np.int32)
        unstable = np.zeros(size, dtype=bool)
        form = None if norm is None else norm["type"]
        for cp, i in chars.items():
            ids[cp] = i
            unstable[cp] = form is not None and not _inert(chr(cp), form)
        return cls(ids, unstable, byte_ids, form, prefix, suffix, tuple(t["content"] for t in spec["added_tokens"]),
                   type_ids)


@functools.lru_cache(maxsize=4)
def _char_table(text: str) -> _CharTable | None:
    return _CharTable.from_json(text)


def _code_points(texts: list[str], first: int, joined: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The code points of the joined texts (uint32) and each text's length."""
    joined = "".join(texts) if joined is None else joined
    try:
        cps = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    except UnicodeEncodeError:
        for i, text in enumerate(texts):
            found = _SURROGATE.search(text)
            if found:
                raise ValueError(
                    f"texts[{first + i}] is not valid Unicode: lone surrogate {found.group()!r} at character "
                    f"{found.start()}. Decode bytes with errors='replace' (or fix the source) before tokenizing."
                ) from None
        raise
    return cps, np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))


def _encode_texts(table: _CharTable, texts: list[str], normalizer, first: int, prefix: list[int], suffix: list[int],
                  normalize: bool = True, with_chars: bool = False, joined: str | None = None):
    """`(ids, lengths, is_special, chars)`: the ids of all the texts one after the other, each text's number of ids,
    which ids are the template's special tokens, and (`with_chars`) the character of its text each id stands for
    (-1 for the special tokens). `None` when `normalize=False` and a text would need the normaliser."""
    cps, lengths = _code_points(texts, first, joined)
    ids = np.take(table.ids, cps, mode="clip")  # clip: a code point above the vocabulary reads the last entry, -1
    unknown = np.flatnonzero(ids < 0)
    if table.form is not None:
        # a text with a character the normaliser could change is normalised by the tokenizer's own normaliser
        suspect = np.flatnonzero(np.take(table.unstable, cps, mode="clip"))
        if len(unknown):
            odd = [cp for cp in np.unique(cps[unknown]).tolist() if not _inert(chr(cp), table.form)]
            if odd:
                suspect = np.concatenate([suspect, unknown[np.isin(cps[unknown], odd)]])
        if len(suspect):
            if not normalize:
                return None
            rows = np.unique(np.searchsorted(np.cumsum(lengths), suspect, side="right"))
            texts = list(texts)
            for row in rows.tolist():
                texts[row] = normalizer.normalize_str(texts[row])
            cps, lengths = _code_points(texts, first)
            ids = np.take(table.ids, cps, mode="clip")
            unknown = np.flatnonzero(ids < 0)
    counts = None
    if len(unknown):  # byte fallback: the UTF-8 bytes of each character outside the vocabulary
        cp = cps[unknown].astype(np.int64)
        n = 1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)
        counts = np.ones(len(ids), dtype=np.int64)
        counts[unknown] = n
        starts = np.cumsum(counts) - counts
        body = np.repeat(ids, counts)
        lead = np.choose(n - 1, [cp, 0xC0 | cp >> 6, 0xE0 | cp >> 12, 0xF0 | cp >> 18])
        body[starts[unknown]] = table.byte_ids[lead]
        for k in (1, 2, 3):  # continuation byte k of an n-byte character carries bits 6 * (n - 1 - k) and up
            has = n > k
            shift = 6 * (n[has] - 1 - k)
            body[starts[unknown[has]] + k] = table.byte_ids[0x80 | (cp[has] >> shift) & 0x3F]
        ids = body
        csum = np.concatenate([[0], np.cumsum(counts)])
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        token_lengths = csum[bounds[1:]] - csum[bounds[:-1]]
    else:
        token_lengths = lengths
    chars = None
    if with_chars:  # position in the joined text, minus where the token's text starts
        joined = np.arange(len(cps), dtype=np.int64)
        chars = (joined if counts is None else np.repeat(joined, counts)) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                       token_lengths)
    if not prefix and not suffix:
        return ids, token_lengths, None, chars
    total_lengths = token_lengths + len(prefix) + len(suffix)
    out = np.empty(int(total_lengths.sum()), dtype=np.int64)
    starts = np.cumsum(total_lengths) - total_lengths
    is_special = np.zeros(len(out), dtype=bool)
    for k, token in enumerate(prefix):
        out[starts + k] = token
        is_special[starts + k] = True
    ends = starts + total_lengths
    for k, token in enumerate(suffix):
        out[ends - len(suffix) + k] = token
        is_special[ends - len(suffix) + k] = True
    out[~is_special] = ids
    if chars is not None:
        all_chars = np.full(len(out), -1, dtype=np.int64)
        all_chars[~is_special] = chars
        chars = all_chars
    return out, total_lengths, is_special, chars


def encode_corpus(
    tokenizer: PreTrainedTokenizerFast,
    texts: Iterable[str],
    *,
    add_special_tokens: bool = True,
    append_eos: bool = False,
    return_lengths: bool = False,
    dtype: np.dtype | type = np.int32,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The ids of every text, one after the other, in one numpy array: the fast way to encode a corpus.

    Equal, id for id, to `tokenizer(texts, split_special_tokens=True, add_special_tokens=add_special_tokens)`
    concatenated (corpus text is read literally: a `"</s>"` written in it stays four characters), plus
    `tokenizer.eos_token_id` after each text with `append_eos=True`. With `return_lengths=True` also returns each
    text's number of ids. Reads any char tokenizer of this package (or its saved `tokenizer.json`) directly; any
    other fast tokenizer is encoded by the tokenizer itself (same result, its speed).
    """
    if append_eos and tokenizer.eos_token_id is None:
        raise ValueError("append_eos=True, but the tokenizer has no eos_token")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer) or len(tokenizer) - 1 > np.iinfo(dtype).max:
        raise ValueError(f"dtype={dtype} cannot hold the ids of a vocabulary of {len(tokenizer)} tokens")
    texts = texts if isinstance(texts, list) else list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}")
    backend = tokenizer.backend_tokenizer
    table = _CharTable.of(backend)
    extra = [tokenizer.eos_token_id] if append_eos else []
    pieces, lengths = [], []
    for first in range(0, len(texts), _CHUNK_TEXTS):
        chunk = texts[first : first + _CHUNK_TEXTS]
        if table is None:
            encoded = tokenizer(chunk, add_special_tokens=add_special_tokens, split_special_tokens=True,
                                return_attention_mask=False, return_token_type_ids=False, verbose=False)["input_ids"]
            rows = [np.asarray(ids + extra, dtype=np.int64) for ids in encoded]
            ids = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
            n = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        else:
            ids, n, _, _ = _encode_texts(table, chunk, backend.normalizer, first,
                                         table.prefix if add_special_tokens else [],
                                         (table.suffix if add_special_tokens else []) + extra)
        pieces.append(ids.astype(dtype, copy=False))
        lengths.append(n)
    ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
    if return_lengths:
        return ids, (np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64))
    return ids


__all__ = ["CharLMTokenizerFast", "build_char_tokenizer", "train_char_tokenizer", "count_characters", "encode_corpus", "SPECIAL_TOKENS"]
