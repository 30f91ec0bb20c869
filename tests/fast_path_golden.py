"""Reference outputs of seeded checkpoints in the separate q / k / v layout, written by the code before the fast
paths (commit 3e28fd4): `python tests/fast_path_golden.py` rewrites tests/data/fast_path_golden.json.
tests/test_fast_paths.py rebuilds the same checkpoints and checks that today's code gives the same logits and the
same greedy text."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hf_charlm import CharLMForCausalLM
from tests.conftest import tiny_config

GOLDEN = Path(__file__).parent / "data" / "fast_path_golden.json"
VOCAB = 300  # room for the 256 byte tokens from id 40: the UTF-8 logits processor is active in generate()
LOGIT_COLUMNS = 48  # the golden file keeps these columns and the logsumexp of each row


def old_layout_checkpoint(backbone: str, path: Path) -> None:
    """A checkpoint folder whose weights are seeded random values under the separate q_proj / k_proj / v_proj names,
    whatever layout the model uses in memory."""
    config = tiny_config(backbone, vocab_size=VOCAB, byte_token_start=40, max_position_embeddings=128)
    CharLMForCausalLM(config).save_pretrained(path)
    shapes = {}
    for name, tensor in load_file(path / "model.safetensors").items():
        if ".qkv_proj." in name:  # a fused checkpoint: the three (H, H) matrices it stands for
            for part in ("q_proj", "k_proj", "v_proj"):
                shapes[name.replace("qkv_proj", part)] = (tensor.shape[0] // 3, *tensor.shape[1:])
        else:
            shapes[name] = tuple(tensor.shape)
    generator = torch.Generator().manual_seed(0)
    weights = {name: (torch.randn(shapes[name], generator=generator) * 0.3).contiguous() for name in sorted(shapes)}
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})


def inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(4, VOCAB, (2, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding in the second row
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask}


@torch.no_grad()
def outputs(model: CharLMForCausalLM) -> dict:
    batch = inputs()
    logits = model(**batch).logits.float()
    greedy = model.generate(**batch, max_new_tokens=40, do_sample=False, pad_token_id=0, eos_token_id=None)
    single = model.generate(batch["input_ids"][:1, :5], max_new_tokens=40, do_sample=False, eos_token_id=None)
    return {
        "logits": logits[..., :LOGIT_COLUMNS].tolist(),
        "logsumexp": torch.logsumexp(logits, -1).tolist(),
        "greedy_batch": greedy.tolist(),
        "greedy_single": single.tolist(),
    }


def main() -> None:
    import tempfile

    golden = {}
    for backbone in ("transformer", "lstm", "gru"):
        with tempfile.TemporaryDirectory() as tmp:
            old_layout_checkpoint(backbone, Path(tmp))
            for attn in (("eager", "sdpa") if backbone == "transformer" else ("sdpa",)):
                model = CharLMForCausalLM.from_pretrained(tmp, attn_implementation=attn).eval()
                golden[f"{backbone}/{attn}"] = outputs(model)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(golden))


if __name__ == "__main__":
    main()
