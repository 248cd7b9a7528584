"""Staged studies: `robust study NAME` runs experiments/studies/NAME.yaml (spec.py reads it,
stages.py runs and caches its stages, tables.py and run.py write its tables and report)."""
