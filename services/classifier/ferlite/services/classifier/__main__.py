import sys

from ferlite.services.classifier.server import main

sys.exit(main())
