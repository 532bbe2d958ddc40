"""The simulator is part of the web package: importing it (and running its CLI's help) never loads torch."""

import subprocess
import sys

from app.config import ROOT_DIR


def test_simulate_modules_and_command_do_not_import_torch():
    code = (
        "import sys\n"
        "import app.simulate.gold, app.simulate.profiles, app.simulate.driver, app.simulate.report\n"
        "import app.simulate.synthetic, app.cli.simulate\n"
        "app.simulate.gold.resolve_gold('sentiment'); app.simulate.gold.resolve_gold('length:20')\n"
        "loaded = [m for m in ('torch', 'transformers', 'trainer') if m in sys.modules]\n"
        "sys.exit(f'loaded {loaded}' if loaded else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT_DIR, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr or result.stdout
