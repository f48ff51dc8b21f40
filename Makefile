# Two entry points; each does its own set-up (scripts/setup.sh) on a fresh machine.
.PHONY: setup quickstart test bench

setup:
	bash scripts/setup.sh

quickstart: setup
	.venv/bin/alphaforge run configs/quickstart.yaml

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python benchmarks/features.py
