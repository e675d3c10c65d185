"""Task bundles: one science workload per sub-package (installed as ``jaxbench.tasks``)."""
