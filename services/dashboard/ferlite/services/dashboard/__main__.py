import sys

from ferlite.services.dashboard.server import main

sys.exit(main())
