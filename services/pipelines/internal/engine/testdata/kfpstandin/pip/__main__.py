# No-op stand-in for `python3 -m pip install ...` (see ../README.md): the stand-in kfp is on PYTHONPATH.
import sys

sys.exit(0)
