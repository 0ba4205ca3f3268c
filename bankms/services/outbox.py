"""The outbox: messages to customers (activation codes) waiting for the bank's mail/SMS relay.

A service writes a message in the same unit of work as what it announces, so a code exists
exactly when its message does. Staff never read the outbox: only the system actor does, through
`python -m bankms outbox`, which is the hand-off to the relay (as banks hand one-time codes to
a mail or SMS gateway instead of to the clerk at the counter).
"""
from __future__ import annotations

from ..domain.errors import NoContactOnFile
from .ledger import utcnow


def contact_of(email, phone) -> tuple[str, str]:
    """(channel, recipient) for a customer's contact details on file: the email, else the
    phone. Raises NoContactOnFile when there is neither."""
    email = (email or "").strip()
    phone = (phone or "").strip()
    if email:
        return "email", email
    if phone:
        return "sms", phone
    raise NoContactOnFile("The customer has no email address or phone number on file, so "
                          "an activation code cannot be sent; add one under Edit contact "
                          "details first.")


def masked(channel: str, recipient: str) -> str:
    """What staff may see of a recipient: 'j***@example.com', or '***0100' for a phone."""
    if channel == "email":
        local, _, domain = recipient.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = [c for c in recipient if c.isdigit()]
    return "***" + "".join(digits[-4:])


class Outbox:
    def __init__(self, bank):
        self._bank = bank

    def add_in(self, uow, actor, *, customer_id, channel, recipient, subject, body) -> int:
        """Queue one message inside the caller's unit of work (writer thread only); returns
        its id. The audit row names the message and the masked recipient, never the body."""
        mid = uow.fetchone("SELECT nextval('outbox_id_seq')")[0]
        uow.execute("INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    [mid, utcnow(), customer_id, channel, recipient, subject, body])
        self._bank.audit_row(uow, actor, "outbox.add", "outbox", mid, after={
            "customer_id": customer_id, "channel": channel,
            "sent_to": masked(channel, recipient), "subject": subject})
        return mid

    def pending(self, actor) -> list[dict]:
        """System actor only: the unsent messages, oldest first, as dicts with id,
        created_at, customer_id, channel, recipient, subject and body. PermissionDenied
        for anyone else (audited)."""
        self._bank.require(actor, "outbox.relay", entity="outbox")
        rows = self._bank.read(
            "SELECT id, created_at, customer_id, channel, recipient, subject, body FROM outbox "
            "WHERE sent_at IS NULL ORDER BY id")
        keys = ("id", "created_at", "customer_id", "channel", "recipient", "subject", "body")
        return [dict(zip(keys, row)) for row in rows]

    def mark_sent(self, actor, ids) -> int:
        """System actor only: the relay took these messages; returns how many were still
        unsent. PermissionDenied for anyone else (audited)."""
        self._bank.require(actor, "outbox.relay", entity="outbox")
        ids = sorted({int(i) for i in ids})
        if not ids:
            return 0

        def fn(uow):
            marks = ", ".join("?" * len(ids))
            done = [r[0] for r in uow.fetchall(
                f"SELECT id FROM outbox WHERE sent_at IS NULL AND id IN ({marks})", ids)]
            if done:
                uow.execute(f"UPDATE outbox SET sent_at = ? WHERE id IN "
                            f"({', '.join('?' * len(done))})", [utcnow(), *done])
                self._bank.audit_row(uow, actor, "outbox.mark_sent", "outbox", None,
                                     after={"ids": done})
            return len(done)
        return self._bank.write(fn)
