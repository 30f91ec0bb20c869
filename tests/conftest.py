"""Shared fixtures: a tiny-config factory (hidden 32, 2 layers, small vocab), the tokenizer it goes with, and
the Hub-server fixture of the publishing tests."""

from __future__ import annotations

import pytest
import torch

from hf_charlm import CharLMConfig, train_char_tokenizer

BACKBONES = ("transformer", "lstm", "gru")

# mixed scripts so that byte fallback, CJK and emoji are all exercised
CORPUS = [
    "hello world, this is a tiny corpus.",
    "The quick brown fox jumps over the lazy dog.",
    "人民日报一九九八年新年讲话，迈向充满希望的新世纪。",
    "北京天安门广场 😀 emoji and tabs\tand\nnewlines",
]


@pytest.fixture
def tokenizer():
    # function-scoped: pipelines change padding_side on the tokenizer they are given
    return train_char_tokenizer(CORPUS)


def tiny_config(backbone: str = "transformer", vocab_size: int = 128, **overrides) -> CharLMConfig:
    fields = dict(
        backbone=backbone,
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    fields.update(overrides)
    return CharLMConfig(**fields)


def final_loss_training_only(model, trained: list, ids: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    """Adam (lr 0.05) on the parameters `trained` only, `steps` full-batch steps on one batch; the last loss."""
    optimizer = torch.optim.Adam(trained, lr=0.05)
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def run_script_in_process(script, argv: list[str], capsys) -> tuple[int, str]:
    """Runs a script's `__main__` here (fast: no new interpreter); returns its exit status and last stderr line."""
    import runpy
    import sys

    old = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = old
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""  # progress bars may precede the message on stderr


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------------------ Hub server (owner: hub helper)
HUB_TOKEN = "hf_charlm_test_token"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """tests/hub_server.py in its own process on 127.0.0.1, repos in a temp dir; `.url`, `.token`, `.root`."""
    import subprocess
    import sys
    import time
    from pathlib import Path
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("hub")
    port_file = root / "port"
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("hub_server.py")), "--root", str(root / "repos"),
         "--port", "0", "--port-file", str(port_file), "--token", HUB_TOKEN],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("tests/hub_server.py did not start")
        time.sleep(0.05)
    yield SimpleNamespace(url=f"http://127.0.0.1:{port_file.read_text()}", token=HUB_TOKEN, root=root / "repos")
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def hub(hub_server, tmp_path, monkeypatch):
    """Points huggingface_hub at `hub_server`, in this process and (through `.env`) in child processes, with a
    fresh HF_HOME. huggingface_hub reads HF_ENDPOINT / HF_HUB_CACHE when imported, so its constants are patched."""
    import os
    from types import SimpleNamespace

    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    env = {"HF_ENDPOINT": hub_server.url, "HF_TOKEN": hub_server.token, "HF_HUB_DISABLE_XET": "1",
           "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HF_MODULES_CACHE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", hub_server.url)
    url_template = hub_server.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url_template)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    yield SimpleNamespace(url=hub_server.url, token=hub_server.token, root=hub_server.root,
                          cache_dir=home / "hub", env=dict(os.environ))
