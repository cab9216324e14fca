"""The runnable examples in the package's docstrings run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import keras_sentiment.core
import keras_sentiment.run

MODULES = sorted(f"{package.__name__}.{info.name}" for package in (keras_sentiment.core, keras_sentiment.run)
                 for info in pkgutil.iter_modules(package.__path__))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"


def test_the_examples_are_there_to_run():
    """Most examples are cheap enough to run; those that need data or a trained model are marked skip."""
    attempted = sum(doctest.testmod(importlib.import_module(name)).attempted for name in MODULES)
    assert attempted >= 20, attempted
