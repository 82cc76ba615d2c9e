"""Generated from protos/ by scripts/generate_stubs.py; never edit."""
