from __future__ import annotations

import pytest

TARGET = "ethos-u55-128"


@pytest.fixture(scope="session")
def search_predictor_path(tmp_path_factory) -> str:
    """A predictor of ``ethos-u55-128``: the shipped one if it loads, else a tiny one trained here.

    The search tests need a working predictor, not a good one: budgets are set from
    its own predictions.
    """
    from predictors.predictor import list_predictors, load_predictor
    from search_spaces.errors import HwnasError

    name = f"perfsage-{TARGET}"
    if name in list_predictors():
        try:
            load_predictor(name)
            return name
        except HwnasError:
            pass  # from another feature version: train one
    from predictors.dataset import build_dataset
    from predictors.train import train_predictor

    root = tmp_path_factory.mktemp("search-predictor")
    build_dataset(root / "data", "keyword_spotting", 16, [TARGET], workers=1, progress=False)
    train_predictor([root / "data"], root / "perfsage", epochs=15, config={"ensemble": 2}, progress=False)
    return str(root / "perfsage")


@pytest.fixture(scope="session")
def search_predictor(search_predictor_path):
    from predictors.predictor import load_predictor

    return load_predictor(search_predictor_path)
