from slimforge.cli import run

run()
