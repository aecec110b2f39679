import sys

from kubemr.cli import main

sys.exit(main())
