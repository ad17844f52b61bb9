"""What the installed product is made of: the app and its migrations, never the development
and test tooling in dev/ (the local Stripe server, sample data, the demo organisation)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_package_discovery_finds_the_app_and_not_dev():
    found = find_packages(str(ROOT), **_setuptools_config()["packages"]["find"])
    assert "billing_app" in found
    assert "billing_app.figures" in found
    assert not [name for name in found if not name.startswith("billing_app")]
    assert "demo/*" not in _setuptools_config()["package-data"]["billing_app"]


def test_the_wheel_ships_none_of_the_dev_tooling(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("petra_billing-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "billing_app/figures/calculator.py" in names
    assert "billing_app/migrations/env.py" in names
    top_level = {name.split("/", 1)[0] for name in names}
    assert top_level == {"billing_app", wheel.name.split("-py3")[0] + ".dist-info"}
    assert not [n for n in names if "stripe_local" in n or "sample_data" in n or ".json" in n]
