from beadsmail.cli import run

run()
