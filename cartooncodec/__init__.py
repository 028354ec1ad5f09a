"""CartoonCodec: the `cartooncodec` console command that drives every part of the product."""

# Imported first so that it sets OMP_WAIT_POLICY before anything loads torch (see models/__init__).
import models  # noqa: F401
