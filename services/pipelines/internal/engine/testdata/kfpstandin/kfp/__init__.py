"""Stand-in for the kfp package (test fixture, see ../README.md)."""
from kfp import dsl  # noqa: F401
