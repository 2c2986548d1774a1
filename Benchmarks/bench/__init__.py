"""run_bench.py's parts (Benchmarks/run_bench.py is the entry point; Benchmarks/README.md has the map).

Python 3.11, standard library only.
"""
