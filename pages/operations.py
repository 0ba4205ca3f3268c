"""Operations (managers): the business date and the last end-of-day runs, verify, backups and
settings, done in the running app, which holds the database (the command line cannot reach it
while the app runs). Every rule is in bankms.operations and bankms.services.settings."""
import streamlit as st

PAGE = {"title": "Operations", "icon": ":material/settings:", "roles": ("manager",),
        "order": 92, "url": "bank-operations"}
TAB = "ops_tab"  # session state key of the open tab
TABS = (":material/fact_check: Verify", ":material/backup: Backup", ":material/tune: Settings",
        ":material/event_busy: Bank holidays")


def render() -> None:
    from pages import common
    from pages.common import lazy_tabs

    actor = common.current_actor()
    if actor is None or actor.role != "manager":
        st.stop()
    bank = common.get_bank()
    st.title(":material/settings: Operations")
    _business_date(bank, actor)
    # Only the open tab runs: the settings and holidays grids and their forms are drawn when
    # their tab is opened (the page took 1.3 times the one-line page with all four drawn).
    lazy_tabs({TABS[0]: lambda: _verify(bank, actor), TABS[1]: lambda: _backup(bank, actor),
               TABS[2]: lambda: _settings(bank, actor),
               TABS[3]: lambda: _holidays(bank, actor)}, key=TAB, keep=TABS[1:])


def _business_date(bank, actor) -> None:
    from bankms.services import businessday
    from bankms.services.eod.run import recent_runs
    from pages.tables import show_table
    from pages.text import day_text

    zone = bank.settings.value("bank_time_zone")
    left, right = st.columns(2)
    left.metric("Business date", day_text(bank.business_date, weekday=True))
    # The bank's clock, as end of day reads it (not the machine's).
    right.metric(f"Calendar date ({zone})", day_text(businessday.calendar_date(bank)))
    runs = recent_runs(bank, actor, limit=10)
    if runs.empty:
        st.caption("No end-of-day run yet.")
        return
    st.caption("Last end-of-day runs")
    columns = [c for c in ("business_date", "actor", "started_at", "finished_at", "seconds")
               if c in runs.columns]
    show_table(runs[columns], headers={"actor": "By", "seconds": "Took (s)"}, key="ops_runs")


def _verify(bank, actor) -> None:
    import pandas as pd

    from bankms import operations
    from pages import common
    from pages.tables import show_table

    st.caption("Checks every ledger invariant: postings sum to zero, balances equal their "
               "postings, holds, interest and the loan book.")
    on_read_model = _verify_where(bank, actor)
    if not st.button("Run verify", key="ops_verify", icon=":material/fact_check:"):
        return
    try:
        result = operations.verify(bank, actor, on_read_model=on_read_model)
    except Exception as exc:  # noqa: BLE001 - shown without a traceback
        common.show_error(exc)
        return
    if on_read_model:
        st.caption(f"Checked the read model as of {_bank_time(bank, result['as_of'])}.")
    if result["ok"]:
        st.success("The ledger holds on the read model." if on_read_model
                   else "Every invariant holds.", icon=":material/check_circle:")
        return
    st.error(f"{len(result['problems'])} problem(s) found.", icon=":material/error:")
    show_table(pd.DataFrame(list(result["summary"].items()), columns=["problem", "count"]),
               key="ops_verify_summary")
    with st.expander("Every problem"):
        st.text("\n".join(result["problems"][:500]))


def _verify_where(bank, actor) -> bool:
    """When the bank has a read model (PostgreSQL with BANKMS_READ_MODEL), the choice to check
    the ledger on it, with how old it is; True when chosen. Nothing to choose otherwise."""
    from bankms import operations
    from pages import common

    try:
        info = operations.read_model_info(bank, actor)
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc)
        return False
    if info is None:
        return False
    where = st.radio("Check", ["bank", "read_model"], horizontal=True, key="ops_verify_on",
                     format_func={"bank": "The bank: every invariant",
                                  "read_model": "The read model: the ledger only"}.get)
    if where != "read_model":
        return False
    as_of = ("not filled yet" if info["as_of"] is None
             else f"as of {_bank_time(bank, info['as_of'])}")
    st.caption(f"The read model is the analytics' copy of the bank, {as_of}, refreshed first "
               f"when older than {info['max_age_s']:g} seconds. On it verify checks that "
               "balances equal their postings and that every transaction and the whole ledger "
               "sum to zero, holding nothing on the bank's database.")
    return True


def _bank_time(bank, stamp) -> str:
    """An aware UTC stamp as the bank's wall-clock time (the dashboards' "Figures as of")."""
    from bankms.services.businessday import to_bank_time

    return "never" if stamp is None else f"{to_bank_time(bank, stamp):%H:%M:%S}"


