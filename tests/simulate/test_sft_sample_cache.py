"""The SFT-sample cache of policy measurements (`trainer.gold.cache`): a second measurement against the same SFT
model reuses its samples and reports the same SFT figures; a model changed in place, or other sampling settings,
are sampled again; the folder stays bounded."""

from __future__ import annotations

import json
import os

from app.simulate.gold import resolve_gold
from trainer.gold.cache import cache_key, cached_texts
from trainer.gold.policy import policy_against_gold

PROMPTS = [[{"role": "user", "content": "first held-out prompt"}], [{"role": "user", "content": "second one"}]]


def test_cached_texts_computes_once_and_stays_bounded(tmp_path):
    calls = []

    def compute(tag: str) -> list[str]:
        calls.append(tag)
        return [tag, tag + "!"]

    cache = tmp_path / "cache"
    assert cached_texts(cache, "a", lambda: compute("a")) == ["a", "a!"]
    assert cached_texts(cache, "a", lambda: compute("again")) == ["a", "a!"]  # read back, not recomputed
    assert calls == ["a"]
    (cache / "a.json").write_text("{not json")  # a damaged entry is recomputed
    assert cached_texts(cache, "a", lambda: compute("b")) == ["b", "b!"]
    for n in range(6):
        cached_texts(cache, f"k{n}", lambda: compute("x"), keep=3)
    assert sorted(p.name for p in cache.glob("*.json")) == ["k3.json", "k4.json", "k5.json"]
    assert not list(cache.glob("*.tmp*"))
    assert cached_texts(None, "a", lambda: compute("no cache")) == ["no cache", "no cache!"]


def test_cache_key_follows_the_model_files_and_the_settings(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"1234")
    key = cache_key(model, n=4, seed=1)
    assert cache_key(model, n=4, seed=1) == key
    assert cache_key(model, n=8, seed=1) != key and cache_key(model, n=4, seed=2) != key
    (model / "weights.bin").write_bytes(b"12345")  # rewritten in place
    assert cache_key(model, n=4, seed=1) != key


def test_two_measurements_share_the_sft_samples(tmp_path, tiny_model_dir):
    gold = resolve_gold("length:4").score_batch
    options = {"samples": 2, "best_of": (1, 2, 4), "max_new_tokens": 6}
    cache = tmp_path / "sft-samples"
    first = policy_against_gold(tiny_model_dir, tiny_model_dir, PROMPTS, gold, cache_dir=cache, **options)
    (entry,) = cache.glob("*.json")
    texts = json.loads(entry.read_text())
    assert len(texts) == len(PROMPTS) * 4 and all(isinstance(t, str) for t in texts)
    # what a second measurement reads is what the first sampled: tamper with the entry and the SFT figures follow it
    entry.write_text(json.dumps(["word " * 4] * len(texts)))
    os.utime(entry)
    second = policy_against_gold(tiny_model_dir, tiny_model_dir, PROMPTS, gold, cache_dir=cache, **options)
    assert second["sft_gold"] == gold([], ["word " * 4])[0]
    assert second["policy_gold"] == first["policy_gold"]  # the policy's own samples are drawn afresh every time
    uncached = policy_against_gold(tiny_model_dir, tiny_model_dir, PROMPTS, gold, **options)
    assert uncached["sft_gold"] == first["sft_gold"] and uncached["best_of_n"] == first["best_of_n"]
    assert len(list(cache.glob("*.json"))) == 1
