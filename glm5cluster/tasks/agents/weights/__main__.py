"""``python -m glm5cluster.tasks.agents.weights CMD ...``: the agent run as modules."""

import sys

from .cli import main

sys.exit(main(sys.argv))
