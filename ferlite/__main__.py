import sys

from ferlite.cli import main

sys.exit(main())
