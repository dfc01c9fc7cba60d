"""Fused ranked search: BM25, a ranked grep and a named identifier's callers, fused by rank;
tests ranked below the code they test, or left out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlm_mcp.index import Repository
from rlm_mcp.index.search import fused, ranked
from tests.index.index_helpers import write

BILLING = '''"""Invoices."""


def compute_total(lines, tax_rate):
    """Sum the invoice lines and add the tax."""
    subtotal = sum(price * qty for price, qty in lines)
    return subtotal * (1 + tax_rate)
'''

CHECKOUT = '''from shop.billing import compute_total


def submit_order(cart, session):
    """Hand the cart to the payment gateway."""
    amount = compute_total(cart.lines, session.tax)
    return session.gateway.charge(amount)


def cancel_order(order):
    """Give the reservation back."""
    order.state = "cancelled"
'''

REPORTS = """from shop.billing import compute_total


def monthly_report(invoices):
    rows = [compute_total(i.lines, i.tax) for i in invoices]
    return sorted(rows)
"""

TESTS = '''from shop.billing import compute_total


def test_compute_total_adds_the_tax():
    """The total of the invoice lines adds the tax."""
    assert compute_total([(10, 2)], 0.5) == 30
'''

FILES: dict[str, str | bytes] = {
    "shop/billing.py": BILLING,
    "shop/checkout.py": CHECKOUT,
    "shop/reports.py": REPORTS,
    "tests/test_billing.py": TESTS,
    "shop/invoice.test.js": "test('invoice total adds the tax', () => {});\n",
}

IMPACT = "Which functions would break if `compute_total` changed its return type?"


@pytest.fixture
def repo(tmp_path: Path, loader: Callable[..., Repository]) -> Repository:
    write(tmp_path, FILES)
    return loader(tmp_path)


def test_an_impact_question_is_answered_by_the_call_sites_bm25_alone_misses(
    repo: Repository,
) -> None:
    alone = ranked.search(repo.store, IMPACT, 20, callers=False)
    assert "submit_order" not in {h.qualname for h in alone}, "BM25 alone finds the call site"

    hits = repo.search(IMPACT, limit=10)
    found = {(h.path, h.qualname) for h in hits}
    assert ("shop/checkout.py", "submit_order") in found
    assert ("shop/reports.py", "monthly_report") in found
    # the uses are the answer: not the definition itself, nor look-alikes
    assert all("callers" in h.signals for h in hits), hits
    assert ("shop/billing.py", "compute_total") not in found
    assert ("shop/checkout.py", "cancel_order") not in found
    # the test that calls it is a caller too, ranked last
    assert hits[-1].path == "tests/test_billing.py"


def test_a_use_question_and_a_plain_question_differ(repo: Repository) -> None:
    assert fused.intent(IMPACT).impact
    assert fused.intent("who calls `compute_total`?").impact
    assert not fused.intent("how is compute_total implemented?").impact
    assert not fused.intent("what does the checkout do").impact
    # a backticked path is not a name
    assert fused.intent("what breaks if `shop/billing.py` changes").identifiers == ()
    assert fused.intent(IMPACT.replace("?", " (defined in `shop/billing.py`)?")).identifiers == (
        "compute_total",
    )


def test_every_hit_says_which_signals_found_it(repo: Repository) -> None:
    hits = repo.search("where is the invoice total with tax computed", limit=10)
    assert hits
    assert all(h.signals and set(h.signals) <= set(fused.SIGNALS) for h in hits)
    assert {"bm25", "grep"} <= set(hits[0].signals), hits[0]
    assert hits[0].as_dict()["signals"] == list(hits[0].signals)
    assert "[bm25+grep]" in str(hits[0])


def test_tests_rank_below_the_code_they_test_unless_the_question_is_about_tests(
    repo: Repository,
) -> None:
    question = "where is the invoice total with tax computed"
    hits = repo.search(question, limit=10)
    paths = [h.path for h in hits]
    assert paths[0] == "shop/billing.py"
    assert "tests/test_billing.py" in paths
    assert paths.index("tests/test_billing.py") > paths.index("shop/billing.py")

    about_tests = repo.search("which tests check the invoice total with tax", limit=10)
    assert about_tests[0].path in ("tests/test_billing.py", "shop/invoice.test.js")


def test_exclude_tests_and_negated_globs_leave_tests_out(repo: Repository) -> None:
    question = "where is the invoice total with tax computed"
    assert any(fused.is_test_path(h.path) for h in repo.search(question, limit=20))
    kept = repo.search(question, limit=20, exclude_tests=True)
    assert kept and not any(fused.is_test_path(h.path) for h in kept)
    assert "shop/invoice.test.js" not in {h.path for h in kept}
    negated = repo.search(question, limit=20, glob="!tests/**")
    assert negated and all(not h.path.startswith("tests/") for h in negated)
    callers = repo.search(IMPACT, limit=20, exclude_tests=True)
    assert callers and all(not h.path.startswith("tests/") for h in callers)


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/test_x.py", True),
        ("pkg/test_x.py", True),
        ("pkg/x_test.go", True),
        ("src/__tests__/a.js", True),
        ("src/a.spec.ts", True),
        ("src/main/java/FooTest.java", True),
        ("testdata/input.txt", True),
        ("src/testing_utils.py", False),
        ("src/contest.py", False),
        ("src/latest/a.py", False),
    ],
)
def test_test_paths_by_the_common_layouts(path: str, is_test: bool) -> None:
    assert fused.is_test_path(path) is is_test


def test_the_grep_matches_where_words_start(repo: Repository, tmp_path: Path) -> None:
    write(tmp_path, {"shop/alive.py": "def keepalive(conn):\n    return conn\n"})
    repo.refresh()
    files = fused.word_grep(repo.store, ["live"], 10)
    assert "shop/alive.py" not in {f.path for f in files}
    write(tmp_path, {"shop/camel.js": "function isLive(x) { return x; }\n"})
    repo.refresh()
    assert "shop/camel.js" in {f.path for f in fused.word_grep(repo.store, ["live"], 10)}
