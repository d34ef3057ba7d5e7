import sys

from sc_eval.cli import main

sys.exit(main())
