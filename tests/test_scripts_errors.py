"""Clear errors and clean outputs of the shared script machinery (hf_charlm.training) and of pretrain.py /
evaluate_lm.py, run in-process on small real data: checked training numbers, too-short text, unreadable files
named with line / byte offset and cause, output folders (not empty, left empty), resuming, the evaluation
progress bar, and `import hf_charlm.data` without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_charlm.training import (
    UsageError,
    check_output_dir,
    load_files,
    resolve_resume,
    run_main,
)
from tests.conftest import run_script_in_process

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN = ROOT / "scripts" / "pretrain.py"
EVALUATE = ROOT / "scripts" / "evaluate_lm.py"
TINY = "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64,max_position_embeddings=64"
QUICK = ["--config_overrides", TINY, "--block_size", "32", "--max_steps", "1", "--disable_tqdm", "true"]


@pytest.fixture
def train_txt(tmp_path) -> Path:
    path = tmp_path / "train.txt"
    path.write_text("\n".join(f"第{i}句话，北京天气很好，我们去公园散步。" for i in range(60)) + "\n", encoding="utf-8")
    return path


# ---- point 9: numbers checked before anything is created; too-short text ------------------------------------


@pytest.mark.parametrize("flag,value,needle", [
    ("--per_device_train_batch_size", "0", "--per_device_train_batch_size=0 must be >= 1"),
    ("--per_device_train_batch_size", "-1", "--per_device_train_batch_size=-1 must be >= 1"),
    ("--per_device_eval_batch_size", "0", "--per_device_eval_batch_size=0 must be >= 1"),
    ("--gradient_accumulation_steps", "0", "--gradient_accumulation_steps=0 must be >= 1"),
    ("--learning_rate", "-0.1", "--learning_rate=-0.1 must be >= 0"),
    ("--max_steps", "0", "--max_steps=0 must be a positive number"),
    ("--save_steps", "-5", "--save_steps=-5.0 must be > 0"),
    ("--adam_beta2", "1.5", "--adam_beta2=1.5 must be in [0, 1)"),
    ("--warmup_steps", "-3", "warmup_steps"),  # TrainingArguments' own ValueError, now exit 2 too
    ("--max_eval_blocks_during_training", "-1", "must be >= 0"),
])
def test_bad_training_numbers_exit_2_and_create_nothing(flag, value, needle, tmp_path, train_txt, capsys):
    out = tmp_path / "out"
    code, last = run_script_in_process(PRETRAIN, ["--train_file", str(train_txt), "--output_dir", str(out), *QUICK,
                                                  flag, value], capsys)
    assert code == 2 and last.startswith("error: ") and needle in last, last
    assert not out.exists()


def test_one_character_text_exit_2_names_file_and_size(tmp_path, capsys):
    one = tmp_path / "one.txt"
    one.write_text("中", encoding="utf-8")
    out = tmp_path / "out"
    code, last = run_script_in_process(PRETRAIN, ["--train_file", str(one), "--output_dir", str(out), *QUICK], capsys)
    assert code == 2 and "has 1 text(s): too few to set 5% aside for validation" in last, last
    assert not out.exists()
    # with its own validation file, the training text is what is too short: file, size in bytes, block size
    valid = tmp_path / "valid.txt"
    valid.write_text("北京天气很好。" * 20, encoding="utf-8")
    code, last = run_script_in_process(
        PRETRAIN, ["--train_file", str(one), "--validation_file", str(valid), "--output_dir", str(out), *QUICK], capsys)
    assert code == 2, last
    assert f"--train_file {one} (3 bytes): too short for one block" in last
    assert "3 tokens long" in last and "block_size=32" in last and "smaller --block_size" in last
    assert not out.exists()


# ---- point 9: output folders left behind ----------------------------------------------------------------------


def test_failed_run_removes_the_empty_output_dir_it_created(tmp_path):
    new, kept, existing = tmp_path / "new", tmp_path / "kept", tmp_path / "existing"
    existing.mkdir()

    def failing_main(path: Path, write: bool):
        def main():
            check_output_dir(str(path), overwrite=False, resuming=False)
            (path / "checkpoint-1").mkdir(parents=True)  # as the Trainer does before its first save
            if write:
                (path / "checkpoint-1" / "model.safetensors").write_bytes(b"weights")
            raise RuntimeError("failed mid-run")
        return main

    for path, write in ((new, False), (kept, True), (existing, False)):
        with pytest.raises(RuntimeError, match="failed mid-run"):
            run_main(failing_main(path, write))
    assert not new.exists()  # created by the run, left empty: gone
    assert (kept / "checkpoint-1" / "model.safetensors").read_bytes() == b"weights"  # a checkpoint stays
    assert existing.is_dir()  # not created by the run: left alone

    def interrupted():
        check_output_dir(str(new), overwrite=False, resuming=False)
        new.mkdir()
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        run_main(interrupted)
    assert exc.value.code == 130 and not new.exists()


@pytest.mark.parametrize("content,needle", [
    ({"notes.txt": "my notes"}, "is not empty (notes.txt)"),
    ({"data/a.csv": "x"}, "is not empty (data/)"),
    ({"checkpoint-20/trainer_state.json": "{}"}, "holds an unfinished run (checkpoint-20, no final model)"),
])
def test_output_dir_with_other_files_is_refused(content, needle, tmp_path, train_txt, capsys):
    out = tmp_path / "out"
    for name, text in content.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    code, last = run_script_in_process(PRETRAIN, ["--train_file", str(train_txt), "--output_dir", str(out), *QUICK], capsys)
    assert code == 2 and needle in last and "--overwrite_output_dir" in last, last
    assert ("--resume_from_checkpoint last" in last) == ("checkpoint" in needle)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_empty_existing_output_dir_is_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    check_output_dir(str(tmp_path / "empty"), overwrite=False, resuming=False)  # raises if refused


# ---- point 10: which file, where, why ------------------------------------------------------------------------


def _error(*args, **kwargs) -> str:
    with pytest.raises(UsageError) as exc:
        load_files(*args, **kwargs)
    return str(exc.value)


def test_non_utf8_and_binary_files_name_file_offset_and_cause(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("hello\nworld\n" * 10, encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("hello\nwörld\n".encode("latin-1"))
    msg = _error(str(good), str(latin))
    assert msg.startswith(f"--validation_file {latin}: not UTF-8 text: byte 0xf6 at byte offset 7 (line 2)"), msg
    assert str(good) not in msg and "convert it to UTF-8" in msg
    binary = tmp_path / "model.txt"
    binary.write_bytes(b"\x00\x01\x02\n" + bytes(range(128, 256)))
    msg = _error(str(binary), None)
    assert f"--train_file {binary}: not UTF-8 text: byte 0x80 at byte offset 4 (line 2)" in msg
    assert "binary file" in msg
    # a bad byte after the first MiB (read in chunks, a character split between chunks)
    big = tmp_path / "big.txt"
    big.write_bytes(("好" * 700_000).encode() + b"\nok\n\xff\n")
    assert "byte 0xff at byte offset 2100004 (line 3)" in _error(str(big), None)


def test_jsonl_schema_mismatch_and_bad_json_name_file_line_and_field(tmp_path):
    def jsonl(name: str, rows: list[dict]) -> str:
        (tmp_path / name).write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
        return str(tmp_path / name)

    train = jsonl("train.jsonl", [{"text": f"好{i}", "label": i % 2} for i in range(20)])
    valid = jsonl("valid.jsonl", [{"text": f"好{i}", "label": i % 2} for i in range(5)])
    test = jsonl("test.jsonl", [{"text": "好", "label": 1}, {"text": "坏", "label": 0}, {"text": "中", "label": "neutral"}])
    msg = _error(train, valid, test)
    assert msg.startswith(f"--test_file {test}, line 3: field 'label' is a string (\"neutral\") but a number in "
                          f"--train_file {train} (line 1)"), msg
    (tmp_path / "bad.jsonl").write_text('{"text": "a"}\n{"text": "b"\n{"text": "c"}\n')
    msg = _error(train, str(tmp_path / "bad.jsonl"))
    assert msg.startswith(f"--validation_file {tmp_path / 'bad.jsonl'}, line 2: bad JSON: Expecting ',' delimiter"), msg


def test_csv_column_type_mismatch_names_the_file_and_column(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(f"t{i},{i % 2}" for i in range(20)) + "\n")
    (tmp_path / "test.csv").write_text("text,label\n" + "\n".join(f"t{i},pos" for i in range(5)) + "\n")
    msg = _error(str(tmp_path / "train.csv"), None, str(tmp_path / "test.csv"))
    assert msg.startswith(f"--test_file {tmp_path / 'test.csv'}: column 'label' is Value('large_string') but "
                          f"Value('int64') in --train_file {tmp_path / 'train.csv'}"), msg


def test_pretrain_with_a_non_utf8_file_exits_2(tmp_path, capsys):
    gbk = tmp_path / "gbk.txt"
    gbk.write_bytes(("北京天气很好\n" * 50).encode("gbk"))
    out = tmp_path / "out"
    code, last = run_script_in_process(PRETRAIN, ["--train_file", str(gbk), "--output_dir", str(out), *QUICK], capsys)
    assert code == 2 and f"--train_file {gbk}: not UTF-8 text: byte 0xb1 at byte offset 0 (line 1)" in last, last
    assert not out.exists()


def test_evaluate_lm_script_names_its_file_flag(tmp_path, capsys):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("hello\nwörld\n".encode("latin-1"))
    code, last = run_script_in_process(EVALUATE, ["--model", str(tmp_path), "--file", str(latin)], capsys)
    assert code == 2 and last == (f"error: --file {latin}: not UTF-8 text: byte 0xf6 at byte offset 7 (line 2) is "
                                  "invalid start byte; convert it to UTF-8 first (e.g. iconv -f GBK -t UTF-8 in > out).")


# ---- point 20: resuming says so ------------------------------------------------------------------------------


def _checkpoint(folder: Path, step: int, complete: bool = True) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"weights")
    if complete:  # the Trainer writes trainer_state.json last
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def test_resume_last_announces_and_skips_an_incomplete_checkpoint(tmp_path, capsys):
    from transformers import TrainingArguments

    for step, complete in ((10, True), (20, True), (30, False)):
        _checkpoint(tmp_path, step, complete)
    args = TrainingArguments(output_dir=str(tmp_path), resume_from_checkpoint="last", max_steps=60, report_to="none")
    assert resolve_resume(args) == str(tmp_path / "checkpoint-20")
    out = capsys.readouterr().out
    assert "skipping checkpoint-30: it has no trainer_state.json" in out
    assert f"resuming from checkpoint-20 (step 20 of 60) in {tmp_path}" in out
    args = TrainingArguments(output_dir=str(tmp_path), resume_from_checkpoint=str(tmp_path / "checkpoint-30"), report_to="none")
    with pytest.raises(UsageError, match="no trainer_state.json, so not a complete checkpoint"):
        resolve_resume(args)
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert resolve_resume(args) is None and capsys.readouterr().out == ""


# ---- point 19: evaluate_lm shows progress and says how a .txt file is cut ------------------------------------


@pytest.fixture
def tiny_lm_dir(tmp_path) -> Path:
    from hf_charlm import CharLMForCausalLM, train_char_tokenizer
    from tests.conftest import tiny_config

    text = "北京天气很好，我们去公园散步。\n" * 30
    tok = train_char_tokenizer([text])
    model = CharLMForCausalLM(tiny_config(vocab_size=len(tok)))
    d = tmp_path / "lm"
    model.save_pretrained(d)
    tok.save_pretrained(d)
    (tmp_path / "eval.txt").write_text(text, encoding="utf-8")
    return d


def test_evaluate_lm_progress_bar_follows_tty_and_flag(tiny_lm_dir, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_charlm.lm_eval import evaluate_lm

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_lm_dir), AutoTokenizer.from_pretrained(tiny_lm_dir)
    texts = (tiny_lm_dir.parent / "eval.txt").read_text(encoding="utf-8").splitlines()
    shown = evaluate_lm(model, tok, texts, block_size=32, progress=True)
    err = capsys.readouterr().err
    assert "bits per char" in err and "100%" in err
    auto = evaluate_lm(model, tok, texts, block_size=32)  # stderr is not a terminal under capsys: no bar
    assert capsys.readouterr().err == "" and auto == shown
    # every character is in the vocabulary: one scored token per character and per text end
    assert shown["nats_per_token"] == pytest.approx(shown["nats_per_char"], rel=1e-9)


def _run_capturing(script: Path, argv: list[str], capsys) -> tuple[int, str, str]:
    """Runs a script's `__main__` in this process; its exit status, stdout and stderr."""
    import runpy

    old, sys.argv = sys.argv, [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_lm_script_says_how_a_txt_file_is_cut(tiny_lm_dir, tmp_path, capsys):
    code, out, _ = _run_capturing(EVALUATE, ["--help"], capsys)
    help_text = " ".join(out.split())  # argparse wraps the help text
    assert code == 0 and "scored whole as one text (line breaks count as characters)" in help_text
    eval_txt = tmp_path / "eval.txt"
    args = ["--model", str(tiny_lm_dir), "--file", str(eval_txt), "--block_size", "32", "--output_file", str(tmp_path / "r.json")]
    code, out, err = _run_capturing(EVALUATE, [*args, "--disable_tqdm", "false"], capsys)
    assert code == 0, err
    n_chars = len(eval_txt.read_text(encoding="utf-8"))
    assert f"evaluating {eval_txt}: the whole file as one text of {n_chars:,} characters; windows of 32 tokens every " \
           "16 tokens" in err
    assert "bits per char" in err and "100%" in err  # the bar, forced on
    assert json.loads(out)["bits_per_char"] > 0  # stdout is the JSON alone
    code, _, err = _run_capturing(EVALUATE, [*args, "--disable_tqdm", "true"], capsys)
    assert code == 0 and "bits per char" not in err
    assert json.loads((tmp_path / "r.json").read_text())["bits_per_char"] > 0


# ---- #12: `import hf_charlm.data` stays light ----------------------------------------------------------------


def _run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                          "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.parametrize("module", ["hf_charlm.data", "hf_charlm.metrics", "hf_charlm.tokenization_charlm"])
def test_import_data_module_does_not_import_torch(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'transformers.modeling_utils') if m in sys.modules))"
    assert _run_python(code) == "[]"


