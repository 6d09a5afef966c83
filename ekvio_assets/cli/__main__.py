from ekvio_assets.cli import run

run()
