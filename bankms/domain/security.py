"""Who acts, and what each role may do. Every service asks `require` before it acts.

Pages may hide buttons, but this table is the rule: a page that forgets to hide something still
gets a PermissionDenied from here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import PermissionDenied

ROLES = ("customer", "teller", "manager", "system")
EMPLOYEE_ROLES = ("teller", "manager")


@dataclass(frozen=True)
class Actor:
    username: str
    role: str
    user_id: int | None = None
    customer_id: int | None = None
    full_name: str = ""

    @property
    def is_staff(self) -> bool:
        return self.role in ("teller", "manager", "system")


STAFF = frozenset({"teller", "manager", "system"})
MANAGERS = frozenset({"manager", "system"})
EVERYONE = frozenset(ROLES)

# Actions marked `own` are open to customers only for their own customer record and accounts;
# the service passes the customer the action touches and `require` compares.
PERMISSIONS: dict[str, tuple[frozenset, bool]] = {
    "customer.create": (STAFF, False),
    "customer.verify": (STAFF, False),
    "customer.read": (EVERYONE, True),
    "customer.search": (STAFF, False),
    "customer.update_contact": (EVERYONE, True),
    "customer.set_status": (MANAGERS, False),
    "account.open": (STAFF, False),
    "account.read": (EVERYONE, True),
    "account.list_all": (STAFF, False),
    "account.freeze": (STAFF, False),
    # Tellers close accounts at a zero balance (the service refuses any other).
    "account.close": (STAFF, False),
    "account.set_overdraft": (MANAGERS, False),
    "account.set_interest_rate": (MANAGERS, False),
    "payment.deposit": (STAFF, False),
    "payment.withdraw": (STAFF, False),
    "payment.transfer": (EVERYONE, True),
    "payment.reverse": (MANAGERS, False),
    "payment.approve": (MANAGERS, False),
    "user.create_employee": (MANAGERS, False),
    "user.create_customer_login": (STAFF, False),
    "user.manage": (MANAGERS, False),
    "user.read": (STAFF, False),
    "audit.read": (MANAGERS, False),
    "audit.verify": (MANAGERS, False),
    "report.read": (MANAGERS, False),
    "report.statement": (EVERYONE, True),
    "bank.admin": (frozenset({"system"}), False),
    # Only the relay (the system actor) reads the outbox: it holds activation codes that
    # staff must never learn (issue 12).
    "outbox.relay": (frozenset({"system"}), False),
    "bank.end_of_day": (MANAGERS, False),
    "settings.change": (MANAGERS, False),
    "bank.backup": (MANAGERS, False),
    # The working-day calendar (workdays.py): staff read it, managers add bank holidays.
    "calendar.read": (STAFF, False),
    "calendar.change": (MANAGERS, False),
    "loan.apply": (EVERYONE, True),
    "loan.read": (EVERYONE, True),
    "loan.decide": (MANAGERS, False),
    "loan.disburse": (STAFF, False),
    "loan.repay": (EVERYONE, True),
    "loan.write_off": (MANAGERS, False),
    "loan.correct": (MANAGERS, False),
    "loan.change_account": (STAFF, False),
    # Loan products are data managers edit (issue 9); a rate-range change waits for a second
    # manager (approvals.py).
    "loan.manage_products": (MANAGERS, False),
    # Deposit products (issue 10): their terms are public; managers create and change them.
    "deposit_product.read": (EVERYONE, True),
    "deposit_product.manage": (MANAGERS, False),
    # Standing orders (issue 10, standing_orders.py): customers for their own accounts.
    "standing_order.create": (EVERYONE, True),
    "standing_order.cancel": (EVERYONE, True),
    "standing_order.read": (EVERYONE, True),
    "standing_order.list_all": (STAFF, False),
    # Charges (issue 10: charges.py): staff apply them with a reason, managers waive them and
    # keep the catalogue; customers see the charges on their own accounts.
    "charge.read": (EVERYONE, True),
    "charge.list_all": (STAFF, False),
    "charge.catalogue": (STAFF, False),
    "charge.apply": (STAFF, False),
    "charge.waive": (MANAGERS, False),
    "charge.manage": (MANAGERS, False),
    # Term deposits (issue 10): customers open them from their own accounts and see their own;
    # only staff close one early (with the product's penalty).
    "term_deposit.open": (EVERYONE, True),
    "term_deposit.read": (EVERYONE, True),
    "term_deposit.close_early": (STAFF, False),
}


def allowed(actor: Actor, action: str, customer_id: int | None = None) -> bool:
    roles, own = PERMISSIONS[action]
    if not isinstance(actor, Actor) or actor.role not in roles:
        return False
    if actor.role == "customer":
        return own and actor.customer_id is not None and customer_id == actor.customer_id
    return True


def check(actor: Actor, action: str, customer_id: int | None = None) -> None:
    """Raise PermissionDenied unless the actor may do the action (the caller audits it)."""
    if not isinstance(actor, Actor):
        raise PermissionDenied("No signed-in user: please sign in first.")
    if not allowed(actor, action, customer_id):
        raise PermissionDenied(f"{actor.role.capitalize()} '{actor.username}' may not do this ({action}).")
