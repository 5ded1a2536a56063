"""Banking API the flows call, and a simulator of it in Redis.

`BankingApi` is the protocol a bank's adapter implements. It looks up the customer,
lists and verifies cards, freezes and activates cards, reads the statement, requests a
credit-limit increase, changes the billing address with an audit record, and lists
recent transactions with the merchant's city and country.

`RedisBankingSimulator` implements it on Redis for development and tests. Its seed data
(`seed()`) is invented: three customers with cards, addresses, statements and
transactions, one of them a declined restaurant payment in Dubai while the customer
lives in Shanghai. Keys, for the prefix P (default ``voicebot:banksim:``):

- ``P customer:{id}``: the customer as JSON; ``P phone:{number}``: the customer id;
- ``P card:{card_id}``: the card as JSON; ``P cards:{customer_id}``: a list of card ids;
- ``P statement:{card_id}``: the latest statement as JSON;
- ``P transactions:{customer_id}``: a list of transactions as JSON, newest first;
- ``P audit``: a list of audit records as JSON, oldest first;
- ``P limit_requests``: a list of credit-limit requests as JSON.

The simulator holds personal data of invented people only. A real audit log keeps
records for the bank's retention period; the simulator's keys have no TTL and
`clear()` removes them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from voicebot.errors import UpstreamError

logger = logging.getLogger(__name__)

DEFAULT_KEY_PREFIX = "voicebot:banksim:"


@dataclass(frozen=True)
class Customer:
    """A cardholder."""

    customer_id: str
    name: str
    phone: str
    home_city: str
    home_country: str  # ISO 3166-1 alpha-2
    billing_address: str


@dataclass(frozen=True)
class Card:
    """A credit card. `status` is "active", "inactive" (not yet activated) or "frozen"."""

    card_id: str
    customer_id: str
    last4: str
    product: str
    status: str
    credit_limit: int  # yuan
    opened_on: str  # ISO date


@dataclass(frozen=True)
class Statement:
    """The latest statement of a card. Amounts in yuan as decimal strings, dates ISO."""

    card_id: str
    period: str  # "2024-06"
    balance: str
    minimum_payment: str
    due_date: str


@dataclass(frozen=True)
class Transaction:
    """One card transaction. `status` is "approved" or "declined"."""

    transaction_id: str
    card_id: str
    amount: str  # in `currency`, decimal string
    currency: str
    merchant: str
    city: str
    country: str  # ISO 3166-1 alpha-2
    time: str  # ISO date and time, local to the merchant
    status: str


@dataclass(frozen=True)
class AuditRecord:
    """Audit record of a customer-data change: the confirmer, the confirmed values, the time and the call."""

    audit_id: str
    action: str  # e.g. "change_billing_address"
    customer_id: str
    call_id: str
    confirmed_by: str  # how the confirmer was identified, e.g. "caller 13800138000, card last4 verified"
    confirmed_at: float  # epoch seconds of the caller's explicit yes
    confirmation_turn: int  # the turn index of that yes
    old_value: str
    new_value: str
    recorded_at: float
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionOutcome:
    """Result of a state-changing call. `reason` is the failure code, e.g. "already_active"."""

    ok: bool
    reason: str = ""
    reference: str = ""  # an id the caller can quote, such as a request number


class BankingApi(Protocol):
    """The bank's systems as the dialog flows use them. Every method is async and may raise UpstreamError."""

    async def find_customer_by_phone(self, phone: str) -> Customer | None: ...

    async def get_customer(self, customer_id: str) -> Customer | None: ...

    async def list_cards(self, customer_id: str) -> list[Card]: ...

    async def verify_last4(self, customer_id: str, last4: str) -> Card | None: ...

    async def freeze_card(self, card_id: str, *, call_id: str) -> ActionOutcome: ...

    async def activate_card(self, card_id: str, *, call_id: str) -> ActionOutcome: ...

    async def get_statement(self, card_id: str) -> Statement | None: ...

    async def request_credit_limit_increase(self, card_id: str, amount: int, *, call_id: str) -> ActionOutcome: ...

    async def change_billing_address(self, customer_id: str, new_address: str, *, audit: AuditRecord) -> ActionOutcome: ...

    async def list_recent_transactions(self, customer_id: str, *, limit: int = 10) -> list[Transaction]: ...


# Minimum card age for a credit-limit increase, the rule the FAQ states (用卡满六个月).
MIN_CARD_AGE_DAYS = 182

