"""Bank-wide settings (limits, timeouts, the business date), kept in the `settings` table."""
from __future__ import annotations

from .businessday import clean_setting


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
        self._bank.require(actor, "bank.admin" if actor.role == "system" else "user.manage",
                           entity="setting", entity_id=key)
        bank = self._bank
        # The time-zone and end-of-day settings are read by rules that must not meet a bad
        # value (InvalidInput here, before anything is stored).
        value = clean_setting(key, value)

        def fn(uow):
            old = uow.fetchone("SELECT value FROM settings WHERE key = ?", [key])
            uow.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                        "SET value = excluded.value", [key, str(value)])
            bank.audit_row(uow, actor, "setting.change", "setting", key,
                           before={"value": old[0] if old else None}, after={"value": str(value)})
        bank.write(fn)
