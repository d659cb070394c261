"""Reference p-values for the tests in src/hypothesis.rs.

Run once (python3 scripts/hypothesis_reference.py, with scipy and
statsmodels-free scipy only); the tests embed its output, so that the
crate's tests are checked against an independent implementation.
"""

import math

from scipy.stats import fisher_exact, mannwhitneyu, norm

print("// two-proportion z-test (pooled): (x1, n1, x2, n2, z, p)")
for x1, n1, x2, n2 in [(45, 50, 30, 50), (940, 1000, 810, 1000), (81, 100, 94, 100), (5, 10, 5, 10), (1, 2, 0, 3)]:
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se
    print(f"({x1}, {n1}, {x2}, {n2}, {z:.12f}, {2 * norm.sf(abs(z)):.12e}),")

print("// Fisher's exact test, two-sided: (x1, n1, x2, n2, p)")
for x1, n1, x2, n2 in [(7, 8, 3, 10), (9, 10, 3, 10), (1, 1, 0, 3), (0, 5, 5, 5), (3, 8, 4, 9), (12, 15, 2, 4), (50, 50, 49, 50)]:
    _, p = fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided")
    print(f"({x1}, {n1}, {x2}, {n2}, {p:.12e}),")

print("// Mann-Whitney U, two-sided, asymptotic with continuity and tie correction: (a, b, U of a, p)")
cases = [
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], [5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5]),
    ([10.0, 20.0, 20.0, 30.0, 40.0, 40.0, 40.0, 50.0], [20.0, 30.0, 30.0, 60.0, 70.0, 70.0, 80.0, 90.0, 100.0, 110.0]),
    ([float(i % 17) for i in range(60)], [float(i % 13) + 2.0 for i in range(45)]),
    ([1.0, 1.0, 1.0], [1.0, 1.0]),
]
for a, b in cases:
    res = mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    print(f"(vec!{a}, vec!{b}, {res.statistic:.1f}, {res.pvalue:.12e}),")

from scipy.stats import false_discovery_control

print("// Benjamini-Hochberg adjusted p-values: (p-values, adjusted)")
for ps in [[0.01, 0.04, 0.03, 0.005, 0.5], [0.2, 0.2, 0.2], [0.001], [0.04, 0.01, 0.9, 0.03, 0.02, 0.6]]:
    q = false_discovery_control(ps, method="bh")
    print(f"(vec!{ps}, vec![{', '.join(f'{v:.12f}' for v in q)}]),")

print("// Mann-Whitney U, two-sided, exact (small samples without ties): (a, b, U of a, p)")
exact_cases = [
    ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),
    ([1.0, 5.0, 9.0, 12.0], [2.0, 3.0, 4.0, 6.0, 7.0]),
    ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0], [15.0, 25.0, 35.0]),
    ([3.0], [1.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]),
    ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0]),
]
for a, b in exact_cases:
    res = mannwhitneyu(a, b, alternative="two-sided", method="exact")
    auto = mannwhitneyu(a, b, alternative="two-sided")
    assert abs(auto.pvalue - res.pvalue) < 1e-15, (a, b, "auto is not exact here")
    print(f"(vec!{a}, vec!{b}, {res.statistic:.1f}, {res.pvalue:.12e}),")
