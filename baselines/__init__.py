"""The methods RRLSRN is compared with.

Each is a record of :mod:`rrlsrn.registry`, which names its function or network class
by import path (e.g. ``baselines.nmu:nmu``); importing this package registers nothing.
"""
