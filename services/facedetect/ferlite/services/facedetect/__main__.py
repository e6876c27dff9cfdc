import sys

from ferlite.services.facedetect.server import main

sys.exit(main())
