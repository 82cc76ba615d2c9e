"""Property-based fuzzing of every RPC through a real gateway in front of the sandbox."""
