"""hf_charlm: Hugging Face-compatible character-level language models.

Public names and the Auto-class registration, nothing else: after `import hf_charlm`, `AutoConfig`,
`AutoModel`, `AutoModelForCausalLM`, `AutoModelForMaskedLM`, `AutoModelForTokenClassification`,
`AutoModelForSequenceClassification` and `AutoModelForSeq2SeqLM` know `model_type = "charlm"`, and
`pipeline("translation" | "text2text-generation")` knows the encoder-decoder pipelines.

Everything is imported when first used, so that `import hf_charlm.data` (or `.metrics`, `.tokenization_charlm`)
does not load torch: the public names through a module `__getattr__` (PEP 562); the Auto registration when
transformers' Auto mappings are first read (transformers' `configuration_utils` alone imports torch, so registering
at import time would load it). For that, the Auto modules get, as soon as they are imported (or now, if they already
are), a registry (`_extra_content`, where `register` writes) that registers the classes at its first read; the
pipelines are registered when `transformers.pipelines` is imported; and the classes are marked for the Auto classes
(`register_for_auto_class`, what writes `auto_map` on save) when their module is imported, however it is imported.
"""

import importlib
import importlib.abc
import sys
from collections.abc import Callable
from types import ModuleType

__version__ = "0.1.0"

_PUBLIC = {
    "CharLMConfig": "configuration_charlm",
    "CharLMModel": "modeling_charlm",
    "CharLMPreTrainedModel": "modeling_charlm",
    "CharLMForCausalLM": "modeling_charlm",
    "CharLMForMaskedLM": "modeling_charlm",
    "CharLMForTokenClassification": "modeling_charlm",
    "CharLMForSequenceClassification": "modeling_charlm",
    "CharLMRecurrentCache": "modeling_charlm",
    "CharLMForConditionalGeneration": "modeling_charlm_seq2seq",
    "PRESETS": "presets",
    "config_from_preset": "presets",
    "CharLMTokenizerFast": "tokenization_charlm",
    "build_char_tokenizer": "tokenization_charlm",
    "train_char_tokenizer": "tokenization_charlm",
}
_SUBMODULES = ("collators", "configuration_charlm", "data", "formats", "generation_charlm", "hub", "lm_eval",
               "metrics", "modeling_charlm", "modeling_charlm_seq2seq", "pipelines", "presets",
               "tokenization_charlm", "training")
# Auto class -> the class registered for `CharLMConfig`
_AUTO_MODELS = {
    "AutoModel": "CharLMModel",
    "AutoModelForCausalLM": "CharLMForCausalLM",
    "AutoModelForMaskedLM": "CharLMForMaskedLM",
    "AutoModelForTokenClassification": "CharLMForTokenClassification",
    "AutoModelForSequenceClassification": "CharLMForSequenceClassification",
    "AutoModelForSeq2SeqLM": "CharLMForConditionalGeneration",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, *_SUBMODULES})


