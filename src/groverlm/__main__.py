import sys

from groverlm.cli import main

sys.exit(main())
