# Two entry points; each does its own set-up (scripts/setup.sh) on a fresh machine.
.PHONY: setup quickstart test lint bench

setup:
	bash scripts/setup.sh

quickstart: setup
	.venv/bin/alphaforge run configs/quickstart.yaml

test: setup
	.venv/bin/python -m pytest -q

# style: the rules in pyproject.toml ([tool.ruff]), on the whole tree
lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

bench: setup
	.venv/bin/python benchmarks/features.py
