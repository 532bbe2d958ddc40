"""Every page's <title> is plain text: a block pasted into the wrong place once put a whole form into /prompts'
title (the browser showed its markup as the tab's name)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.factories import browser_login

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TITLE = re.compile(r"{%\s*block title\s*%}(.*?){%\s*endblock\s*%}", re.DOTALL)


def test_every_title_block_is_one_line_of_text():
    titles = {
        str(p.relative_to(TEMPLATES)): m.group(1)
        for p in TEMPLATES.rglob("*.html")
        if (m := TITLE.search(p.read_text()))
    }
    assert len(titles) > 15
    bad = {name: title[:80] for name, title in titles.items() if "<" in title or "\n" in title}
    assert bad == {}


def test_the_prompts_page_title_and_its_one_demonstration_form(client, factory):
    browser_login(client, factory.researcher())
    page = client.get("/prompts")
    assert page.status_code == 200
    assert re.search(r"<title>(.*?)</title>", page.text, re.DOTALL).group(1) == "Prompts · ranklab"
    assert page.text.count('id="demonstration-tasks"') == 1
