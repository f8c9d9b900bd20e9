import sys

from molmo2_data.cli import main

sys.exit(main())
