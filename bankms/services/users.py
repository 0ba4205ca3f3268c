"""Users, passwords, sign-in with back-off, and server-side sessions.

Password hashes are bcrypt. A sign-in with an unknown username still checks a bcrypt hash, so
unknown and known usernames take the same time to fail. Failed sign-ins slow down the next
attempts per username and per client address (exponential back-off, capped; throttle.py)
instead of locking a user out, so an attacker cannot keep a real user out for long. Sessions
live in the database so that logout and a password change revoke them for real: a copied cookie
that names a revoked session gets nobody in.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from importlib import resources

import bcrypt

from ..domain import security
from . import form_keys, outbox, throttle
from ..domain.errors import (
    AccountLocked,
    AuthenticationError,
    ContactRecentlyChanged,
    CustomerNotFound,
    DuplicateError,
    InvalidInput,
    InvalidState,
    PasswordPolicyError,
    PermissionDenied,
    UserNotFound,
)
from .ledger import utcnow

PASSWORD_CHARS_MIN = 12
PASSWORD_CHARS_MAX = 64
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")


def _common_passwords() -> frozenset:
    text = resources.files("bankms").joinpath("resources/common_passwords.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


COMMON_PASSWORDS = _common_passwords()


def check_password_policy(password, username: str = "") -> None:
    if not isinstance(password, str):
        raise PasswordPolicyError("The password must be text.")
    if len(password) < PASSWORD_CHARS_MIN:
        raise PasswordPolicyError(f"The password must have at least {PASSWORD_CHARS_MIN} characters.")
    if len(password) > PASSWORD_CHARS_MAX:
        raise PasswordPolicyError(f"The password may have at most {PASSWORD_CHARS_MAX} characters.")
    if len(password.encode()) > 72:
        # bcrypt reads only the first 72 bytes; refusing is better than silently ignoring a tail.
        raise PasswordPolicyError("The password is too long in bytes (at most 72); use fewer "
                                  "special characters.")
    if password != password.strip():
        # The sign-in widget strips what is typed, so such a password could never sign in.
        raise PasswordPolicyError("The password must not begin or end with a space.")
    if username and password.lower() == username.lower():
        raise PasswordPolicyError("The password must not be the username.")
    if password.lower() in COMMON_PASSWORDS:
        raise PasswordPolicyError("This password is too common; please choose another one.")


def temporary_password() -> str:
    """A random password for a new or reset user, who must change it at the next sign-in."""
    while True:
        password = secrets.token_urlsafe(12)  # 16 characters, about 96 bits
        if password[0] not in "-_" and password[-1] not in "-_":
            return password


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_username(username) -> str:
    if not isinstance(username, str):
        raise InvalidInput("A username must be text.")
    name = username.strip().lower()
    if not _USERNAME.match(name):
        raise InvalidInput("A username has 3 to 32 characters: letters, digits, '.', '_' or '-'.")
    return name


class Users:
    def __init__(self, bank):
        self._bank = bank

    def _hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(self._bank.bcrypt_rounds)).decode()

    def create(self, actor, *, username, password=None, role, customer_id=None, full_name="",
               email=None, must_change_password=False):
        """Create a login; returns its user id. A manager's new manager login is a four-eyes
        request instead (returns a PendingApproval; the approver gets the temporary
        password). Staff never choose a customer's password: for a customer login they call
        `create_customer_login`, which gives an activation code; only the system actor
        (scripts, the demo) may give one a password here. Raises InvalidInput,
        PasswordPolicyError, PermissionDenied, DuplicateError, CustomerNotFound."""
        bank = self._bank
        if role not in ("customer", "teller", "manager"):
            raise InvalidInput("The role must be customer, teller or manager.")
        action = "user.create_customer_login" if role == "customer" else "user.create_employee"
        bank.require(actor, action, entity="user", entity_id=username)
        if role == "customer" and actor.role != "system":
            exc = PermissionDenied("Staff never choose a customer's password: create the login "
                                   "with an activation code that the customer uses to set it.")
            bank.record_refusal(actor, action, exc, entity="user", entity_id=username)
            raise exc
        name = normalize_username(username)
        if role == "customer" and customer_id is None:
            raise InvalidInput("A customer login must name its customer.")
        if role != "customer" and customer_id is not None:
            raise InvalidInput("Only customer logins belong to a customer.")
        full_name = (full_name or "").strip()
        if not full_name and customer_id is not None:
            row = bank.read_one("SELECT full_name FROM customers WHERE id = ?", [customer_id])
            full_name = row[0] if row else ""
        if not full_name:
            raise InvalidInput("Please give the user's full name.")
        if role == "manager" and bank.approvals.applies_to(actor):
            if password is not None:
                raise InvalidInput("A new manager's temporary password is made when a second "
                                   "manager approves; do not give one.")
            if self.get(name) is not None:
                raise DuplicateError(f"The username '{name}' is taken.")
            return bank.approvals.request(
                actor, "user.create_manager", same_as={"username": name},
                params={"username": name, "full_name": full_name, "email": email},
                summary=f"Create manager login {name} ({full_name})")
        check_password_policy(password, name)
        password_hash = self._hash(password)
        return bank.write(lambda uow: self._insert(uow, actor, name, password_hash, role,
                                                   customer_id, full_name, email,
                                                   must_change_password))

    def _insert(self, uow, actor, name, password_hash, role, customer_id, full_name, email,
                must_change_password, *, approved_by=None):
        if uow.fetchone("SELECT 1 FROM users WHERE username = ?", [name]):
            raise DuplicateError(f"The username '{name}' is taken.")
        if customer_id is not None and not uow.fetchone(
                "SELECT 1 FROM customers WHERE id = ?", [customer_id]):
            raise CustomerNotFound(f"There is no customer {customer_id}.")
        uid = uow.fetchone("SELECT nextval('user_id_seq')")[0]
        uow.execute(
            "INSERT INTO users (id, username, password_hash, role, customer_id, full_name, email, "
            "must_change_password, created_at, password_changed_at, created_by, "
            "created_approved_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [uid, name, password_hash, role, customer_id, full_name, email,
             must_change_password, utcnow(), utcnow(), actor.username, approved_by])
        self._bank.audit_row(uow, actor, "user.create", "user", name, after={
            "role": role, "customer_id": customer_id, "full_name": full_name, "email": email,
            "approved_by": approved_by})
        return uid

    # -- customer logins: activation codes --------------------------------------------------
    # The code goes only into an outbox message to the customer's own email or phone (issue
    # 12): were it returned to staff, a teller could set the password, sign in as the
    # customer and move their money.
    def create_customer_login(self, actor, customer_id, username) -> dict:
        """Staff: a login for an existing customer with no usable password and a single-use
        activation code that expires after `activation_code_ttl_s` (default 72 h). The code
        is sent to the customer's email on file, else their phone, through the outbox in the
        same transaction; staff never see it. Returns {"username", "sent_to" (masked),
        "expires_at"}. Only a hash of the code is kept. Raises PermissionDenied,
        InvalidInput, CustomerNotFound, DuplicateError, NoContactOnFile, and
        ContactRecentlyChanged (audited) while staff changed that contact within
        `contact_change_cooling_off_h` (default 72 h)."""
        bank = self._bank
        bank.require(actor, "user.create_customer_login", entity="user", entity_id=username)
        name = normalize_username(username)
        cid = bank.customers._id(customer_id)
        row = bank.read_one("SELECT full_name FROM customers WHERE id = ?", [cid])
        if row is None:
            raise CustomerNotFound(f"There is no customer {cid}.")
        unusable = self._hash(secrets.token_urlsafe(32))
        code, code_hash, expires_at = self._new_code()
        cooling_off_h = bank.settings.get_int("contact_change_cooling_off_h", 72)

        def fn(uow):
            self._insert(uow, actor, name, unusable, "customer", cid, row[0], None, False)
            return self._store_code(uow, actor, name, cid, code, code_hash, expires_at,
                                    cooling_off_h)
        sent_to = self._write_code(actor, "user.create_customer_login", name, fn)
        return {"username": name, "sent_to": sent_to, "expires_at": expires_at}

    def new_activation_code(self, actor, username) -> dict:
        """Staff: a customer who lost their password gets a fresh activation code, sent only
        to them (as in `create_customer_login`); the old password stops working, their
        sessions end and earlier unused codes are void. Returns {"username", "sent_to",
        "expires_at"}. Raises PermissionDenied, UserNotFound, NoContactOnFile,
        ContactRecentlyChanged (audited)."""
        bank = self._bank
        bank.require(actor, "user.create_customer_login", entity="user", entity_id=username)
        user = self.get(username)
        if user is None or user["role"] != "customer":
            raise UserNotFound(f"There is no customer login '{username}'.")
        unusable = self._hash(secrets.token_urlsafe(32))
        code, code_hash, expires_at = self._new_code()
        cooling_off_h = bank.settings.get_int("contact_change_cooling_off_h", 72)

        def fn(uow):
            self._update_in(uow, actor, user["username"], "user.new_activation_code", {
                "password_hash": unusable, "must_change_password": False,
                "last_reset_by": actor.username}, revoke=True)
            return self._store_code(uow, actor, user["username"], user["customer_id"], code,
                                    code_hash, expires_at, cooling_off_h)
        sent_to = self._write_code(actor, "user.new_activation_code", user["username"], fn)
        return {"username": user["username"], "sent_to": sent_to, "expires_at": expires_at}

    def _new_code(self):
        # 16 characters from 32 unambiguous ones: 80 bits, far beyond guessing online.
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        raw = "".join(secrets.choice(alphabet) for _ in range(16))
        code = "-".join(raw[i:i + 4] for i in range(0, 16, 4))
        ttl_s = self._bank.settings.get_int("activation_code_ttl_s", 259200)
        return code, _code_hash(code), utcnow() + dt.timedelta(seconds=ttl_s)

    def _write_code(self, actor, action, name, fn) -> str:
        """Run a unit of work that sends a code; a refusal for a recently changed contact
        rolls it all back and is then audited on its own."""
        try:
            return self._bank.write(fn)
        except ContactRecentlyChanged as exc:
            self._bank.record_refusal(actor, action, exc, entity="user", entity_id=name)
            raise

    @staticmethod
    def _check_cooling_off(uow, customer_id, channel, cooling_off_h) -> None:
        """ContactRecentlyChanged when a staff member changed the email (or phone) that the
        code would go to within `contact_change_cooling_off_h` hours (issue 12): a teller who
        put their own email on file would otherwise receive the code and take over the
        customer's online banking. The change notice went to the old contact meanwhile. The
        time comes from the audit log of `customers.update_contact`; a customer's own change
        does not count."""
        since = utcnow() - dt.timedelta(hours=cooling_off_h)
        field = "email" if channel == "email" else "phone"
        changes = uow.fetchall(
            "SELECT ts, after FROM audit_log WHERE action = 'customer.update_contact' "
            "AND entity = 'customer' AND entity_id = ? AND actor_role <> 'customer' "
            "AND outcome = 'ok' AND ts > ? ORDER BY ts DESC", [str(customer_id), since])
        latest = next((ts for ts, after in changes if field in json.loads(after or "{}")), None)
        if latest is not None:
            ready = latest + dt.timedelta(hours=cooling_off_h)
            raise ContactRecentlyChanged(
                f"The customer's {'email address' if field == 'email' else 'phone number'} "
                f"was changed by bank staff on {latest:%Y-%m-%d %H:%M} UTC, so an activation "
                f"code cannot be sent to it before {ready:%Y-%m-%d %H:%M} UTC. The customer "
                "was told at their previous contact details.")

    def _store_code(self, uow, actor, name, customer_id, code, code_hash, expires_at,
                    cooling_off_h) -> str:
        """Void earlier unused codes, keep the new code's hash and queue the code for the
        customer; returns the masked recipient. NoContactOnFile and ContactRecentlyChanged
        roll it all back."""
        contact = uow.fetchone("SELECT email, phone FROM customers WHERE id = ?", [customer_id])
        channel, recipient = outbox.contact_of(*(contact or (None, None)))
        self._check_cooling_off(uow, customer_id, channel, cooling_off_h)
        uow.execute("UPDATE activation_codes SET used_at = ? WHERE username = ? "
                    "AND used_at IS NULL", [utcnow(), name])
        uow.execute("INSERT INTO activation_codes VALUES (?, ?, ?, ?, ?, NULL)",
                    [name, code_hash, utcnow(), expires_at, actor.username])
        self._bank.outbox.add_in(
            uow, actor, customer_id=customer_id, channel=channel, recipient=recipient,
            subject="Your online banking activation code",
            body=(f"Your online banking username is {name} and your activation code is "
                  f"{code}. Choose your password with it on the Activate login page before "
                  f"{expires_at:%Y-%m-%d %H:%M} UTC. It works once. Bank staff will never "
                  "ask you for this code."))
        sent_to = outbox.masked(channel, recipient)
        self._bank.audit_row(uow, actor, "user.activation_code", "user", name,
                             after={"expires_at": expires_at.isoformat(), "sent_to": sent_to})
        return sent_to

    def activate_login(self, username, code, new_password) -> None:
        """Anonymous: set a customer login's first password with its activation code. Every
        failure (unknown user, wrong, used or expired code) gives one message and is audited.
        Raises AuthenticationError or PasswordPolicyError."""
        bank = self._bank
        name = str(username or "").strip().lower()
        anonymous = security.Actor(username=name[:64] or "anonymous", role="anonymous")
        wrong = AuthenticationError("The username or activation code is wrong, used or expired.")
        given_hash = _code_hash(str(code or "").strip().upper())
        now = utcnow()
        row = bank.read_one("SELECT code_hash FROM activation_codes WHERE username = ? AND "
                            "used_at IS NULL AND expires_at > ? ORDER BY created_at DESC "
                            "LIMIT 1", [name, now])
        if row is None or not hmac.compare_digest(row[0], given_hash):
            bank.record_refusal(anonymous, "user.activate", wrong, entity="user", entity_id=name)
            raise wrong
        check_password_policy(new_password, name)
        password_hash = self._hash(new_password)

        def fn(uow):
            # Checked again on the writer thread, so two uses of one code cannot both win.
            if not uow.fetchone("SELECT 1 FROM activation_codes WHERE username = ? AND "
                                "code_hash = ? AND used_at IS NULL AND expires_at > ?",
                                [name, given_hash, now]):
                raise wrong
            uow.execute("UPDATE activation_codes SET used_at = ? WHERE username = ? AND "
                        "code_hash = ?", [utcnow(), name, given_hash])
            self._update_in(uow, anonymous, name, "user.activate", {
                "password_hash": password_hash, "must_change_password": False,
                "failed_attempts": 0, "locked_until": None, "password_changed_at": utcnow()},
                revoke=True)
        try:
            bank.write(fn)
        except AuthenticationError:
            bank.record_refusal(anonymous, "user.activate", wrong, entity="user", entity_id=name)
            raise

    def get(self, username) -> dict | None:
        row = self._bank.read_one(
            "SELECT id, username, role, customer_id, full_name, email, active, failed_attempts, "
            "locked_until, must_change_password FROM users WHERE username = ?",
            [str(username).strip().lower()])
        if row is None:
            return None
        keys = ("id", "username", "role", "customer_id", "full_name", "email", "active",
                "failed_attempts", "locked_until", "must_change_password")
        return dict(zip(keys, row))

    def any_exist(self) -> bool:
        """Whether any user exists (a fresh real bank has none until create-employee)."""
        return self._bank.read_one("SELECT 1 FROM users LIMIT 1") is not None

    def list(self, actor, role=None):
        self._bank.require(actor, "user.read", entity="user")
        sql = ("SELECT username, full_name, role, customer_id, email, active, failed_attempts, "
               "locked_until, must_change_password, created_at FROM users")
        params = []
        if role:
            sql += " WHERE role = ?"
            params.append(role)
        return self._bank.read_df(sql + " ORDER BY role, username", params)

    def locked(self, actor):
        """Users whose sign-in backs off right now after failed attempts (`locked_until`: when
        the next attempt is allowed), for a manager to unlock."""
        self._bank.require(actor, "user.read", entity="user")
        return self._bank.read_df(
            "SELECT username, full_name, role, locked_until FROM users "
            "WHERE locked_until IS NOT NULL AND locked_until > ? ORDER BY locked_until",
            [utcnow()])

    def _update(self, actor, username, action, changes: dict, *, revoke=False):
        name = str(username).strip().lower()
        self._bank.write(lambda uow: self._update_in(uow, actor, name, action, changes,
                                                      revoke=revoke))

    def _update_in(self, uow, actor, name, action, changes: dict, *, revoke=False):
        row = uow.fetchone("SELECT role, active, failed_attempts, locked_until, "
                           "must_change_password FROM users WHERE username = ?", [name])
        if row is None:
            raise UserNotFound(f"There is no user '{name}'.")
        before = dict(zip(("role", "active", "failed_attempts", "locked_until",
                           "must_change_password"), row))
        sets = ", ".join(f"{column} = ?" for column in changes)
        uow.execute(f"UPDATE users SET {sets} WHERE username = ?", [*changes.values(), name])
        if revoke:
            uow.execute("UPDATE sessions SET revoked_at = ? WHERE username = ? AND "
                        "revoked_at IS NULL", [utcnow(), name])
            form_keys.forget_user_in(uow, name)
        shown = {k: ("<new hash>" if k == "password_hash" else v) for k, v in changes.items()}
        self._bank.audit_row(uow, actor, action, "user", name,
                             before={k: before.get(k) for k in shown if k in before},
                             after=shown)
        return before

    def _employee_target(self, actor, username, action):
        self._bank.require(actor, "user.manage", entity="user", entity_id=username)
        user = self.get(username)
        if user is None:
            raise UserNotFound(f"There is no user '{username}'.")
        return user

    def deactivate(self, actor, username):
        user = self._employee_target(actor, username, "user.deactivate")
        if actor.username == user["username"]:
            raise InvalidInput("You cannot deactivate your own user.")
        self._update(actor, username, "user.deactivate", {"active": False}, revoke=True)

    def activate(self, actor, username):
        self._employee_target(actor, username, "user.activate")
        self._update(actor, username, "user.activate", {"active": True})

    def unlock(self, actor, username):
        """End a user's sign-in back-off at once: their failure counter is cleared (audited
        with the count it had). Addresses that back off keep backing off."""
        user = self._employee_target(actor, username, "user.unlock")
        bank = self._bank

        def fn(uow):
            failures = throttle.clear(uow, throttle.LOGIN_USER, user["username"])
            uow.execute("UPDATE users SET failed_attempts = 0, locked_until = NULL "
                        "WHERE username = ?", [user["username"]])
            bank.audit_row(uow, actor, "user.unlock", "user", user["username"],
                           before={"failed_attempts": failures,
                                   "locked_until": user["locked_until"]},
                           after={"failed_attempts": 0, "locked_until": None})
        bank.write(fn)

    def reset_password(self, actor, username, new_password=None):
        """Managers: give an employee a temporary password (to change at the next sign-in);
        returns it (the given one, or a random one when None). A manager's password reset by
        a manager is a four-eyes request instead: returns a PendingApproval, and the approver
        gets the temporary password. Customers get a new activation code, never a password
        chosen by staff (`new_activation_code`)."""
        bank = self._bank
        user = self._employee_target(actor, username, "user.reset_password")
        if user["role"] == "customer" and actor.role != "system":
            exc = PermissionDenied("Staff never set a customer's password: give the customer "
                                   "a new activation code instead.")
            bank.record_refusal(actor, "user.reset_password", exc, entity="user",
                                entity_id=user["username"])
            raise exc
        if user["role"] == "manager" and bank.approvals.applies_to(actor):
            if actor.username == user["username"]:
                raise InvalidInput("Change your own password with Change password.")
            if new_password is not None:
                raise InvalidInput("A manager's temporary password is made when a second "
                                   "manager approves the reset; do not give one.")
            return bank.approvals.request(
                actor, "user.reset_password", params={"username": user["username"]},
                summary=f"Reset the password of manager {user['username']}")
        password = temporary_password() if new_password is None else new_password
        check_password_policy(password, user["username"])
        password_hash = self._hash(password)
        bank.write(lambda uow: self._reset_in(uow, actor, user["username"], password_hash))
        return password

    def _reset_in(self, uow, actor, name, password_hash, *, approved_by=None):
        self._update_in(uow, actor, name, "user.reset_password", {
            "password_hash": password_hash, "must_change_password": True,
            "failed_attempts": 0, "locked_until": None, "password_changed_at": utcnow(),
            "last_reset_by": actor.username, "last_reset_approved_by": approved_by},
            revoke=True)

    def set_role(self, actor, username, role):
        """Managers: move an employee between teller and manager. Raising a teller to manager
        is a four-eyes request (returns a PendingApproval); lowering applies at once."""
        bank = self._bank
        user = self._employee_target(actor, username, "user.set_role")
        if role not in security.EMPLOYEE_ROLES or user["role"] not in security.EMPLOYEE_ROLES:
            raise InvalidInput("Only employees move between teller and manager.")
        if user["role"] == role:
            raise InvalidInput(f"{user['username']} is already a {role}.")
        if actor.username == user["username"]:
            raise InvalidInput("You cannot change your own role.")
        if role == "manager" and bank.approvals.applies_to(actor):
            return bank.approvals.request(
                actor, "user.raise_role", params={"username": user["username"], "role": role},
                summary=f"Make {user['username']} a manager")
        bank.write(lambda uow: self._set_role_in(uow, actor, user["username"], role))
        return None

    def _set_role_in(self, uow, actor, name, role):
        row = uow.fetchone("SELECT role FROM users WHERE username = ?", [name])
        if row is None or row[0] not in security.EMPLOYEE_ROLES:
            raise InvalidState(f"{name} is no longer an employee.")
        self._update_in(uow, actor, name, "user.set_role", {"role": role}, revoke=True)

    def change_password(self, actor, old_password, new_password):
        """A signed-in user changes their own password; every other session of theirs ends."""
        if not isinstance(actor, security.Actor) or actor.role == "system":
            raise AuthenticationError("Please sign in first.")
        check = self._bank.auth.verify_password(actor.username, old_password)
        if not check["ok"] or not check["active"]:
            # Audited like a failed sign-in: someone at an open session may be guessing.
            self._bank.auth._fail(actor.username, "wrong current password at password change")
            raise AuthenticationError("The current password is wrong.")
        if old_password == new_password:
            raise PasswordPolicyError("The new password must differ from the old one.")
        check_password_policy(new_password, actor.username)
        self._update(actor, actor.username, "user.change_password", {
            "password_hash": self._hash(new_password), "must_change_password": False,
            "password_changed_at": utcnow()}, revoke=True)


# Every failed sign-in answers with these words, whatever the reason (unknown user, wrong
# password, deactivated, backing off), so the answer does not tell which usernames exist.
LOGIN_FAILED = "The username or password is wrong."


def login_failed_message(wait_s: float = 0) -> str:
    if wait_s <= 0:
        return LOGIN_FAILED
    return f"{LOGIN_FAILED} Try again in {throttle.seconds_text(wait_s)} s."


class Auth:
    def __init__(self, bank):
        self._bank = bank
        self._dummy_hash = bcrypt.hashpw(secrets.token_bytes(16),
                                         bcrypt.gensalt(bank.bcrypt_rounds))

    def _rules(self) -> tuple[throttle.Backoff, throttle.Backoff]:
        """The back-off rules per username and per client address, read on every attempt."""
        settings = self._bank.settings
        base_s = settings.get_int("login_backoff_base_s", 1)
        forget_s = settings.get_int("login_backoff_forget_s", 900)
        user = throttle.Backoff(settings.get_int("login_backoff_user_after_failures", 10),
                                base_s, settings.get_int("login_backoff_user_cap_s", 60),
                                forget_s)
        address = throttle.Backoff(settings.get_int("login_backoff_address_after_failures", 3),
                                   base_s, settings.get_int("login_backoff_address_cap_s", 120),
                                   forget_s)
        return user, address

    def _fail(self, username, reason):
        """Audit a failed password check that does not count towards the back-off (a wrong
        current password at a password change, by someone already signed in)."""
        self._bank.write(lambda uow: self._audit_refusal(uow, username, {"reason": reason}))

    def _charge(self, name, address, rules, now):
        """Before any password check: refuse while the username or the address backs off,
        else count this attempt as a failure up front (refunded if it succeeds). Done in one
        writer call, so a burst of parallel guesses is counted one by one. Returns the wait
        in seconds (0: go ahead) and the address's counter row as it was before the charge.
        A user's back-off does not apply at an address from which that user signed in
        before, so an attacker elsewhere cannot keep them out."""
        user_rule, address_rule = rules

        def fn(uow):
            user_row, address_row = self._counters(uow, name, address)
            known = throttle.read(uow.fetchone, throttle.LOGIN_KNOWN,
                                  None if address is None else f"{name} {address}")
            user_wait = 0.0 if known and known[0] else user_rule.remaining_s(user_row, now)
            wait = max(user_wait, address_rule.remaining_s(address_row, now))
            if wait > 0:
                self._audit_refusal(uow, name, {
                    "reason": "backing off", "address": address,
                    "retry_after_s": throttle.seconds_text(wait)})
                return wait, address_row
            user_failures = throttle.add_failure(uow, throttle.LOGIN_USER, name, user_rule, now)
            if address is not None:
                throttle.add_failure(uow, throttle.LOGIN_ADDRESS, address, address_rule, now)
            self._mirror(uow, name, user_failures, user_rule, now)
            return 0.0, address_row
        return self._bank.write(fn)

    @staticmethod
    def _counters(uow, name, address):
        """The (user row, address row) of the sign-in counters (see throttle.read)."""
        return (throttle.read(uow.fetchone, throttle.LOGIN_USER, name),
                throttle.read(uow.fetchone, throttle.LOGIN_ADDRESS, address))

    def _audit_refusal(self, uow, name, after):
        anonymous = security.Actor(username=name or "anonymous", role="anonymous")
        self._bank.audit_row(uow, anonymous, "auth.login", "user", name, after=after,
                             outcome="refused")

    @staticmethod
    def _mirror(uow, name, failures, rule, now):
        """Show the username's counter on the user row (managers' Employees page). The
        statement runs for unknown usernames too (matching no row), for equal timing."""
        wait = rule.wait_s(failures)
        until = now + dt.timedelta(seconds=wait) if wait else None
        uow.execute("UPDATE users SET failed_attempts = ?, locked_until = ? WHERE username = ?",
                    [failures, until, name])

    def _failed(self, name, address, reason, rules, now) -> float:
        """Audit a failed attempt (already counted by _charge); returns the wait it causes."""
        user_rule, address_rule = rules

        def fn(uow):
            user_row, address_row = self._counters(uow, name, address)
            user_failures = user_rule.current(user_row, now)
            address_failures = address_rule.current(address_row, now)
            wait = max(user_rule.wait_s(user_failures), address_rule.wait_s(address_failures))
            self._audit_refusal(uow, name, {
                "reason": reason, "address": address, "user_failures": user_failures,
                "address_failures": address_failures, "retry_after_s": wait})
            return float(wait)
        return self._bank.write(fn)

    def verify_password(self, username, password) -> dict:
        """Check a password without starting a session; the same timing for every failure."""
        name = str(username or "").strip().lower()
        user = self._bank.read_one(
            "SELECT password_hash, active, locked_until FROM users WHERE username = ?", [name])
        pw = password.encode()[:72] if isinstance(password, str) else b""
        stored = user[0].encode() if user else self._dummy_hash
        ok = bcrypt.checkpw(pw, stored) and user is not None and isinstance(password, str)
        return {"ok": ok, "exists": user is not None, "active": bool(user and user[1]),
                "locked_until": user[2] if user else None, "username": name}

    def login(self, username, password, *, client_address=None) -> security.Actor:
        """Sign in, or raise AuthenticationError with one text for every failure.

        client_address: the client's IP address as a plain string (None when unknown). Failed
        attempts back off per username and per address (see throttle.py and the
        login_backoff_* settings); while either backs off, an attempt is refused at once,
        without checking the password, as AccountLocked (an AuthenticationError) with the
        same text plus "Try again in N s" and `retry_after_s`. Unknown and known usernames
        take the same path: both are counted, both check one bcrypt hash."""
        bank = self._bank
        name = str(username or "").strip().lower()[:throttle.VALUE_CHARS_MAX]
        address = throttle.clean_address(client_address)
        rules = self._rules()
        now = throttle.utcnow()
        wait, address_row = self._charge(name, address, rules, now)
        if wait > 0:
            exc = AccountLocked(login_failed_message(wait))
            exc.retry_after_s = throttle.seconds_text(wait)
            raise exc
        check = self.verify_password(name, password)
        if not check["ok"] or not check["active"]:
            reason = ("unknown user" if not check["exists"] else
                      "inactive user" if not check["active"] else "wrong password")
            wait = self._failed(name, address, reason, rules, now)
            exc = AuthenticationError(login_failed_message(wait))
            exc.retry_after_s = throttle.seconds_text(wait) if wait else 0
            raise exc
        row = bank.read_one("SELECT id, role, customer_id, full_name FROM users "
                            "WHERE username = ?", [name])
        actor = security.Actor(username=name, role=row[1], user_id=row[0], customer_id=row[2],
                               full_name=row[3])

        def fn(uow):
            throttle.clear(uow, throttle.LOGIN_USER, name)
            if address is not None:
                throttle.refund(uow, throttle.LOGIN_ADDRESS, address, address_row)
                throttle.store(uow, throttle.LOGIN_KNOWN, f"{name} {address}", 1, now, now)
            uow.execute("UPDATE users SET failed_attempts = 0, locked_until = NULL "
                        "WHERE username = ?", [name])
            bank.audit_row(uow, actor, "auth.login", "user", name, after={"address": address})
        bank.write(fn)
        return actor

    def actor_for(self, username) -> security.Actor | None:
        row = self._bank.read_one("SELECT id, role, customer_id, full_name, active FROM users "
                                  "WHERE username = ?", [str(username).strip().lower()])
        if row is None or not row[4]:
            return None
        return security.Actor(username=str(username).strip().lower(), role=row[1],
                              user_id=row[0], customer_id=row[2], full_name=row[3])

    def must_change_password(self, username) -> bool:
        row = self._bank.read_one("SELECT must_change_password FROM users WHERE username = ?",
                                  [username])
        return bool(row and row[0])

    # -- server-side sessions ------------------------------------------------------------------
    def start_session(self, actor) -> str:
        sid = secrets.token_urlsafe(32)
        now = utcnow()
        def insert(uow):
            uow.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, NULL)",
                        [sid, actor.username, now, now])
        self._bank.write(insert)
        return sid

    def check_session(self, sid, *, touch=True) -> security.Actor | None:
        """The actor of a live session, or None if it is unknown, revoked, idle or too old."""
        if not sid or not isinstance(sid, str):
            return None
        bank = self._bank
        row = bank.read_one("SELECT username, created_at, last_seen_at, revoked_at FROM sessions "
                            "WHERE id = ?", [sid])
        if row is None or row[3] is not None:
            return None
        now = utcnow()
        idle_s = bank.settings.get_int("session_idle_timeout_s", 900)
        absolute_s = bank.settings.get_int("session_absolute_timeout_s", 43200)
        if (now - row[2]).total_seconds() > idle_s or (now - row[1]).total_seconds() > absolute_s:
            self.end_session(sid, reason="timeout")
            return None
        actor = self.actor_for(row[0])
        if actor is None:
            return None
        # Touch at most every 30 s: a write per page run would queue behind payments.
        if touch and (now - row[2]).total_seconds() > 30:
            def touch_session(uow):
                uow.execute("UPDATE sessions SET last_seen_at = ? WHERE id = ?", [now, sid])
            bank.write(touch_session)
        return actor

    def session_expires_at(self, sid) -> dt.datetime | None:
        """When a session ends at the latest (its absolute timeout), for the cookie's expiry."""
        row = self._bank.read_one("SELECT created_at FROM sessions WHERE id = ?", [sid])
        if row is None:
            return None
        absolute_s = self._bank.settings.get_int("session_absolute_timeout_s", 43200)
        return row[0] + dt.timedelta(seconds=absolute_s)

    def issue_token(self, sid, key) -> str:
        """A signed cookie token for a live session; it is worth nothing once the session ends."""
        from . import tokens

        row = self._bank.read_one("SELECT username FROM sessions WHERE id = ? "
                                  "AND revoked_at IS NULL", [sid])
        if row is None:
            raise AuthenticationError("This session has ended; please sign in again.")
        return tokens.issue(key, sid=sid, username=row[0],
                            expires_at=self.session_expires_at(sid))

    def session_from_token(self, token, key):
        """(session id, actor) for a cookie token that is signed with our key, not expired and
        names a live session of the same user; None otherwise. A refusal is audited, so forged,
        expired and revoked cookies show up in the audit log."""
        from . import tokens

        payload, reason = tokens.inspect(key, token)
        actor = None
        if payload is not None:
            actor = self.check_session(payload["sid"])
            if actor is None:
                reason = "session ended"
            elif actor.username != payload["username"]:
                actor, reason = None, "user mismatch"
        if actor is None:
            claimed = str(payload["username"])[:64] if payload else None
            anonymous = security.Actor(username=claimed or "anonymous", role="anonymous")
            self._bank.write(lambda uow: self._bank.audit_row(
                uow, anonymous, "auth.cookie", "session", None, after={"reason": reason},
                outcome="refused"))
            return None
        return payload["sid"], actor

    def navigation_role(self, actor) -> str:
        """Which set of pages a signed-in user may see: a user who must change their password
        sees only that page; a customer who is not active (pending verification, suspended,
        closed) sees nothing financial; everyone else sees their role's pages."""
        if actor is None:
            return "anonymous"
        if self.must_change_password(actor.username):
            return "must_change_password"
        if actor.role == "customer":
            row = self._bank.read_one("SELECT status FROM customers WHERE id = ?",
                                      [actor.customer_id])
            if row is None or row[0] != "active":
                return "pending"
        return actor.role

    def end_every_session(self, actor, reason: str) -> int:
        """End every live session and drop every form key, in one unit of work; returns how
        many sessions were live. For a restored copy of the bank (operations.restore): its
        sessions are those of the backup's moment, so a session revoked since then (a sign-out,
        a deactivated employee, a changed password) would otherwise be live again in the copy.
        Only the system actor may do this (bank.admin; PermissionDenied, audited, otherwise);
        one audit row says how many sessions ended and why."""
        bank = self._bank
        bank.require(actor, "bank.admin", entity="session", entity_id="*")

        def fn(uow):
            live = uow.fetchone("SELECT count(*) FROM sessions WHERE revoked_at IS NULL")[0]
            uow.execute("UPDATE sessions SET revoked_at = ? WHERE revoked_at IS NULL",
                        [utcnow()])
            form_keys.forget_all_in(uow)
            bank.audit_row(uow, actor, "auth.sessions_ended", "session", "*",
                           before={"live_sessions": live},
                           after={"live_sessions": 0, "reason": reason})
            return live
        return bank.write(fn)

    def end_session(self, sid, reason="logout"):
        bank = self._bank
        if not sid or not isinstance(sid, str):
            return
        row = bank.read_one("SELECT username FROM sessions WHERE id = ? AND revoked_at IS NULL",
                            [sid])
        if row is None:
            return  # unknown or already ended: nothing to revoke, nothing to audit twice
        actor = security.Actor(username=row[0], role="session")

        def fn(uow):
            uow.execute("UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                        [utcnow(), sid])
            form_keys.forget_in(uow, sid)
            bank.audit_row(uow, actor, "auth.logout", "session", sid[:8],
                           after={"reason": reason})
        bank.write(fn)
