import sys

from tpt.cli import main

sys.exit(main())
