import sys

from ferlite.services.aggregator.server import main

sys.exit(main())
