"""Llama-family transformers: real architecture configs, SmolLM2 weights and tokenizer, a plain-jnp reference."""
