"""Deposit products (managers): checking, savings and term deposit products with the terms in
force and those to come; create one, give one new terms from a business date (tomorrow at the
earliest: the past never changes), withdraw or reinstate one. A rate above the four-eyes rate
waits for a second manager (Approvals page)."""
import datetime as dt

import streamlit as st

from pages.text import md

PAGE = {"title": "Deposit products", "icon": ":material/savings:", "roles": ("manager",),
        "order": 52, "url": "deposit-products"}

NAME = "deposit_products"
TAB = "dp_tab"  # session state key of the open tab
PERIOD_LABELS = {"monthly": "Monthly", "quarterly": "Quarterly", "yearly": "Yearly",
                 "maturity": "At maturity"}
PENALTY_LABELS = {"none": "None", "interest_months": "Months of interest",
                  "reduced_rate": "A reduced rate"}
MONEY_FIELDS = (("min_balance", "Minimum balance"),
                ("min_balance_fee", "Fee below the minimum balance (per posting period)"),
                ("maintenance_fee", "Monthly maintenance fee"),
                ("standing_order_fail_fee", "Failed standing order fee"))


def _fields(prefix: str, kind: str, current: dict) -> dict:
    """Widgets for one version's terms, filled from `current` (stored values); returns the
    terms as DepositProducts.create/change take them (amounts and rates as typed)."""
    from bankms.services.deposits.products import DAY_COUNTS, POSTING_PERIODS, tiers_text
    from bankms.domain.money import to_money

    def text(label, key, value, help=None):
        return st.text_input(label, value=str(value), key=f"{prefix}_{key}", help=help)

    def whole(label, key, lowest, highest):
        return st.number_input(label, min_value=lowest, max_value=highest,
                               value=int(current[key]), step=1, key=f"{prefix}_{key}")

    def choice(label, key, options, labels=None):
        options = list(options)
        return st.selectbox(label, options, index=options.index(current[key]),
                            format_func=(labels or {}).get if labels else str,
                            key=f"{prefix}_{key}")

    periods = ["maturity"] if kind == "term_deposit" else [
        p for p in POSTING_PERIODS if p != "maturity"]
    out = {}
    left, right = st.columns(2)
    with left:
        out["interest_rate_percent"] = text("Interest rate (% a year)", "interest_rate_percent",
                                            f"{current['interest_rate_percent'].normalize():f}")
        out["day_count"] = choice("Day count", "day_count", DAY_COUNTS)
        out["posting_period"] = choice("Interest paid", "posting_period", periods,
                                       PERIOD_LABELS)
        out["withholding_tax_bp"] = whole(
            "Withholding tax, hundredths of a percent (1500 = 15 %)", "withholding_tax_bp",
            0, 10_000)
        out["dormancy_months"] = whole("Dormant after months without activity",
                                       "dormancy_months", 1, 120)
    with right:
        for key, label in MONEY_FIELDS:
            out[key] = text(label, key, to_money(current[f"{key}_cents"]))
    tiers = st.text_area("Rate tiers by balance, one per line: from balance: rate",
                         value=tiers_text(current.get("tiers", [])), key=f"{prefix}_tiers",
                         help="The rate of the highest tier the end-of-day balance reaches "
                              "applies to the whole balance; no tiers: the interest rate.")
    if kind == "checking":
        out["overdraft_allowed"] = st.checkbox("Overdraft allowed",
                                               value=bool(current["overdraft_allowed"]),
                                               key=f"{prefix}_overdraft_allowed")
        left, right = st.columns(2)
        with left:
            out["overdraft_limit_max"] = text("Largest overdraft limit", "overdraft_limit_max",
                                              to_money(current["overdraft_limit_max_cents"]))
            out["overdraft_fee"] = text("Monthly overdraft fee", "overdraft_fee",
                                        to_money(current["overdraft_fee_cents"]))
        with right:
            out["overdraft_rate_percent"] = text(
                "Overdraft interest (% a year)", "overdraft_rate_percent",
                f"{current['overdraft_rate_percent'].normalize():f}")
    if kind == "term_deposit":
        left, right = st.columns(2)
        with left:
            out["term_months_min"] = whole("Shortest term (months)", "term_months_min", 1, 600)
            out["early_closure_penalty"] = choice("Early closure costs",
                                                  "early_closure_penalty", PENALTY_LABELS,
                                                  PENALTY_LABELS)
            out["penalty_months"] = whole("Months of interest lost", "penalty_months", 0, 120)
        with right:
            out["term_months_max"] = whole("Longest term (months)", "term_months_max", 1, 600)
            out["penalty_rate_percent"] = text(
                "Reduced rate paid on early closure (%)", "penalty_rate_percent",
                f"{current['penalty_rate_percent'].normalize():f}")
    return {"terms": out, "tiers_text": tiers}


def _percent_of_bp(bp) -> str:
    """Hundredths of a percent as a person reads them: 1500 -> '15 %', 1250 -> '12.5 %'."""
    from decimal import Decimal
    return f"{(Decimal(int(bp)) / 100).normalize():f} %"


