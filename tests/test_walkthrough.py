"""experiments/walkthrough.py: its printed numbers are the library's. Its output is parsed and checked
against ``lrpnet.explain`` (score, absorbed, input relevance, per_step, per_layer), an independent pass;
fast and literal forms agree at every node, and every node conserves."""
import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import numpy
import pytest

import lrpnet
from lrpnet import backend, composites

PATH = Path(__file__).resolve().parents[1] / "experiments" / "walkthrough.py"
NUM = r"([+-]?\d+\.\d+(?:e[+-]\d+)?)"


@pytest.fixture(scope="module")
def walkthrough():
    spec = importlib.util.spec_from_file_location("walkthrough", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sections(walkthrough):
    """The printed output, cut into sections: (model, method, gates) -> lines."""
    lines = []
    with backend.using("numpy"):                     # a host-only teaching script
        walkthrough.main([], out=lambda text="": lines.extend(str(text).splitlines()))
    found, key = {}, None
    for line in lines:
        m = re.match(r"=== (\S+), (\S+), gates (\S+) ===$", line)
        if m:
            key = m.groups()
            found[key] = []
        elif key is not None:
            found[key].append(line)
    return found


def test_it_walks_every_case_and_gate_rule(sections):
    gates = [k[2] for k in sections if k[0] == "LSTM"]
    assert set(gates) == set(composites.GATE_RULES)
    assert {(m, method) for m, method, _ in sections} == {("R-LSTM", "dtd"), ("R-LSTM", "lrp-alpha1.5beta0.5"),
                                                           ("LSTM", "lrp-epsilon")}


def test_printed_numbers_are_the_librarys(walkthrough, sections):
    for (name, method, gates), lines in sections.items():
        text = "\n".join(lines)
        with backend.using("numpy"):
            e = lrpnet.explain(walkthrough.tiny(name), walkthrough.image(name), method, gates=gates,
                               return_details=True)
        assert e.score[0] > 0.1                                     # a live example, not zeros everywhere
        where = f"{name} {method} {gates}"
        # the identity line
        m = re.search(rf"identity: input relevance {NUM} \+ absorbed {NUM} = {NUM}  score {NUM}  difference {NUM}",
                      text)
        relevance, absorbed, _, score, difference = map(float, m.groups())
        assert relevance == pytest.approx(e.relevance.sum(), abs=1e-8), where
        assert absorbed == pytest.approx(e.absorbed[0], abs=1e-8), where
        assert score == pytest.approx(e.score[0], abs=1e-8), where
        assert abs(difference) < 1e-12
        # relevance reaching the input at each step
        steps = re.findall(rf"^  t=(\d+):\s+\d+ nodes, absorbed {NUM}, to the input {NUM}", text, re.M)
        assert [int(t) for t, _, _ in steps] == [0, 1, 2]
        numpy.testing.assert_allclose([float(v) for _, _, v in steps], e.per_step[0], atol=1e-8, err_msg=where)
        # node by node: what arrives at each layer, summed over its steps, is explain's per_layer
        arrived, node = defaultdict(float), None
        for line in lines:
            head = re.match(r"\[\s*\d+\] (\S+) \((\S+), t=\S+\)", line)
            node = head.groups() if head else node
            totals = re.match(rf"\s+totals: arrived {NUM}", line)
            if totals and node[1] != "leaf":
                arrived[node[0]] += float(totals.group(1))
        assert set(arrived) == set(e.per_layer), where
        for layer, v in e.per_layer.items():
            assert arrived[layer] == pytest.approx(v[0], abs=1e-7), (where, layer)
        # every node conserves, and the fast and literal forms agree
        residuals = [float(r) for r in re.findall(rf"residual {NUM}$", text, re.M)]
        assert len(residuals) >= len(arrived) and max(map(abs, residuals)) < 1e-12
        diffs = [float(d) for d in re.findall(rf"max \|fast - literal\| = {NUM}", text)]
        assert len(diffs) > 20 and max(diffs) < 1e-12, where
        # absorbed by cause: at every node that absorbs, the causes add up to its absorbed; in all, to explain's
        causes = None
        for line in lines:
            m = re.match(rf"\s+absorbed by cause: bias {NUM}  stabiliser {NUM}  zero {NUM}  state {NUM}$", line)
            causes = [float(v) for v in m.groups()] if m else causes
            totals = re.match(rf"\s+totals: arrived {NUM}  passed {NUM}  absorbed {NUM}", line)
            if totals:
                node_absorbed = float(totals.group(3))
                assert causes is not None or node_absorbed == 0, (where, line)
                assert sum(causes or [0.0]) == pytest.approx(node_absorbed, abs=4e-8), (where, line)
                causes = None
        m = re.search(rf"^absorbed by cause: bias {NUM} \+ stabiliser {NUM} \+ zero {NUM} \+ state {NUM} = {NUM}$",
                      text, re.M)
        bias, stabiliser, zero, state, total = map(float, m.groups())
        assert bias + stabiliser + zero + state == pytest.approx(total, abs=4e-8)
        assert total == pytest.approx(e.absorbed[0], abs=1e-8), where
        assert bias != 0 and stabiliser > 0, where              # every case has biases and a stabilised sum
