"""The application layer: the CLI, the local stack and its supervisor, the camera client, the demo.

The top of the house: it may import every other layer, and nothing imports it.
"""

import ferlite.base  # noqa: F401 (first: OpenCV's pixel ceiling before any cv2 import)
