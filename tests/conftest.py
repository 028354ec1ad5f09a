# Imported before any test module loads torch, so OMP_WAIT_POLICY (set in models/__init__) applies.
import os

import models  # noqa: F401
from models.checkpoint_option import RANDOM_WEIGHTS_ENV

# The tests build the `tiny` preset, which ships no checkpoint, with random weights on purpose.
os.environ[RANDOM_WEIGHTS_ENV] = "1"
