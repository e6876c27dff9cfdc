"""The classifier: face crops -> expression probabilities, on Triton, routed by an A/B policy."""

import ferlite.base  # noqa: F401 (first: OpenCV's pixel ceiling before any cv2 import)
