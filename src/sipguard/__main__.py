import sys

from sipguard.cli.main import main

sys.exit(main())
