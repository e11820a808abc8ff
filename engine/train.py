"""``python -m engine.train``: train a learned GNN on CLRS traces (see engine.learn.train)."""
import sys

from .learn.train import main

if __name__ == "__main__":
    sys.exit(main())
