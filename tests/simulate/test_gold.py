"""Gold preferences: the built-in scorers, the registry and its errors."""

import numpy as np
import pytest

from app.simulate.gold import GOLD_FACTORIES, GoldPreference, register_gold, resolve_gold


def test_sentiment_prefers_positive_text_and_flags_clearly_negative_text():
    gold = resolve_gold("sentiment")
    scores = gold.scores("p", ["What a wonderful, lovely day!", "It is a table.", "This is awful and I hate it."])
    assert scores[0] > scores[1] > scores[2]
    assert gold.flags(scores[2]) == ["fails_instruction"] and gold.flags(scores[1]) == []
    assert [gold.rating(s) for s in (-1.0, 0.0, 1.0)] == [1, 4, 7]


def test_length_is_best_at_the_target_and_symmetric_in_ratio():
    gold = resolve_gold("length:9")
    scores = gold.scores("p", ["w " * 9, "w " * 4, "w " * 19, "w"])
    assert scores[0] == 0.0
    assert scores[1] == pytest.approx(scores[2])  # half (+1) and double (+1) are equally far
    assert scores[3] < scores[1]
    assert gold.flags(scores[3]) == ["fails_instruction"]


def test_concept_counts_mentions_and_never_flags():
    gold = resolve_gold("concept:ocean,sea")
    scores = gold.scores("p", ["The ocean and the sea, the Seas!", "A desert.", "oceanic"])
    assert scores[0] == pytest.approx(np.log1p(3)) and scores[1] == 0.0 and scores[2] == pytest.approx(np.log1p(1))
    assert gold.flag_below is None and gold.flags(-10.0) == []


def test_unknown_names_and_bad_arguments_say_what_is_wrong():
    with pytest.raises(ValueError, match="unknown gold preference 'mood'.*sentiment"):
        resolve_gold("mood")
    with pytest.raises(ValueError, match="positive number of words"):
        resolve_gold("length:0")
    with pytest.raises(ValueError, match="model needs a folder"):
        resolve_gold("model:")


def test_a_researcher_adds_a_gold_preference_in_a_few_lines():
    @register_gold("shouting", help="more exclamation marks is better")
    def _shouting(arg: str) -> GoldPreference:
        return GoldPreference("shouting", lambda prompts, texts: np.array([t.count("!") for t in texts], float))

    try:
        assert resolve_gold("shouting").scores("p", ["hi!", "hi!!!", "hi"]).tolist() == [1.0, 3.0, 0.0]
    finally:
        GOLD_FACTORIES.pop("shouting")
