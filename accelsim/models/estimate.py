"""A large model's serving cost per chip, traced without weights: what ``accelsim estimate`` computes and prints.

``run_estimate`` checks the request, prices prefill and a spread of decode steps on each chip
(``accelsim.models.costing.cost_run``) and returns an ``Estimate``; ``estimate`` returns its JSON form,
the very object ``accelsim estimate --json`` prints. The CLI and the Python API share this one path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from accelsim.chips import Chip, load_chip
from accelsim.chips.sustained import sustained_figures, sustained_view
from accelsim.dtypes import canonical_dtype
from accelsim.errors import AccelsimError, TooLarge
from accelsim.models.capacity import Split, plan_capacity
from accelsim.models.config import LlamaConfig, load_config
from accelsim.models.costing import RunCost, cost_run
from accelsim.report.table import plain

WEIGHT_DTYPES = ("bf16", "fp8", "int8", "int4", "fp4")
MAX_PRICED_STEPS = 16


def decode_lengths(prompt_len: int, gen_len: int) -> list[np.ndarray]:
    """Lengths of the decode steps to price: all of them up to 16, else 16 spread evenly (their mean is TPOT)."""
    steps = np.arange(prompt_len + 1, prompt_len + gen_len)
    if len(steps) > MAX_PRICED_STEPS:
        steps = np.unique(np.linspace(steps[0], steps[-1], MAX_PRICED_STEPS).round().astype(int))
    return [np.asarray([s], np.int32) for s in steps]


@dataclass(frozen=True)
class Estimate:
    """One request (model, batch, lengths, dtypes) priced on each chip."""

    config: LlamaConfig
    batch: int
    prompt_len: int
    gen_len: int
    weights: str
    kv_dtype: str
    priced_decode_lengths: tuple[int, ...]
    runs: tuple[RunCost, ...]
    low_precision_compute: bool = False
    unpriced: tuple[dict, ...] = ()  # chips whose timing is past a modelling limit: capacity only, and why
    sustained: tuple[tuple[str, tuple[str, ...]], ...] | None = None  # per chip, the figures priced at sustained

    @property
    def title(self) -> str:
        return (f"{self.config.name}: batch {self.batch}, prompt {self.prompt_len}, generate {self.gen_len}, "
                f"{self.weights} weights ({self.compute}), {self.kv_dtype} KV"
                + ("" if self.sustained is None else ", sustained figures where the chip files give them"))

    @property
    def compute(self) -> str:
        if self.weights == "bf16":
            return "bf16 compute"
        return f"{self.weights} compute" if self.low_precision_compute else "weight-only, bf16 compute"

    def to_dict(self) -> dict[str, Any]:
        """The object ``accelsim estimate --json`` prints."""
        return {"model": self.config.name, "batch": self.batch, "prompt_len": self.prompt_len,
                "gen_len": self.gen_len, "weights": self.weights, "kv_dtype": self.kv_dtype,
                "low_precision_compute": self.low_precision_compute, "compute": self.compute,
                "figures": "peak" if self.sustained is None else
                {chip: list(used) or "peak (no [sustained] in the chip file)" for chip, used in self.sustained},
                "priced_decode_lengths": list(self.priced_decode_lengths),
                "chips": [r.to_dict() for r in self.runs] + list(self.unpriced)}


def run_estimate(model: str | LlamaConfig, chips: Sequence[str | Chip], batch: int = 1, prompt_len: int = 1024,
                 gen_len: int = 256, weights: str = "bf16", kv_dtype: str = "bf16", num_chips: int | None = None,
                 progress: Callable[[str], None] | None = None, low_precision_compute: bool = False,
                 split: Split | None = None, cuda_graphs: bool = True, sustained: bool = False) -> Estimate:
    """Price ``model`` (a config name, a Hugging Face ``config.json`` path, or a ``LlamaConfig``) on each chip.

    ``num_chips`` spreads the model over that many chips (default: as few as fit). ``low_precision_compute``:
    the matmuls multiply in the weight dtype (W8A8, FP8, FP4) instead of widening the weights to bf16
    (weight-only quantisation). ``split`` fixes the parallel split (it sets the chip count); decode steps
    are one CUDA graph each unless ``cuda_graphs`` is False (then kernel launches can bind, on chips
    whose file gives a launch overhead). ``sustained`` prices each chip at its file's ``[sustained]``
    (achieved) figures where it has them, instead of its peaks. Every impossible request is refused with one ``AccelsimError`` before any tracing."""
    config = model if isinstance(model, LlamaConfig) else load_config(model)
    weight_dtype = canonical_dtype(weights)
    if weight_dtype not in WEIGHT_DTYPES:
        raise AccelsimError(f"weights {weights}: expected one of {', '.join(WEIGHT_DTYPES)}")
    for name, value in (("batch", batch), ("prompt length", prompt_len), ("generated length", gen_len)):
        if value < 1:
            raise AccelsimError(f"{name} must be at least 1 (got {value})")
    if prompt_len + gen_len > config.max_position_embeddings:
        raise AccelsimError(f"prompt of {prompt_len} + {gen_len} generated tokens is longer than "
                            f"{config.name}'s context ({config.max_position_embeddings})")
    if split is not None and num_chips is not None and num_chips != split.chips:
        raise AccelsimError(f"--chips {num_chips} and --split {split.label} ({split.chips} chips) disagree")
    if num_chips is not None and num_chips < 1:
        raise AccelsimError(f"spreading over {num_chips} chips is impossible: at least 1")
    targets = [c if isinstance(c, Chip) else load_chip(c) for c in chips]
    used = {chip.name: sustained_figures(chip) if sustained else [] for chip in targets}
    if sustained:
        targets = [sustained_view(chip) for chip in targets]
    # refuse an impossible chip count before any work or output
    capacities = [plan_capacity(config, chip, batch, prompt_len + gen_len, weight_dtype, kv_dtype, num_chips, split)
                  for chip in targets]
    lengths = [np.repeat(l, batch) for l in decode_lengths(prompt_len, gen_len)]
    if progress:
        progress(f"tracing {config.name} (no weights) with each chip's blocks; pricing prefill and "
                 f"{len(lengths)} decode steps per chip...")
    runs, unpriced = [], []
    for chip, capacity in zip(targets, capacities):
        try:
            runs.append(cost_run(config, chip, batch, prompt_len, lengths, weight_dtype=weight_dtype,
                                 act_dtype="bf16", kv_dtype=kv_dtype, chips=num_chips, progress=progress,
                                 low_precision_compute=low_precision_compute, split=split,
                                 cuda_graphs=cuda_graphs))
        except TooLarge as exc:  # the capacity answer still holds; only the timing is past a modelling limit
            if progress:
                progress(f"  {chip.name}: not priced ({exc})")
            unpriced.append({"chip": chip.name, "priced": False, "reason": str(exc), "capacity": capacity.to_dict()})
    return Estimate(config, batch, prompt_len, gen_len, weight_dtype, kv_dtype,
                    tuple(int(l[0]) for l in lengths), tuple(runs), low_precision_compute, tuple(unpriced),
                    tuple((name, tuple(figures)) for name, figures in used.items()) if sustained else None)


def estimate(model: str | LlamaConfig, chip: str | Chip | Sequence[str | Chip] = "h100-sxm", batch: int = 1,
             prompt_len: int = 1024, gen_len: int = 256, weights: str = "bf16", kv_dtype: str = "bf16",
             num_chips: int | None = None, progress: Callable[[str], None] | None = None,
             low_precision_compute: bool = False, split: str | Split | None = None,
             cuda_graphs: bool = True, sustained: bool = False) -> dict[str, Any]:
    """TTFT, TPOT, tokens/s per user and in total, chips needed, split and binding limit of serving ``model``
    on ``chip`` (one chip, a chip file, or a list of them): the object ``accelsim estimate --json`` prints,
    as plain Python values. ``weights``: bf16, fp8, int8, int4 or fp4; weight-only unless ``low_precision_compute``."""
    chips = [chip] if isinstance(chip, (str, Chip)) or not isinstance(chip, Sequence) else list(chip)
    parallel = Split.parse(split) if isinstance(split, str) else split
    result = run_estimate(model, chips, batch, prompt_len, gen_len, weights, kv_dtype, num_chips, progress,
                          low_precision_compute, parallel, cuda_graphs, sustained)
    return plain(result.to_dict())
