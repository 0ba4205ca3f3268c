"""Customers (tellers, managers): find a customer and open their overview (profile, accounts,
recent activity, loans, payments waiting for approval), edit contact details, change a
customer's status (managers), onboard new customers and verify self-registrations."""
import streamlit as st

PAGE = {"title": "Customers", "icon": ":material/group:", "roles": ("teller", "manager"),
        "order": 10, "url": "customers"}

SELECTED = "customers_selected"


def _find(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import show_error

    with st.form("customers_search"):
        query = st.text_input("Name, phone, email, customer id or account number",
                              key="customers_query")
        submitted = st.form_submit_button("Search", type="primary", key="customers_search_go",
                                          icon=":material/search:")
    if submitted:
        try:
            results = bank.customers.search(actor, query)
        except BankError as exc:
            show_error(exc)
        else:
            # Each search gets its own picker, starting at its first match.
            st.session_state["customers_results"] = results
            st.session_state["customers_searches"] = st.session_state.get(
                "customers_searches", 0) + 1
            st.session_state.pop(SELECTED, None)
    results = st.session_state.get("customers_results")
    if results is not None:
        if results.empty:
            st.info("No customer matches that search.")
        else:
            options = [int(c) for c in results["customer_id"]]
            names = dict(zip(options, results["full_name"]))
            statuses = dict(zip(options, results["status"]))
            picked = st.selectbox(
                "Open customer", options,
                format_func=lambda cid: f"{cid} · {names[cid]} ({statuses[cid]})",
                key=f"customers_pick_{st.session_state.get('customers_searches', 0)}")
            st.session_state[SELECTED] = int(picked)
    cid = st.session_state.get(SELECTED)
    if cid is not None:
        _overview(bank, actor, cid)


def _overview(bank, actor, cid):
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages import daily_common as dc

    try:
        view = bank.customers.overview(actor, cid)
    except BankError as exc:
        show_error(exc)
        return
    p = view["profile"]
    st.header(f"{dc.md(p['full_name'])} · customer {p['id']}")
    st.caption(f"Status: {p['status']}")
    st.markdown(
        f"Born {p['date_of_birth']} · national id {dc.md(p['national_id'])}  \n"
        f"{dc.md(p['email'] or 'no email')} · {dc.md(p['phone'] or 'no phone')}  \n"
        f"{dc.md(p['address'] or '')}")
    st.markdown("**Accounts**")
    dc.show_table(view["accounts"], {"account_number": "Account", "kind": "Type",
                                     "status": "Status", "balance": "Balance",
                                     "available": "Available"},
                  ("balance", "available"), empty="No accounts yet.",
                  key=f"customers_accounts_{cid}")
    st.markdown("**Recent activity**")
    dc.show_table(view["activity"], {"posted_at": "When", "amount": "Amount",
                                     "account_number": "Account", "label": "Type",
                                     "memo": "Memo"},
                  ("amount",), empty="No transactions yet.", key=f"customers_activity_{cid}")
    if view["loans"] is not None:
        st.markdown("**Loans**")
        dc.show_table(view["loans"], {"loan_id": "Loan", "principal_outstanding": "Outstanding",
                                      "status": "Status", "product": "Product",
                                      "principal": "Principal",
                                      "days_past_due": "Days past due"},
                      ("principal_outstanding", "principal"), empty="No loans.",
                      key=f"customers_loans_{cid}")
    pending = view["pending_approvals"]
    if pending is not None and not pending.empty:
        st.markdown("**Waiting for approval**")
        dc.show_table(pending, {"request_id": "Request", "label": "Type", "amount": "Amount",
                                "maker": "By"}, ("amount",), key=f"customers_pending_{cid}")
    _edit_contact(bank, actor, p)
    _login(bank, actor, p)
    if actor.role == "manager":
        _status(bank, actor, p)


def _edit_contact(bank, actor, p):
    from pages import daily_common as dc

    with st.expander("Edit contact details"):
        with st.form(f"customers_contact_{p['id']}"):
            email = st.text_input("Email", value=p["email"] or "", key=f"contact_email_{p['id']}")
            phone = st.text_input("Phone", value=p["phone"] or "", key=f"contact_phone_{p['id']}")
            address = st.text_input("Address", value=p["address"] or "",
                                    key=f"contact_address_{p['id']}")
            saved = st.form_submit_button("Save contact details", key=f"contact_save_{p['id']}")
        if saved:
            dc.act("customers", lambda: bank.customers.update_contact(
                actor, p["id"], email=email, phone=phone, address=address),
                lambda changed: "Contact details saved." if changed else "Nothing changed.")


def _login(bank, actor, p):
    """Online banking: staff make the login (or a new code for one), never its password; the
    code goes to the customer's own email or phone, and the customer sets the password on the
    Activate login page. Staff see only where it went."""
    from pages import daily_common as dc

    with st.expander("Online banking login"):
        with st.form(f"customers_login_{p['id']}"):
            username = st.text_input("Username", max_chars=32, key=f"login_user_{p['id']}")
            left, right = st.columns(2)
            create = left.form_submit_button("Create login", key=f"login_create_{p['id']}")
            again = right.form_submit_button("New activation code",
                                             key=f"login_code_{p['id']}")

        def sent(made):
            return (f"Login **{dc.md(made['username'])}**: an activation code was sent to "
                    f"{dc.md(made['sent_to'])}; it expires "
                    f"{made['expires_at']:%Y-%m-%d %H:%M} UTC.")
        if create:
            dc.act("customers", lambda: bank.users.create_customer_login(actor, p["id"],
                                                                         username), sent)
        elif again:
            dc.act("customers", lambda: bank.users.new_activation_code(actor, username),
                   lambda made: sent(made) + " The old password no longer works.")


def _status(bank, actor, p):
    from pages import daily_common as dc

    with st.expander("Change customer status"):
        with st.form(f"customers_status_{p['id']}_{p['status']}"):
            status = st.selectbox("New status", ["active", "suspended", "closed"],
                                  key=f"status_new_{p['id']}")
            reason = st.text_input("Reason", key=f"status_reason_{p['id']}")
            go = st.form_submit_button("Change status", key=f"status_go_{p['id']}")
        if go:
            dc.act("customers", lambda: bank.customers.set_status(actor, p["id"], status, reason),
                   f"Customer {p['id']} is now {status}.")


def _onboard(bank, actor):
    import datetime as dt

    from bankms.services import businessday
    from pages.common import form_key, reset_form_key
    from pages import daily_common as dc

    # The widgets carry the form instance's key, so after a success the next customer gets a
    # fresh, empty form and a new idempotency key.
    key = form_key("onboard")
    with st.form(f"onboard_{key}"):
        full_name = st.text_input("Full name", key=f"onboard_name_{key}")
        dob = st.date_input("Date of birth", value=None, min_value=dt.date(1900, 1, 1),
                            max_value=businessday.calendar_date(bank),
                            key=f"onboard_dob_{key}")
        national_id = st.text_input("National id", key=f"onboard_nid_{key}")
        address = st.text_input("Address", key=f"onboard_address_{key}")
        phone = st.text_input("Phone", key=f"onboard_phone_{key}")
        email = st.text_input("Email", key=f"onboard_email_{key}")
        submitted = st.form_submit_button("Onboard customer", type="primary",
                                          key=f"onboard_go_{key}")
    if submitted:
        def onboarded(cid):
            reset_form_key("onboard")
            st.session_state.pop("customers_results", None)
            st.session_state[SELECTED] = cid
        dc.act("customers", lambda: bank.customers.create(
            actor, full_name=full_name, email=email, phone=phone, date_of_birth=dob,
            national_id=national_id, address=address, idempotency_key=key),
            lambda cid: f"Customer {cid} ({dc.md(full_name)}) is onboarded. Open an account "
                        "for them on the Accounts page.", on_success=onboarded)


PENDING_PAGE_ROWS = 20


def _pending(bank, actor):
    from bankms.domain.errors import BankError
    from pages.common import show_error
    from pages import daily_common as dc

    page_no = st.session_state.get("pending_page", 0)
    try:
        found = bank.customers.pending(actor, limit=PENDING_PAGE_ROWS,
                                       offset=page_no * PENDING_PAGE_ROWS)
    except BankError as exc:
        show_error(exc)
        return
    total = found["total"]
    if total == 0:
        st.caption("No self-registrations are waiting.")
        return
    pages = (total + PENDING_PAGE_ROWS - 1) // PENDING_PAGE_ROWS
    if page_no >= pages:  # the last page emptied (verified): show the new last page
        st.session_state["pending_page"] = pages - 1
        st.rerun()
    first = page_no * PENDING_PAGE_ROWS + 1
    st.caption(f"{total:,} sign-ups waiting · showing {first:,}-"
               f"{first + len(found['rows']) - 1:,} (page {page_no + 1} of {pages}), oldest "
               "first.")
    for p in found["rows"].to_dict("records"):
        cid = int(p["customer_id"])
        with st.container(border=True):
            st.markdown(f"**{dc.md(p['full_name'])}** · customer {cid}  \n"
                        f"Born {p['date_of_birth']:%Y-%m-%d} · national id "
                        f"{dc.md(p['national_id'])}  \n"
                        f"{dc.md(p['address'])} · {dc.md(p['phone'])} · {dc.md(p['email'])}")
            if st.button("Verify: documents checked", key=f"verify_{cid}",
                         icon=":material/verified_user:"):
                dc.act("customers", lambda: bank.customers.verify(actor, cid),
                       f"Customer {cid} is verified and active.")
    left, _, right = st.columns([1, 3, 1])
    if left.button("Previous", key="pending_prev", disabled=page_no == 0,
                   icon=":material/chevron_left:"):
        st.session_state["pending_page"] = page_no - 1
        st.rerun()
    if right.button("Next", key="pending_next", disabled=page_no + 1 >= pages,
                    icon=":material/chevron_right:"):
        st.session_state["pending_page"] = page_no + 1
        st.rerun()


def render() -> None:
    from pages.common import get_bank
    from pages import daily_common as dc

    actor = dc.signed_in(dc.STAFF)
    bank = get_bank()
    st.title("Customers")
    dc.settle_job("customers")
    dc.show_stashed_error("customers")
    dc.show_flash()
    find, onboard, pending = st.tabs(["Find", "Onboard", "Verify sign-ups"])
    with find:
        _find(bank, actor)
    with onboard:
        _onboard(bank, actor)
    with pending:
        _pending(bank, actor)
