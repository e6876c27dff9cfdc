"""Face detection: frames in, aligned normalised face crops out; and the per-frame pipeline."""

import ferlite.base  # noqa: F401 (first: OpenCV's pixel ceiling before any cv2 import)
