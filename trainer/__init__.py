"""ranklab trainer: everything that touches torch (never imported by the web process)."""
