"""Charges (tellers, managers): find an account, charge it from the catalogue with a reason
(review, then confirm, once per form however often it is clicked), see its charges; managers
waive a charge with a reason and keep the catalogue. The rules are bank.charges'."""
import streamlit as st

PAGE = {"title": "Charges", "icon": ":material/receipt_long:", "roles": ("teller", "manager"),
        "order": 35, "url": "account-charges"}

APPLY = "charges_apply"
WAIVE = "charges_waive"
CATALOGUE = "charges_catalogue"
TAB = "ch_tab"
TABS = ("Charge an account", "Catalogue")
STATUS_LABELS = {"charged": "Charged", "waived": "Waived", "not_collected": "Not collected"}
CHARGE_COLUMNS = {"id": "Charge", "business_date": "Date", "name": "Charge name",
                  "amount": "Amount", "status": "Status", "reason": "Reason",
                  "applied_by": "By", "waived_by": "Waived by", "waive_reason": "Why waived"}


def _entry_label(row) -> str:
    from pages.common import money
    if row["calc"] == "flat":
        return f"{row['name']} ({money(row['amount'])})"
    if row["calc"] == "percent":
        limits = f", min {money(row['minimum'])}" if row["min_cents"] else ""
        if row["maximum"] is not None:
            limits += f", max {money(row['maximum'])}"
        return f"{row['name']} ({row['rate_percent']} %{limits})"
    return f"{row['name']} (amount typed)"


def _apply_form(bank, actor, number):
    from pages import daily_common as dc

    entries = bank.charges.catalogue(actor, active_only=True)
    labels = {row["code"]: _entry_label(row) for _, row in entries.iterrows()}
    typed = dc.draft(APPLY)
    codes = list(labels)
    with st.form("charges_apply_form"):
        code = st.selectbox("Charge", codes, format_func=labels.get, key="ch_code",
                            index=codes.index(typed["code"]) if typed.get("code") in codes
                            else 0)
        base = st.text_input("Base amount (for a percentage)", value=typed.get("base", ""),
                             key="ch_base", placeholder="1,234.50")
        amount = st.text_input("Amount (for a charge whose amount is typed)",
                               value=typed.get("amount", ""), key="ch_amount")
        reason = st.text_input("Reason", value=typed.get("reason", ""), key="ch_reason")
        submitted = st.form_submit_button("Review", type="primary", key="ch_review")
    if submitted:
        def review():
            holder = bank.accounts.get(actor, number)
            quote = bank.charges.quote(actor, code, base_amount=base.strip() or None,
                                       amount=amount.strip() or None, reason=reason)
            return {**quote, "account": holder["account_number"], "holder": holder["holder"],
                    "available": holder["available"],
                    "base": base.strip() or None, "typed": amount.strip() or None}
        dc.request_review(APPLY, {"code": code, "base": base, "amount": amount,
                                  "reason": reason}, review)


def _review(bank, actor, review):
    from pages import daily_common as dc
    from pages.common import money

    st.header("Check and confirm the charge")
    dc.show_pairs([("Account", f"{review['account']} ({review['holder']})"),
                   ("Charge", review["name"]), ("Amount", money(review["amount"])),
                   ("Reason", review["reason"]),
                   ("Available now", money(review["available"]))])
    tag = review["key"]
    confirm = st.button("Confirm charge", type="primary", key=f"ch_confirm_{tag}",
                        icon=":material/check:")
    change = st.button("Change", key=f"ch_change_{tag}")
    dc.show_stashed_error(APPLY)
    if change:
        dc.drop_review(APPLY)
        st.rerun()
    if confirm:
        # The confirmation names what was charged where and why, as the review did.
        dc.confirm_review(APPLY, lambda r: {**bank.charges.apply(
            actor, r["account"], r["code"], reason=r["reason"], base_amount=r["base"],
            amount=r["typed"], idempotency_key=r["key"]), "account": r["account"],
            "name": r["name"], "reason": r["reason"]})


def _waive_form(bank, actor, charges):
    from pages import daily_common as dc
    from pages.common import form_key, money, reset_form_key

    open_ = charges[charges["status"] == "charged"]
    if len(open_) == 0:
        return
    st.header("Waive a charge")
    labels = {int(r["id"]): f"{r['id']}: {r['name']} {money(r['amount'])} ({r['reason']})"
              for _, r in open_.iterrows()}
    with st.form("charges_waive_form"):
        cid = st.selectbox("Charge", list(labels), format_func=labels.get, key="ch_waive_id")
        reason = st.text_input("Reason for the waiver", key="ch_waive_reason")
        submitted = st.form_submit_button("Waive", key="ch_waive")
    if submitted:
        key = form_key(WAIVE)
        dc.act(WAIVE, lambda: bank.charges.waive(actor, cid, reason=reason, idempotency_key=key),
               dc.unless_waiting(
                   lambda r: f"Charge {r['charge_id']} was waived: {money(r['amount'])} given "
                             f"back (transaction {r['transaction_id']})."),
               on_success=lambda r: reset_form_key(WAIVE))


def _catalogue_view(entries):
    """The catalogue for people: each row shows only the figures its kind uses (a fixed
    charge has no rate, a percentage no fixed amount, a product's charge none of them), as
    money or '1.5 %'; no maximum reads 'none'."""
    from pages.common import money

    def cell(row, column):
        calc, value = row["calc"], row[column]
        if calc == "product" or (calc == "flat") != (column == "amount"):
            return ""
        if column == "rate_percent":
            return f"{value.normalize():f} %"
        if column == "maximum" and value is None:
            return "none"
        return money(value)
    rows = entries.to_dict("records")
    return entries.assign(
        kind=entries["calc"].map({"flat": "Fixed", "percent": "Percentage",
                                  "product": "Set by the product"}),
        **{name: [cell(row, column) for row in rows] for name, column in (
            ("amount", "amount"), ("rate", "rate_percent"), ("minimum", "minimum"),
            ("maximum", "maximum"))})


