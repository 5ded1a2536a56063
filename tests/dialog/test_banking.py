"""Banking simulator in Redis: seed data, card actions and the audit log."""

from __future__ import annotations

import time

from voicebot.dialog.banking import AuditRecord, RedisBankingSimulator, new_audit_id


async def test_seed_has_dubai_transaction(bank: RedisBankingSimulator) -> None:
    """The Shanghai customer has a declined transaction in Dubai."""
    customer = await bank.find_customer_by_phone("13800138000")
    assert customer is not None
    assert customer.home_city == "上海"
    transactions = await bank.list_recent_transactions(customer.customer_id)
    dubai = [t for t in transactions if t.city == "Dubai"]
    assert len(dubai) == 1
    assert dubai[0].country == "AE"
    assert dubai[0].status == "declined"


async def test_verify_and_freeze(bank: RedisBankingSimulator) -> None:
    """A matching last4 returns the card; freezing twice reports already_frozen."""
    assert await bank.verify_last4("C002", "9999") is None
    card = await bank.verify_last4("C002", "3571")
    assert card is not None
    assert (await bank.freeze_card(card.card_id, call_id="t")).ok
    assert await bank.card_status(card.card_id) == "frozen"
    again = await bank.freeze_card(card.card_id, call_id="t")
    assert not again.ok
    assert again.reason == "already_frozen"


async def test_activate_only_inactive(bank: RedisBankingSimulator) -> None:
    """Activation works on an inactive card and names the reason otherwise."""
    assert (await bank.activate_card("K2002", call_id="t")).ok
    assert (await bank.activate_card("K2001", call_id="t")).reason == "already_active"
    assert (await bank.activate_card("K3001", call_id="t")).reason == "card_frozen"


async def test_credit_limit_rules(bank: RedisBankingSimulator) -> None:
    """A request must exceed the limit and the card must be six months old."""
    assert (await bank.request_credit_limit_increase("K2001", 50000, call_id="t")).reason == "not_higher"
    assert (await bank.request_credit_limit_increase("K3002", 90000, call_id="t")).reason == "card_too_new"
    accepted = await bank.request_credit_limit_increase("K2001", 100000, call_id="t")
    assert accepted.ok
    assert accepted.reference.startswith("L")


async def test_address_change_writes_audit(bank: RedisBankingSimulator) -> None:
    """Changing the address stores the new one and appends the audit record."""
    audit = AuditRecord(
        audit_id=new_audit_id(), action="change_billing_address", customer_id="C002", call_id="call-9",
        confirmed_by="caller 13922223333 as customer C002", confirmed_at=time.time(), confirmation_turn=5,
        old_value="广州市天河区体育西路一百二十号", new_value="上海市浦东新区世纪大道一百号", recorded_at=time.time(),
    )
    assert (await bank.change_billing_address("C002", audit.new_value, audit=audit)).ok
    customer = await bank.get_customer("C002")
    assert customer is not None
    assert customer.billing_address == audit.new_value
    assert await bank.audit_log() == [audit]
