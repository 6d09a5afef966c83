import sys

from ekvio_assets.simulator.cli import main

sys.exit(main())
