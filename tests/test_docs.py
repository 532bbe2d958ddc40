"""The README starts with the two commands and documents every setting exactly as app/config.py does."""

from app.config import ROOT_DIR
from app.settings_doc import BEGIN, END, settings_table


def test_settings_table_is_current():
    readme = (ROOT_DIR / "README.md").read_text()
    documented = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert documented == settings_table(), "regenerate the README table with: python -m app.settings_doc"


def test_readme_opens_with_two_commands():
    readme = (ROOT_DIR / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = [line for line in first_block.splitlines()[1:] if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["bash scripts/dev.sh", "bash scripts/test.sh"]
