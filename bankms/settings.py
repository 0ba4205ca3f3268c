"""Bank-wide settings (limits, timeouts, the business date), kept in the `settings` table."""
from __future__ import annotations


CONTROL_SETTINGS = frozenset({
    "four_eyes_threshold_cents", "four_eyes_rate_percent", "structuring_band_min_percent",
    "structuring_count_min", "structuring_window_s", "activation_code_ttl_s",
    "customer_daily_transfer_cents_max"})


class Settings:
    def __init__(self, bank):
        self._bank = bank

    def get(self, key: str, default: str | None = None) -> str | None:
        row = self._bank.read_one("SELECT value FROM settings WHERE key = ?", [key])
        return row[0] if row else default

    def get_int(self, key: str, default: int = 0) -> int:
        value = self.get(key)
        return int(value) if value is not None else default

    def set(self, actor, key: str, value) -> None:
        """Change a setting. The settings behind the controls of issue 12 (the four-eyes
        threshold and rate, structuring alerts, activation codes) only the system actor (the
        command line) changes: a manager who could raise the threshold alone would need nobody
        else for anything."""
        action = "bank.admin" if actor.role == "system" or key in CONTROL_SETTINGS \
            else "user.manage"
        self._bank.require(actor, action, entity="setting", entity_id=key)
        bank = self._bank

        def fn(uow):
            old = uow.fetchone("SELECT value FROM settings WHERE key = ?", [key])
            uow.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = excluded.value", [key, str(value)])
            bank.audit_row(uow, actor, "setting.change", "setting", key,
                           before={"value": old[0] if old else None}, after={"value": str(value)})
        bank.write(fn)
