"""The base every layer may import: label order, architecture names, the model-metadata type,
the shared preprocessing, the event type with its proto converters, and the event rules.

It imports only the generated contract (`ferlite.v1`) and third-party libraries: never a service,
training or the application (tests/unit/test_layers.py enforces it).
"""

import os

__version__ = "0.1.0"

# OpenCV's image decoders refuse, before allocating, any image above this many pixels (their own
# header reading; OpenCV reads the variable once, when cv2 loads). It is set here because every
# ferlite package that may load cv2 imports ferlite.base first (face detection, the classifier,
# training, the application: their __init__), and base's own preprocessing imports cv2 after this
# line. Face detection checks frames against its smaller configured limit first; this ceiling
# bounds every decoder in case two header parsers ever disagree. 64 Mi pixels: facedetect's
# max_megapixels may not exceed it.
DECODER_MAX_PIXELS = 64 * 2**20
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DECODER_MAX_PIXELS))
