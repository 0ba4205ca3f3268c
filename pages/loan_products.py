"""Loan products (managers): the products on offer and their terms; create, edit, stop or
resume offering one. Loans already applied for keep the terms they were applied on; a change of
a product's rate range waits for a second manager (Approvals page)."""
import streamlit as st

from pages.text import md

PAGE = {"title": "Loan products", "icon": ":material/tune:", "roles": ("manager",),
        "order": 51, "url": "loan-products"}

NAME = "loan_products"
TAB = "lp_tab"  # session state key of the open tab


def _fields(prefix: str, current: dict) -> dict:
    """The widgets of a product's fields, filled with `current`; what create_product and
    update_product take."""
    from pages.loan_forms import AMORTIZATION_LABELS, FREQUENCY_LABELS, PREPAYMENT_CHOICES

    from bankms.domain.loan_replay import DAY_COUNTS

    def choice(label, options, key, labels=None):
        options = list(options)
        return st.selectbox(label, options, index=options.index(current[key]),
                            format_func=(labels or {}).get if labels else str,
                            key=f"{prefix}_{key}")

    def whole(label, key, lowest, highest, help=None):
        return st.number_input(label, min_value=lowest, max_value=highest,
                               value=int(current[key]), step=1, key=f"{prefix}_{key}",
                               help=help)

    def text(label, key):
        return st.text_input(label, value=str(current[key]), key=f"{prefix}_{key}")

    out = {"name": text("Name", "name")}
    left, right = st.columns(2)
    with left:
        out["amount_min"] = text("Smallest amount", "amount_min")
        out["term_min_months"] = whole("Shortest term (months)", "term_min_months", 1, 480)
        out["rate_min_percent"] = text("Lowest rate (% a year)", "rate_min_percent")
        out["frequency"] = choice("Repayments", FREQUENCY_LABELS, "frequency", FREQUENCY_LABELS)
        out["grace_principal_periods"] = whole(
            "Grace period on principal (instalments)", "grace_principal_periods", 0, 2400,
            help="The first instalments pay interest only.")
        out["disbursement_fee"] = text("Disbursement fee, flat", "disbursement_fee")
        out["late_fee"] = text("Late fee", "late_fee")
        out["day_count"] = choice("Day count", DAY_COUNTS, "day_count")
    with right:
        out["amount_max"] = text("Largest amount", "amount_max")
        out["term_max_months"] = whole("Longest term (months)", "term_max_months", 1, 480)
        out["rate_max_percent"] = text("Highest rate (% a year)", "rate_max_percent")
        out["amortization"] = choice("Amortization", AMORTIZATION_LABELS, "amortization",
                                     AMORTIZATION_LABELS)
        out["prepayment_rule"] = choice("A prepayment should", PREPAYMENT_CHOICES,
                                        "prepayment_rule", PREPAYMENT_CHOICES)
        out["disbursement_fee_bp"] = whole(
            "Disbursement fee, hundredths of a percent of the amount", "disbursement_fee_bp",
            0, 10_000, help="150 = 1.50 %; added to the flat fee, rounded half-up to the cent.")
        out["late_fee_grace_days"] = whole("Late fee grace days", "late_fee_grace_days", 0, 90)
        out["due_dates_working_days"] = st.checkbox(
            "Move due dates off weekends and bank holidays",
            value=bool(current["due_dates_working_days"]),
            key=f"{prefix}_due_dates_working_days")
    return out


def render() -> None:
    from pages import daily_common as dc
    from pages.common import get_bank, lazy_tabs
    from pages.loan_forms import product_table

    actor = dc.signed_in(("manager",))
    bank = get_bank()
    st.title("Loan products")
    dc.settle_job(NAME)
    dc.show_stashed_error(NAME)
    dc.show_flash()
    products = bank.loans.products(include_inactive=True)
    st.caption("Loans keep the terms of their product as it was when they were applied for. "
               "A change of the rate range waits for another manager's approval.")
    # Each form below draws 17 widgets; a tab is drawn only once opened (Loan products took
    # 1.7 times the one-line page with all of them up front), and a form's tab then stays
    # drawn so that what was typed survives a look at another tab.
    lazy_tabs({
        "Products": lambda: product_table(products, key="lp_table", with_status=True),
        "Edit a product": lambda: _edit(bank, actor, products),
        "New product": lambda: _create(bank, actor)}, key=TAB,
        keep=("Edit a product", "New product"))


def _edit(bank, actor, products) -> None:
    from pages import daily_common as dc

    st.header("Edit a product")
    rows = {row["code"]: row for row in products.to_dict("records")}
    code = st.selectbox("Product", list(rows), key="lp_edit_code",
                        format_func=lambda c: f"{rows[c]['name']} ({c})")
    if not code:
        return
    current = rows[code]
    with st.form(f"lp_edit_{code}"):
        typed = _fields(f"lp_edit_{code}", current)
        save = st.form_submit_button("Save changes", type="primary")
    if save:
        dc.act(NAME, lambda: bank.loans.update_product(actor, code, **typed),
               dc.unless_waiting(f"Loan product {md(code)} is saved."))
    active = bool(current["active"])
    label = "Stop offering it" if active else "Offer it again"
    if st.button(label, key=f"lp_active_{code}"):
        dc.act(NAME, lambda: bank.loans.set_product_active(actor, code, not active),
               f"Loan product {md(code)} is {'no longer' if active else 'again'} offered.")


def _create(bank, actor) -> None:
    from bankms.services.loans import PRODUCT_DEFAULTS
    from pages import daily_common as dc

    st.header("New product")
    blank = {**PRODUCT_DEFAULTS, "name": "", "amount_min": "", "amount_max": "",
             "term_min_months": 12, "term_max_months": 60, "rate_min_percent": "",
             "rate_max_percent": ""}
    with st.form("lp_new", clear_on_submit=False):
        new_code = st.text_input("Code", placeholder="student_loan", key="lp_new_code",
                                 help="Lower-case letters, digits and underscores.")
        typed_new = _fields("lp_new", blank)
        create = st.form_submit_button("Create product", type="primary")
    if create:
        dc.act(NAME, lambda: bank.loans.create_product(actor, code=new_code, **typed_new),
               lambda prod: f"Loan product {md(prod['code'])} is created and offered.")
