"""The README documents every setting and starts with the two commands."""

from app.config import ROOT_DIR, Settings


def test_every_setting_is_documented():
    readme = (ROOT_DIR / "README.md").read_text()
    missing = [f"RANKLAB_{name.upper()}" for name in Settings.model_fields if f"RANKLAB_{name.upper()}" not in readme]
    assert missing == []


def test_readme_opens_with_two_commands():
    readme = (ROOT_DIR / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line for line in first_block.splitlines()[1:] if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["bash scripts/dev.sh", "bash scripts/test.sh"]
