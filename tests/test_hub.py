"""Publishing: model cards, `push_folder` and `scripts/push_to_hub.py` against tests/hub_server.py (a real HTTP
server in its own process, speaking the Hub protocol huggingface_hub uses), and pulling the pushed model back with
`trust_remote_code=True` in a process where hf_charlm cannot be imported."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download, metadata_eval_result
from huggingface_hub.errors import RepositoryNotFoundError
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file, save_file

from hf_charlm.configuration_charlm import AUTO_MAP
from hf_charlm.hub import REMOTE_CODE, HubAuthenticationError, PushResult, push_folder, resolve_token, write_model_card

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = REPO_ROOT / "hf_charlm"
SHA = "0123456789abcdef0123456789abcdef01234567"
TEXT = "hello 你好 world"


def dummy_folder(path: Path, **config) -> Path:
    """A folder shaped like a saved model (no auto_map, no remote code, no real model) plus Trainer leftovers."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "charlm", "hidden_size": 8, **config}))
    save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, str(path / "model.safetensors"))
    (path / "tokenizer.json").write_text("{}")
    (path / "checkpoint-10").mkdir()
    (path / "checkpoint-10" / "optimizer.pt").write_bytes(b"pickle")
    (path / "runs").mkdir()
    (path / "runs" / "events.out.tfevents").write_bytes(b"x")
    (path / "training_args.bin").write_bytes(b"pickle")
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def remote_files(repo_id: str, revision: str = "main") -> set[str]:
    return set(HfApi().list_repo_files(repo_id, revision=revision))


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ upload rules
def test_dry_run_lists_files_and_uploads_nothing(hub, tmp_path, capsys):
    folder = dummy_folder(tmp_path / "out")
    before = sorted(p.name for p in hub.root.glob("*/*"))
    result = push_folder(folder, "tester/dry", dry_run=True)
    assert isinstance(result, PushResult) and result.commit_info is None
    assert list(result) == sorted(["config.json", *REMOTE_CODE, "model.safetensors", "tokenizer.json"])
    assert sorted(result.fixed) == sorted(["config.json", *REMOTE_CODE])
    assert {"configuration_charlm.py", "modeling_charlm.py", "generation_charlm.py"} <= set(REMOTE_CODE)
    assert not HfApi().repo_exists("tester/dry")
    assert sorted(p.name for p in hub.root.glob("*/*")) == before

    script = load_script("push_to_hub")
    assert script.main([str(folder), "tester/dry", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "model.safetensors" in out and "[excluded] checkpoint-10/" in out and "[excluded] training_args.bin" in out
    assert not HfApi().repo_exists("tester/dry")
    with pytest.raises(SystemExit) as exit_info:
        script.main([str(tmp_path / "missing"), "tester/dry"])
    assert exit_info.value.code == 2
    assert "is not a directory" in capsys.readouterr().err


def test_a_corrector_goes_up_with_its_pipeline(tmp_path):
    """A text corrector saved before its folder carried the pipeline gets `custom_pipelines` and the two pipeline
    files on the way up (the folder untouched); any other model gets neither."""
    from hf_charlm.hub import plan_upload

    folder = dummy_folder(tmp_path / "csc", finetuning_task="text-correction")
    before = snapshot(folder)
    plan = plan_upload(folder)
    assert {"pipeline_charlm.py", "spans_charlm.py"} <= set(plan.fixed) and "config.json" in plan.fixed
    assert plan.files["pipeline_charlm.py"] == PACKAGE_DIR / "pipeline_charlm.py"
    config = json.loads(plan.files["config.json"])
    assert config["custom_pipelines"] == {"charlm-text-correction": {
        "impl": "pipeline_charlm.CharLMTextCorrectionPipeline", "pt": ["AutoModelForMaskedLM"], "type": "text"}}
    seq2seq = plan_upload(dummy_folder(tmp_path / "typos", finetuning_task="text-correction", is_encoder_decoder=True))
    assert json.loads(seq2seq.files["config.json"])["custom_pipelines"]["charlm-text-correction"]["pt"] == ["AutoModelForSeq2SeqLM"]
    plain = plan_upload(dummy_folder(tmp_path / "ner", finetuning_task="ner"))
    assert "pipeline_charlm.py" not in plain.files and "custom_pipelines" not in json.loads(plain.files["config.json"])
    assert snapshot(folder) == before


def test_cli_pushes_to_a_branch_and_reports_refusals(hub, tmp_path, capsys):
    folder = dummy_folder(tmp_path / "out")
    script = load_script("push_to_hub")
    # no namespace: the token owner's (whoami-v2) is used
    assert script.main([str(folder), "cli-model", "--revision", "dev", "--commit_message", "from the CLI"]) == 0
    sha = HfApi().model_info("tester/cli-model", revision="dev").sha
    assert f'revision="{sha}"' in capsys.readouterr().out
    assert [c.title for c in HfApi().list_repo_commits("tester/cli-model", revision="dev")][0] == "from the CLI"
    assert remote_files("tester/cli-model") == {".gitattributes"}  # main untouched
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    assert script.main([str(folder), "tester/cli-model"]) == 1
    assert "pytorch_model.bin" in capsys.readouterr().err


def run_push_script(hub, tmp_path, argv: list[str], **env_changes: str | None) -> subprocess.CompletedProcess:
    """scripts/push_to_hub.py in its own process against the test Hub (`None` removes a variable)."""
    env = dict(hub.env, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "push_to_hub.py"), *argv], cwd=tmp_path,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("token", [None, "hf_not_the_right_token"])
def test_cli_without_a_valid_token_says_how_to_log_in(hub, tmp_path, token):
    folder = dummy_folder(tmp_path / "out")
    repo_id = f"tester/no-token-{'unset' if token is None else 'wrong'}"
    # fresh HF_HOME (the fixture's): no saved login either
    proc = run_push_script(hub, tmp_path, [str(folder), repo_id], HF_TOKEN=token)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    message = lines[-1]
    assert message.startswith("push_to_hub: ") and "hf auth login" in message and "HF_TOKEN" in message
    if token is None:  # checked before anything else: the message is all there is
        assert len(lines) == 1 and "no Hugging Face token" in message, proc.stderr
    else:  # the folder was checked first (its warnings may precede), then the Hub refused the token
        assert "rejected the token from HF_TOKEN" in message and token not in proc.stderr + proc.stdout
        assert [line for line in lines if line.startswith("push_to_hub:")] == [message]
    assert not HfApi().repo_exists(repo_id)
    # the same folder goes up once a token is there
    proc = run_push_script(hub, tmp_path, [str(folder), repo_id])
    assert proc.returncode == 0, proc.stderr
    assert HfApi().repo_exists(repo_id)


@pytest.mark.parametrize(
    "bad",
    ["pytorch_model.bin", "weights.pt", "state.pkl", "model.ckpt", ".env", ".env.local", "token", "sub/id_rsa",
     "key.pem", ".netrc", ".git/config", ".huggingface/token", "link-to-outside", "linked-dir"],
)
def test_refuses_pickles_secrets_and_links_outside(hub, tmp_path, bad):
    folder = dummy_folder(tmp_path / "out")
    outside = tmp_path / "secret.txt"
    outside.write_text("do not upload")
    if bad == "link-to-outside":
        (folder / bad).symlink_to(outside)
    elif bad == "linked-dir":
        (folder / bad).symlink_to(tmp_path, target_is_directory=True)
    else:
        (folder / bad).parent.mkdir(parents=True, exist_ok=True)
        (folder / bad).write_bytes(b"x")
    named = bad.split("/")[0] + "/" if bad.startswith((".git/", ".huggingface/")) else bad
    with pytest.raises(ValueError, match=re.escape(named)):
        push_folder(folder, "tester/refused")
    assert not HfApi().repo_exists("tester/refused")


def test_resolve_token_names_the_source_never_the_token(hub, monkeypatch):
    assert resolve_token() == (hub.token, "HF_TOKEN")
    assert resolve_token("hf_given") == ("hf_given", "the token argument")
    monkeypatch.delenv("HF_TOKEN")  # the fixture's HF_HOME is fresh: no saved login
    with pytest.raises(HubAuthenticationError, match=r"no Hugging Face token found.*`hf auth login`.*HF_TOKEN"):
        resolve_token()
    with pytest.raises(PermissionError):  # what callers that do not know hf_charlm catch
        push_folder(dummy_folder(Path(hub.cache_dir).parent / "out"), "tester/never")
    assert not HfApi(token=hub.token).repo_exists("tester/never")


# Fake credentials, assembled at run time so that this file holds nothing a secret scanner would flag.
FAKE = "Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJk"  # 36 letters and digits
SECRET_FILES = {
    # file: (content, the kind the refusal names, the secret itself)
    "hf_token.txt": ("hf_" + FAKE[:34] + "\n", "Hugging Face token", "hf_" + FAKE[:34]),
    "credentials.json": ('{\n  "api_key": "' + FAKE[:24] + '"\n}\n', "API key", FAKE[:24]),
    "notes/aws.cfg": ("[default]\naws_access_key_id = AKIA" + FAKE[:16].upper() + "\n", "AWS access key",
                      "AKIA" + FAKE[:16].upper()),
    "deploy/key.txt": ("-----BEGIN OPENSSH " + "PRIVATE KEY-----\n" + FAKE + "\n-----END OPENSSH PRIVATE KEY-----\n",
                       "private key", FAKE),
    "settings.yaml": ("user: me\npassword: " + FAKE[:12] + "\n", "password", FAKE[:12]),
    "run.sh": ("export GITHUB_TOKEN=gh" + "p_" + FAKE + "\n", "GitHub token", "gh" + "p_" + FAKE),
    "client.py": ('OPENAI_API_KEY = "s' + "k-proj-" + FAKE + '"\n', "OpenAI-style API key", "s" + "k-proj-" + FAKE),
    "train_config.json": ('{"hub_token": "hf_' + FAKE[:34] + '", "lr": 0.001}', "Hugging Face token", FAKE[:34]),
}


@pytest.mark.parametrize("name", list(SECRET_FILES))
def test_refuses_files_whose_contents_hold_secrets(hub, tmp_path, name):
    content, kind, secret = SECRET_FILES[name]
    folder = dummy_folder(tmp_path / "out")
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(content)
    repo_id = "tester/leaky-" + re.sub(r"[^a-z]", "-", name)
    with pytest.raises(ValueError) as error:
        push_folder(folder, repo_id)
    message = str(error.value)
    assert re.search(rf"{re.escape(name)} \(contains an? {kind}", message), message
    assert secret not in message
    assert not HfApi().repo_exists(repo_id)
    with pytest.raises(ValueError):  # a dry run refuses too
        push_folder(folder, repo_id, dry_run=True)
    if name == "hf_token.txt":  # the script: exit 1, file and kind named, the secret not printed
        proc = run_push_script(hub, tmp_path, [str(folder), repo_id])
        assert proc.returncode == 1 and name in proc.stderr and kind in proc.stderr
        assert secret not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr


def test_secret_scan_passes_normal_model_files(hub, tmp_path):
    """A real saved model folder, its model card (with the security note) and the project's own code and docs: no
    false alarm."""
    from hf_charlm import CharLMForCausalLM, config_from_preset, train_char_tokenizer

    tokenizer = train_char_tokenizer(["hello world", "你好"])
    config = config_from_preset("tiny", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64)
    folder = tmp_path / "run"
    CharLMForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    card = write_model_card(folder, task="causal_lm", model_name="charlm-tiny", hyperparameters={"max_steps": 0},
                            results={"eval_loss": 5.0}, datasets=[], language=["en"], repo_id="tester/charlm-tiny")
    assert "## Security" in card.read_text(encoding="utf-8") and "token" in card.read_text(encoding="utf-8")
    docs = folder / "docs"
    docs.mkdir()
    for path in [REPO_ROOT / "README.md", *REPO_ROOT.glob("model_cards/*.md"), *PACKAGE_DIR.glob("*.py"),
                 *(REPO_ROOT / "scripts").glob("*.py"), REPO_ROOT / "tests" / "hub_server.py"]:
        (docs / f"{path.parent.name}-{path.name}").write_bytes(path.read_bytes())
    # look-alikes that are not secrets: placeholders, environment lookups, special tokens, prose
    (docs / "settings.yaml").write_text('password: "<your password>"\napi_key: ${API_KEY}\nsecret: null\n'
                                        'hub_token: "<HUB_TOKEN>"\npad_token: "<pad>"\n')
    (docs / "client.py").write_text('import os\napi_key = os.environ["API_KEY"]\npassword: str | None = None\n'
                                    'secret_sauce = "a long string, not a secret"\n')
    uploaded = push_folder(folder, "tester/clean", dry_run=True)
    assert {"README.md", "config.json", "tokenizer.json", "tokenizer_config.json", "docs/client.py"} <= set(uploaded)
    assert len([p for p in uploaded if p.startswith("docs/")]) > 20


def test_push_fixes_remote_only_and_excludes_trainer_state(hub, tmp_path):
    folder = dummy_folder(tmp_path / "out")
    (folder / "inside.json").symlink_to(folder / "tokenizer.json")  # a link inside the folder is fine
    before = snapshot(folder)
    result = push_folder(folder, "tester/fixed", commit_message="first upload")
    assert snapshot(folder) == before  # nothing written into the user's folder
    assert result.commit_info.oid == HfApi().model_info("tester/fixed").sha
    assert remote_files("tester/fixed") == {".gitattributes", "config.json", "inside.json", "model.safetensors",
                                            "tokenizer.json", *REMOTE_CODE}
    config = json.loads(Path(hf_hub_download("tester/fixed", "config.json")).read_text())
    assert config["auto_map"] == AUTO_MAP and config["hidden_size"] == 8
    for name in REMOTE_CODE:
        assert Path(hf_hub_download("tester/fixed", name)).read_bytes() == (PACKAGE_DIR / name).read_bytes()
    assert load_file(hf_hub_download("tester/fixed", "model.safetensors"))["w"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_second_commit_pins_revisions_and_branches(hub, tmp_path):
    folder = dummy_folder(tmp_path / "out", note="v1")
    save_file({"x": torch.zeros(1)}, str(folder / "extra.safetensors"))
    first = push_folder(folder, "tester/history").commit_info.oid

    (folder / "config.json").write_text(json.dumps({"model_type": "charlm", "hidden_size": 8, "note": "v2"}))
    (folder / "extra.safetensors").unlink()
    second = push_folder(folder, "tester/history", commit_message="v2").commit_info.oid
    assert first != second
    assert [c.commit_id for c in HfApi().list_repo_commits("tester/history")][:2] == [second, first]

    def note(revision):
        return json.loads(Path(hf_hub_download("tester/history", "config.json", revision=revision)).read_text())["note"]

    assert (note(first), note(second), note("main")) == ("v1", "v2", "v2")
    assert "extra.safetensors" in remote_files("tester/history", first)
    assert "extra.safetensors" not in remote_files("tester/history", "main")  # stale weights removed
    assert HfApi().model_info("tester/history", revision=first).sha == first

    (folder / "config.json").write_text(json.dumps({"model_type": "charlm", "hidden_size": 8, "note": "dev"}))
    dev = push_folder(folder, "tester/history", revision="dev").commit_info.oid
    assert (note("dev"), note(dev), note("main")) == ("dev", "dev", "v2")


def test_private_repo_is_not_readable_without_token(hub, tmp_path):
    folder = dummy_folder(tmp_path / "out")
    push_folder(folder, "tester/secret-model", private=True)
    assert HfApi().model_info("tester/secret-model").private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("tester/secret-model", token=False)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/secret-model", "config.json", token=False, cache_dir=tmp_path / "anon")
    assert hf_hub_download("tester/secret-model", "config.json", cache_dir=tmp_path / "authed")

    push_folder(folder, "tester/open-model")
    with pytest.raises(ValueError, match="public"):
        push_folder(folder, "tester/open-model", private=True)


# ------------------------------------------------------------------------------------------------- model cards
CARD_CASES = {
    "causal_lm": ({"eval_loss": 1.5, "eval_runtime": 2.0, "epoch": 1.0}, "text-generation", None),
    "masked_lm": ({"eval_loss": 2.0, "eval_masked_accuracy": 0.6, "eval_masked_bits_per_char": 2.0 / math.log(2)},
                  "fill-mask", None),
    "token_classification": ({"eval_precision": 0.8, "eval_recall": 0.7, "eval_f1": 0.75, "test_f1": 0.72},
                             "token-classification", "tester/charlm-tiny"),
    "sequence_classification": ({"eval_accuracy": 0.9, "eval_macro_f1": 0.88}, "text-classification",
                                "tester/charlm-tiny"),
}


@pytest.mark.parametrize("task", list(CARD_CASES))
def test_model_card_metadata_is_valid(hub, tmp_path, task):
    results, pipeline_tag, base_model = CARD_CASES[task]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "charlm", "backbone": "gru", "hidden_size": 32,
                                                      "id2label": {"0": "NEG", "1": "POS"}}))
    path = write_model_card(
        tmp_path, task=task, model_name=f"charlm-{task}", hyperparameters={"learning_rate": 3e-4, "max_steps": 100},
        results=results, datasets=["tester/corpus"], language=["zh", "en"], base_model=base_model,
        dataset_name="Test corpus", repo_id="tester/charlm", revision=SHA, extra={"seed": 7},
    )
    text = path.read_text(encoding="utf-8")
    ModelCard(text).validate()  # POST /api/validate-yaml on the test hub

    data = ModelCard(text).data.to_dict()
    assert data["pipeline_tag"] == pipeline_tag and data["library_name"] == "transformers"
    assert {"character-level", "charlm"} <= set(data["tags"]) and data["language"] == ["zh", "en"]
    assert data.get("base_model") == base_model and data["datasets"] == ["tester/corpus"]
    name, evals = model_index_to_eval_results(data["model-index"])
    got = {(e.dataset_split, e.metric_type, e.metric_name): e.metric_value for e in evals}
    if task == "causal_lm":
        assert got == {("validation", "loss", "Loss (nats per token)"): 1.5,
                       ("validation", "bits_per_character", "Bits per character"): 1.5 / math.log(2),
                       ("validation", "perplexity", "Perplexity"): math.exp(1.5)}
    elif task == "masked_lm":  # no causal bits per character or perplexity derived from a masked loss
        assert got == {("validation", "loss", "Loss (nats per masked character)"): 2.0,
                       ("validation", "accuracy", "Masked-character accuracy"): 0.6,
                       ("validation", "bits_per_character", "Bits per masked character"): 2.0 / math.log(2)}
        assert 'pipeline("fill-mask"' in text and "今天天<mask>很好。" in text
    elif task == "token_classification":
        assert got[("validation", "f1", "F1")] == 0.75 and got[("test", "f1", "F1")] == 0.72 and len(got) == 4
        assert "`NEG`, `POS`" in text
    else:
        assert got == {("validation", "accuracy", "Accuracy"): 0.9, ("validation", "f1", "Macro F1"): 0.88}
    # the same shape huggingface_hub's own helper writes
    reference = metadata_eval_result(
        model_pretty_name=name, task_pretty_name=evals[0].task_name, task_id=pipeline_tag,
        metrics_pretty_name=evals[0].metric_name, metrics_id=evals[0].metric_type, metrics_value=evals[0].metric_value,
        dataset_pretty_name="Test corpus", dataset_id="tester/corpus", dataset_split="validation",
    )["model-index"][0]["results"][0]
    mine = data["model-index"][0]["results"][0]
    assert mine["task"] == reference["task"] and mine["dataset"] == reference["dataset"]
    reference["metrics"][0].pop("verified")  # self-reported results carry no verification flag
    assert mine["metrics"][0] == reference["metrics"][0]

    assert f'revision = "{SHA}"' in text and "trust_remote_code=True" in text and 'repo_id = "tester/charlm"' in text
    assert "| learning_rate | 0.0003 |" in text and "| seed | 7 |" in text and "runtime" not in text
    assert "## Security" in text and "safetensors" in text


