"""Rep console users and sessions: scrypt password hashes, a users file and Redis sessions.

A password hash reads `scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>`, with a random
16-byte salt per user. The users file is YAML or JSON:

    users:
      - username: rep01
        name: 王丽
        password_hash: "scrypt$16384$8$1$..."
        skills: [fraud, card_services]
        roles: [rep]

Roles: `rep` may take calls, `designer` may read the review queue of corrections.
Sessions are random tokens in an HttpOnly cookie. Redis stores only the SHA-256 of each
token, so a copy of Redis cannot be replayed as a login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as redis_asyncio
import yaml

from voicebot.errors import ConfigError
from voicebot.handoff.models import SKILLS

logger = logging.getLogger(__name__)

ROLES = ("rep", "designer")
SALT_BYTES = 16
HASH_BYTES = 32
# scrypt cost: n=2**14, r=8 uses 16 MiB and takes roughly 50 ms per check (estimate for one
# current server core), the parameters Python's hashlib documentation uses as an example.
DEFAULT_SCRYPT_N = 2**14
DEFAULT_SCRYPT_R = 8
DEFAULT_SCRYPT_P = 1
_MAX_SCRYPT_MEMORY_BYTES = 64 * 1024 * 1024


def hash_password(
    password: str, *, n: int = DEFAULT_SCRYPT_N, r: int = DEFAULT_SCRYPT_R, p: int = DEFAULT_SCRYPT_P
) -> str:
    """Return a scrypt hash of the password with a new random salt, for the users file."""
    if not password:
        raise ConfigError("Missing password: an empty password cannot be hashed.")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=HASH_BYTES, maxmem=_MAX_SCRYPT_MEMORY_BYTES
    )
    return "$".join(
        ["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def verify_password(password: str, encoded: str) -> bool:
    """Check a password against a hash from `hash_password` in constant time.

    Raises:
        ConfigError: If the stored hash is malformed.
    """
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ConfigError("Invalid password hash: expected scrypt$n$r$p$salt$hash from hash_password().")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
    except ValueError as error:
        raise ConfigError("Invalid password hash: the numbers or base64 fields do not parse.") from error
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=_MAX_SCRYPT_MEMORY_BYTES
    )
    return hmac.compare_digest(digest, expected)


@dataclass(frozen=True)
class User:
    """A console user: login name, display name, password hash, skills and roles."""

    username: str
    name: str
    password_hash: str
    skills: tuple[str, ...] = ()
    roles: tuple[str, ...] = ("rep",)


@dataclass
class Users:
    """The users of the console, by username."""

    by_name: dict[str, User] = field(default_factory=dict)
    # Checked when the username is unknown, so a wrong username costs as long as a wrong password.
    _dummy_hash: str = field(default_factory=lambda: hash_password(secrets.token_hex(16)))

    def authenticate(self, username: str, password: str) -> User | None:
        """Return the user if the password matches, else None; takes about as long either way."""
        user = self.by_name.get(username)
        if user is None:
            verify_password(password, self._dummy_hash)
            return None
        return user if verify_password(password, user.password_hash) else None


def load_users(path: Path) -> Users:
    """Read the users file (YAML or JSON, see the module docstring).

    Raises:
        ConfigError: If the file is missing or an entry is invalid.
    """
    if not path.is_file():
        raise ConfigError(f"Console users file {path} not found: create it with hashes from hash_password().")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"Console users file {path} is not valid YAML or JSON: {error}") from error
    entries = data.get("users") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"Console users file {path} has no `users:` list.")
    users = Users()
    for position, entry in enumerate(entries, start=1):
        users.by_name[_username(entry, path, position)] = _user(entry, path, position)
    return users


def _username(entry: object, path: Path, position: int) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("username"), str) or not entry["username"]:
        raise ConfigError(f"Console users file {path}: entry {position} has no username.")
    return str(entry["username"])


def _user(entry: dict[str, object], path: Path, position: int) -> User:
    username = str(entry["username"])
    password_hash = entry.get("password_hash")
    if not isinstance(password_hash, str) or not password_hash.startswith("scrypt$"):
        raise ConfigError(
            f"Console users file {path}: user {username} has no scrypt password_hash; "
            "create one with voicebot.console.auth.hash_password()."
        )
    skills = tuple(str(skill) for skill in entry.get("skills") or [])  # type: ignore[attr-defined]
    unknown = [skill for skill in skills if skill not in SKILLS]
    if unknown:
        raise ConfigError(f"Console users file {path}: user {username} has unknown skills {unknown}; use {SKILLS}.")
    roles = tuple(str(role) for role in entry.get("roles") or ["rep"])  # type: ignore[attr-defined]
    bad_roles = [role for role in roles if role not in ROLES]
    if bad_roles:
        raise ConfigError(f"Console users file {path}: user {username} has unknown roles {bad_roles}; use {ROLES}.")
    return User(
        username=username,
        name=str(entry.get("name") or username),
        password_hash=password_hash,
        skills=skills,
        roles=roles,
    )


class SessionStore:
    """Console sessions in Redis, keyed by the SHA-256 of the cookie token, with a sliding TTL."""

    def __init__(self, *, client: redis_asyncio.Redis, key_prefix: str, ttl_s: int = 8 * 3600) -> None:
        """Create the store.

        Args:
            client: Redis client with decode_responses=True.
            key_prefix: Prefix of the session keys.
            ttl_s: Seconds a session lives after its last request (a shift is 8 hours).
        """
        if ttl_s <= 0:
            raise ConfigError(f"Invalid console session ttl_s {ttl_s}: use a positive number of seconds.")
        self._client = client
        self._key_prefix = key_prefix
        self.ttl_s = ttl_s

    def _key(self, token: str) -> str:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return f"{self._key_prefix}session:{digest}"

    async def create(self, username: str) -> str:
        """Start a session and return its token for the cookie."""
        token = secrets.token_urlsafe(32)
        await self._client.set(self._key(token), json.dumps({"username": username}), ex=self.ttl_s)
        return token

    async def lookup(self, token: str) -> str | None:
        """Return the username of a live session and extend its TTL, or None."""
        if not token:
            return None
        key = self._key(token)
        stored = await self._client.get(key)
        if stored is None:
            return None
        await self._client.expire(key, self.ttl_s)
        return str(json.loads(stored)["username"])

    async def delete(self, token: str) -> None:
        """End a session (logout)."""
        await self._client.delete(self._key(token))


class LoginThrottle:
    """Counts failed logins per username in Redis and blocks after `max_failures` within `window_s`."""

    def __init__(
        self, *, client: redis_asyncio.Redis, key_prefix: str, max_failures: int = 10, window_s: int = 900
    ) -> None:
        self._client = client
        self._key_prefix = key_prefix
        self.max_failures = max_failures
        self.window_s = window_s

    def _key(self, username: str) -> str:
        digest = hashlib.sha256(username.encode()).hexdigest()[:32]
        return f"{self._key_prefix}login-failures:{digest}"

    async def blocked(self, username: str) -> bool:
        """Return whether the username has too many recent failures."""
        count = await self._client.get(self._key(username))
        return count is not None and int(count) >= self.max_failures

    async def record_failure(self, username: str) -> None:
        """Count one failed login; the window starts at the first failure."""
        key = self._key(username)
        count = await self._client.incr(key)
        if count == 1:
            await self._client.expire(key, self.window_s)

    async def reset(self, username: str) -> None:
        """Forget the failures after a successful login."""
        await self._client.delete(self._key(username))
