"""Domain logic: keyword-only functions that take a Session and never commit."""