def test_noisy_channel_card(hub, tmp_path):
    """The card of a saved noisy-channel corrector (scripts/build_corrector.py writes it): correction scores under
    their names in a model index the Hub accepts, usage through the package's pipeline (no remote code)."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "charlm", "hidden_size": 32}))
    results = {"eval_sentence_correction_f1": 0.7, "test_sentence_correction_precision": 0.8,
               "test_sentence_correction_recall": 0.6, "test_false_positive_rate": 0.02}
    path = write_model_card(tmp_path, task="noisy_channel", model_name="csc-corrector",
                            hyperparameters={"margin": 0.0}, results=results, datasets=[],
                            dataset_name="peoples_daily_csc", language=["zh"], repo_id="tester/csc", revision=SHA,
                            extra={"sighan2015_test: sentence correction F1": "0.2771"})
    text = path.read_text(encoding="utf-8")
    ModelCard(text).validate()
    data = ModelCard(text).data.to_dict()
    assert data["pipeline_tag"] == "text2text-generation" and "noisy-channel" in data["tags"]
    _, evals = model_index_to_eval_results(data["model-index"])
    assert {(e.dataset_split, e.metric_type, e.metric_name): e.metric_value for e in evals} == {
        ("validation", "f1", "Sentence correction F1"): 0.7, ("test", "precision", "Sentence correction precision"): 0.8,
        ("test", "recall", "Sentence correction recall"): 0.6,
        ("test", "false_positive_rate", "False-positive rate"): 0.02}
    assert 'pipeline("text-correction", model=repo_id, revision=revision)' in text and f'revision = "{SHA}"' in text
    usage = text.split("## How to use")[1].split("## How it was built")[0]
    assert "trust_remote_code" not in usage and "| sighan2015_test: sentence correction F1 | 0.2771 |" in text


def test_hub_rejects_bad_card_metadata(hub, tmp_path):
    HfApi().create_repo("tester/bad-card")
    bad_index = ("---\nlicense: mit\nmodel-index:\n- name: m\n  results:\n  - task: {type: text-generation}\n"
                 "    dataset: {type: d}\n    metrics: [{type: loss}]\n---\n# m\n")
    with pytest.raises(ValueError, match=r"dataset\.name.*\n.*metrics\[0\]\.value"):
        HfApi().upload_file(path_or_fileobj=bad_index.encode(), path_in_repo="README.md", repo_id="tester/bad-card")
    with pytest.raises(ValueError, match="license"):
        ModelCard("---\nlicense: not-a-license\n---\n# m\n").validate()
    with pytest.raises(ValueError, match="Hub model id"):
        write_model_card(tmp_path, task="ner", model_name="m", hyperparameters={}, results={}, datasets=[],
                         language=["zh"], base_model="/home/me/outputs/pretrain")


# ------------------------------------------------------------------------------------ pull without hf_charlm
PULL = r"""
import sys
sys.modules["hf_charlm"] = None  # a user who has transformers but not hf_charlm
try:
    import hf_charlm
    raise SystemExit("hf_charlm is importable in the pull process")
