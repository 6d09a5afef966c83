import sys

from ekvio_assets.benchmark.cli import main

sys.exit(main())
