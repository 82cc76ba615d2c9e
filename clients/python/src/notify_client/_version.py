"""The package version, in one place (the user agent reports it)."""

__version__ = "0.1.0"