except ImportError:
    pass
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

repo_id, out = sys.argv[1], sys.argv[2]
for i, revision in enumerate(sys.argv[3:]):
    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(repo_id, revision=revision, trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    ids = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    save_file({"input_ids": ids["input_ids"], "logits": logits.contiguous()}, f"{out}.{i}")
for snippet in SNIPPETS:  # the usage snippets of model cards, as a user would paste them
    exec(snippet, {})
"""


def card_snippet(card: Path) -> str:
    return card.read_text(encoding="utf-8").split("```python\n")[1].split("```")[0]


def pull(hub, tmp_path, repo_id: str, revisions: list[str], offline: bool = False,
         snippets: tuple[str, ...] = ()) -> list[dict]:
    env = dict(hub.env, OMP_NUM_THREADS=str(torch.get_num_threads()), PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    out = tmp_path / ("offline" if offline else "online")
    code = f"TEXT = {TEXT!r}\nSNIPPETS = {list(snippets)!r}\n" + PULL
    proc = subprocess.run([sys.executable, "-c", code, repo_id, str(out), *revisions], cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not snippets or "'label'" in proc.stdout  # the text-classification snippet printed its answer
    assert not snippets or "'corrected_text'" in proc.stdout  # and the corrector's, through its shipped pipeline
    return [load_file(f"{out}.{i}") for i in range(len(revisions))]


def test_pushed_model_loads_without_hf_charlm_online_then_offline(hub, tmp_path):
    from hf_charlm import (
        CharLMForCausalLM,
        CharLMForMaskedLM,
        CharLMForSequenceClassification,
        CharLMForTokenClassification,
        config_from_preset,
        train_char_tokenizer,
    )

    tokenizer = train_char_tokenizer(["hello world", "你好"])
    config = config_from_preset("tiny", backbone="transformer", vocab_size=len(tokenizer), hidden_size=32,
                                num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    model = CharLMForCausalLM(config).eval()
    folder = tmp_path / "run"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_card(folder, task="causal_lm", model_name="charlm-tiny", hyperparameters={"max_steps": 0},
                     results={"eval_loss": 5.0}, datasets=[], language=["en", "zh"], repo_id="tester/charlm-tiny")
    first = push_folder(folder, "tester/charlm-tiny").commit_info.oid
    # the card of the second commit pins the first: the usage snippet must run as written
    card = write_model_card(folder, task="causal_lm", model_name="charlm-tiny", hyperparameters={"max_steps": 0},
                            results={"eval_loss": 5.0}, datasets=[], language=["en", "zh"],
                            repo_id="tester/charlm-tiny", revision=first)
    second = push_folder(folder, "tester/charlm-tiny", commit_message="pin the card").commit_info.oid
    assert second != first
    snippets = [card_snippet(card)]
    assert f'revision = "{first}"' in snippets[0] and "trust_remote_code=True" in snippets[0]
    for task, head in (("token_classification", CharLMForTokenClassification),
                       ("sequence_classification", CharLMForSequenceClassification)):
        labels = {0: "O", 1: "B-LOC", 2: "I-LOC"}
        head_dir = tmp_path / task
        head(config_from_preset("tiny", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=64, id2label=labels,
                                label2id={v: k for k, v in labels.items()})).save_pretrained(head_dir)
        tokenizer.save_pretrained(head_dir)
        snippets.append(card_snippet(write_model_card(
            head_dir, task=task, model_name=f"charlm-{task}", hyperparameters={}, results={"eval_f1": 0.5},
            datasets=[], language=["zh"], base_model="tester/charlm-tiny", repo_id=f"tester/charlm-{task}")))
        push_folder(head_dir, f"tester/charlm-{task}")
    # a corrector: its card's snippet runs the pipeline shipped in the repository (custom_pipelines), no package
    corrector_dir = tmp_path / "text_correction"
    CharLMForMaskedLM(config_from_preset("tiny", vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=64,
                                         finetuning_task="text-correction")).save_pretrained(corrector_dir)
    tokenizer.save_pretrained(corrector_dir)
    snippets.append(card_snippet(write_model_card(
        corrector_dir, task="text_correction", model_name="charlm-csc", hyperparameters={},
        results={"eval_sentence_correction_f1": 0.5}, datasets=[], language=["zh"], base_model="tester/charlm-tiny",
        repo_id="tester/charlm-csc", extra={"example": "你好 world"})))
    assert "trust_remote_code=True" in snippets[-1] and "hf_charlm" not in snippets[-1]
    push_folder(corrector_dir, "tester/charlm-csc")
    assert {"pipeline_charlm.py", "spans_charlm.py"} <= remote_files("tester/charlm-csc")

    ids = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        expected = model(**ids).logits

    online = pull(hub, tmp_path, "tester/charlm-tiny", ["main"], snippets=snippets)
    offline = pull(hub, tmp_path, "tester/charlm-tiny", ["main", first], offline=True)
    for got in online + offline:
        assert torch.equal(got["input_ids"], ids["input_ids"])
        assert torch.equal(got["logits"], expected)
    cached = hub.cache_dir / "models--tester--charlm-tiny"
    assert (cached / "refs" / "main").read_text() == second
    for sha in (first, second):
        assert (cached / "snapshots" / sha / "modeling_charlm.py").exists()
    readmes = [Path(hf_hub_download("tester/charlm-tiny", "README.md", revision=sha)).read_text(encoding="utf-8")
               for sha in (first, second)]
    assert 'revision = "main"' in readmes[0] and f'revision = "{first}"' in readmes[1]


def test_training_script_push_to_hub_flag_matches_push_script(hub, tmp_path):
    """`--push_to_hub` on a training script uploads what scripts/push_to_hub.py would: the card, safetensors and
    the remote code, never training_args.bin or checkpoints."""
    import subprocess
    import sys

    from huggingface_hub import HfApi

    from hf_charlm.hub import push_folder

    root = Path(__file__).resolve().parents[1]
    train = tmp_path / "train.txt"
    train.write_text("\n".join(f"第{i}句话，北京天气很好。" for i in range(200)), encoding="utf-8")
    out = tmp_path / "run"
    env = {**hub.env, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root), "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "pretrain.py"), "--train_file", str(train), "--output_dir", str(out),
         "--config_overrides", "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,max_position_embeddings=64",
         "--block_size", "32", "--max_steps", "4", "--save_steps", "2", "--eval_steps", "4", "--disable_tqdm", "true",
         "--sample_max_new_tokens", "4", "--push_to_hub", "true", "--hub_model_id", "tester/pushed-by-flag"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "checkpoint-4").is_dir() and (out / "training_args.bin").is_file()  # there locally ...
    remote = sorted(f for f in HfApi().list_repo_files("tester/pushed-by-flag") if f != ".gitattributes")
    assert "training_args.bin" not in remote and not any(f.startswith("checkpoint-") for f in remote)  # ... not pushed
    assert remote == sorted(push_folder(out, "tester/same-by-script", dry_run=True))
    assert {"model.safetensors", "config.json", "modeling_charlm.py", "configuration_charlm.py", "README.md"} <= set(remote)
    assert "pin revision=" in proc.stdout
