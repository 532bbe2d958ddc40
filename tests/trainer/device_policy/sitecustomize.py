"""Loaded at start-up by every Python process that has this folder on PYTHONPATH (the torchrun ranks of the job
tests): installs the gloo device policy when RANKLAB_TEST_BACKEND_DEVICE is set (see ranklab_device_policy.py)."""

import os

if os.environ.get("RANKLAB_TEST_BACKEND_DEVICE"):
    import ranklab_device_policy

    ranklab_device_policy.install_from_env()
