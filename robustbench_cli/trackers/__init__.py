"""Experiment trackers, the `logger` config group: csv (default), tensorboard, mlflow.

loggers.py builds the Lightning logger a fit writes to; results.py sends an eval or
detect run's rows and files to the same tracker. The tracker packages are optional
(`pip install 'robustbench_cli[trackers]'`) and imported only when chosen.
"""
