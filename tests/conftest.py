# Imported before any test module loads torch, so OMP_WAIT_POLICY (set in models/__init__) applies.
import models  # noqa: F401
