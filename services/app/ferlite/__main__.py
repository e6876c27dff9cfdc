import sys

from ferlite.app.cli import main

sys.exit(main())
