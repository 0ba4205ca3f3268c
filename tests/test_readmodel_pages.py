"""The read model on the managers' pages (issue 14, step H), driven by AppTest: the app serves a
bank on PostgreSQL with BANKMS_READ_MODEL=1, so its dashboard reads a DuckDB copy of the bank.

The dashboard says "Figures as of" the copy's time, and its key figures are the ones the same
query gives on PostgreSQL itself. A deposit made after the copy shows only after "Refresh now"
(the copy may be an hour old here). The Operations page offers verify on
the read model, with its time; on a DuckDB bank it offers nothing to choose
(test_operations.test_operations_page).
"""
from __future__ import annotations

import datetime as dt
import os

import pytest
from apptest_util import app_bank_on, open_app

import pgcluster
from browser.helpers import seed_standard_bank
from conftest import make_customer


@pytest.fixture(scope="module")
def banks(tmp_path_factory, pg_url, pg_admin, pg_template):
    """(the app's Bank, with its read model; the account of the standard bank's customer).
    One database for the module: each AppTest needs the app's own Bank, which is opened once
    per process and database."""
    name = f"rm_pages_{os.getpid()}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}".lower()
    pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    url = pgcluster.database_url(pg_url, name)
    folder = tmp_path_factory.mktemp("rm_pages")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("BANKMS_READ_MODEL", "1")
            # Only "Refresh now" pulls again while this module runs.
            patch.setenv("BANKMS_READ_MODEL_MAX_AGE_S", "3600")
            patch.setenv("BANKMS_COOKIE_KEY_FILE", str(folder / "cookie.key"))
            patch.setenv("BANKMS_SIGNING_KEY_FILE", str(folder / "signing.key"))
            patch.delenv("BANKMS_COOKIE_KEY", raising=False)
            # A bank on a server keeps its local files in ./data, which must be private: a
            # folder of this module's own, not the clone's.
            patch.chdir(folder)
            with app_bank_on(url) as app:
                assert app.read_model is not None
                account = seed_standard_bank(app)["account"]
                system = app.system_actor()
                other = app.accounts.open(system, make_customer(app, name="Olle Other"))
                app.payments.deposit(system, other, "900.00")
                app.payments.transfer(system, account, other, "34.56")
                yield app, account
    finally:
        pg_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def shown_figures(at) -> dict:
    return {m.label: (m.value, m.delta) for m in at.metric}


def figures_on_postgres(app) -> dict:
    """The dashboard's key figures as the page draws them, from the same query run on
    PostgreSQL itself (reports.source: the bank, as a bank without a read model reads it)."""
    from bankms.reporting import analytics
    from pages.common import figure_change, figure_shown

    frame = analytics.DASHBOARD["key_figures"](app.reports.source, app.reports.filters())
    return {row.figure: (figure_shown(row.unit, row.value),
                         figure_change(row.unit, row.value, row.previous))
            for row in frame.itertuples()}


def as_of_shown(at) -> dt.time:
    shown = [c.value for c in at.caption if c.value.startswith("Figures as of ")]
    assert len(shown) == 1, shown
    return dt.datetime.strptime(shown[0], "Figures as of %H:%M:%S").time()


def copy_time(app) -> dt.time:
    """The read model's as-of time, in the bank's time zone, to the second shown."""
    from bankms.services.businessday import to_bank_time

    as_of = app.read_model.freshness().as_of.replace(tzinfo=dt.timezone.utc)
    return to_bank_time(app, as_of).time().replace(microsecond=0)


def test_the_dashboard_reads_the_read_model_and_refreshes_on_demand(banks):
    app, account = banks
    at = open_app(app, app.auth.actor_for("mara"), "dashboard")
    first = shown_figures(at)
    assert first == figures_on_postgres(app)
    assert first["Total deposits"][0] == "$2,134.56"
    assert as_of_shown(at) == copy_time(app)
    # A deposit after the copy: the page still shows the copy's figures.
    app.payments.deposit(app.system_actor(), account, "100.00")
    assert figures_on_postgres(app)["Total deposits"][0] == "$2,234.56"
    at.run()
    assert shown_figures(at) == first
    at.button(key="dashboard_refresh").click().run()
    assert not at.exception, at.exception
    now = shown_figures(at)
    assert now["Total deposits"][0] == "$2,234.56"
    assert now == figures_on_postgres(app)
    assert as_of_shown(at) == copy_time(app)


def test_operations_verifies_on_the_read_model_and_says_how_old_it_is(banks):
    app, _ = banks
    at = open_app(app, app.auth.actor_for("mara"), "bank-operations")
    choice = at.radio(key="ops_verify_on")
    assert choice.options == ["The bank: every invariant", "The read model: the ledger only"]
    at.button(key="ops_verify").click().run()
    assert [s.value for s in at.success] == ["Every invariant holds."]
    choice.set_value("read_model").run()
    assert any("The read model is the analytics' copy of the bank, as of " in c.value
               for c in at.caption)
    at.button(key="ops_verify").click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success] == ["The ledger holds on the read model."]
    checked = [c.value for c in at.caption if c.value.startswith("Checked the read model as of")]
    assert checked == [f"Checked the read model as of {copy_time(app):%H:%M:%S}."]
