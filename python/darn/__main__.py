"""python -m darn: versions, library, backends, devices and a self-check of each backend (darn._diagnose)."""
import sys

from ._diagnose import main

sys.exit(main())
