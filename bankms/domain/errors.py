"""The refusals that bankms can raise; every one is a BankError with a plain-words message."""


class BankError(Exception):
    """Base of every refusal. Its message is safe to show to the person who asked."""


class InvalidAmount(BankError):
    pass


class InvalidInput(BankError):
    pass


class InvalidAccountNumber(BankError):
    pass


class AccountNotFound(BankError):
    pass


class AccountNotActive(BankError):
    pass


class AccountClosed(AccountNotActive):
    pass


class AccountFrozen(AccountNotActive):
    pass


class SameAccount(BankError):
    pass


class InsufficientFunds(BankError):
    pass


class LimitExceeded(BankError):
    pass


class PermissionDenied(BankError):
    pass


class IdempotencyConflict(BankError):
    pass


class AuthenticationError(BankError):
    pass


class AccountLocked(AuthenticationError):
    """A sign-in refused unchecked while the username or client address backs off; same words
    as any failed sign-in plus "Try again in N s" (`retry_after_s`)."""


class PasswordPolicyError(BankError):
    pass


class CustomerNotFound(BankError):
    pass


class CustomerNotActive(BankError):
    pass


class UserNotFound(BankError):
    pass


class NoContactOnFile(BankError):
    """A message (an activation code) has nowhere to go: the customer has no email or phone."""


class ContactRecentlyChanged(BankError):
    """An activation code would go to an email or phone that staff changed within the
    cooling-off period (`contact_change_cooling_off_h`)."""


class DuplicateError(BankError):
    pass


class TransactionNotFound(BankError):
    pass


class AlreadyReversed(BankError):
    pass


class ApprovalNotFound(BankError):
    pass


class InvalidState(BankError):
    pass


class TermDepositLocked(BankError):
    """Money in a term deposit moves only through bank.term_deposits (open, maturity, early
    closure by staff): no deposit, withdrawal, transfer, reversal, loan or close touches it."""


class AccountRepaysLoan(InvalidState):
    """The account repays an active loan: change the loan's repayment account first."""


class WeakCookieKey(BankError):
    """The sign-in cookie key is missing, short, well known or readable by others."""


class DayNotEnded(BankError):
    """End of day was asked to close a day that has not ended in the bank's time zone."""


class ConfirmationRequired(BankError):
    """An action with wide effects (a long end-of-day catch-up) was not confirmed."""


class EndOfDayRunning(InvalidState):
    """End of day is running in another app process (PostgreSQL: several serve one bank)."""


class NotABank(BankError):
    """A path named as a bank does not hold one (missing, not DuckDB, or no bank tables)."""


class FilesExposed(BankError):
    """The database, its WAL or its folder is readable by other users of the machine."""


class WeakSigningKey(BankError):
    """The bank's signing key file is open to other users or holds no Ed25519 private key."""
