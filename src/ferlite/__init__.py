"""ferlite: lightweight facial-expression recognition for inclusive classrooms."""

import os

__version__ = "0.1.0"

# OpenCV's image decoders refuse, before allocating, any image above this many pixels (their own
# header reading; OpenCV reads the variable once, when cv2 loads, so it is set here, before any
# ferlite module imports cv2). Face detection checks frames against its smaller configured limit
# first; this ceiling bounds every decoder of every ferlite process in case two header parsers
# ever disagree. 64 Mi pixels: facedetect's max_megapixels may not exceed it.
DECODER_MAX_PIXELS = 64 * 2**20
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(DECODER_MAX_PIXELS))
