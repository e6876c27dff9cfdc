"""Face detection: frames in, aligned normalised face crops out; and the per-frame pipeline."""
