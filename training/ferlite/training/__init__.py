"""The paper's pipeline: datasets, shared preprocessing, model registry, training, export.

Only this package imports TensorFlow, and only in the modules that need it (models, train,
evaluate, export); `preprocess` and `datasets` are NumPy/OpenCV so serving code can use them.
"""

import ferlite.base  # noqa: F401 (first: OpenCV's pixel ceiling before any cv2 import)
