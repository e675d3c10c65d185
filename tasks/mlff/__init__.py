"""Machine-learning force fields: NequIP on molecular dynamics trajectories (rMD17 or GFN2-xTB)."""
