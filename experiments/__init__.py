"""The experiments shipped with deepest: installed as the package `deepest.experiments`, whose
TOML files `deepest list` shows and `deepest run <name>` runs (setup.py maps it here)."""
