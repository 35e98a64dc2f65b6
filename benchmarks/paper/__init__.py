"""The paper's section 4 as a benchmark suite: every method at the same resource on every task."""
