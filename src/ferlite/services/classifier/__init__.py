"""The classifier: face crops -> expression probabilities, on Triton, routed by an A/B policy."""
