"""Thin wrapper: `python scripts/evaluate.py ...` is `keras-sentiment evaluate ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from keras_sentiment.apps.cli import console_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(console_main(["evaluate", *sys.argv[1:]]))
