"""Benchmarks run by `make bench`. Each module here has a `main()` that prints its figures."""
