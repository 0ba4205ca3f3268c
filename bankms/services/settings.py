"""Bank-wide settings (limits, timeouts, end of day), kept in the `settings` table.

`REGISTRY` is the one list of settings a manager may change: each one's key, meaning, type,
allowed range and default. `Settings.set` is the one way to change them (the command line and
the Operations page both call it): it refuses unknown keys and bad values, and audits the
change with its before and after values in the same transaction. A few keys in the table are
kept by the bank itself and are not settings (`business_date`, moved by end of day;
`schema_version`; `demo_bank` and `demo_logins`, written by the demo builder).
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from ..domain.errors import InvalidInput
from ..domain.money import AMOUNT_CENTS_MAX, format_cents

# Keys in the settings table that the bank keeps for itself; readable, never set by hand.
# chain_started: when the hash chains began on this bank (chain_store.Chains.load).
INTERNAL_KEYS = frozenset({"business_date", "schema_version", "demo_bank", "demo_logins",
                           "demo_building", "chain_started"})

_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    """One setting. kind is "int" (a whole number of `unit`), "cents" (an amount stored in
    cents, typed as money or whole cents), "bool", "time" (HH:MM, 24 hours) or "timezone" (an
    IANA name such as Europe/Berlin). minimum and maximum bound int and cents settings, and
    time settings in minutes after midnight. "country" is an ISO 3166 alpha-2 code whose
    public holidays the `holidays` package knows, "subdivision" one of its region codes or
    empty (checked against the current country in Settings.set)."""
    key: str
    meaning: str
    kind: str
    default: str
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""

    def parse(self, value) -> str:
        """The value as stored (canonical text), or InvalidInput saying what is allowed."""
        text = str(value).strip() if value is not None else ""
        if self.kind == "subdivision":
            # Empty (or "none") is a value: the country's nationwide holidays only.
            if text.lower() in ("", "none", "-"):
                return ""
            if not re.fullmatch(r"[A-Za-z0-9-]{1,10}", text):
                raise self._bad(value)
            return text.upper()
        if self.kind == "country":
            from .workdays import supported
            if text.upper() not in supported():
                raise self._bad(value)
            return text.upper()
        if isinstance(value, float) or not text:
            raise self._bad(value)
        if self.kind in ("int", "cents"):
            if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d{1,20}", text):
                raise self._bad(value)
            number = int(text)
            if not self.minimum <= number <= self.maximum:
                raise self._bad(value)
            return str(number)
        if self.kind == "bool":
            if text.lower() in _TRUE or value is True:
                return "1"
            if text.lower() in _FALSE or value is False:
                return "0"
            raise self._bad(value)
        if self.kind == "time":
            match = _TIME.match(text)
            if not match:
                raise self._bad(value)
            minutes = int(match[1]) * 60 + int(match[2])
            if self.minimum is not None and not self.minimum <= minutes <= self.maximum:
                raise self._bad(value)
            return text
        if self.kind == "timezone":
            # Only names of the IANA database: ZoneInfo also opens files such as "localtime",
            # the machine's own zone, which can change under the bank.
            if text not in _zone_names():
                raise self._bad(value)
            return text
        raise AssertionError(f"unknown setting kind {self.kind}")

    def typed(self, text: str):
        """The stored text as a Python value: int, bool, datetime.time or str."""
        if self.kind in ("int", "cents"):
            return int(text)
        if self.kind == "bool":
            return text == "1"
        if self.kind == "time":
            return dt.time.fromisoformat(text)
        return text

    @property
    def type_label(self) -> str:
        """What kind of value, in words that follow "must be"."""
        return {"int": f"a whole number of {self.unit}" if self.unit else "a whole number",
                "cents": "an amount in whole cents", "bool": "yes or no",
                "time": "a time of day as HH:MM (24 hours)",
                "timezone": "an IANA time zone name (e.g. Europe/Berlin)",
                "country": "an ISO 3166 two-letter country code (e.g. US, GB, DE)",
                "subdivision": "a region code of bank_country (e.g. NY for US) or none"}[self.kind]

    @property
    def allowed(self) -> str:
        """The allowed range in plain words."""
        if self.kind == "cents":
            return f"{self.minimum:,} to {self.maximum:,} cents " \
                   f"({format_cents(self.minimum)} to {format_cents(self.maximum)})"
        if self.kind == "int":
            unit = f" {self.unit}" if self.unit else ""
            return f"{self.minimum:,} to {self.maximum:,}{unit}"
        if self.kind == "time" and self.minimum is not None:
            return f"{_hh_mm(self.minimum)} to {_hh_mm(self.maximum)}"
        return {"bool": "1, yes, true or on for yes; 0, no, false or off for no", "time": "00:00 to 23:59",
                "timezone": "any name in the IANA time zone database",
                "country": "any country whose public holidays the holidays package knows",
                "subdivision": "a subdivision of bank_country that the holidays package knows, "
                               "or none (nationwide holidays only)"}[self.kind]

    @property
    def label(self) -> str:
        """What the setting is called on screen (LABELS); the key where none is given."""
        return LABELS.get(self.key, self.key)

    def shown(self, text: str) -> str:
        """A stored value as a person reads it, with its unit: "$10,000.00", "30 seconds",
        "1.00 %", "yes", "none"."""
        if self.kind == "cents":
            return format_cents(int(text))
        if self.kind == "int" and self.unit in _PERCENT_UNITS:
            return f"{int(text) / 100:.2f} %"
        if self.kind == "int":
            return f"{int(text):,} {self.unit}".rstrip()
        if self.kind == "bool":
            return "yes" if text == "1" else "no"
        return text or "none"

    def _bad(self, value) -> InvalidInput:
        return InvalidInput(f"{value!r} is not a valid value for {self.key}: it must be "
                            f"{self.type_label}: {self.allowed}.")


def _hh_mm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _s(key, meaning, kind, default, minimum=None, maximum=None, unit=""):
    return key, Setting(key, meaning, kind, default, minimum, maximum, unit)


DAY_S = 86_400
REGISTRY: dict[str, Setting] = dict([
    _s("customer_daily_transfer_cents_max",
       "Most a customer may send to other customers in one day.",
       "cents", "500000", 1, AMOUNT_CENTS_MAX),
    _s("four_eyes_threshold_cents",
       "Deposits, withdrawals and transfers by staff above this wait for a second manager.",
       "cents", "1000000", 1, AMOUNT_CENTS_MAX),
    # Sign-in back-off (users.py, throttle.py): after `_after_failures` failures in a row the
    # next attempt waits base, 2 x base, 4 x base... seconds up to the cap. Per client address
    # it starts sooner than per username, so an attacker's address slows down long before
    # the real user notices anything.
    _s("login_backoff_base_s", "First wait after too many failed sign-ins; each further "
       "failure doubles it.", "int", "1", 1, 60, "seconds"),
    _s("login_backoff_user_after_failures", "Failed sign-ins in a row for one username "
       "before its next attempts must wait.", "int", "10", 1, 1000, "attempts"),
    _s("login_backoff_user_cap_s", "Longest wait for one username after failed sign-ins.",
       "int", "60", 1, 3600, "seconds"),
    _s("login_backoff_address_after_failures", "Failed sign-ins in a row from one client "
       "address before its next attempts must wait.", "int", "3", 1, 1000, "attempts"),
    _s("login_backoff_address_cap_s", "Longest wait for one client address after failed "
       "sign-ins.", "int", "120", 1, 3600, "seconds"),
    _s("login_backoff_forget_s", "Failed sign-ins older than this no longer count.",
       "int", "900", 1, DAY_S, "seconds"),
    _s("signups_per_address_max", "Self-registrations allowed from one client address "
       "within signup_window_s.", "int", "5", 1, 10_000, "sign-ups"),
    _s("signup_window_s", "The window over which sign-ups per address are counted.",
       "int", "3600", 60, 7 * DAY_S, "seconds"),
    _s("payee_lookups_per_customer_max", "Look-ups of other customers' account numbers "
       "(transfer review) one customer may make within payee_lookup_window_s.",
       "int", "30", 1, 10_000, "look-ups"),
    _s("payee_lookup_window_s", "The window over which payee look-ups are counted.",
       "int", "3600", 60, 7 * DAY_S, "seconds"),
    _s("session_idle_timeout_s", "A signed-in session ends after this long without a click.",
       "int", "900", 1, DAY_S, "seconds"),
    _s("session_absolute_timeout_s",
       "A signed-in session ends this long after sign-in, however active.",
       "int", "43200", 60, 7 * DAY_S, "seconds"),
    # The late fee and its grace days are terms of each loan product (issue 9); the settings
    # loan_late_fee_cents and loan_late_fee_grace_days that held them before are read only
    # once, by the migration that copies them into the products (db.py _add_loan_terms).
    # Loan-loss provision per arrears bucket, in hundredths of a percent of the outstanding
    # principal; end of day keeps it (eod.py _provision, issue 9).
    *[_s(f"loan_provision_bp_{name}", f"Loan-loss provision for loans {label}, in hundredths "
         "of a percent of the outstanding principal.", "int", default, 0, 10_000,
         "hundredths of a percent")
      for name, label, default in (
          ("current", "not past due", "100"), ("1_30", "1-30 days past due", "500"),
          ("31_60", "31-60 days past due", "2500"), ("61_90", "61-90 days past due", "5000"),
          ("over_90", "over 90 days past due", "10000"))],
    # Withholding tax on deposit interest and dormancy (issue 10): each deposit product has
    # its own (deposit_eod.py); these are what a new product starts with, and what an account
    # without a product (none after the migration at open) pays or waits.
    _s("interest_withholding_tax_bp", "Tax withheld from the savings interest paid to "
       "customers, in hundredths of a percent of the gross interest (1500 = 15.00 %), for "
       "new deposit products: each product has its own rate, applied when interest is "
       "posted.", "int", "0", 0, 10_000, "hundredths of a percent"),
    _s("dormancy_months", "Months without customer activity before an account is dormant, "
       "for new deposit products (each product has its own).", "int", "12", 1, 120,
       "months"),
    # Business dates and the automatic end of day (eod.py).
    _s("bank_time_zone", "The bank's time zone: when a business day ends, and how times "
       "are shown.", "timezone", "UTC"),
    _s("eod_cutoff_time", "Time of day (bank time zone) after which today may be closed, and "
       "at which the automatic end of day runs.", "time", "23:30",
       # Not before noon: a cut-off of 00:00 would let end of day close today as it begins,
       # so that the rest of the day's business carries tomorrow's value date.
       12 * 60, 23 * 60 + 59),
    _s("eod_auto", "Whether the running app closes each business day by itself after the "
       "cut-off time.", "bool", "1"),
    # Segregation of duties (approvals.py, users.py): changed only from the command line.
    _s("four_eyes_rate_bp", "Savings rates above this, in hundredths of a percent (200 = "
       "2.00 %), wait for a second manager.", "int", "200", 0, 10_000, "basis points"),
    _s("structuring_band_min_percent", "Structuring alerts count payments from this percent "
       "of the four-eyes threshold up to the threshold.", "int", "80", 1, 100, "percent"),
    _s("structuring_count_min", "Payments in the band within the window that raise a "
       "structuring alert.", "int", "3", 2, 1000, "payments"),
    _s("structuring_window_s", "The window in which structuring alerts count payments.",
       "int", "86400", 60, 30 * DAY_S, "seconds"),
    _s("activation_code_ttl_s", "How long a customer's login activation code stays valid.",
       "int", "259200", 300, 30 * DAY_S, "seconds"),
    _s("contact_change_cooling_off_h", "No activation code goes to an email or phone that "
       "staff changed within this many hours (the customer is told at the old one).", "int",
       "72", 0, 30 * 24, "hours"),
    # The working-day calendar (workdays.py): loan due dates of products that say so move off
    # weekends, these public holidays and the days managers add. A change applies from the day
    # after the business date on.
    _s("bank_country", "The bank's country, as an ISO 3166 two-letter code: its public "
       "holidays are days the bank does not work, to which no loan falls due.", "country", "US"),
    _s("bank_subdivision", "The state, province or region of bank_country whose own public "
       "holidays the bank also keeps (e.g. NY for New York); none: the nationwide holidays "
       "only.", "subdivision", ""),
    # Issue 13: the managers' dashboard may be a few seconds old if it says so (it shows when
    # its figures were computed, with a button for fresh ones); recomputing it for every
    # manager's every click took the CPU and the GIL postings need.
    _s("dashboard_max_age_s", "How old the dashboard's and customer analytics' figures may be "
       "before they are computed again (0: always fresh); the page shows their time and "
       "offers fresh ones.", "int", "30", 0, 3600, "seconds"),
    _s("eod_catchup_days_confirm", "An end of day that would close more days than this asks "
       "for confirmation (the page) or --yes (the command line).", "int", "3", 1, 366, "days"),
])


# What each setting is called on screen (Setting.label), next to their definitions so that a
# new setting gets its label here; the key stays what the command line takes.
LABELS: dict[str, str] = {
    "customer_daily_transfer_cents_max": "Customer daily transfer limit",
    "four_eyes_threshold_cents": "Four-eyes threshold for payments",
    "login_backoff_base_s": "Sign-in back-off: first wait",
    "login_backoff_user_after_failures": "Sign-in back-off: failures per username",
    "login_backoff_user_cap_s": "Sign-in back-off: longest wait per username",
    "login_backoff_address_after_failures": "Sign-in back-off: failures per address",
    "login_backoff_address_cap_s": "Sign-in back-off: longest wait per address",
    "login_backoff_forget_s": "Sign-in back-off: failures forgotten after",
    "signups_per_address_max": "Sign-ups per address",
    "signup_window_s": "Sign-up counting window",
    "payee_lookups_per_customer_max": "Payee look-ups per customer",
    "payee_lookup_window_s": "Payee look-up counting window",
    "session_idle_timeout_s": "Session idle timeout",
    "session_absolute_timeout_s": "Session absolute timeout",
    "loan_provision_bp_current": "Loan-loss provision: not past due",
    "loan_provision_bp_1_30": "Loan-loss provision: 1-30 days past due",
    "loan_provision_bp_31_60": "Loan-loss provision: 31-60 days past due",
    "loan_provision_bp_61_90": "Loan-loss provision: 61-90 days past due",
    "loan_provision_bp_over_90": "Loan-loss provision: over 90 days past due",
    "interest_withholding_tax_bp": "Withholding tax on interest (new products)",
    "dormancy_months": "Dormant after (new products)",
    "bank_time_zone": "Bank time zone",
    "eod_cutoff_time": "End-of-day cut-off time",
    "eod_auto": "Automatic end of day",
    "four_eyes_rate_bp": "Four-eyes threshold for savings rates",
    "structuring_band_min_percent": "Structuring band starts at",
    "structuring_count_min": "Structuring alert after",
    "structuring_window_s": "Structuring counting window",
    "activation_code_ttl_s": "Activation code valid for",
    "contact_change_cooling_off_h": "Contact change cooling-off",
    "bank_country": "Bank country (public holidays)",
    "bank_subdivision": "Bank region (regional holidays)",
    "dashboard_max_age_s": "Dashboard figures' maximum age",
    "eod_catchup_days_confirm": "End of day asks to confirm above",
}
# Units shown as a percentage: stored in hundredths of a percent.
_PERCENT_UNITS = ("hundredths of a percent", "basis points")


@functools.lru_cache(maxsize=1)
def _zone_names() -> frozenset:
    import zoneinfo
    # Some systems list their own zone files too; they are not zones a bank can name.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "posixrules", "Factory"}


def describe(key: str) -> Setting:
    """The registered setting, or InvalidInput for an unknown key."""
    setting = REGISTRY.get(key)
    if setting is None:
        if key in INTERNAL_KEYS:
            raise InvalidInput(f"{key} is kept by the bank itself and cannot be set by hand.")
        raise InvalidInput(f"Unknown setting {key!r}; the settings are: "
                           f"{', '.join(sorted(REGISTRY))}.")
    return setting


# Settings that loosen a control of issue 12 if raised (the cooling-off: if lowered): only the
# system actor changes them.
CONTROL_SETTINGS = frozenset({
    "four_eyes_threshold_cents", "four_eyes_rate_bp", "structuring_band_min_percent",
    "structuring_count_min", "structuring_window_s", "activation_code_ttl_s",
    "contact_change_cooling_off_h",
    "customer_daily_transfer_cents_max",
    # Sign-in back-off, sign-up and payee look-up limits (users.py, throttle.py).
    "login_backoff_base_s", "login_backoff_user_after_failures", "login_backoff_user_cap_s",
    "login_backoff_address_after_failures", "login_backoff_address_cap_s",
    "login_backoff_forget_s", "signups_per_address_max", "signup_window_s",
    "payee_lookups_per_customer_max", "payee_lookup_window_s"})


class Settings:
    def __init__(self, bank):
        self._bank = bank

    def get(self, key: str, default: str | None = None) -> str | None:
        """The stored text; else `default`; else the registered default."""
        # Kept until the writer's next unit of work (Bank.kept): every setting is written
        # through the writer, and a kept read gives way to it (Writer.give_way).
        row = self._bank.kept(("setting", key), lambda: self._bank.read_one(
            "SELECT value FROM settings WHERE key = ?", [key]))
        if row:
            return row[0]
        if default is None and key in REGISTRY:
            return REGISTRY[key].default
        return default

    def get_int(self, key: str, default: int = 0) -> int:
        value = self.get(key)
        return int(value) if value is not None else default

    def value(self, key: str):
        """A registered setting as a Python value (int, bool, datetime.time or str)."""
        setting = describe(key)
        return setting.typed(self.get(key) or setting.default)

    def listing(self) -> list[dict]:
        """Every registered setting: key, label, value (as stored), shown (the value with its
        unit, Setting.shown), meaning, type, allowed, default, default_shown."""
        stored = dict(self._bank.read("SELECT key, value FROM settings"))
        rows = []
        for s in REGISTRY.values():
            value = stored.get(s.key, s.default)
            rows.append({"key": s.key, "label": s.label, "value": value,
                         "shown": s.shown(value), "meaning": s.meaning, "type": s.type_label,
                         "allowed": s.allowed, "default": s.default,
                         "default_shown": s.shown(s.default)})
        return rows

    def set(self, actor, key: str, value) -> str:
        """Change one setting (managers and the system); returns the value as stored.

        Raises PermissionDenied, or InvalidInput for an unknown key or a value outside the
        setting's type and range (both audited as refusals); nothing is changed then."""
        bank = self._bank
        # The settings behind the controls of issue 12 only the system actor (the command
        # line) changes: a manager who could raise the four-eyes threshold alone would need
        # nobody else for anything.
        bank.require(actor, "bank.admin" if key in CONTROL_SETTINGS else "settings.change",
                     entity="setting", entity_id=key)
        try:
            setting = describe(key)
            text = setting.parse(value)
            if key in ("bank_time_zone", "eod_cutoff_time"):
                from . import businessday
                businessday.check_day_change(bank, **(
                    {"zone_name": text} if key == "bank_time_zone"
                    else {"cut_off": setting.typed(text)}))
            if key in ("bank_country", "bank_subdivision"):
                from . import workdays
                workdays.check_setting(bank, key, text)
        except InvalidInput as exc:
            bank.record_refusal(actor, "settings.change", exc, entity="setting", entity_id=key)
            raise

        def fn(uow):
            old = uow.fetchone("SELECT value FROM settings WHERE key = ?", [key])
            uow.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = excluded.value", [key, text])
            bank.audit_row(uow, actor, "setting.change", "setting", key,
                           before={"value": old[0] if old else None}, after={"value": text})
            # A new country or subdivision moves loans' future due dates, in this transaction.
            bank.workdays.setting_changed_in(uow, actor, key, old[0] if old else None, text)
        if key in ("bank_country", "bank_subdivision"):
            bank.workdays.write_change(fn, actor, "settings.change", "setting", key)
        else:
            bank.write(fn)
        return text
