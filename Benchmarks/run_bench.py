#!/usr/bin/env python3
"""Side-by-side end-to-end benchmark: brokerd against nats-server, driven by brokerd-bench.

Python 3.11, standard library only. Run `python3 Benchmarks/run_bench.py --help` for the full story.
The code is in the package next to this script, Benchmarks/bench/ (Benchmarks/README.md says what is where).
"""

import sys

from bench.driver import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
