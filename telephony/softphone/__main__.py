"""`python -m telephony.softphone`: the same as `voicebot call`."""

import sys

from telephony.softphone.cli import main

sys.exit(main())
