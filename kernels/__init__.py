"""JAX kernels that execute with a tiling plan's block shapes (Pallas), each with a plain-jnp reference."""