# ----------------------------------------------------------------------------------------------- registration
def _importing(module: str) -> bool:
    """Whether `module` is being imported right now (its code has started and not finished)."""
    spec = getattr(sys.modules.get(module), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


_registered = {"config": False, "models": False, "busy": False}


def _register(kind: str) -> bool:
    """Registers the config (`kind="config"`) or the config and the models with the Auto classes; False when it
    cannot yet, because one of the modules it needs is half imported (a read of a mapping during that import)."""
    if _registered[kind]:
        return True
    modules = ("configuration_charlm",) if kind == "config" else ("configuration_charlm", "modeling_charlm",
                                                                  "modeling_charlm_seq2seq")
    if _registered["busy"] or any(_importing(f"{__name__}.{m}") for m in modules):
        return False
    if any(_importing(name) for name in list(sys.modules) if name.startswith("transformers")):
        return False  # read while transformers itself is half imported: importing our modules now could be circular
    _registered["busy"] = True
    try:
        from transformers import AutoConfig

        config = __getattr__("CharLMConfig")
        AutoConfig.register("charlm", config, exist_ok=True)
        _registered["config"] = True
        if kind == "models":
            import transformers

            for auto, name in _AUTO_MODELS.items():
                getattr(transformers, auto).register(config, __getattr__(name), exist_ok=True)
            _registered["models"] = True
    finally:
        _registered["busy"] = False
    return True


class _RegistersOnFirstRead(dict):
    """An Auto mapping's `_extra_content` (the registered classes) that registers hf_charlm's at its first read."""

    def __init__(self, content: dict, kind: str):
        super().__init__(content)
        self._kind = kind

    def _ready(self) -> None:
        if self._kind is not None and _register(self._kind):
            self._kind = None

    def __contains__(self, key) -> bool:
        self._ready()
        return super().__contains__(key)

    def __getitem__(self, key):
        self._ready()
        return super().__getitem__(key)

    def __iter__(self):
        self._ready()
        return super().__iter__()

    def __len__(self) -> int:
        self._ready()
        return super().__len__()

    def get(self, key, default=None):
        self._ready()
        return super().get(key, default)

    def keys(self):
        self._ready()
        return super().keys()

    def values(self):
        self._ready()
        return super().values()

    def items(self):
        self._ready()
        return super().items()

    def copy(self) -> dict:
        self._ready()
        return dict(super().items())

    def __reduce__(self):
        self._ready()
        return dict, (dict(super().items()),)


def _install_registry(mapping, kind: str) -> None:
    if not isinstance(mapping._extra_content, _RegistersOnFirstRead):
        mapping._extra_content = _RegistersOnFirstRead(mapping._extra_content, kind)


def _after_configuration_auto(module: ModuleType) -> None:
    _install_registry(module.CONFIG_MAPPING, "config")


def _after_modeling_auto(module: ModuleType) -> None:
    for auto in _AUTO_MODELS:
        _install_registry(getattr(module, auto)._model_mapping, "models")


def _after_pipelines(module: ModuleType) -> None:
    importlib.import_module(f"{__name__}.pipelines")  # registers the text2text-generation / translation pipelines


def _after_pipeline_file(module: ModuleType) -> None:
    pipelines = sys.modules.get(f"{__name__}.pipelines")
    if pipelines is not None and hasattr(pipelines, "register_correction_pipeline"):
        pipelines.register_correction_pipeline()  # (see there: only when importing this file brought it in)


def _mark_for_auto_classes(module: ModuleType) -> None:
    """`register_for_auto_class` for the classes of a just-imported configuration / modeling module."""
    for name, module_name in _PUBLIC.items():
        if f"{__name__}.{module_name}" != module.__name__:
            continue
        if name == "CharLMConfig":
            module.CharLMConfig.register_for_auto_class("AutoConfig")
        for auto, cls in _AUTO_MODELS.items():
            if cls == name:
                getattr(module, name).register_for_auto_class(auto)


class _Loader(importlib.abc.Loader):
    """The module's own loader, then `after(module)`."""

    def __init__(self, loader: importlib.abc.Loader, after: Callable[[ModuleType], None]):
        self._loader, self._after = loader, after

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._after(module)

    def __getattr__(self, name: str):  # get_source, get_filename, is_package, resource readers: the real loader's
        return getattr(self._loader, name)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a function after a module's code has run (a post-import hook); finds nothing itself."""

    def __init__(self, hooks: dict[str, Callable[[ModuleType], None]]):
        self.hooks = hooks

    def find_spec(self, fullname, path, target=None):
        after = self.hooks.get(fullname)
        if after is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, after)
                return spec
        return None


def _install_hooks() -> None:
    hooks = {
        "transformers.models.auto.configuration_auto": _after_configuration_auto,
        "transformers.models.auto.modeling_auto": _after_modeling_auto,
        "transformers.pipelines": _after_pipelines,
        f"{__name__}.pipeline_charlm": _after_pipeline_file,
        **{f"{__name__}.{m}": _mark_for_auto_classes
           for m in ("configuration_charlm", "modeling_charlm", "modeling_charlm_seq2seq")},
    }
    pending = {}
    for name, after in hooks.items():
        module = sys.modules.get(name)
        if module is not None and not _importing(name):
            after(module)  # imported before hf_charlm
        else:
            pending[name] = after
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(pending))


_install_hooks()

__all__ = [
    "CharLMConfig",
    "CharLMModel",
    "CharLMPreTrainedModel",
    "CharLMForCausalLM",
    "CharLMForMaskedLM",
    "CharLMForTokenClassification",
    "CharLMForSequenceClassification",
    "CharLMForConditionalGeneration",
    "CharLMRecurrentCache",
    "PRESETS",
    "config_from_preset",
    "CharLMTokenizerFast",
    "build_char_tokenizer",
    "train_char_tokenizer",
    "__version__",
]
