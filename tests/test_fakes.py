"""The test doubles themselves: a double that misses a path would let the tests that rely on it pass vacuously."""
import pytest

import datadiet.training
import datadiet.training.engine as engine
from datadiet.runs import memorization
from fakes import forbid_training


def test_forbid_training_stops_every_name_the_engine_is_bound_to(monkeypatch):
    real = engine.train
    monkeypatch.setattr(memorization, "fit", real, raising=False)  # a module that imported train under another name
    with pytest.MonkeyPatch.context() as patch:
        calls = forbid_training(patch)
        for entry in (engine.train, datadiet.training.train, memorization.train, memorization.fit):
            with pytest.raises(pytest.fail.Exception, match="trained a model"):
                entry("config", "splits")
        assert len(calls) == 4
    assert engine.train is real and memorization.fit is real  # undone with the monkeypatch
