"""atomic_dir: a folder appears whole under its name or not at all."""

from __future__ import annotations

import pytest

from app.storage import atomic_dir


def test_folder_appears_only_when_complete(tmp_path):
    target = tmp_path / "models" / "reward-1"
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("{}")
        assert not target.exists()
    assert (target / "config.json").read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["reward-1"]


def test_error_leaves_nothing(tmp_path):
    target = tmp_path / "ckpt"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_replace_swaps_only_after_success(tmp_path):
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "step").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target, replace=True) as tmp:
        (tmp / "step").write_text("2")
        raise RuntimeError("killed")
    assert (target / "step").read_text() == "1"
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "step").write_text("3")
    assert (target / "step").read_text() == "3"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    with pytest.raises(FileExistsError), atomic_dir(target):
        pass


def test_without_replace_a_folder_published_meanwhile_is_kept(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(OSError), atomic_dir(target) as tmp:
        (tmp / "weights").write_text("ours")
        target.mkdir()  # another process finished first
        (target / "weights").write_text("theirs")
    assert (target / "weights").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