SEED_CUSTOMERS = (
    Customer("C001", "张伟", "13800138000", "上海", "CN", "上海市徐汇区漕溪北路八十八号"),
    Customer("C002", "陈嘉欣", "13922223333", "广州", "CN", "广州市天河区体育西路一百二十号"),
    Customer("C003", "王芳", "13700001111", "北京", "CN", "北京市朝阳区建国路九十三号"),
)
SEED_CARDS = (
    Card("K1001", "C001", "6288", "金卡", "active", 50000, "2021-03-15"),
    Card("K1002", "C001", "1357", "普卡", "inactive", 20000, "2024-06-01"),
    Card("K2001", "C002", "3571", "金卡", "active", 80000, "2019-11-20"),
    Card("K2002", "C002", "8008", "普卡", "inactive", 10000, "2024-06-10"),
    Card("K3001", "C003", "4096", "普卡", "frozen", 30000, "2022-01-05"),
    Card("K3002", "C003", "2468", "普卡", "active", 15000, time.strftime("%Y-%m-%d")),
)
SEED_STATEMENTS = (
    Statement("K1001", "2024-06", "3256.80", "325.68", "2024-07-25"),
    Statement("K2001", "2024-06", "12800.00", "1280.00", "2024-07-18"),
    Statement("K3002", "2024-06", "0.00", "0.00", "2024-07-20"),
)
SEED_TRANSACTIONS = (
    Transaction("T9001", "K1001", "860.00", "AED", "Al Mahara Restaurant", "Dubai", "AE", "2024-06-28T21:14:00", "declined"),
    Transaction("T9002", "K1001", "128.50", "CNY", "全家便利店", "上海", "CN", "2024-06-28T08:02:00", "approved"),
    Transaction("T9003", "K1001", "2399.00", "CNY", "京东商城", "上海", "CN", "2024-06-25T19:40:00", "approved"),
    Transaction("T9101", "K2001", "356.00", "CNY", "陶陶居", "广州", "CN", "2024-06-27T12:30:00", "approved"),
    Transaction("T9201", "K3002", "45.00", "CNY", "瑞幸咖啡", "北京", "CN", "2024-06-26T09:10:00", "approved"),
)


