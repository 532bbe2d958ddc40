"""ranklab web application (torch-free)."""
