"""Reports and export of found models."""
