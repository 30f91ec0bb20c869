"""Publishing the demo page as a Gradio Space next to a model (`scripts/push_to_hub.py --space`,
`hf_charlm.hub.push_space`) against tests/hub_server.py, then running the downloaded Space's app.py on the model it
names."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi, SpaceCard, snapshot_download
from huggingface_hub.errors import HfHubHTTPError

from hf_charlm import CharLMForTokenClassification
from hf_charlm.hub import plan_space

from .conftest import tiny_config

REPO_ROOT = Path(__file__).resolve().parents[1]
LABELS = ["O", "B-LOC", "I-LOC"]


def ner_folder(path: Path, tokenizer) -> Path:
    config = tiny_config(vocab_size=len(tokenizer), num_labels=3, id2label=dict(enumerate(LABELS)),
                         label2id={n: i for i, n in enumerate(LABELS)}, pad_token_id=tokenizer.pad_token_id)
    CharLMForTokenClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def push(hub, tmp_path, argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(hub.env, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "push_to_hub.py"), *argv], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)


def test_space_plan_holds_the_app_card_and_package():
    files = plan_space(["me/charlm-ner", "me/charlm-lm"])
    card = SpaceCard(files["README.md"].decode("utf-8"))
    assert (card.data.sdk, card.data.app_file, card.data.models) == ("gradio", "app.py", ["me/charlm-ner", "me/charlm-lm"])
    assert card.data.sdk_version and card.data.title == "charlm-ner demo"
    assert "python app.py --model me/charlm-ner --model me/charlm-lm" in card.text
    assert files["app.py"] == REPO_ROOT / "app.py"
    assert {"hf_charlm/__init__.py", "hf_charlm/modeling_charlm.py", "hf_charlm/pipelines.py"} <= set(files)
    assert not [p for p in files if "__pycache__" in p or p.endswith(".pyc") or p.startswith("hf_charlm/datasets/")]
    requirements = files["requirements.txt"].decode().split()
    assert any(r.startswith("transformers") for r in requirements) and not any("gradio" in r for r in requirements)
    with pytest.raises(ValueError, match="repo ids"):
        plan_space(["outputs/charlm-ner/"])


def test_push_script_publishes_model_and_space_that_runs_it(hub, tmp_path, tokenizer):
    folder = ner_folder(tmp_path / "charlm-ner", tokenizer)
    proc = push(hub, tmp_path, [str(folder), "tester/charlm-ner", "--space", "tester/charlm-ner-demo"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Space: " in proc.stdout and "/spaces/tester/charlm-ner-demo/commit/" in proc.stdout

    api = HfApi(token=hub.token)
    remote = set(api.list_repo_files("tester/charlm-ner-demo", repo_type="space"))
    assert {"README.md", "app.py", "requirements.txt", "hf_charlm/__init__.py", "hf_charlm/hub.py"} <= remote
    assert "model.safetensors" in api.list_repo_files("tester/charlm-ner")  # the model went up first
    space = snapshot_download("tester/charlm-ner-demo", repo_type="space", local_dir=tmp_path / "space")
    card = SpaceCard.load(Path(space) / "README.md")
    assert (card.data.sdk, card.data.app_file, card.data.models) == ("gradio", "app.py", ["tester/charlm-ner"])
    assert (Path(space) / "app.py").read_bytes() == (REPO_ROOT / "app.py").read_bytes()

    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed: the downloaded app.py is not run")
    # the Space's own app.py and hf_charlm copy, run from the download, load the model its card names from the Hub
    code = ("import json, app; models, problems = app.load_models(app.default_specs()); "
            "print(json.dumps([[m.name, m.capability, m.label_names] for m in models] + problems))")
    env = dict(hub.env, PYTHONPATH=str(space), OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    env.pop("CHARLM_DEMO_MODELS", None)
    run = subprocess.run([sys.executable, "-c", code], cwd=space, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [["tester/charlm-ner", "ner", LABELS]]


def test_space_update_removes_stale_package_files_and_card_needs_sdk(hub, tmp_path):
    from hf_charlm.hub import push_space

    api = HfApi(token=hub.token)
    first = push_space("tester/demo-space", ["tester/some-model"])
    api.upload_file(path_or_fileobj=b"x = 1\n", path_in_repo="hf_charlm/old_module.py", repo_id="tester/demo-space",
                    repo_type="space")
    second = push_space("tester/demo-space", ["tester/some-model"])
    assert second.commit_info.oid != first.commit_info.oid
    assert "hf_charlm/old_module.py" not in api.list_repo_files("tester/demo-space", repo_type="space")
    # the test Hub, like the Hub, wants a Space card to name its SDK
    with pytest.raises(HfHubHTTPError, match="sdk"):
        api.upload_file(path_or_fileobj=b"---\ntitle: x\n---\n# x\n", path_in_repo="README.md",
                        repo_id="tester/demo-space", repo_type="space")
