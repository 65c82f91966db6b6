"""``lrpnet.memory.keep_freed_memory``: with it, a process that allocates and frees the same large arrays
again takes almost no page faults; without it (``LRPNET_KEEP_MEMORY=0``, glibc's defaults) it takes
thousands. Each case runs in a fresh process, since the setting holds for a whole process."""
import os
import platform
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)

PROGRAM = """
import resource, sys
import numpy
from lrpnet.memory import keep_freed_memory
applied = keep_freed_memory()

def work():                      # 8, 16, 8 and 24 MB, touched, then freed
    arrays = [numpy.ones(n) for n in (1 << 20, 2 << 20, 1 << 20, 3 << 20)]
    del arrays

work()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    work()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="malloc is not glibc's here: keep_freed_memory does nothing")


def run(keep):
    env = dict(os.environ, LRPNET_KEEP_MEMORY=keep, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, check=True, capture_output=True,
                         text=True).stdout.split()
    return out[0] == "True", int(out[1])


@glibc
def test_kept_memory_is_reused_without_page_faults():
    applied, faults = run("1")
    applied_not, faults_not = run("0")
    assert applied and not applied_not
    # 56 MB a round is 14,000 pages: glibc's defaults fault a good share of them in again
    assert faults_not > 1000
    assert faults < faults_not / 20


@glibc
def test_a_model_pass_keeps_freed_memory():
    program = ("import numpy\nfrom lrpnet.models import build\nfrom lrpnet import memory\n"
               "assert memory._state['applied'] is None\n"
               "build('shallow', input_shape=(4, 4), T=2, n_classes=2).forward(numpy.zeros((1, 4, 4), 'float32'))\n"
               "print(memory._state['applied'])")
    env = dict(os.environ, PYTHONPATH=ROOT)
    for var in ("LRPNET_KEEP_MEMORY", "LRPNET_BACKEND", "LRPNET_STANDIN"):   # a host model, as NumPy runs it
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", program], env=env, check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["True"]


def test_keep_memory_0_leaves_malloc_alone(monkeypatch):
    from lrpnet import memory
    monkeypatch.setitem(memory._state, "applied", None)
    monkeypatch.setenv("LRPNET_KEEP_MEMORY", "0")
    assert memory.keep_freed_memory() is False
    assert memory._state["applied"] is False
