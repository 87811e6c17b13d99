"""Models: architecture presets, config overrides, and the one loader every later stage uses.

Reads and writes nothing itself. Models are stock `transformers` classes (BERT for GROVER's
architecture, DeBERTa-v2 for the CPU preset): a pretrained model is a `save_pretrained` folder
holding a masked LM and a `PreTrainedTokenizerFast` (ours, or the published GROVER's), loadable by
`AutoModelForMaskedLM` / `AutoTokenizer` with no custom code.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from groverlm import lazy
from groverlm.args import parse_override
from groverlm.errors import GroverError, counted

# torch and transformers load on first use, keeping the CLI and config loading light
torch = lazy.module("torch")
transformers = lazy.module("transformers")
hf_logging = lazy.module("transformers.utils.logging")
activations = lazy.module("transformers.activations")
modeling_auto = lazy.module("transformers.models.auto.modeling_auto")
hf_errors = lazy.module("huggingface_hub.errors")
safetensors = lazy.module("safetensors")

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # a Hugging Face Hub model id

# Architecture presets: a transformers `model_type` (default "bert") and config fields; every other
# field keeps its transformers default (GELU, dropout 0.1, layer norm eps 1e-12). Any field can
# still be overridden (`--set key=value`, `--set model_type=...`).
PRESETS: dict[str, dict[str, Any]] = {
    # the CPU model: a stock DeBERTa-v2 masked LM with a convolution over each token's neighbours
    # beside attention (conv_kernel_size 3, DeBERTa-v2's own ConvLayer after the first layer).
    # Measured on chr20 (2 idle cores, 600-cycle BPE, bench/learning.py): a BERT of this size must
    # find "look at my neighbours" through absolute position embeddings and sits near the unigram
    # baseline for minutes (1.3% held-out masked-token accuracy after 60 s, 1.7% after 7 minutes),
    # while the convolution hands every position its neighbours from the first step: 4.1% after
    # 60 s, 7.0% after 4 minutes, against the context table's 8.3%. BERT's initializer_range 0.02
    # (0.1 halved the learning here), untied input and output embeddings (the output ones learn
    # token co-occurrence, the input ones identity), no dropout (a short run underfits); no
    # attention dropout in any case, since it slows attention on a CPU. SiLU and a 256-wide FFN
    # (against exact GELU and 512): 1.4x the steps per minute on a CPU, where erf-GELU alone took
    # 15% of a step, and as good or better per minute (8-minute budgets: 8.10% against 7.91% at
    # 512 with SiLU; bench/README.md).
    "tiny": {"model_type": "deberta-v2", "num_hidden_layers": 2, "hidden_size": 128,
             "num_attention_heads": 4, "intermediate_size": 256, "hidden_act": "silu",
             "max_position_embeddings": 512,
             "conv_kernel_size": 3, "tie_word_embeddings": False,
             "initializer_range": 0.02, "hidden_dropout_prob": 0.0,
             "attention_probs_dropout_prob": 0.0},
    # the previous CPU preset, a BERT of the same size, kept to compare against (bench/learning.py):
    # at BERT's 0.02 it did not leave the unigram plateau in 3,000 steps; at 0.1 it does, slowly
    "tiny-bert": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 4,
                  "intermediate_size": 512, "max_position_embeddings": 512,
                  "initializer_range": 0.1, "hidden_dropout_prob": 0.0,
                  "attention_probs_dropout_prob": 0.0},
    # a small GPU model, for sweeps
    "small": {"num_hidden_layers": 6, "hidden_size": 512, "num_attention_heads": 8,
              "intermediate_size": 2048, "max_position_embeddings": 512},
    # GROVER's architecture (BERT-base): 12 layers, hidden 768, 12 heads, 512 positions
    "grover-base": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
                    "intermediate_size": 3072, "max_position_embeddings": 512},
}
# fields a model reads with getattr and a default, so that its config's to_dict() lacks them
OPTIONAL_FIELDS: dict[str, dict[str, Any]] = {
    "deberta-v2": {"conv_kernel_size": 0, "conv_groups": 1, "conv_act": "tanh",
                   "position_buckets": -1, "norm_rel_ebd": "none", "share_att_key": False},
}
TASKS = ("mlm", "classification", "base")  # load_model's `task`: head on top of the encoder


def parse_overrides(items: Iterable[str], option: str = "--set") -> dict[str, Any]:
    """'key=value' strings -> dict, in the grammar of every `--set` (`args.parse_override`: values
    read as YAML, never evaluated).

    >>> parse_overrides(["num_hidden_layers=2", "hidden_act=gelu", "hidden_dropout_prob=0.0"])
    {'num_hidden_layers': 2, 'hidden_act': 'gelu', 'hidden_dropout_prob': 0.0}
    """
    out: dict[str, Any] = {}
    for item in items:
        try:
            path, value = parse_override(item, "num_hidden_layers")
        except GroverError as err:
            raise GroverError(str(err).replace("--set", option, 1)) from None
        out[".".join(path)] = value
    return out


def build_config(preset: str, vocab_size: int, overrides: Mapping[str, Any] | None = None,
                 pad_token_id: int = 0, option: str = "--set "):
    """A transformers config from a preset, the tokenizer's vocabulary size and field overrides.

    The preset's `model_type` (default "bert"; `--set model_type=...` changes it) picks the config
    class. Unknown fields and values of the wrong type are GroverErrors (a typo must not be silently
    ignored, as transformers configs would do); an error names an override as `option` + its key
    (`--set hidden_size`; a run config's `pretrain.model.overrides.hidden_size`).
    """
    if preset not in PRESETS:
        raise GroverError(f"unknown preset {preset!r}; presets are {', '.join(PRESETS)}")
    overrides = dict(overrides or {})
    for key in ("vocab_size", "pad_token_id"):
        if key in overrides:
            raise GroverError(f"{option}{key}: the tokenizer sets it, not an override")
    fields: dict[str, Any] = {**PRESETS[preset], "vocab_size": vocab_size,
                              "pad_token_id": pad_token_id}
    model_type = str(overrides.pop("model_type", fields.pop("model_type", "bert")))
    fields.pop("model_type", None)
    try:
        defaults = {**OPTIONAL_FIELDS.get(model_type, {}),
                    **transformers.AutoConfig.for_model(model_type).to_dict()}
    except ValueError:
        raise GroverError(f"{option}model_type={model_type}: not a transformers model type"
                          ) from None
    if model_type not in modeling_auto.MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        raise GroverError(f"{option}model_type={model_type}: transformers has no masked LM of this "
                          f"type (AutoModelForMaskedLM)")
    # a preset's fields that another model type lacks (conv_kernel_size for BERT) are dropped
    fields = {k: v for k, v in fields.items() if k in defaults}
    for key, value in overrides.items():
        if key not in defaults:
            raise GroverError(f"{option}{key}: not a {model_type} config field")
        old = defaults[key]
        if isinstance(old, bool) and not isinstance(value, bool) or (
                isinstance(old, int) and not isinstance(old, bool) and (
                    not isinstance(value, int) or isinstance(value, bool))) or (
                isinstance(old, float) and (not isinstance(value, int | float)
                                            or isinstance(value, bool))):
            raise GroverError(f"{option}{key}={value!r}: expected a {type(old).__name__}")
        fields[key] = value
    if fields.get("hidden_act", "gelu") not in activations.ACT2FN:
        raise GroverError(f"{option}hidden_act={fields['hidden_act']!r}: not an activation; "
                          f"transformers has {', '.join(sorted(activations.ACT2FN))}")
    try:
        cfg = transformers.AutoConfig.for_model(model_type, **fields)
    except (TypeError, ValueError, hf_errors.StrictDataclassError) as err:  # the class's own checks
        raise GroverError(f"{option.rstrip(' .')}: {str(err).splitlines()[0]}") from None
    if cfg.hidden_size % cfg.num_attention_heads:
        raise GroverError(f"hidden_size {cfg.hidden_size} is not a multiple of "
                          f"num_attention_heads {cfg.num_attention_heads}")
    return cfg


def new_mlm_model(config, seed: int = 0):
    """A randomly initialised stock masked LM for `config` (seeded); attention through PyTorch's
    SDPA where the class has it (BERT), else transformers' own ("eager", DeBERTa-v2)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.AutoModelForMaskedLM.from_config(config)
    # DeBERTa-v2's legacy head with untied embeddings keeps a `cls.predictions.bias` that its
    # forward never reads (the decoder has its own bias); frozen, DistributedDataParallel does not
    # wait for its gradient, and the optimizer skips it
    head = getattr(getattr(model, "cls", None), "predictions", None)
    bias = getattr(head, "bias", None)
    decoder = getattr(head, "decoder", None)
    if isinstance(bias, torch.nn.Parameter) and decoder is not None and decoder.bias is not bias:
        bias.requires_grad_(False)
    return model


def is_hub_id(path: str | Path) -> bool:
    """Whether `path` names no local file or folder but reads as a Hub id ("owner/name").

    >>> is_hub_id("PoetschLab/GROVER"), is_hub_id("/no/such/folder"), is_hub_id("model")
    (True, False, False)
    """
    return not Path(path).exists() and bool(HUB_ID.match(str(path)))


def _check_folder(path: str | Path, what: str, files: tuple[str, ...]) -> str | Path:
    if is_hub_id(path):
        # transformers resolves it through its own cache (with HF_HUB_OFFLINE=1, a cached id
        # loads with no network)
        return str(path)
    path = Path(path)
    if not path.is_dir():
        raise GroverError(f"no such {what} folder", path)
    if not any((path / f).exists() for f in files):
        raise GroverError(f"not a {what} folder (no {' or '.join(files)})", path)
    return path


def load_tokenizer(path: str | Path, what: str = "tokenizer"):
    """The `PreTrainedTokenizerFast` of a tokenizer or model folder (ours or the published GROVER);
    `what` the folder is called in errors ("model" where a model folder was asked for)."""
    path = _check_folder(path, what, ("tokenizer.json", "tokenizer_config.json"))
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise GroverError(f"cannot load the tokenizer: {err}", path) from None
    if not tok.is_fast:
        raise GroverError("the tokenizer is not a fast (tokenizers-backed) tokenizer", path)
    if tok.mask_token_id is None or tok.pad_token_id is None:
        raise GroverError("the tokenizer has no [MASK] or [PAD] token", path)
    return tok


def default_name(model_dir: str | Path) -> str:
    """A model's name in metrics.json when none is given: its class (config.json's model_type,
    "bert" when unreadable) and its folder, e.g. deberta-v2-model."""
    path = Path(model_dir)
    try:
        kind = json.loads((path / "config.json").read_text()).get("model_type") or "bert"
    except (OSError, ValueError, AttributeError):
        kind = "bert"
    return f"{kind}-{path.resolve().name}"


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # the device names named_device takes


def check_device_name(name: str, option: str = "--device") -> None:
    """A GroverError naming `option` unless `name` is a device named_device takes (a run checks
    every device setting so before any stage runs, without loading torch).

    >>> check_device_name("cuda:1")
    """
    if not DEVICE.fullmatch(name):
        raise GroverError(f"{option} {name!r} is not a device (auto, cpu, cuda, cuda:N)")


def device_type(name: str) -> str:
    """'cuda' or 'cpu': the kind of device a `--device` names, auto read as `named_device` reads it
    (the GPU when torch sees one), with no device taken: for a launcher whose ranks take theirs
    (pretrain.launch_env) and for the process group joined before a rank takes its own."""
    check_device_name(name)
    return "cuda" if name.startswith("cuda") or (name == "auto" and torch.cuda.is_available()) \
        else "cpu"


def named_device(name: str, local_rank: int = 0):
    """The torch device a `--device` names: auto (the GPU when torch sees one, else the CPU), cpu,
    cuda (this process's GPU, `local_rank`), cuda:N; a GroverError for a GPU torch cannot see or
    any other name."""
    kind = device_type(name)  # checks the name
    if name == "auto":
        name = kind
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise GroverError(f"--device {name} asked for, but torch sees no GPU")
        if name == "cuda":
            name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GroverError(f"--device {name}: torch sees {counted(torch.cuda.device_count(), 'GPU')}")
        torch.cuda.set_device(device)
    return device


def load_model(path: str | Path, task: str = "mlm", need_head: bool = True, **kwargs: Any):
    """A model folder as the stock transformers class for `task`.

    task: "mlm" (e.g. BertForMaskedLM), "classification" (e.g. BertForSequenceClassification, pass
    `num_labels`; the head is new when loading a pretrained MLM), "base" (BertModel); the class
    follows the folder's `model_type` (BERT, DeBERTa-v2, ...). Extra keyword arguments go to
    `from_pretrained`. transformers picks PyTorch's SDPA attention where the class supports it.
    "mlm" with `need_head`: a folder without the masked-LM head (a fine-tuned classifier, a bare
    encoder) is an error, not a head of random weights that would score at random.
    """
    classes = {"mlm": transformers.AutoModelForMaskedLM,
               "classification": transformers.AutoModelForSequenceClassification,
               "base": transformers.AutoModel}
    if task not in classes:
        raise GroverError(f"unknown task {task!r}; tasks are {', '.join(TASKS)}")
    path = _check_folder(path, "model", ("config.json",))
    try:
        with quiet_transformers():  # no "Loading weights" bar in a stage's log for a local load
            model, info = classes[task].from_pretrained(str(path), output_loading_info=True,
                                                        **kwargs)
    except (OSError, ValueError, RuntimeError, safetensors.SafetensorError) as err:  # unreadable or damaged
        raise GroverError(f"cannot load the model: {err}", path) from None
    missing = sorted(info.get("missing_keys") or [])
    if task == "mlm" and need_head and missing:
        made_as = ", ".join(getattr(model.config, "architectures", None) or []) or "unknown"
        raise GroverError(f"no masked-LM head in this folder (saved as {made_as}; {len(missing)} "
                          f"weights missing, e.g. {missing[0]}): scoring and masked analyses "
                          f"need a pretrained masked LM (embed reads the encoder alone)", path)
    return model


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars or load reports inside (ours report progress themselves)."""
    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()


def save_model(model, tokenizer, folder: str | Path) -> None:
    """`save_pretrained` of the model and (when given) its tokenizer, quietly. Write into a
    temporary folder and rename it: this does not replace files atomically."""
    with quiet_transformers():
        model.save_pretrained(str(folder))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(folder))


def count_parameters(model, embeddings: bool = True) -> int:
    """Parameters of a model (tied weights once); without the embedding tables when asked.

    Without embeddings: the trainable parameters, less every `...embeddings...` table and the
    output embedding matrix (untied in the `tiny` preset), so that models over different
    vocabularies differ only by their output bias.
    """
    seen, n = set(), 0
    if not embeddings:
        out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if out is not None:
            seen.add(id(out.weight))
    for name, p in model.named_parameters():
        if id(p) in seen or (not embeddings and ("embeddings" in name or not p.requires_grad)):
            continue
        seen.add(id(p))
        n += p.numel()
    return n


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with n torch CPU threads (None: leave torch's setting). On a shared CPU one thread per
    process can be many times faster than two threads that wait on each other."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
