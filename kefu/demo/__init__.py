"""Demo data: the personas shared by `make run`, tests, screenshots and docs."""
