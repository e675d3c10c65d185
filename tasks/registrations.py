"""Registration of the built-in tasks. Importing this module must stay cheap (no JAX models)."""

from jaxbench.registry import register
from jaxbench.tasks.fair_universe import config as fair_universe_config

register(
    "fair_universe-v0",
    entry_point="jaxbench.tasks.fair_universe.task:make_task",
    summary="HEP uncertainty quantification: 68.27% interval on the Higgs signal strength mu "
    "under six systematics (FAIR Universe HiggsML Uncertainty Challenge), scored by the coverage score.",
    config=fair_universe_config.DEFAULT,
    presets={"quick": fair_universe_config.QUICK, "tiny": fair_universe_config.TINY},
    criteria=fair_universe_config.CRITERIA,
    datacard=fair_universe_config.datacard,
    studies=fair_universe_config.STUDIES,
)

from jaxbench.tasks.mlff import config as mlff_config  # noqa: E402

register(
    "mlff_aspirin-v0",
    entry_point="jaxbench.tasks.mlff.task:make_task",
    summary="Machine-learning force field: NequIP (e3nn-jax) on a time-ordered MD trajectory of aspirin "
    "(GFN2-xTB generated, or rMD17 via --data), tested on the trajectory's last 10%; energy/force MAE in meV.",
    config=mlff_config.DEFAULT,
    presets={"quick": mlff_config.QUICK, "tiny": mlff_config.TINY},
    criteria=mlff_config.CRITERIA,
    datacard=mlff_config.datacard,
    studies=mlff_config.STUDIES,
)

from jaxbench.tasks.oscillator import config as oscillator_config  # noqa: E402

register(
    "oscillator-v0",
    "jaxbench.tasks.oscillator.task:make_task",
    "Example task: a damped harmonic oscillator's "
    "natural frequency and damping ratio from noisy x(t), by least squares.",
    oscillator_config.DEFAULT,
    {"quick": oscillator_config.QUICK, "tiny": oscillator_config.TINY},
    criteria=oscillator_config.CRITERIA,
    datacard=oscillator_config.datacard,
    studies=oscillator_config.STUDIES,
)

from jaxbench.tasks.jets import config as jets_config  # noqa: E402

register(
    "top_tagging-v0",
    entry_point="jaxbench.tasks.jets.task:make_task",
    summary="Jet tagging: a Particle Transformer (flax) tells hadronic top jets from QCD jets (Pythia 8 + FastJet "
    "generated, or TopLandscape via --data), beside mass + N-subjettiness; AUC, 1/eps_B at eps_S = 0.3, accuracy.",
    config=jets_config.DEFAULT,
    presets={"quick": jets_config.QUICK, "tiny": jets_config.TINY},
    criteria=jets_config.CRITERIA,
    datacard=jets_config.datacard,
    studies=jets_config.STUDIES,
)

from jaxbench.tasks.nowcast import config as nowcast_config  # noqa: E402

register(
    "nowcast-v0",
    entry_point="jaxbench.tasks.nowcast.task:make_task",
    summary="Precipitation nowcasting: a NowcastNet-style model (evolution network + semi-Lagrangian evolution "
    "operator + generative decoder, flax) against pysteps' persistence, extrapolation, S-PROG and STEPS on "
    "continuity-equation rain fields (or NowcastNet PNG cases via --data); CSI per threshold and lead time.",
    config=nowcast_config.DEFAULT,
    presets={"quick": nowcast_config.QUICK, "tiny": nowcast_config.TINY},
    criteria=nowcast_config.CRITERIA,
    datacard=nowcast_config.datacard,
    studies=nowcast_config.STUDIES,
)
