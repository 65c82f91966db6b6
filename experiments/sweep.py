"""The study's benchmark sweep: train, explain and score architectures x tasks x folds.

    python experiments/sweep.py --help
    python experiments/sweep.py --profile smoke --archs deep,rlstm --datasets mnist-maj

Everything lives in ``lrpnet.sweep`` (importable by Dask workers); this file is the entry point.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from lrpnet.sweep.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
