"""``top_tagging-v0``: top-quark vs QCD jet tagging (Particle Transformer, N-subjettiness baseline)."""
