"""Numerics run in float64 (set here, never in the library) and plots off-screen."""

import jax
import matplotlib

jax.config.update("jax_enable_x64", True)
matplotlib.use("Agg")
