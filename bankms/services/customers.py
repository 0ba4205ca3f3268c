"""Customers: onboarding by staff, self-registration, verification, status and contact details."""
from __future__ import annotations

import datetime as dt
import re

from . import businessday, outbox
from ..domain.errors import (
    CustomerNotFound,
    DuplicateError,
    InvalidInput,
    InvalidState,
    NoContactOnFile,
)
from .ledger import utcnow

STATUSES = ("pending", "active", "suspended", "closed")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,22}$")
CONTACT_FIELDS = ("email", "phone", "address")
PAGE_ROWS_MAX = 200


def _text(value, label, *, required=True, chars_max=200):
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(f"Please enter the {label}.")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"The {label} must be text.")
    value = " ".join(value.split())
    if len(value) > chars_max:
        raise InvalidInput(f"The {label} may have at most {chars_max} characters.")
    return value


def clean_email(value, required=True):
    value = _text(value, "email", required=required, chars_max=254)
    if value is not None and not _EMAIL.match(value):
        raise InvalidInput(f"'{value}' is not an email address.")
    return value.lower() if value else value


def clean_phone(value, required=True):
    value = _text(value, "phone number", required=required, chars_max=24)
    if value is not None and not _PHONE.match(value):
        raise InvalidInput(f"'{value}' is not a phone number.")
    return value


def clean_date_of_birth(value, *, today: dt.date):
    """A date of birth on or before `today` (the bank's calendar date, businessday.
    calendar_date: a birth date is a date in the bank's zone, not on the machine's clock) and
    at most 125 years before it; else InvalidInput."""
    if value is None or value == "":
        raise InvalidInput("Please enter the date of birth.")
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput("The date of birth must look like 1990-04-30.") from None
    if not isinstance(value, dt.date):
        raise InvalidInput("The date of birth must be a date.")
    if value > today:
        raise InvalidInput("The date of birth cannot be in the future.")
    if value.year < today.year - 125:
        raise InvalidInput("Please check the date of birth.")
    return value


def clean_profile(full_name, email, phone, date_of_birth, national_id, address, *,
                  today: dt.date):
    return {
        "full_name": _text(full_name, "full name", chars_max=100),
        "email": clean_email(email),
        "phone": clean_phone(phone),
        "date_of_birth": clean_date_of_birth(date_of_birth, today=today),
        "national_id": _text(national_id, "national id", chars_max=30).upper(),
        "address": _text(address, "address", chars_max=200),
    }


def _phone_pattern(query: str) -> str | None:
    """A LIKE pattern over phone digits, only for queries that look like a phone number: a
    name such as 'Percy 100%' must not match every phone that contains 100. None otherwise:
    LIKE NULL matches no phone (a NUL character did once; PostgreSQL refuses it in text)."""
    digits = re.sub(r"[^0-9+]", "", query)
    if re.fullmatch(r"[0-9+ ()./-]+", query.strip()) and len(digits) >= 4:
        return f"%{digits}%"
    return None


