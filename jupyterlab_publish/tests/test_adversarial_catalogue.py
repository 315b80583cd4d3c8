"""The standing adversarial catalogue (issue 10): every probe against one real server on 127.0.0.1.

The module's server is attacked once by the whole catalogue (``adversarial/probes.py``): quick
probes one after another, then the slow clients at once. Each probe is then its own test, failing
with what the server answered and what was expected; the last test checks nothing was lost. Each
probe has a hard bound (a few seconds; the slow clients ``SLOW_CLIENT_BOUND``), so a server that
hangs fails the probe instead of the suite. Nothing here is skipped or expected to fail: a probe of
a finding that is not fixed yet fails.
"""

from __future__ import annotations

import sys

import pytest

from adversarial.live import CATALOGUE_FLAGS, lost, snapshot, start, witness
from adversarial.probes import CATALOGUE
from adversarial.runner import run_catalogue

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCM_RIGHTS handoff; POSIX only")

CATEGORIES = {"framing", "auth", "paths", "bodies", "headers", "slow clients", "leaks", "bundles", "admin inputs"}


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    live = start(tmp_path_factory.mktemp("adversarial"), *CATALOGUE_FLAGS)
    try:
        before = snapshot(live)
        results = {result.name: result for result in run_catalogue(live)}
        yield live, before, results
    finally:
        live.stop()


def test_the_catalogue_covers_every_category_with_at_least_60_probes():
    assert len(CATALOGUE) >= 60
    assert {probe.category for probe in CATALOGUE} == CATEGORIES


@pytest.mark.parametrize("probe", CATALOGUE, ids=lambda p: f"{p.category.replace(' ', '-')}/{p.name}")
def test_probe(attacked, probe):
    result = attacked[2][probe.name]
    assert result.ok, f"{probe.what} -> {result.status}: " + "; ".join(result.problems)


def test_nothing_was_lost(attacked):
    live, before, _ = attacked
    # Each function still answers as published, with its key...
    assert witness(live) == []
    # ...from the same version and the same worker processes: no attack restarted or replaced one.
    assert lost(before, snapshot(live)) == []
