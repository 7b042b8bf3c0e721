"""Generation benchmark: our SmolLM2 prefill/decode vs Hugging Face transformers, and `accelsim estimate` wall time.

Run: python -m benchmarks.generate [--tokens N] [--no-long] [--torch-threads T]
Measured side by side in one run on this host, f32, batch 1, greedy, the same GGUF weights and token ids:
  (a) decode tokens/s: ours (``Generator`` with ``phase_blocks`` for the calibrated ``host`` chip; one
      generate to compile, then a second one timed with ``Generation.decode_s``) vs transformers'
      ``model.generate`` (after a warm-up; its decode time is the generate time minus its prefill);
  (b) prefill: ours (``Generation.prefill_s`` of the warm run, prefill + first-token sample) vs one
      transformers forward pass over the prompt (median of a few), for a short and a ~100-token prompt;
  (c) wall time of ``accelsim estimate --model llama-3.1-405b`` over every chip preset (--json, output discarded).
transformers runs with ``torch.set_num_threads(--torch-threads)``, default 1: on this shared 2-core host,
torch's default of 2 OpenMP threads made a 5-token forward ~1.8 s instead of ~0.1 s (spinning threads
fighting the other load), so the default is 1 and the count is printed and recorded.
Our kernels run compiled on CPU (``kernels.grid_exec``; ``--interpret``: Pallas interpret mode), so ours/HF
is not what the same code does on a TPU. The JSON's top-level ``"ratios"`` maps each timed case to ours / HF
time (lower is better) and ``"decode_tokens_per_s_ratio"`` is ours / HF decode tokens/s (higher is better).
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from accelsim.models.llama import Generator, stack_params  # noqa: E402
from accelsim.models.plans import phase_blocks  # noqa: E402
from accelsim.models.session import host_chip  # noqa: E402
from accelsim.report.table import render  # noqa: E402
from benchmarks.common import kernels_as, write_results  # noqa: E402

PROMPT = "The capital of France is"
LONG_PROMPT = (
    "The history of Paris stretches back more than two thousand years. A Celtic people known as the Parisii "
    "settled on an island in the Seine around the third century BC, and the Romans later built a town there "
    "called Lutetia, with a forum, baths and an amphitheatre. In the Middle Ages the city grew into one of "
    "the largest in Europe, a centre of learning, trade and royal power. Today Paris, the capital of France, is"
)


def _ours(config, params, host, ids: list[int], tokens: int) -> tuple[dict, list[int]]:
    prefill_blocks, decode_blocks = phase_blocks(config, host, "f32", 1, len(ids), len(ids) + tokens)
    generator = Generator(config, prefill_blocks, decode_blocks)
    prompt = np.asarray([ids], np.int32)
    start = time.perf_counter()
    generator.generate(params, prompt, tokens)  # compiles prefill and the decode step
    compile_run = time.perf_counter() - start
    gen = generator.generate(params, prompt, tokens)
    decode_s = float(sum(gen.decode_s))
    return ({"prefill_s": gen.prefill_s, "decode_tokens": len(gen.decode_s), "decode_s": decode_s,
             "decode_tok_s": len(gen.decode_s) / decode_s if gen.decode_s else float("nan"),
             "first_run_s": compile_run,
             "blocks": {"attention": list(prefill_blocks.attention), "decode_kv": decode_blocks.decode_kv}},
            gen.new_tokens[0].tolist())


def _hf_prefill(model, ids: list[int], repeats: int = 3) -> float:
    import torch

    x = torch.as_tensor([ids], dtype=torch.long)
    times = []
    with torch.no_grad():
        model(input_ids=x, use_cache=True)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(input_ids=x, use_cache=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _hf_generate(model, ids: list[int], tokens: int) -> tuple[float, list[int]]:
    import torch

    x = torch.as_tensor([ids], dtype=torch.long)
    kwargs = dict(attention_mask=torch.ones_like(x), max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                  pad_token_id=int(model.config.eos_token_id or 0))
    with torch.no_grad():
        model.generate(x, **kwargs)  # warm-up
        start = time.perf_counter()
        out = model.generate(x, **kwargs)
        elapsed = time.perf_counter() - start
    return elapsed, out[0, len(ids):].tolist()


def _estimate_wall() -> dict:
    from accelsim.cli import main as cli_main

    argv = ["estimate", "--model", "llama-3.1-405b", "--batch", "1", "--prompt-len", "1024", "--gen-len", "256",
            "--json"]
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(argv)
    elapsed = time.perf_counter() - start
    chips = [c["chip"] for c in json.loads(out.getvalue())["chips"]] if rc == 0 else []
    return {"argv": argv, "rc": rc, "wall_s": elapsed, "chips": chips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32, help="new tokens per generate (default 32)")
    parser.add_argument("--no-long", action="store_true", help="skip the ~100-token prefill comparison")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads for transformers (default 1)")
    parser.add_argument("--interpret", action="store_true", help="run our kernels in Pallas interpret mode")
    args = parser.parse_args()
    if args.tokens < 2:
        parser.error("--tokens must be at least 2 (one prefill token, then decode)")

    import torch

    torch.set_num_threads(args.torch_threads)
    from tests.hf_reference import hf_model
    from accelsim.models.tokenizer import load_smollm2_tokenizer
    from accelsim.models.weights import load_smollm2

    estimate = _estimate_wall()  # first: a broken estimate fails fast, before the slow measurements
    host = host_chip(print)
    config, raw = load_smollm2()
    params = stack_params(raw, config)
    tokenizer = load_smollm2_tokenizer()
    model = hf_model()

    short_ids = tokenizer.encode(PROMPT)
    with kernels_as(args.interpret):
        ours, our_tokens = _ours(config, params, host, short_ids, args.tokens)
    hf_prefill = _hf_prefill(model, short_ids)
    hf_gen_s, hf_tokens = _hf_generate(model, short_ids, args.tokens)
    hf_decode_s = hf_gen_s - hf_prefill
    hf_decode_tok_s = (args.tokens - 1) / hf_decode_s
    # HF's min_new_tokens masks EOS so it always makes N tokens; ours (no eos_id) may pick EOS and go on,
    # so compare the greedy tokens only up to our first EOS.
    eos = int(model.config.eos_token_id or -1)
    compared = our_tokens.index(eos) if eos in our_tokens else len(our_tokens)
    agree = next((i for i in range(compared) if our_tokens[i] != hf_tokens[i]), compared)

    rows = [
        {"metric": "decode tokens/s", "prompt_tokens": len(short_ids), "ours": ours["decode_tok_s"],
         "hf": hf_decode_tok_s, "ratio": ours["decode_tok_s"] / hf_decode_tok_s, "unit": "tok/s",
         "note": f"{ours['decode_tokens']} decode steps; HF = generate - prefill"},
        {"metric": "end-to-end generate", "prompt_tokens": len(short_ids),
         "ours": ours["prefill_s"] + ours["decode_s"], "hf": hf_gen_s,
         "ratio": (ours["prefill_s"] + ours["decode_s"]) / hf_gen_s, "unit": "s", "note": f"{args.tokens} new tokens"},
        {"metric": "prefill", "prompt_tokens": len(short_ids), "ours": ours["prefill_s"], "hf": hf_prefill,
         "ratio": ours["prefill_s"] / hf_prefill, "unit": "s", "note": f"blocks {ours['blocks']['attention']}"},
    ]
    if not args.no_long:
        long_ids = tokenizer.encode(LONG_PROMPT)
        with kernels_as(args.interpret):
            ours_long, _ = _ours(config, params, host, long_ids, 2)
        hf_long = _hf_prefill(model, long_ids)
        rows.append({"metric": "prefill", "prompt_tokens": len(long_ids), "ours": ours_long["prefill_s"],
                     "hf": hf_long, "ratio": ours_long["prefill_s"] / hf_long, "unit": "s",
                     "note": f"blocks {ours_long['blocks']['attention']}"})
    rows.append({"metric": "accelsim estimate llama-3.1-405b", "prompt_tokens": 1024, "ours": estimate["wall_s"],
                 "hf": None, "ratio": None, "unit": "s", "note": f"{len(estimate['chips'])} chips, rc {estimate['rc']}"})

    def value(v, unit):
        if v is None:
            return "-"
        return f"{v:.1f} tok/s" if unit == "tok/s" else f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"

    print(render(rows, [
        ("metric", lambda r: r["metric"]), ("prompt", lambda r: r["prompt_tokens"]),
        ("ours", lambda r: value(r["ours"], r["unit"])), ("HF transformers", lambda r: value(r["hf"], r["unit"])),
        ("ours/HF", lambda r: "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"), ("note", lambda r: r["note"]),
    ], title=(f"SmolLM2-135M f32 on {jax.default_backend()} (host plan), greedy, {args.tokens} new tokens; "
              f"torch {torch.__version__} with {torch.get_num_threads()} threads")))
    eos_note = f" (ours picks EOS at token {compared}; HF's min_new_tokens forbids it)" if compared < args.tokens else ""
    print(f"\ngreedy tokens agree for the first {agree} of the {compared} compared (ours vs HF){eos_note}")
    print(f"ours first (compiling) generate: {ours['first_run_s']:.2f} s")
    ratios = {"decode time per token": 1.0 / rows[0]["ratio"],
              **{f"{r['metric']} {r['prompt_tokens']} tokens": r["ratio"] for r in rows[1:] if r["unit"] == "s"
                 and r["ratio"] is not None}}
    path = write_results("generate", rows, ratios=ratios, decode_tokens_per_s_ratio=rows[0]["ratio"],
                         form="interpret" if args.interpret else "compiled", tokens=args.tokens, prompt=PROMPT, greedy_tokens_agree=agree, greedy_tokens_compared=compared,
                         ours_tokens=our_tokens, hf_tokens=hf_tokens, ours_first_run_s=ours["first_run_s"],
                         estimate=estimate, torch_threads=torch.get_num_threads(), chip=host.name)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
