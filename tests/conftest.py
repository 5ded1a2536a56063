"""Settings for every test: keep pipecat's loguru output at warnings, as the service does."""

import sys

from loguru import logger

logger.remove()
logger.add(sys.stderr, level="WARNING")
