"""Slow, readable pure-Python references used as test oracles for the native kernels."""