def _catalogue(bank, actor):
    from pages import daily_common as dc

    entries = bank.charges.catalogue(actor)
    dc.show_table(_catalogue_view(entries),
                  {"code": "Code", "name": "Name", "kind": "Kind", "amount": "Amount",
                   "rate": "Rate", "minimum": "Minimum", "maximum": "Maximum",
                   "active": "Offered", "system": "End of day"},
                  key="ch_catalogue_table")
    if actor.role != "manager":
        return
    with st.form("charges_define_form"):
        st.caption("Add a charge, or change one by its code. Rates are in basis points "
                   "(150 = 1.50 %).")
        code = st.text_input("Code", key="ch_def_code", placeholder="statement_copy")
        name = st.text_input("Name", key="ch_def_name")
        calc = st.radio("Kind", ["flat", "percent"], horizontal=True, key="ch_def_calc",
                        format_func={"flat": "Fixed amount", "percent": "Percentage"}.get)
        amount = st.text_input("Amount (fixed)", key="ch_def_amount")
        rate_bp = st.number_input("Rate, basis points (percentage)", min_value=0,
                                  max_value=10_000, value=0, step=1, key="ch_def_rate")
        minimum = st.text_input("Minimum (percentage, optional)", key="ch_def_min")
        maximum = st.text_input("Maximum (percentage, optional)", key="ch_def_max")
        submitted = st.form_submit_button("Save charge", key="ch_def_save")
    if submitted:
        fixed = calc == "flat"
        dc.act(CATALOGUE, lambda: bank.charges.define(
            actor, code, name=name, calc=calc, amount=amount if fixed else None,
            rate_bp=0 if fixed else int(rate_bp),
            minimum=None if fixed else (minimum.strip() or None),
            maximum=None if fixed else (maximum.strip() or None)),
            lambda r: f"Charge {r['code']} is saved.")
    own = entries[~entries["system"]]
    if len(own):
        left, right = st.columns([3, 1])
        with left:
            which = st.selectbox("Offer or withdraw", list(own["code"]), key="ch_active_code")
        active = bool(own.set_index("code").loc[which, "active"])
        with right:
            if st.button("Withdraw" if active else "Offer again", key="ch_active_toggle"):
                dc.act(CATALOGUE, lambda: bank.charges.set_active(actor, which, not active),
                       f"Charge {which} is {'withdrawn' if active else 'offered again'}.")


def render() -> None:
    from pages import daily_common as dc
    from pages.common import get_bank, lazy_tabs, money

    actor = dc.signed_in(dc.STAFF)
    bank = get_bank()
    st.title("Charges")
    for name in (APPLY, WAIVE, CATALOGUE):
        dc.settle_job(name)
    dc.show_flash()
    dc.show_stashed_error(WAIVE)
    dc.show_stashed_error(CATALOGUE)
    review = dc.current_review(APPLY)
    if review is not None:
        _review(bank, actor, review)
        return
    result = dc.result_of(APPLY)
    if result is not None:
        st.success(f"Charged {dc.md(money(result['amount']))} to account "
                   f"{result['account']} ({dc.md(result['name'])}: {dc.md(result['reason'])}): "
                   f"charge {result['charge_id']}, transaction {result['transaction_id']}.",
                   icon=":material/check_circle:")
        if st.button("New charge", key="ch_new", icon=":material/add:"):
            dc.clear_result(APPLY)
            st.rerun()
    # Only the open tab runs (pages.common.lazy_tabs); both hold forms, so once opened they
    # stay drawn and keep what was typed while the other is looked at.
    lazy_tabs({TABS[0]: lambda: _account(bank, actor, result),
               TABS[1]: lambda: _catalogue(bank, actor)}, key=TAB, keep=TABS)


def _account(bank, actor, result) -> None:
    """An account's charges: charge it (unless a result is on show), list, waive."""
    from bankms.domain.errors import BankError
    from pages import daily_common as dc
    from pages.common import money, show_error

    # The review step draws no account field, and Streamlit forgets a widget it did not
    # draw: the number is kept beside it so the account's charges show again afterwards.
    number = st.text_input("Account number", key="ch_account",
                           value=st.session_state.get("_ch_account_kept", "")).strip()
    st.session_state["_ch_account_kept"] = number
    if number:
        try:
            account = bank.accounts.get(actor, number)
            charges = bank.charges.list(actor, account["account_number"])
        except BankError as exc:
            show_error(exc)
        else:
            # The holder's name is what a customer typed at registration: shown as text.
            st.caption(f"{dc.md(account['holder'])} - {account['kind']}, {account['status']}; "
                       f"available {dc.md(money(account['available']))}")
            if result is None:
                _apply_form(bank, actor, account["account_number"])
            st.header("Charges on this account")
            # A charge not waived has no waiver: blank cells, not 'None'.
            dc.show_table(charges.assign(
                status=charges["status"].map(STATUS_LABELS),
                waived_by=charges["waived_by"].astype(object).where(
                    charges["waived_by"].notna(), ""),
                waive_reason=charges["waive_reason"].astype(object).where(
                    charges["waive_reason"].notna(), "")),
                          CHARGE_COLUMNS, money_columns=("amount",),
                          empty="No charges on this account.", key="ch_list")
            if actor.role == "manager":
                _waive_form(bank, actor, charges)
