"""`python -m hf_slm.cli ...` is `hf-slm ...`."""

import sys

from .main import main

sys.exit(main())
