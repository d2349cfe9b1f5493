"""Train, evaluate or chat with a CRSLab model through the crslab-c2crs plugin (see README)."""
import sys

from crslab_c2crs.cli import main

if __name__ == "__main__":
    sys.exit(main())
