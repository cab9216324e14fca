"""Thin wrapper: `python scripts/predict.py ...` is `keras-sentiment predict ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from keras_sentiment.apps.cli import console_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(console_main(["predict", *sys.argv[1:]]))
