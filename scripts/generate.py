"""Generate text from a char LM (a saved folder or a Hub id), streaming characters as they come.

    python scripts/generate.py --model outputs/charlm-pretrain --prompts 中国 北京市 --max_new_tokens 100 \
        --temperature 0.8 --top_k 50 --top_p 0.95 --repetition_penalty 1.1 --seed 0
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, HfArgumentParser, TextStreamer, set_seed

import hf_charlm  # noqa: F401  (registers the Auto classes, so local folders need no remote code)
from hf_charlm.training import UsageError, load_char_tokenizer, run_main


@dataclass
class GenerateArguments:
    model: str = field(default="outputs/charlm-pretrain", metadata={"help": "A model folder or Hub id."})
    prompts: list[str] = field(default_factory=lambda: ["中国"], metadata={"help": "One or more prompts."})
    max_new_tokens: int = field(default=100, metadata={"help": "Characters (tokens) to generate per prompt."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature; 0 means greedy."})
    top_k: int = field(default=50, metadata={"help": "Sample from the k most likely characters (0: all)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass."})
    repetition_penalty: float = field(default=1.0, metadata={"help": ">1 discourages repeating characters."})
    num_beams: int = field(default=1, metadata={"help": "Beam search width (with --temperature 0)."})
    seed: int = field(default=0, metadata={"help": "Random seed: the same seed gives the same text."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit sha) to load."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Load the Hub repo's own model code."})
    no_stream: bool = field(default=False, metadata={"help": "Print each text when done instead of streaming."})

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UsageError(f"--max_new_tokens={self.max_new_tokens} must be >= 1.")
        if self.temperature < 0:
            raise UsageError(f"--temperature={self.temperature} must be >= 0.")
        if not 0 < self.top_p <= 1:
            raise UsageError(f"--top_p={self.top_p} must be in (0, 1].")


def main() -> list[str]:
    (args,) = HfArgumentParser(GenerateArguments).parse_args_into_dataclasses()
    if "/" not in args.model.strip("./") and not Path(args.model).exists():
        raise UsageError(f"--model {args.model}: no such folder (and not a Hub id of the form user/name).")
    if Path(args.model).exists() and not (Path(args.model) / "config.json").is_file():
        raise UsageError(f"--model {args.model}: the folder has no config.json; is it a saved model?")
    try:
        tokenizer = load_char_tokenizer(args.model, revision=args.revision)
        model = AutoModelForCausalLM.from_pretrained(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    except OSError as err:
        raise UsageError(f"--model {args.model}: {err}") from err
    model.eval()
    limit = model.config.max_position_embeddings if model.config.backbone == "transformer" else None
    sampling = args.temperature > 0
    texts = []
    for prompt in args.prompts:
        set_seed(args.seed)
        enc = tokenizer(prompt, return_tensors="pt")
        if limit is not None and enc.input_ids.shape[1] + args.max_new_tokens > limit:
            raise UsageError(
                f"prompt of {enc.input_ids.shape[1]} tokens + --max_new_tokens {args.max_new_tokens} is longer than "
                f"the model accepts (max_position_embeddings={limit})."
            )
        # streaming shows one hypothesis as it grows; beam search decides at the end
        streamer = None if args.no_stream or args.num_beams > 1 else TextStreamer(tokenizer, skip_special_tokens=True)
        with torch.no_grad():
            ids = model.generate(
                **enc,
                do_sample=sampling,
                temperature=args.temperature if sampling else None,
                top_k=args.top_k if sampling else None,
                top_p=args.top_p if sampling else None,
                repetition_penalty=args.repetition_penalty,
                num_beams=args.num_beams,
                max_new_tokens=args.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                streamer=streamer,
            )
        text = tokenizer.decode(ids[0], skip_special_tokens=True)
        texts.append(text)
        if streamer is None:
            print(text)
        sys.stdout.flush()
    return texts


if __name__ == "__main__":
    run_main(main)