class Customers:
    def __init__(self, bank):
        self._bank = bank

    def _insert(self, uow, actor, profile, status):
        if uow.fetchone("SELECT 1 FROM customers WHERE national_id = ?", [profile["national_id"]]):
            raise DuplicateError("A customer with this national id already exists.")
        cid = uow.fetchone("SELECT nextval('customer_id_seq')")[0]
        now = utcnow()
        uow.execute(
            "INSERT INTO customers (id, full_name, email, phone, date_of_birth, national_id, "
            "address, status, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [cid, profile["full_name"], profile["email"], profile["phone"],
             profile["date_of_birth"], profile["national_id"], profile["address"], status, now,
             actor.username])
        uow.execute("INSERT INTO customer_status_history VALUES (?, NULL, ?, ?, ?, ?)",
                    [cid, status, now, actor.username, "created"])
        self._bank.audit_row(uow, actor, "customer.create", "customer", cid,
                             after={**profile, "status": status})
        return cid

    def create(self, actor, *, full_name, email, phone, date_of_birth, national_id,
               address, idempotency_key=None) -> int:
        """Staff onboard a customer, who is active at once (staff saw the documents). With an
        idempotency key, a repeat of the same form returns the same customer id."""
        from . import once

        self._bank.require(actor, "customer.create", entity="customer")
        profile = clean_profile(full_name, email, phone, date_of_birth, national_id, address,
                                today=businessday.calendar_date(self._bank))
        key = once.clean_key(idempotency_key)

        def fn(uow):
            earlier = once.recall(uow, key, "customer.create", actor, profile)
            if earlier is not once.MISSING:
                return earlier
            cid = self._insert(uow, actor, profile, "active")
            once.remember(uow, key, "customer.create", actor, cid, profile)
            return cid
        return self._bank.write(fn)

    def register(self, *, full_name, email, phone, date_of_birth, national_id, address,
                 username, password, client_address=None) -> None:
        """Self-registration: a pending customer with a login; nothing financial until a
        teller verifies them.

        Answers the same (None) whether or not the username or the national id exists, so a
        stranger cannot use it to find out who banks here: a duplicate is recorded only as a
        refused `customer.register` audit row, and that sign-up never becomes a login (the
        person finds out at sign-in or from the bank at the verification step). Raises
        InvalidInput or PasswordPolicyError for bad input, and LimitExceeded once
        `client_address` (the client's IP address as text; None when unknown) has made
        `signups_per_address_max` sign-ups within `signup_window_s`."""
        from . import throttle
        from ..domain.errors import LimitExceeded
        from ..domain.security import Actor
        from .users import check_password_policy, normalize_username

        bank = self._bank
        profile = clean_profile(full_name, email, phone, date_of_birth, national_id, address,
                                today=businessday.calendar_date(bank))
        name = normalize_username(username)
        check_password_policy(password, name)
        # Hashed before anything is looked up, so a duplicate costs what a new sign-up does.
        password_hash = bank.users._hash(password)
        address = throttle.clean_address(client_address)
        signups_max = bank.settings.get_int("signups_per_address_max", 5)
        window_s = bank.settings.get_int("signup_window_s", 3600)
        actor = Actor(username=name, role="anonymous")
        now = throttle.utcnow()

        def fn(uow):
            if address is not None:
                allowed, wait_s = throttle.take(uow, throttle.SIGNUP_ADDRESS, address,
                                                events_max=signups_max, window_s=window_s,
                                                now=now)
                if not allowed:
                    bank.audit_row(uow, actor, "customer.register", "user", name, after={
                        "reason": "too many sign-ups from this address", "address": address},
                        outcome="refused")
                    return wait_s
            taken = []
            if uow.fetchone("SELECT 1 FROM users WHERE username = ?", [name]):
                taken.append("username taken")
            if uow.fetchone("SELECT 1 FROM customers WHERE national_id = ?",
                            [profile["national_id"]]):
                taken.append("national id exists")
            if taken:
                bank.audit_row(uow, actor, "customer.register", "user", name, after={
                    "reason": ", ".join(taken), "full_name": profile["full_name"],
                    "address": address}, outcome="refused")
                return 0
            cid = self._insert(uow, actor, profile, "pending")
            bank.users._insert(uow, actor, name, password_hash, "customer", cid,
                               profile["full_name"], profile["email"], False)
            bank.audit_row(uow, actor, "customer.register", "customer", cid,
                           after={"username": name, "address": address})
            return 0
        wait_s = bank.write(fn)
        if wait_s:
            raise LimitExceeded("Too many sign-ups from this address; please try again in "
                                f"{wait_s // 60 + 1} minutes or visit a branch.")

    def get(self, actor, customer_id) -> dict:
        cid = self._id(customer_id)
        self._bank.require(actor, "customer.read", cid, entity="customer", entity_id=cid)
        row = self._bank.read_one(
            "SELECT id, full_name, email, phone, date_of_birth, national_id, address, status, "
            "created_at, created_by FROM customers WHERE id = ?", [cid])
        if row is None:
            raise CustomerNotFound(f"There is no customer {cid}.")
        keys = ("id", "full_name", "email", "phone", "date_of_birth", "national_id", "address",
                "status", "created_at", "created_by")
        return dict(zip(keys, row))

    def overview(self, actor, customer_id, *, activity_limit=20) -> dict:
        """Everything a teller wants on one screen: the profile, accounts with balances, the
        latest activity across all accounts, loans (when the loans module is installed) and,
        for staff, payments of this customer waiting for approval."""
        from .accounts import money_column
        from ..domain.labels import label_sql

        bank = self._bank
        profile = self.get(actor, customer_id)
        cid = profile["id"]
        accounts = bank.accounts.list(actor, cid)
        activity = bank.read_df(
            "SELECT t.id AS transaction_id, p.posted_at, a.account_number, t.kind, t.channel, "
            f"{label_sql('t.kind', 't.channel', 'p.amount_cents')} AS label, t.memo, "
            "p.amount_cents FROM postings p JOIN accounts a ON a.id = p.account_id "
            "JOIN transactions t ON t.id = p.transaction_id WHERE a.customer_id = ? "
            "ORDER BY p.posted_at DESC, p.id DESC LIMIT ?", [cid, int(activity_limit)])
        activity["amount"] = money_column(activity["amount_cents"])
        pending = None
        if getattr(actor, "is_staff", False):
            pending = bank.approvals.list(actor, "pending", customer_id=cid)
        return {"profile": profile, "accounts": accounts, "activity": activity,
                "loans": self._loans(actor, cid), "pending_approvals": pending}

    def _loans(self, actor, cid):
        """This customer's loans, or None when the loans module is not installed."""
        loans = getattr(self._bank, "loans", None)
        return None if loans is None else loans.list(actor, cid)

    @staticmethod
    def _id(customer_id) -> int:
        from ..domain.ids import parse_id
        return parse_id(customer_id, "customer id")

    def list(self, actor, status=None):
        self._bank.require(actor, "customer.search", entity="customer")
        sql = ("SELECT id AS customer_id, full_name, email, phone, status, created_at "
               "FROM customers")
        params = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        return self._bank.read_df(sql + " ORDER BY id", params)

    def pending(self, actor, *, limit=20, offset=0) -> dict:
        """One page of self-registrations waiting for verification, oldest first:
        {"total": int, "rows": DataFrame of customer_id, full_name, email, phone,
        date_of_birth, national_id, address, created_at}. limit 1..200, offset >= 0."""
        from ..domain.ids import parse_id

        self._bank.require(actor, "customer.search", entity="customer")
        limit = parse_id(limit, "page size")
        if limit > PAGE_ROWS_MAX:
            raise InvalidInput(f"A page has at most {PAGE_ROWS_MAX} rows.")
        offset = 0 if offset in (0, "0") else parse_id(offset, "row offset")
        total = self._bank.read_one("SELECT count(*) FROM customers WHERE status = 'pending'")[0]
        rows = self._bank.read_df(
            "SELECT id AS customer_id, full_name, email, phone, date_of_birth, national_id, "
            "address, created_at FROM customers WHERE status = 'pending' "
            "ORDER BY created_at, id LIMIT ? OFFSET ?", [limit, offset])
        return {"total": int(total), "rows": rows}

    def search(self, actor, query: str, limit: int = 50):
        """Find customers by name, phone, email, customer id or account number."""
        self._bank.require(actor, "customer.search", entity="customer")
        q = _text(query, "search text", chars_max=100)
        digits = re.sub(r"[\s-]", "", q)
        # LIKE wildcards typed by the user are searched for literally.
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{escaped}%"
        return self._bank.read_df(
            "SELECT DISTINCT c.id AS customer_id, c.full_name, c.email, c.phone, c.status "
            "FROM customers c LEFT JOIN accounts a ON a.customer_id = c.id "
            "WHERE lower(c.full_name) LIKE ? ESCAPE '\\' OR lower(c.email) LIKE ? ESCAPE '\\' "
            "OR regexp_replace(c.phone, '[^0-9+]', '', 'g') LIKE ? "
            "OR CAST(c.id AS VARCHAR) = ? OR a.account_number = ? OR c.national_id = ? "
            "ORDER BY c.full_name LIMIT ?",
            [like, like, _phone_pattern(q), q.strip(), digits,
             q.strip().upper(), int(limit)])

    def _set_status(self, actor, cid, new_status, reason, *, allowed_from):
        bank = self._bank

        def fn(uow):
            row = uow.fetchone("SELECT status FROM customers WHERE id = ?", [cid])
            if row is None:
                raise CustomerNotFound(f"There is no customer {cid}.")
            if row[0] not in allowed_from:
                raise InvalidState(f"Customer {cid} is {row[0]}; it cannot become {new_status}.")
            if new_status == "closed" and uow.fetchone(
                    "SELECT 1 FROM accounts WHERE customer_id = ? AND status <> 'closed'", [cid]):
                raise InvalidState("Close every account of this customer first.")
            uow.execute("UPDATE customers SET status = ? WHERE id = ?", [new_status, cid])
            uow.execute("INSERT INTO customer_status_history VALUES (?, ?, ?, ?, ?, ?)",
                        [cid, row[0], new_status, utcnow(), actor.username, reason])
            bank.audit_row(uow, actor, "customer.status", "customer", cid,
                           before={"status": row[0]}, after={"status": new_status,
                                                             "reason": reason})
        bank.write(fn)

    def verify(self, actor, customer_id, reason="identity documents checked"):
        cid = self._id(customer_id)
        self._bank.require(actor, "customer.verify", entity="customer", entity_id=cid)
        self._set_status(actor, cid, "active", reason, allowed_from=("pending",))

    def set_status(self, actor, customer_id, status, reason):
        cid = self._id(customer_id)
        self._bank.require(actor, "customer.set_status", entity="customer", entity_id=cid)
        if status not in STATUSES or status == "pending":
            raise InvalidInput("The status must be active, suspended or closed.")
        reason = _text(reason, "reason", chars_max=200)
        allowed_from = {"active": ("suspended", "pending"), "suspended": ("active",),
                        "closed": ("active", "suspended", "pending")}[status]
        self._set_status(actor, cid, status, reason, allowed_from=allowed_from)

    def status_history(self, actor, customer_id):
        cid = self._id(customer_id)
        self._bank.require(actor, "customer.read", cid, entity="customer", entity_id=cid)
        return self._bank.read_df("SELECT * FROM customer_status_history WHERE customer_id = ? "
                                  "ORDER BY changed_at", [cid])

    def _notify_contact_change(self, uow, actor, cid, before, diff) -> None:
        """Tell the customer at each old email or phone that staff changed (else at their old
        contact on file, when the changed one was empty), so that a teller who puts their own
        details on file cannot do it unseen."""
        old = {"email": ("email", (before["email"] or "").strip()),
               "phone": ("sms", (before["phone"] or "").strip())}
        targets = [old[k] for k in ("email", "phone") if k in diff and old[k][1]]
        if not targets and {"email", "phone"} & diff.keys():
            try:
                targets = [outbox.contact_of(before["email"], before["phone"])]
            except NoContactOnFile:
                return
        what = " and ".join(n for k, n in (("email", "email address"),
                                           ("phone", "phone number")) if k in diff)
        for channel, recipient in targets:
            self._bank.outbox.add_in(
                uow, actor, customer_id=cid, channel=channel, recipient=recipient,
                subject="Your contact details at the bank changed",
                body=(f"The {what} on file for you at the bank was changed by bank staff on "
                      f"{utcnow():%Y-%m-%d %H:%M} UTC. If it was not you who asked for this, "
                      "call the bank at once."))

    def update_contact(self, actor, customer_id, *, email=None, phone=None, address=None):
        """Change a customer's email, phone and/or address; returns the changed fields as
        {field: new value} ({} when nothing differs). When staff change the email or phone,
        the customer is told at the old one through the outbox in the same transaction, and
        no activation code goes to the new one for `contact_change_cooling_off_h` (users.py;
        issue 12). Raises PermissionDenied, InvalidInput, CustomerNotFound, InvalidState."""
        cid = self._id(customer_id)
        self._bank.require(actor, "customer.update_contact", cid, entity="customer",
                           entity_id=cid)
        changes = {}
        if email is not None:
            changes["email"] = clean_email(email)
        if phone is not None:
            changes["phone"] = clean_phone(phone)
        if address is not None:
            changes["address"] = _text(address, "address", chars_max=200)
        if not changes:
            raise InvalidInput("Nothing to change.")
        bank = self._bank

        def fn(uow):
            row = uow.fetchone("SELECT email, phone, address, status FROM customers "
                               "WHERE id = ?", [cid])
            if row is None:
                raise CustomerNotFound(f"There is no customer {cid}.")
            if row[3] == "closed":
                raise InvalidState("This customer is closed.")
            before = dict(zip(CONTACT_FIELDS, row[:3]))
            diff = {k: v for k, v in changes.items() if before[k] != v}
            if not diff:
                return {}
            sets = ", ".join(f"{k} = ?" for k in diff)
            uow.execute(f"UPDATE customers SET {sets} WHERE id = ?", [*diff.values(), cid])
            bank.audit_row(uow, actor, "customer.update_contact", "customer", cid,
                           before={k: before[k] for k in diff}, after=diff)
            if actor.role != "customer":
                self._notify_contact_change(uow, actor, cid, before, diff)
            return diff
        return bank.write(fn)
