"""Password hashing: argon2id for every new hash; werkzeug's scrypt/pbkdf2 hashes (what
ADMIN_PASSWORD_HASH held before accounts existed) are still verified, and upgraded at the next
login.

Why argon2id (argon2-cffi) rather than werkzeug's scrypt: it is the first choice of OWASP's
Password Storage Cheat Sheet and the Password Hashing Competition's winner, argon2-cffi is a
well-kept binding of the reference implementation, and each hash carries its own parameters, so
raising them later upgrades every account at its next login (needs_rehash). The parameters are
OWASP's first argon2id configuration (19 MiB, 2 passes, 1 lane): ~30 ms per login on a 2-core
machine, and a burst of concurrent logins cannot take a small web box's memory (argon2-cffi's
default profile needs 64 MiB per hash).
"""
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from werkzeug.security import check_password_hash

MIN_LENGTH = 8
# argon2 takes any length; a bound keeps a 1 MB "password" from being hashed at all.
MAX_LENGTH = 1024

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
WERKZEUG_PREFIXES = ("scrypt:", "pbkdf2:")
ARGON2_PREFIX = "$argon2id$"


def hash_password(password):
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def verify(stored_hash, password):
    """Whether `password` matches `stored_hash` (argon2, or a werkzeug scrypt/pbkdf2 hash)."""
    if stored_hash.startswith(WERKZEUG_PREFIXES):
        return check_password_hash(stored_hash, password)
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash):
    """Whether a hash verified just now should be replaced by a current argon2id one."""
    if not stored_hash.startswith(ARGON2_PREFIX):
        return True
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def is_supported_hash(value):
    return value.startswith(WERKZEUG_PREFIXES) or value.startswith(ARGON2_PREFIX)


# Verified when the username is unknown or disabled, so that costs as much time as a wrong
# password for a real account.
_DUMMY_HASH = hash_password("not-the-password")


def burn_time(password):
    """Spend what a real check costs, for a login that fails before it."""
    verify(_DUMMY_HASH, password)


def problem(password):
    """Why `password` cannot be set, or None."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        return f"Passwords must be at least {MIN_LENGTH} characters long"
    if len(password) > MAX_LENGTH:
        return f"Passwords must be at most {MAX_LENGTH} characters long"
    if not password.isprintable():
        return "Passwords cannot contain control characters"
    return None
