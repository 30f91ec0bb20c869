"""Readers for the plain-text formats of tagging and classification sets (hf_charlm.formats), the row numbers they
carry through the validation carve-out, and the windows in which long texts are scored (hf_charlm.training)."""

from __future__ import annotations

import json

import pytest

from hf_charlm import train_char_tokenizer
from hf_charlm.formats import SOURCE_COLUMN, Origin, detect_format, read_conll, read_segmented, read_token_file, read_tsv, record_lines
from hf_charlm.training import UsageError, encode_token_windows, load_finetune_splits, plan_windows

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
"""

CHARS_BMES = "中\tB-ORG\n共\tM-ORG\n中\tM-ORG\n央\tE-ORG\n好\tO\n\n江\tS-PER\n来\tO\n"

SEGMENTED = "迈向  充满  希望  的  新  世纪\n\n一九九八年  新年  讲话\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_read_conll_english_docstart_and_lines(tmp_path):
    data = read_conll(write(tmp_path, "train.conll", CONLL))
    assert data["tokens"] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert data["tags"] == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER"], ["B-LOC"]]
    assert data["line"] == [3, 8, 13]  # the line where each sentence starts


def test_read_conll_char_per_line_tabs(tmp_path):
    data = read_conll(write(tmp_path, "ner.bmes", CHARS_BMES))
    assert data["tokens"] == [list("中共中央好"), ["江", "来"]]
    assert data["tags"] == [["B-ORG", "M-ORG", "M-ORG", "E-ORG", "O"], ["S-PER", "O"]]
    # a tab-separated token may hold a space
    data = read_conll(write(tmp_path, "sp.tsv", "New York\tB-LOC\nis\tO\n"))
    assert data["tokens"] == [["New York", "is"]]


def test_read_conll_tokens_only_and_errors(tmp_path):
    data = read_conll(write(tmp_path, "test.txt", "EU\nrejects\n\nPeter\n"))
    assert data["tokens"] == [["EU", "rejects"], ["Peter"]] and data["tags"] is None
    ds = read_token_file(tmp_path / "test.txt", "conll")
    assert ds.column_names == ["tokens", SOURCE_COLUMN] and ds[SOURCE_COLUMN] == [1, 4]
    with pytest.raises(ValueError, match=r"bad.conll line 3: 3 fields \('Peter NNP B-PER'\) where the file's first line has 2"):
        read_conll(write(tmp_path, "bad.conll", "EU B-ORG\n\nPeter NNP B-PER\n"))
    with pytest.raises(ValueError, match="no sentences"):
        read_conll(write(tmp_path, "empty.conll", "-DOCSTART- O\n\n\n"))


def test_read_segmented_bmes_and_lines(tmp_path):
    data = read_segmented(write(tmp_path, "pku.txt", SEGMENTED))
    assert data["tokens"][0] == list("迈向充满希望的新世纪")
    assert data["tags"][0] == ["B", "E", "B", "E", "B", "E", "S", "S", "B", "E"]
    assert data["tags"][1] == ["B", "M", "M", "M", "E", "B", "E", "B", "E"]
    assert data["line"] == [1, 3]


def test_read_tsv_header_quotes_and_errors(tmp_path):
    data = read_tsv(write(tmp_path, "sst.tsv", 'sentence\tlabel\nit \'s a "charming journey\t1\n\nbad\t0\n'))
    assert data == {"sentence": ['it \'s a "charming journey', "bad"], "label": ["1", "0"], "line": [2, 4]}
    with pytest.raises(ValueError, match=r"bad.tsv line 3: 1 tab-separated fields but the header has 2"):
        read_tsv(write(tmp_path, "bad.tsv", "text\tlabel\ngood\t1\nno label here\n"))


def test_detect_format(tmp_path):
    assert detect_format(write(tmp_path, "a.conll", CONLL), token_task=True) == "conll"
    assert detect_format(write(tmp_path, "b.txt", CHARS_BMES), token_task=True) == "conll"
    assert detect_format(write(tmp_path, "c.txt", "EU B-ORG\nrejects O\n\nPeter B-PER\n"), token_task=True) == "conll"
    assert detect_format(write(tmp_path, "d.utf8", SEGMENTED), token_task=True) == "segmented"
    # two-word segmented lines are not mistaken for a token + tag file: the "tags" would be Chinese words
    assert detect_format(write(tmp_path, "e.txt", "你好 世界\n今天 下雨\n"), token_task=True) == "segmented"
    assert detect_format(write(tmp_path, "f.tsv", "x\tO\n"), token_task=True) == "conll"
    assert detect_format(write(tmp_path, "g.tsv", "text\tlabel\n"), token_task=False) == "tsv"
    assert detect_format(tmp_path / "h.jsonl", token_task=False) == "json"


def test_record_lines_jsonl_and_csv(tmp_path):
    jsonl = write(tmp_path, "a.jsonl", '{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    assert record_lines(jsonl, "json", 3) == [1, 3, 4]
    assert record_lines(write(tmp_path, "b.json", '[{"a": 1}, {"a": 2}]'), "json", 2) is None
    csv_file = write(tmp_path, "c.csv", 'text,label\n"two\nlines",1\nx,0\n')
    assert record_lines(csv_file, "csv", 2) == [2, 4]


def test_carve_out_keeps_the_source_line(tmp_path):
    """Rows moved to the validation split by the seeded carve-out (and shuffled) still know their line."""
    rows = [{"text": f"第{i}条", "label": i % 2} for i in range(40)]
    path = write(tmp_path, "train.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows))
    raw, _, _, origins = load_finetune_splits("review_sentiment", None, None, {"train": str(path)}, "auto", 25, 42, token_task=False)
    assert set(raw) == {"train", "validation"} and raw["validation"].num_rows == 10
    assert origins["validation"] == origins["train"] == Origin("train.jsonl", "line")
    for split in raw:
        for row in raw[split]:
            assert row["text"] == f"第{row[SOURCE_COLUMN] - 1}条"  # line N holds row N - 1
    assert raw["validation"][SOURCE_COLUMN] != sorted(raw["validation"][SOURCE_COLUMN])  # shuffled, still right


def test_builtin_rows_are_indices():
    raw, _, _, origins = load_finetune_splits("peoples_daily_cws", None, None, {}, "auto", 10, 42, token_task=True)
    assert origins["test"].name(5) == "peoples_daily_cws test[5]"
    assert raw["test"][5][SOURCE_COLUMN] == 5


def test_file_errors_exit_as_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="bad.conll line 2"):
        load_finetune_splits("x", None, None, {"train": str(write(tmp_path, "bad.conll", "a O\nb\n"))}, "conll", 10, 0, token_task=True)
    with pytest.raises(UsageError, match=r"--file_format json reads .jsonl, .json files"):
        load_finetune_splits("x", None, None, {"train": str(write(tmp_path, "a.txt", '{"a": 1}'))}, "json", 10, 0, token_task=True)
    with pytest.raises(UsageError, match="no such file"):
        load_finetune_splits("x", None, None, {"train": str(tmp_path / "missing.conll")}, "auto", 10, 0, token_task=True)


def test_plan_windows_tile_every_word_once():
    costs = [3, 1, 4, 1, 5, 2, 2, 3, 1, 3, 5, 2, 1, 2, 4]
    windows = plan_windows(costs, capacity=12, stride=4)
    assert len(windows) > 1
    owned = [w for s, e, own_s, own_e in windows for w in range(own_s, own_e)]
    assert owned == list(range(len(costs)))
    for s, e, own_s, own_e in windows:
        assert s <= own_s <= own_e <= e
        assert sum(costs[s:e]) <= 12 or e == s + 1
    # consecutive windows overlap (context on both sides of a cut)
    assert all(b[0] < a[1] for a, b in zip(windows, windows[1:]))
    # a word longer than the window gets a window of its own; big words still move the windows forward
    assert [w[:2] for w in plan_windows([2, 20, 2], capacity=5, stride=2)] == [(0, 1), (1, 2), (2, 3)]
    big = plan_windows([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9], capacity=12, stride=4)
    assert [w for s, e, own_s, own_e in big for w in range(own_s, own_e)] == list(range(15))
    assert all(b[1] > a[1] for a, b in zip(big, big[1:]))


def test_encode_token_windows_scores_every_word():
    words = [f"w{i}" for i in range(30)]
    tags = [i % 3 for i in range(30)]
    tok = train_char_tokenizer([" ".join(words)])
    import datasets

    ds = datasets.Dataset.from_dict({"tokens": [words, words[:3]], "tags": [tags, tags[:3]]})
    encoded, plan, windowed = encode_token_windows(ds, tok, "tokens", "tags", ["O", "B-X", "I-X"], 24, " ", 6)
    assert windowed == 1 and encoded.num_rows > 2
    assert all(len(ids) <= 24 for ids in encoded["input_ids"])
    # the owned labelled positions, put back together, are exactly the words' tags, in order
    rebuilt: dict[int, list[int]] = {}
    for (example, own_s, own_e), labels in zip(plan, encoded["labels"]):
        rebuilt.setdefault(example, []).extend([x for x in labels if x != -100][own_s:own_e])
    assert rebuilt == {0: tags, 1: tags[:3]}
