"""Profile (customers): their details and the contact details they may change themselves."""
import streamlit as st

PAGE = {"title": "Profile", "icon": ":material/person:", "roles": ("customer",),
        "order": 40, "url": "my-profile"}


def render() -> None:
    from bankms.domain.errors import BankError
    from pages.common import get_bank, show_error
    from pages import daily_common as dc

    actor = dc.signed_in(("customer",))
    bank = get_bank()
    st.title("Profile")
    dc.settle_job("my_profile")
    dc.show_stashed_error("my_profile")
    dc.show_flash()
    try:
        p = bank.customers.get(actor, actor.customer_id)
    except BankError as exc:
        show_error(exc)
        return
    st.markdown(f"**{dc.md(p['full_name'])}** · customer {p['id']}  \n"
                f"Born {p['date_of_birth']} · national id {dc.md(p['national_id'])}")
    st.caption("To change your name, date of birth or national id, visit a branch with your "
               "documents. Your password is changed on the Change password page.")
    with st.form("my_profile_contact"):
        email = st.text_input("Email", value=p["email"] or "", key="my_profile_email")
        phone = st.text_input("Phone", value=p["phone"] or "", key="my_profile_phone")
        address = st.text_input("Address", value=p["address"] or "", key="my_profile_address")
        saved = st.form_submit_button("Save", type="primary", key="my_profile_save")
    if saved:
        dc.act("my_profile", lambda: bank.customers.update_contact(
            actor, actor.customer_id, email=email, phone=phone, address=address),
            lambda changed: "Your contact details are saved." if changed else "Nothing changed.")
