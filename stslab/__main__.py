import sys

from stslab.cli import main

sys.exit(main())
