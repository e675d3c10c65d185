"""Jitted, vmapped hot loops shared by tasks (installed as ``jaxbench.kernels``)."""