class RedisBankingSimulator:
    """`BankingApi` on Redis with invented seed data, for development and tests."""

    def __init__(
        self,
        *,
        url: str = "redis://127.0.0.1:6379/0",
        client: redis_asyncio.Redis | None = None,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        socket_timeout_s: float = 2.0,
    ) -> None:
        self.key_prefix = key_prefix
        self._owns_client = client is None
        self._client = client or redis_asyncio.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s, decode_responses=True
        )

    def _key(self, *parts: str) -> str:
        return self.key_prefix + ":".join(parts)

    async def seed(self) -> None:
        """Replace the simulator's data with the seed customers, cards, statements and transactions."""
        await self.clear()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for customer in SEED_CUSTOMERS:
                    pipe.set(self._key("customer", customer.customer_id), _dump(customer))
                    pipe.set(self._key("phone", customer.phone), customer.customer_id)
                for card in SEED_CARDS:
                    pipe.set(self._key("card", card.card_id), _dump(card))
                    pipe.rpush(self._key("cards", card.customer_id), card.card_id)
                for statement in SEED_STATEMENTS:
                    pipe.set(self._key("statement", statement.card_id), _dump(statement))
                for transaction in SEED_TRANSACTIONS:
                    owner = next(card.customer_id for card in SEED_CARDS if card.card_id == transaction.card_id)
                    pipe.rpush(self._key("transactions", owner), _dump(transaction))
                await pipe.execute()
        except RedisError as error:
            raise UpstreamError(f"seeding the banking simulator under {self.key_prefix} failed: {error}") from error
        logger.info("Banking simulator seeded under %s", self.key_prefix)

    async def clear(self) -> None:
        """Delete every key under the simulator's prefix."""
        try:
            keys = [key async for key in self._client.scan_iter(match=self.key_prefix + "*", count=500)]
            if keys:
                await self._client.delete(*keys)
        except RedisError as error:
            raise UpstreamError(f"clearing the banking simulator under {self.key_prefix} failed: {error}") from error

    async def close(self) -> None:
        """Close the Redis connection if the simulator created it."""
        if self._owns_client:
            await self._client.aclose()

    async def _get_json(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._client.get(key)
        except RedisError as error:
            raise UpstreamError(f"reading {key} from the banking simulator failed: {error}") from error
        return None if raw is None else json.loads(raw)

    async def _set_json(self, key: str, value: dict[str, Any]) -> None:
        try:
            await self._client.set(key, json.dumps(value, ensure_ascii=False))
        except RedisError as error:
            raise UpstreamError(f"writing {key} to the banking simulator failed: {error}") from error

    async def find_customer_by_phone(self, phone: str) -> Customer | None:
        """Return the customer whose registered phone number is `phone`."""
        if not phone:
            return None
        try:
            customer_id = await self._client.get(self._key("phone", phone))
        except RedisError as error:
            raise UpstreamError(f"phone lookup in the banking simulator failed: {error}") from error
        return None if customer_id is None else await self.get_customer(customer_id)

    async def get_customer(self, customer_id: str) -> Customer | None:
        """Return the customer with id `customer_id`."""
        data = await self._get_json(self._key("customer", customer_id))
        return None if data is None else Customer(**data)

    async def list_cards(self, customer_id: str) -> list[Card]:
        """Return the customer's cards in the order they were issued."""
        try:
            card_ids = await self._client.lrange(self._key("cards", customer_id), 0, -1)
        except RedisError as error:
            raise UpstreamError(f"listing cards in the banking simulator failed: {error}") from error
        cards = []
        for card_id in card_ids:
            data = await self._get_json(self._key("card", card_id))
            if data is not None:
                cards.append(Card(**data))
        return cards

    async def verify_last4(self, customer_id: str, last4: str) -> Card | None:
        """Return the customer's card ending in `last4`, or None when there is none."""
        for card in await self.list_cards(customer_id):
            if card.last4 == last4:
                return card
        return None

    async def _set_status(self, card_id: str, status: str, *, allowed_from: tuple[str, ...]) -> ActionOutcome:
        key = self._key("card", card_id)
        data = await self._get_json(key)
        if data is None:
            return ActionOutcome(False, "card_not_found")
        if data["status"] == status:
            return ActionOutcome(False, f"already_{status}")
        if data["status"] not in allowed_from:
            return ActionOutcome(False, f"card_{data['status']}")
        data["status"] = status
        await self._set_json(key, data)
        return ActionOutcome(True, reference=card_id)

    async def freeze_card(self, card_id: str, *, call_id: str) -> ActionOutcome:
        """Freeze a card; an already frozen card gives reason "already_frozen"."""
        outcome = await self._set_status(card_id, "frozen", allowed_from=("active", "inactive"))
        logger.info("Simulator freeze_card: ok=%s reason=%s", outcome.ok, outcome.reason, extra={"call_id": call_id})
        return outcome

    async def activate_card(self, card_id: str, *, call_id: str) -> ActionOutcome:
        """Activate an inactive card; reasons "already_active" and "card_frozen" for the others."""
        outcome = await self._set_status(card_id, "active", allowed_from=("inactive",))
        logger.info("Simulator activate_card: ok=%s reason=%s", outcome.ok, outcome.reason, extra={"call_id": call_id})
        return outcome

    async def get_statement(self, card_id: str) -> Statement | None:
        """Return the card's latest statement, or None for a card without one."""
        data = await self._get_json(self._key("statement", card_id))
        return None if data is None else Statement(**data)

    async def request_credit_limit_increase(self, card_id: str, amount: int, *, call_id: str) -> ActionOutcome:
        """File a request for a higher limit. The bank decides later and informs the customer by SMS.

        Fails with "not_higher" when `amount` is not above the current limit and with
        "card_too_new" for a card younger than MIN_CARD_AGE_DAYS.
        """
        data = await self._get_json(self._key("card", card_id))
        if data is None:
            return ActionOutcome(False, "card_not_found")
        card = Card(**data)
        if amount <= card.credit_limit:
            return ActionOutcome(False, "not_higher")
        opened = time.mktime(time.strptime(card.opened_on, "%Y-%m-%d"))
        if time.time() - opened < MIN_CARD_AGE_DAYS * 86400:
            return ActionOutcome(False, "card_too_new")
        reference = "L" + uuid.uuid4().hex[:8].upper()
        request = {"reference": reference, "card_id": card_id, "amount": amount, "call_id": call_id,
                   "status": "submitted", "requested_at": time.time()}
        try:
            await self._client.rpush(self._key("limit_requests"), json.dumps(request))
        except RedisError as error:
            raise UpstreamError(f"filing a credit-limit request in the simulator failed: {error}") from error
        return ActionOutcome(True, reference=reference)

    async def change_billing_address(self, customer_id: str, new_address: str, *, audit: AuditRecord) -> ActionOutcome:
        """Set the billing address and append `audit` to the audit log in one transaction."""
        key = self._key("customer", customer_id)
        data = await self._get_json(key)
        if data is None:
            return ActionOutcome(False, "customer_not_found")
        data["billing_address"] = new_address
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(key, json.dumps(data, ensure_ascii=False))
                pipe.rpush(self._key("audit"), _dump(audit))
                await pipe.execute()
        except RedisError as error:
            raise UpstreamError(f"changing the billing address in the simulator failed: {error}") from error
        return ActionOutcome(True, reference=audit.audit_id)

    async def list_recent_transactions(self, customer_id: str, *, limit: int = 10) -> list[Transaction]:
        """Return up to `limit` of the customer's transactions, newest first."""
        try:
            rows = await self._client.lrange(self._key("transactions", customer_id), 0, limit - 1)
        except RedisError as error:
            raise UpstreamError(f"listing transactions in the simulator failed: {error}") from error
        return [Transaction(**json.loads(row)) for row in rows]

    async def audit_log(self) -> list[AuditRecord]:
        """Return every audit record, oldest first."""
        try:
            rows = await self._client.lrange(self._key("audit"), 0, -1)
        except RedisError as error:
            raise UpstreamError(f"reading the simulator's audit log failed: {error}") from error
        return [AuditRecord(**json.loads(row)) for row in rows]

    async def card_status(self, card_id: str) -> str | None:
        """Return a card's status, for tests and scenario checks."""
        data = await self._get_json(self._key("card", card_id))
        return None if data is None else str(data["status"])


def new_audit_id() -> str:
    """Return a fresh audit record id."""
    return "A" + uuid.uuid4().hex[:12].upper()


def _dump(value: Any) -> str:
    return json.dumps(asdict(value), ensure_ascii=False)
