import sys

from kubemr.client.cli import main

sys.exit(main())
