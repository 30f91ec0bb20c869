"""Readers for the plain-text formats that token- and sequence-classification sets come in, and where each row
came from (the file and line, or the split and index) so that errors can name the user's row.

- column files (`conll`): one token per line, its tag in the last column (CoNLL-2003 `EU NNP B-NP B-ORG`,
  tab-separated `token<TAB>tag`, character-per-line BIO / BMES / BIOES files), a blank line between sentences,
  `-DOCSTART-` lines skipped; a file with a single column is tokens without tags (for prediction);
- word-segmented text (`segmented`, SIGHAN style): one sentence per line, words separated by spaces, read as
  characters with B/M/E/S tags;
- tables (`tsv`): a header row, then one tab-separated row per example (for sequence classification).

`detect_format` picks one by the file's extension and content. May import the standard library and `datasets`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import datasets

__all__ = [
    "SOURCE_COLUMN",
    "TEXT_FORMATS",
    "Origin",
    "detect_format",
    "read_conll",
    "read_segmented",
    "read_tsv",
    "read_token_file",
    "record_lines",
]

# The column that carries each row's position in its source (a line number or an index) through shuffles,
# the validation carve-out and `--max_*_samples`.
SOURCE_COLUMN = "_source_row"
# Formats this module reads (the others, json / csv / parquet, go to `datasets.load_dataset`).
TEXT_FORMATS = ("conll", "segmented", "tsv")
DOCSTART = "-DOCSTART-"
_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


@dataclass(frozen=True)
class Origin:
    """Where the rows of a split came from: `label` is a file name or a dataset split; rows are numbered by
    `unit`, "line" (1-based line of the file where the example starts) or "index" (0-based position)."""

    label: str
    unit: str = "line"

    def name(self, position: int) -> str:
        return f"{self.label} line {position}" if self.unit == "line" else f"{self.label}[{position}]"


def _lines(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}).") from None
    return text.splitlines()


def read_conll(path: str | Path) -> dict[str, list]:
    """A column file -> `{"tokens": [[...]], "tags": [[...]] or None, "line": [first line of each sentence]}`.

    A line is split at tabs when it has one (so a token may hold spaces), else at whitespace; the token is the
    first field and the tag the last. Blank lines and `-DOCSTART-` lines end a sentence. Every line must have
    the same number of fields as the first (a single field everywhere: tokens without tags)."""
    tokens: list[list[str]] = []
    tags: list[list[str]] = []
    starts: list[int] = []
    width = None
    sentence: list[str] = []
    sentence_tags: list[str] = []
    start = 0

    def flush() -> None:
        if sentence:
            tokens.append(list(sentence))
            tags.append(list(sentence_tags))
            starts.append(start)
            sentence.clear()
            sentence_tags.clear()

    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            flush()
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if fields[0] == DOCSTART:
            flush()
            continue
        if width is None:
            width = len(fields)
        if len(fields) != width or any(not f for f in fields):
            raise ValueError(
                f"{path} line {number}: {len(fields)} fields ({line.strip()!r}) where the file's first line has {width}; "
                "a column file has a token and its tag on every line (blank line between sentences)."
            )
        if not sentence:
            start = number
        sentence.append(fields[0])
        sentence_tags.append(fields[-1])
    flush()
    if not tokens:
        raise ValueError(f"{path}: no sentences (every line is blank or -DOCSTART-).")
    return {"tokens": tokens, "tags": tags if width and width > 1 else None, "line": starts}


def read_segmented(path: str | Path) -> dict[str, list]:
    """Word-segmented text, one sentence per line, words separated by whitespace (SIGHAN bakeoff style) ->
    characters with B/M/E/S tags: `{"tokens", "tags", "line"}`. Blank lines are skipped."""
    from .metrics import words_to_bmes

    tokens, tags, starts = [], [], []
    for number, line in enumerate(_lines(path), start=1):
        words = line.split()
        if not words:
            continue
        tokens.append([c for w in words for c in w])
        tags.append(words_to_bmes(words))
        starts.append(number)
    if not tokens:
        raise ValueError(f"{path}: no sentences (every line is blank).")
    return {"tokens": tokens, "tags": tags, "line": starts}


def read_tsv(path: str | Path) -> dict[str, list]:
    """A tab-separated table with a header row -> `{column: values, ..., "line": [...]}`. Quotes are text
    (TSV sets such as SST-2 hold unbalanced quotes); every row must have as many fields as the header."""
    lines = _lines(path)
    header_at = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        raise ValueError(f"{path}: the file is empty.")
    header = [h.strip() for h in lines[header_at].split("\t")]
    if len(set(header)) != len(header) or any(not h for h in header):
        raise ValueError(f"{path} line {header_at + 1}: the header {header} needs distinct, non-empty column names.")
    columns: dict[str, list] = {h: [] for h in header}
    starts = []
    for number, line in enumerate(lines[header_at + 1 :], start=header_at + 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{path} line {number}: {len(fields)} tab-separated fields but the header has {len(header)} ({header}).")
        for h, f in zip(header, fields):
            columns[h].append(f)
        starts.append(number)
    if not starts:
        raise ValueError(f"{path}: a header but no rows.")
    return {**columns, "line": starts}


def detect_format(path: str | Path, token_task: bool) -> str:
    """The format of a data file: json / csv / parquet by extension; `.tsv` is a column file for token tasks
    and a table otherwise; any other text file is a column file when it looks like one (`-DOCSTART-`, or every
    line has the same 2-10 fields and the last field is a tag-like word from a small set), else segmented text."""
    suffix = Path(path).suffix.lower()
    if suffix in (".json", ".jsonl"):
        return "json"
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    if suffix == ".tsv":
        return "conll" if token_task else "tsv"
    if not token_task:
        raise ValueError(f"{path}: cannot tell the format of a {suffix or 'extensionless'} file; pass --file_format tsv (or use .jsonl / .csv / .parquet).")
    sample = [line for line in _lines(path)[:5000] if line.strip()]
    if any(line.split()[0] == DOCSTART for line in sample):
        return "conll"
    widths = {len(line.split("\t") if "\t" in line else line.split()) for line in sample}
    last = {(line.split("\t") if "\t" in line else line.split())[-1].strip() for line in sample}
    if len(widths) == 1 and 2 <= widths.pop() <= 10 and len(last) <= 50 and not any(_CJK.search(t) for t in last):
        return "conll"
    return "segmented"


def read_token_file(path: str | Path, file_format: str) -> datasets.Dataset:
    """A column file or segmented text as a Dataset with `tokens`, `tags` (strings; absent for a tag-less
    column file) and `SOURCE_COLUMN` (the line where each sentence starts)."""
    data = read_conll(path) if file_format == "conll" else read_segmented(path)
    columns = {"tokens": data["tokens"], SOURCE_COLUMN: data["line"]}
    if data["tags"] is not None:
        columns["tags"] = data["tags"]
    return datasets.Dataset.from_dict(columns)


def record_lines(path: str | Path, builder: str, num_rows: int) -> list[int] | None:
    """The line on which each row of a json-lines or csv file starts (as `datasets` reads them: blank lines
    skipped, the csv header not a row); None when rows have no lines (a JSON array, parquet) or the count
    does not match `num_rows`."""
    path = Path(path)
    if builder == "json":
        lines = _lines(path)
        first = next((line.lstrip()[:1] for line in lines if line.strip()), "")
        if first == "[":
            return None
        starts = [i for i, line in enumerate(lines, start=1) if line.strip()]
        if len(starts) == 1 and num_rows != 1:  # a single JSON object of columns
            return None
    elif builder == "csv":
        starts = []
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            line = 1
            for i, record in enumerate(reader):
                if i > 0 and any(field.strip() for field in record):
                    starts.append(line)
                line = reader.line_num + 1
    else:
        return None
    return starts if len(starts) == num_rows else None

