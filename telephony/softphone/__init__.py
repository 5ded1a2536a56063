"""Test softphone for voicebot's media-stream endpoint (`voicebot call`).

The softphone plays the telephony side of a Twilio Media Stream. It sends `connected` and
`start`, then one 20 ms G.711 mu-law frame per 20 ms for the whole call, and finally `stop`.
The frames carry caller audio from WAV files, or mu-law silence between them. A caller turn
can also be keypad presses, sent as one `dtmf` event per key while the silence goes on. The
softphone plays the bot's audio on a simulated playout clock that drains 8000 samples per
second in real time, and echoes each `mark` once the playout reaches it, as Twilio does.

It opts into voicebot's sideband with the custom parameter `voicebot_events=1`. The service
then also sends JSON text messages with `"event": "voicebot"` (call id, transcripts, bot
replies, handoff, end of reply, errors), which the softphone prints and uses to know when a
reply is over.

Exit codes of `voicebot call`: 0 call completed, 2 invalid input (WAV file, --keys or --out
path), 3 service unreachable, 4 protocol error or unexpected close, 5 no reply within
--turn-timeout.

Modules: `call` drives the call over the WebSocket. `audio` loads caller WAV files and
simulates the playout of the bot's audio. `steps` defines the caller turns (`KeyPresses`),
and `summary` contains the results of a call. `cli` parses the command line and prints the
call.
"""

from telephony.softphone.audio import (
    FRAME_MS,
    FRAME_SAMPLES,
    MULAW_SILENCE,
    CallerClip,
    PlayoutBuffer,
    last_voiced_frame_index,
    load_caller_clip,
    write_played_audio,
)
from telephony.softphone.call import ServiceUnreachableError, place_call
from telephony.softphone.cli import (
    EXIT_INVALID_INPUT,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_TURN_TIMEOUT,
    EXIT_UNREACHABLE,
    add_call_arguments,
    format_summary,
    main,
    print_event,
    run_call_command,
)
from telephony.softphone.steps import KEY_PRESS_INTERVAL_S, CallerStep, KeyPresses, check_keys
from telephony.softphone.summary import CallSummary, EventCallback, TurnResult

__all__ = [
    "EXIT_INVALID_INPUT",
    "EXIT_OK",
    "EXIT_PROTOCOL",
    "EXIT_TURN_TIMEOUT",
    "EXIT_UNREACHABLE",
    "FRAME_MS",
    "KEY_PRESS_INTERVAL_S",
    "FRAME_SAMPLES",
    "MULAW_SILENCE",
    "CallSummary",
    "CallerClip",
    "CallerStep",
    "EventCallback",
    "KeyPresses",
    "PlayoutBuffer",
    "ServiceUnreachableError",
    "TurnResult",
    "add_call_arguments",
    "check_keys",
    "format_summary",
    "last_voiced_frame_index",
    "load_caller_clip",
    "main",
    "place_call",
    "print_event",
    "run_call_command",
    "write_played_audio",
]