AUTO_CHECK = """
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM,
                          AutoModelForSequenceClassification, AutoModelForTokenClassification)
from transformers.pipelines import PIPELINE_REGISTRY
config = AutoConfig.for_model("charlm", hidden_size=32, num_hidden_layers=1, num_attention_heads=4, vocab_size=300)
names = [type(config).__name__] + [type(auto.from_config(config)).__name__ for auto in (
    AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForTokenClassification,
    AutoModelForSequenceClassification, AutoModelForSeq2SeqLM)]
print(names, hf_charlm.CharLMForCausalLM is AutoModelForCausalLM._model_mapping[hf_charlm.CharLMConfig],
      "charlm-translation" in PIPELINE_REGISTRY.get_supported_tasks())
"""


@pytest.mark.parametrize("first", ["import hf_charlm", "import transformers.pipelines, transformers.models.auto"])
def test_auto_classes_know_charlm_whichever_is_imported_first(first):
    """The registration waits for transformers' Auto mappings (it must not load torch itself), in either order."""
    out = _run_python(f"{first}\nimport hf_charlm\n{AUTO_CHECK}")
    assert out == ("['CharLMConfig', 'CharLMModel', 'CharLMForCausalLM', 'CharLMForMaskedLM', "
                   "'CharLMForTokenClassification', 'CharLMForSequenceClassification', "
                   "'CharLMForConditionalGeneration'] True True")


def test_classes_imported_from_their_module_save_an_auto_map():
    code = ("from hf_charlm.modeling_charlm import CharLMForCausalLM, CharLMModel\n"
            "from hf_charlm.configuration_charlm import CharLMConfig\n"
            "print(CharLMConfig._auto_class, CharLMModel._auto_class, CharLMForCausalLM._auto_class)")
    assert _run_python(code) == "AutoConfig AutoModel AutoModelForCausalLM"