def _backup(bank, actor) -> None:
    from bankms import operations
    from pages import common

    st.caption(f"A consistent copy of the whole bank, written while the bank keeps running, "
               f"to {operations.backup_folder(bank)}. An existing backup is never "
               "overwritten; the file is readable by the bank's user only.")
    with st.form("ops_backup_form"):
        name = st.text_input("Backup name", value=operations.suggested_name(), max_chars=80,
                             key="ops_backup_name")
        submitted = st.form_submit_button("Write backup", type="primary",
                                          icon=":material/backup:")
    if not submitted:
        return
    try:
        done = operations.backup_named(bank, actor, name)
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc)
        return
    st.success(f"Backup written to `{done['path']}` ({done['bytes']:,} bytes).",
               icon=":material/check_circle:")


def _settings(bank, actor) -> None:
    from pages import common

    from bankms.services.settings import REGISTRY

    table = st.empty()  # filled last, so that it shows a value saved in this run
    # The choice sits outside the form so that the meaning and range follow it at once.
    key = st.selectbox("Setting", list(REGISTRY), format_func=lambda k: REGISTRY[k].label,
                       key="ops_setting_key")
    chosen = REGISTRY[key]
    # The key is what the command line takes (`bankms setting KEY VALUE`), so it stays in view.
    st.caption(f"{chosen.meaning} Must be {chosen.type_label}: {chosen.allowed}. "
               f"Default {chosen.shown(chosen.default)}; now "
               f"{chosen.shown(bank.settings.get(key))}. Key: `{key}`.")
    with st.form("ops_setting_form"):
        value = st.text_input("New value", key="ops_setting_value")
        submitted = st.form_submit_button("Save setting", type="primary")
    if submitted:
        try:
            stored = bank.settings.set(actor, key, value)
        except Exception as exc:  # noqa: BLE001
            common.show_error(exc)
        else:
            st.success(f"{chosen.label} is now {chosen.shown(stored)}.",
                       icon=":material/check_circle:")
    import pandas as pd

    from pages.tables import show_columns

    # Labels and values with their units; the key, last, is what the command line takes.
    with table.container():
        show_columns(pd.DataFrame(bank.settings.listing()),
                     {"label": "Setting", "shown": "Value", "meaning": "Meaning",
                      "allowed": "Allowed", "default_shown": "Default", "key": "Key"},
                     key="ops_settings_table")


def _holidays(bank, actor) -> None:
    """The year's days off besides weekends; managers add a day or remove one they added.
    Every rule (only days after the business date, names, audit) is in bankms.services.workdays."""
    import datetime as dt

    from pages import common
    from pages.text import md

    region = bank.settings.get("bank_country")
    if bank.settings.get("bank_subdivision"):
        region += f" ({bank.settings.get('bank_subdivision')})"
    st.caption(f"Loans whose product says so fall due on working days: not on weekends, the "
               f"public holidays of {md(region)}"
               " (settings bank_country and bank_subdivision) or the bank holidays added here. "
               "Only days after the business date can be added or removed; loans due on them "
               "move at once.")
    today = bank.business_date
    year = st.number_input("Year", min_value=1950, max_value=2200, value=today.year, step=1,
                           key="ops_holiday_year")
    table = st.empty()  # filled last, so that it shows a change made in this run
    with st.form("ops_holiday_add_form", clear_on_submit=True):
        day = st.date_input("Day", value=today + dt.timedelta(days=1),
                            min_value=today + dt.timedelta(days=1), key="ops_holiday_date")
        name = st.text_input("Name", max_chars=80, key="ops_holiday_name")
        added = st.form_submit_button("Add bank holiday", type="primary",
                                      icon=":material/event_busy:")
    if added:
        try:
            done = bank.workdays.add_holiday(actor, day, name)
        except Exception as exc:  # noqa: BLE001 - shown without a traceback
            common.show_error(exc)
        else:
            st.success(f"{done['date']} is a bank holiday ({md(done['name'])}); "
                       f"{done['loans_moved']} loan(s) moved.", icon=":material/check_circle:")
    _remove_holiday(bank, actor, int(year))
    try:
        frame = bank.workdays.holidays(actor, int(year))
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc)
        return
    from pages.tables import show_columns

    with table.container():
        show_columns(frame, {"date": "Date", "name": "Name", "source": "Source"},
                     key="ops_holidays_table")


def _remove_holiday(bank, actor, year) -> None:
    from pages import common
    from pages.text import md

    try:
        frame = bank.workdays.holidays(actor, year)
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc)
        return
    days = [d for d, source in zip(frame["date"], frame["source"])
            if source == "bank" and d > bank.business_date]
    if not days:
        st.caption(f"No bank holiday of {year} can be removed (only days the bank added, after "
                   "the business date).")
        return
    with st.form("ops_holiday_remove_form"):
        day = st.selectbox("Bank holiday", days, key="ops_holiday_remove")
        removed = st.form_submit_button("Remove bank holiday", icon=":material/event_available:")
    if not removed:
        return
    try:
        done = bank.workdays.remove_holiday(actor, day)
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc)
        return
    st.success(f"{done['date']} ({md(done['name'])}) is a working day again; "
               f"{done['loans_moved']} loan(s) moved.", icon=":material/check_circle:")
