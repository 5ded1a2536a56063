"""The web console where reps take warm transfers: login, presence, queue, screen-pop and call audio."""

from voicebot.console.app import CONSOLE_KEY, RepConsole, add_console_routes
from voicebot.console.auth import User, Users, hash_password, load_users, verify_password
from voicebot.console.records import DISPOSITIONS, CallNotes

__all__ = [
    "CONSOLE_KEY",
    "DISPOSITIONS",
    "CallNotes",
    "RepConsole",
    "User",
    "Users",
    "add_console_routes",
    "hash_password",
    "load_users",
    "verify_password",
]
