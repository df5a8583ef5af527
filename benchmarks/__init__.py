"""Side-by-side benchmarks; `./dev bench` runs them all (see __main__.py)."""
