import sys

from glm5cluster.cli.main import main

sys.exit(main())
