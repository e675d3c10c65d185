"""Registration of the built-in tasks. Importing this module must stay cheap (no JAX models)."""

from jaxbench.registry import register
from jaxbench.tasks.fair_universe import config as fair_universe_config

register(
    "fair_universe-v0",
    entry_point="jaxbench.tasks.fair_universe.task:make_task",
    summary="HEP uncertainty quantification: 68.27% interval on the Higgs signal strength mu "
    "under six systematics (FAIR Universe HiggsML Uncertainty Challenge), scored by the coverage score.",
    default_config=fair_universe_config.DEFAULT_CONFIG,
    quick_config=fair_universe_config.QUICK_CONFIG,
    studies=fair_universe_config.STUDIES,
)

from jaxbench.tasks.mlff import config as mlff_config  # noqa: E402

register(
    "mlff_aspirin-v0",
    entry_point="jaxbench.tasks.mlff.task:make_task",
    summary="Machine-learning force field: NequIP (e3nn-jax) on a time-ordered MD trajectory of aspirin "
    "(GFN2-xTB generated, or rMD17 via --data), tested on the trajectory's last 10%; energy/force MAE in meV.",
    default_config=mlff_config.DEFAULT_CONFIG,
    quick_config=mlff_config.QUICK_CONFIG,
    studies=mlff_config.STUDIES,
)
