"""The suites of `python -m bench`: each measures, then returns its Markdown tables."""
