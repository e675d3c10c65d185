"""Independent float64 numpy implementations that the tests compare jaxbench against."""
