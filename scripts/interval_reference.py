"""Reference confidence intervals for the tests in src/interval.rs.

Run once (python3 scripts/interval_reference.py, with scipy installed);
the tests embed its output, so that the crate's intervals are checked
against an independent implementation.
"""

from scipy.stats import binomtest

CASES = [(0, 10), (10, 10), (1, 1), (9, 10), (50, 100), (81, 100), (3, 7), (999, 1000)]

for confidence in (0.95, 0.99):
    for k, n in CASES:
        test = binomtest(k, n)
        wilson = test.proportion_ci(confidence, method="wilson")
        exact = test.proportion_ci(confidence, method="exact")
        print(
            f"({k}, {n}, {confidence}, ({wilson.low:.9f}, {wilson.high:.9f}), "
            f"({exact.low:.9f}, {exact.high:.9f})),"
        )