def _table(products) -> None:
    from bankms.domain.labels import account_kind_label
    from bankms.domain.money import AMOUNT_CENTS_MAX, to_money
    from pages import daily_common as dc
    from pages.common import money

    shown = products.copy()
    shown["kind"] = [account_kind_label(k) for k in shown["kind"]]
    shown["status"] = ["offered" if v else "withdrawn" for v in shown["active"]]
    shown["paid"] = [PERIOD_LABELS.get(p, p) for p in shown["posting_period"]]
    shown["rate"] = [f"{r.normalize():f} %" for r in shown["interest_rate_percent"]]
    shown["tax"] = [_percent_of_bp(bp) for bp in shown["withholding_tax_bp"]]
    # The migrated checking product keeps today's "no cap" as the largest amount there is.
    shown["overdraft_max"] = [
        "Not allowed" if not allowed else "No limit" if cents >= AMOUNT_CENTS_MAX
        else money(to_money(cents))
        for cents, allowed in zip(shown["overdraft_limit_max_cents"],
                                  shown["overdraft_allowed"])]
    dc.show_table(shown, {
        "code": "Code", "name": "Name", "kind": "Kind", "status": "Status", "rate": "Rate",
        "tier_count": "Tiers", "effective_date": "Since", "future_versions": "Changes to come",
        "paid": "Interest paid", "day_count": "Day count",
        "maintenance_fee_cents": "Monthly fee", "min_balance_cents": "Minimum balance",
        "overdraft_max": "Largest overdraft", "tax": "Tax withheld",
        "dormancy_months": "Dormant after (months)"},
        money_columns=("maintenance_fee_cents", "min_balance_cents"), key="dp_table")


def _edit(bank, actor, rows) -> None:
    from bankms.services.deposits.products import parse_tiers
    from pages import daily_common as dc

    st.header("New terms for a product")
    code = st.selectbox("Product", list(rows), key="dp_edit_code",
                        format_func=lambda c: f"{rows[c]['name']} ({c})")
    if not code:
        return
    versions = bank.deposit_products.versions(actor, code)
    versions = versions.assign(
        state=versions["state"].str.capitalize(),
        interest_rate_percent=[f"{r.normalize():f} %" for r in versions[
            "interest_rate_percent"]])
    dc.show_table(versions, {"effective_date": "From", "state": "State",
                             "interest_rate_percent": "Rate", "tiers": "Tiers",
                             "changed_by": "Changed by"},
                  key=f"dp_versions_{code}")
    tomorrow = bank.business_date + dt.timedelta(days=1)
    # The form starts from the terms that will be in force tomorrow, the earliest a change
    # may take effect.
    current = bank.deposit_products.get(actor, code, on=tomorrow)
    with st.form(f"dp_edit_{code}"):
        start = st.date_input("New terms apply from (business date)", value=tomorrow,
                              min_value=tomorrow, key=f"dp_edit_{code}_start")
        typed = _fields(f"dp_edit_{code}", current["kind"], current)
        save = st.form_submit_button("Save new terms", type="primary")
    if save:
        dc.act(NAME, lambda: bank.deposit_products.change(
            actor, code, terms=typed["terms"], tiers=parse_tiers(typed["tiers_text"]),
            effective_date=start),
            dc.unless_waiting(f"Deposit product {md(code)} has new terms from {start}."))
    active = bool(rows[code]["active"])
    label = "Withdraw it (no new accounts)" if active else "Offer it again"
    if st.button(label, key=f"dp_active_{code}"):
        dc.act(NAME, lambda: bank.deposit_products.set_active(actor, code, not active),
               f"Deposit product {md(code)} is {'withdrawn' if active else 'offered again'}.")


def _create(bank, actor) -> None:
    from bankms.domain.labels import ACCOUNT_KIND_LABELS, account_kind_label
    from bankms.services.deposits.products import parse_tiers
    from pages import daily_common as dc

    st.header("New product")
    kind = st.selectbox("Kind", list(ACCOUNT_KIND_LABELS), format_func=account_kind_label,
                        key="dp_new_kind")
    blank = {**bank.deposit_products.defaults(kind), "tiers": []}
    with st.form(f"dp_new_{kind}"):
        new_code = st.text_input("Code", placeholder="bonus_saver", key="dp_new_code",
                                 help="Lower-case letters, digits and underscores.")
        new_name = st.text_input("Name", key="dp_new_name")
        # A product may start today (no account can have been on it before) or later, so
        # it can be prepared ahead of a launch.
        start = st.date_input("Offered from (business date)", value=bank.business_date,
                              min_value=bank.business_date, key=f"dp_new_{kind}_start")
        typed = _fields(f"dp_new_{kind}", kind, blank)
        create = st.form_submit_button("Create product", type="primary")
    if create:
        dc.act(NAME, lambda: bank.deposit_products.create(
            actor, code=new_code, name=new_name, kind=kind, terms=typed["terms"],
            tiers=parse_tiers(typed["tiers_text"]), effective_date=start),
            dc.unless_waiting(lambda prod: f"Deposit product {md(prod['code'])} is created, "
                                           f"offered from {start}."))


def render() -> None:
    from pages import daily_common as dc
    from pages.common import get_bank, lazy_tabs

    actor = dc.signed_in(("manager",))
    bank = get_bank()
    st.title("Deposit products")
    dc.settle_job(NAME)
    dc.show_stashed_error(NAME)
    dc.show_flash()
    st.caption("Accounts earn their product's terms of each day, unless a manager gave one its "
               "own rate. New terms apply from a business date, tomorrow at the earliest; a "
               "rate above the four-eyes rate waits for another manager's approval.")
    products = bank.deposit_products.list(actor)
    # Only the open tab runs: each form below draws about twenty widgets (the page took 1.3
    # times the one-line page with the table and both forms drawn at once).
    lazy_tabs({
        "Products": lambda: _table(products),
        "New terms": lambda: _edit(
            bank, actor, {row["code"]: row for row in products.to_dict("records")}),
        "New product": lambda: _create(bank, actor)}, key=TAB, keep=("New terms", "New product"))
