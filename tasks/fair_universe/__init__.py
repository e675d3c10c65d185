"""FAIR Universe HiggsML Uncertainty Challenge: a 68.27% interval on the Higgs signal strength."""
