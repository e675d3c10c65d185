"""Configurations of ``mlff_aspirin-v0`` (importable without JAX, for the registry)."""

DEFAULT_CONFIG = {
    # Data: a generated GFN2-xTB Langevin trajectory (cached on disk), or rMD17 via --data.
    "molecule": "aspirin",  # aspirin, ethanol or malonaldehyde (shipped geometries)
    "n_frames": 4000,  # saved frames of the generated trajectory
    "save_every": 10,  # MD steps of 0.5 fs between saved frames (5 fs: frames still correlated)
    "equilibration_steps": 1000,
    "temperature_K": 500.0,
    "split": "temporal",  # temporal: test on the last test_fraction of the trajectory; published: rMD17 split k=1
    "test_fraction": 0.1,
    "test_frames": 400,  # evenly spaced frames of the test window that are evaluated
    "train_frames": 1000,  # random frames of the training pool (first 90%) for the main model
    # Model (NequIP): l_max, channels per irrep, interaction layers, cutoff (Å), radial MLP width.
    "l_max": 1,
    "channels": 16,
    "layers": 3,
    "cutoff": 4.0,
    "radial_hidden": 32,
    # Training.
    "steps": 4000,
    "batch_size": 5,
    "learning_rate": 1e-2,
    "energy_weight": 1.0,
    "force_weight": 1.0,
    "checkpoint_every": 200,
    # Studies (jaxbench run mlff_aspirin-v0 --study NAME|all).
    "efficiency_sizes": (200, 400, 600, 800, 1000, 15000, 50000),  # sizes beyond the pool are skipped
    "efficiency_seeds": 2,
    "window_starts": (0.0, 0.15, 0.3, 0.45, 0.6),  # fractions of the whole trajectory
    "window_widths": (0.3, 0.45, 0.6, 0.75, 0.9),
    "window_frames": 200,  # training frames per window, evenly spaced in it (equal: one vmap per width)
    "soap_r_cut": 5.0,
    "soap_n_max": 6,
    "soap_l_max": 4,
    "soap_frames": 50,  # frames per window in the SOAP similarity (evenly spaced)
    "trust_force_mae_factor": 1.5,  # similarity study: trusted while force MAE <= this x the best window's
    "equivariance_trials": 8,
}
QUICK_CONFIG = {
    "n_frames": 600,
    "save_every": 5,
    "equilibration_steps": 400,
    "test_frames": 60,
    "train_frames": 200,
    "l_max": 1,
    "channels": 8,
    "layers": 2,
    "radial_hidden": 16,
    "steps": 1000,
    "checkpoint_every": 250,
    "efficiency_sizes": (10, 40, 160),
    "window_starts": (0.0, 0.3, 0.6),
    "window_widths": (0.3, 0.6),
    "window_frames": 40,
    "soap_frames": 20,
    "equivariance_trials": 4,
}
STUDIES: tuple[str, ...] = ("sample_efficiency", "time_window_grid", "similarity", "equivariance", "breakdown",
                            "correlation")
