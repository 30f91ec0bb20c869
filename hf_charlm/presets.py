"""Model size presets: `tiny` trains on 2 CPU cores in minutes, `small` and `base` are GPU sizes.

May import the package's configuration only.
"""

from .configuration_charlm import CharLMConfig

PRESETS: dict[str, dict[str, int | float]] = {
    # the README's main job: a few minutes of pretraining on 2 CPU cores
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 256},
    "small": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 6, "max_position_embeddings": 512},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 1024},
}


def config_from_preset(name: str, backbone: str = "transformer", vocab_size: int = 512, **overrides) -> CharLMConfig:
    """`CharLMConfig` of a preset size; `overrides` replace any field (e.g. `hidden_dropout_prob=0.1`)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    fields = {**PRESETS[name], **overrides}
    if backbone != "transformer":
        # a recurrent layer holds about as many weights as a transformer block of the same width
        fields.setdefault("num_hidden_layers", PRESETS[name]["num_hidden_layers"])
    return CharLMConfig(backbone=backbone, vocab_size=vocab_size, **fields)
