import sys

from ekvio_assets.cli import main

sys.exit(main())
