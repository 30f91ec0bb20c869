"""Builds and trains the character tokenizer; `tokenizer.json` does the rest.

The tokenizer is a `tokenizers` BPE model with no merges and `byte_fallback=True`: every character in the
vocabulary is one token, any other character becomes its UTF-8 byte tokens `<0x00>`..`<0xFF>`, and the decoder
(`ByteFallback` + `Fuse`) puts the text back together. A `Split` pre-tokenizer on every single character makes
`word_ids()` the character index. Wrapped in `PreTrainedTokenizerFast` it saves as a plain `tokenizer.json` that
`AutoTokenizer` loads with no custom code. Encoding and decoding run in Rust. May import `tokenizers` and public
`transformers` names.
"""

import re
from collections import Counter
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS, CLS, SEP, MASK = "<pad>", "<unk>", "<s>", "</s>", "<cls>", "<sep>", "<mask>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS, CLS, SEP, MASK)
BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))
NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD", None)


class CharLMTokenizerFast(PreTrainedTokenizerFast):
    """The generic fast tokenizer plus a clear error for text that is not valid Unicode.

    A saved folder names the generic class, so `AutoTokenizer` loads it anywhere with no custom code
    (and without this check: the Rust library then rejects such text with its own message).
    """

    def _encode_plus(self, text, text_pair=None, *args, **kwargs):
        for name, item in (("text", text), ("text_pair", text_pair)):
            for where, piece in _strings(item, name):
                found = _SURROGATE.search(piece)
                if found:
                    raise ValueError(
                        f"{where} is not valid Unicode: lone surrogate {found.group()!r} at character {found.start()}. "
                        "Decode bytes with errors='replace' (or fix the source) before tokenizing."
                    )
        return super()._encode_plus(text, text_pair, *args, **kwargs)

    def save_pretrained(self, *args, **kwargs) -> tuple[str, ...]:
        cls = self.__class__
        self.__class__ = PreTrainedTokenizerFast  # the saved tokenizer_config names the generic class
        try:
            return PreTrainedTokenizerFast.save_pretrained(self, *args, **kwargs)
        finally:
            self.__class__ = cls


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
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
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


__all__ = ["CharLMTokenizerFast", "build_char_tokenizer", "train_char_tokenizer", "count_characters", "SPECIAL_TOKENS"]
