"""Accounts: logging in, the account named by ADMIN_USERNAME, and changes to accounts (by the
CLI and the Accounts page). Every change is audited in its own transaction; disabling an
account or changing its password or role also ends all of its sessions."""
import logging
from datetime import datetime, timezone

import redis

from ... import db, login_limit, passwords, runtime
from ...config import USERNAME_RE
from ...errors import ApiError
from ...repositories import accounts as accounts_repo
from ...roles import ROLES
from . import account_sessions, audit

log = logging.getLogger(__name__)

ENVIRONMENT_MANAGED = ("{name} is the account of ADMIN_USERNAME: its role and password come from "
                       "the environment (ADMIN_PASSWORD or ADMIN_PASSWORD_HASH) at start-up, "
                       "and it cannot be disabled")


def check_username(username):
    """`username` if it is a valid account name, else ApiError 400."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise ApiError(400, "Usernames are 1-64 letters, digits, '.', '_', '@' or '-', "
                            "starting with a letter or digit")
    return username


def check_role(role):
    """`role` if it is one of ROLES, else ApiError 400."""
    if role not in ROLES:
        raise ApiError(400, f"role must be one of {', '.join(ROLES)}")
    return role


def check_password(password):
    """`password` if it can be set (passwords.problem), else ApiError 400."""
    if (problem := passwords.problem(password)) is not None:
        raise ApiError(400, problem)
    return password


def known_username(username):
    """The name of the account `username` looks up (any case), or None."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username.strip()):
        return None
    with db.connection() as conn:
        account = accounts_repo.get_by_username(conn, username.strip())
    return account["username"] if account else None


def authenticate(username, password):
    """The enabled account these credentials open, or None. Costs the same time whether the
    username exists or not; a hash from before argon2 (or with weaker parameters) is replaced
    by a current one on the way."""
    account = None
    if USERNAME_RE.fullmatch(username):
        with db.connection() as conn:
            account = accounts_repo.get_by_username(conn, username)
    if account is None or account["disabled_at"] is not None:
        passwords.burn_time(password)
        return None
    if not passwords.verify(account["password_hash"], password):
        return None
    if passwords.needs_rehash(account["password_hash"]):
        with db.connection() as conn:
            accounts_repo.upgrade_password_hash(conn, account["id"], account["password_hash"],
                                                passwords.hash_password(password))
    return account


def load_for_session(account_id, epoch):
    """The account a session belongs to, or None when it was disabled or its sessions were
    ended since (its epoch moved on)."""
    with db.connection() as conn:
        account = accounts_repo.get_by_id(conn, account_id)
    if account is None or account["disabled_at"] is not None or account["session_epoch"] != epoch:
        return None
    return account


def sync_environment_account(settings):
    """Make the account named ADMIN_USERNAME exist, enabled, with role admin and the password of
    ADMIN_PASSWORD / ADMIN_PASSWORD_HASH. A restart with the same settings changes nothing (and
    ends no session); a new password ends the account's sessions. Returns what changed."""
    username = settings.admin_username
    with db.connection() as conn:
        accounts_repo.lock_environment_account(conn)
        account = accounts_repo.get_by_username(conn, username, for_update=True)
        if account is None:
            new_hash = settings.admin_password_hash or passwords.hash_password(
                settings.admin_password)
            accounts_repo.release_environment_flag(conn)
            account = accounts_repo.insert(conn, username, "admin", new_hash,
                                           from_environment=True,
                                           env_password_hash=settings.admin_password_hash)
            audit.record(conn, "account.create", target=username, actor="system",
                         details={"role": "admin", "from": "environment"})
            return ["created"]
        changes, fields = [], {}
        if settings.admin_password_hash is not None:
            if account["env_password_hash"] != settings.admin_password_hash:
                fields.update(password_hash=settings.admin_password_hash,
                              env_password_hash=settings.admin_password_hash)
        elif not passwords.verify(account["password_hash"], settings.admin_password):
            fields.update(password_hash=passwords.hash_password(settings.admin_password),
                          env_password_hash=None)
        if fields:
            changes.append("password")
        if account["role"] != "admin":
            fields["role"] = "admin"
            changes.append("role")
        if account["disabled_at"] is not None:
            fields["disabled_at"] = None
            changes.append("enabled")
        if not account["from_environment"]:
            fields["from_environment"] = True
            changes.append("now from environment")
        accounts_repo.release_environment_flag(conn, account["id"])
        if not fields:
            return []
        ends = bool({"password", "role"} & set(changes))
        with _epoch_change(account["id"], ends, settings) as mark:
            updated = accounts_repo.update(conn, account["id"], end_sessions=ends, **fields)
            audit.record(conn, "account.environment_sync", target=account["username"],
                         actor="system", details={"changed": changes})
    if ends:
        account_sessions.end_all(account["id"], updated["session_epoch"], mark.token)
    log.info("account %s brought in step with the environment: %s", username, ", ".join(changes))
    return changes


def list_accounts():
    """Every account, by username."""
    with db.connection() as conn:
        return accounts_repo.list_accounts(conn)


def get(username):
    """The account, or ApiError 404."""
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise ApiError(404, "No such account")
    with db.connection() as conn:
        account = accounts_repo.get_by_username(conn, username)
    if account is None:
        raise ApiError(404, f"No account named {username}")
    return account


def create(username, role, password, actor=None):
    """Add an account. ApiError 400 for a bad name, role or password, 409 when the name is
    taken (in any case)."""
    check_username(username)
    check_role(role)
    check_password(password)
    password_hash = passwords.hash_password(password)
    with db.connection() as conn:
        try:
            account = accounts_repo.insert(conn, username, role, password_hash)
        except accounts_repo.UsernameTaken:
            raise ApiError(409, f"An account named {username} already exists") from None
        audit.record(conn, "account.create", target=username, details={"role": role},
                     actor=actor)
    return account


def set_role(username, role, actor=None):
    """Change an account's role; ends its sessions (they were granted under the old role)."""
    check_role(role)
    return _change(username, "account.role_change", actor,
                   lambda account: ({"role": role} if account["role"] != role else None),
                   lambda account: {"from": account["role"], "to": role})


def set_password(username, password, actor=None):
    """Give an account a new password; ends its sessions."""
    check_password(password)
    password_hash = passwords.hash_password(password)
    return _change(username, "account.password_change", actor,
                   lambda account: {"password_hash": password_hash}, lambda account: {})


def change_own_password(username, current_password, new_password):
    """An account changes its own password, proving who it is with the current one. Ends all of
    its sessions (the caller starts a new one for the browser that asked). Returns the account.
    ApiError 400 for a wrong current password or an unusable new one, 409 for the account of
    ADMIN_USERNAME (the environment holds its password)."""
    check_password(new_password)
    account = get(username)
    if account["from_environment"]:
        raise ApiError(409, ENVIRONMENT_MANAGED.format(name=account["username"]))
    if not (isinstance(current_password, str)
            and passwords.verify(account["password_hash"], current_password)):
        raise ApiError(400, "Your current password is not right")
    return set_password(username, new_password, actor=account["username"])


def disable(username, actor=None):
    """Disable an account: it can no longer log in, and its sessions end now."""
    def fields(account):
        return None if account["disabled_at"] else {"disabled_at": datetime.now(timezone.utc)}
    return _change(username, "account.disable", actor, fields, lambda account: {})


def enable(username, actor=None):
    """Let a disabled account log in again (with its old password)."""
    return _change(username, "account.enable", actor,
                   lambda account: ({"disabled_at": None} if account["disabled_at"] is not None
                                    else None), lambda account: {}, end_sessions=False)


def login_lock(username):
    """{failures, locked, seconds_left, next_in}: the account's failed-login window
    (login_limit.lock_state)."""
    return login_limit.lock_state(username)


def lift_login_lock(username):
    """An admin lets an account whose username is locked by failed logins log in again."""
    account = get(username)
    state = login_limit.lock_state(username)
    login_limit.lift(username)
    with db.connection() as conn:
        audit.record(conn, "account.unlock", target=account["username"],
                     details={"failures": state["failures"]})


def _change(username, action, actor, fields_for, details_for, end_sessions=True):
    """Apply one change to an account with its audit event in one transaction, then delete its
    sessions from Redis. A change that changes nothing is not recorded. Returns the account."""
    get(username)  # 404 before anything else
    with db.connection() as conn:
        account = accounts_repo.get_by_username(conn, username, for_update=True)
        if account["from_environment"] and action not in ("account.enable",
                                                          "session.end_all"):
            raise ApiError(409, ENVIRONMENT_MANAGED.format(name=account["username"]))
        fields = fields_for(account)
        if fields is None:  # nothing to change
            return account
        with _epoch_change(account["id"], end_sessions) as mark:
            updated = accounts_repo.update(conn, account["id"], end_sessions=end_sessions,
                                           **fields)
            audit.record(conn, action, target=account["username"],
                         details=details_for(account), actor=actor)
    if end_sessions:
        # The epoch bump above already refuses these sessions; this frees their keys and lets
        # the session check trust Redis again.
        account_sessions.end_all(account["id"], updated["session_epoch"], mark.token)
    return updated


class _epoch_change:
    """Around the statements of a transaction that move an account's epoch (when `moves`): the
    account's session index is marked first (Redis down: nothing is committed), and the mark
    is forgotten when the transaction fails. The caller's end_all writes the new epoch."""

    def __init__(self, account_id, moves, settings=None):
        self.account_id, self.moves, self.token = account_id, moves, None
        self.settings = settings

    def __enter__(self):
        if self.moves:
            settings = self.settings or runtime.settings()
            self.token = account_sessions.mark_changing(self.account_id,
                                                        settings.session_max_hours * 3600)
        return self

    def __exit__(self, kind, error, trace):
        if kind is not None and self.token is not None:
            try:
                account_sessions.forget_change(self.account_id, self.token)
            except redis.RedisError:
                pass  # the mark stays: checks of this account ask PostgreSQL until it expires
        return False


def end_all_sessions(username, actor=None):
    """End every session of an account now (its epoch moves on, their keys go)."""
    return _change(username, "session.end_all", actor, lambda account: {},
                   lambda account: {})


def sessions_of(username, idle_s, max_s):
    """(account, its live sessions) for the Accounts pages; ApiError 404 for no such account."""
    account = get(username)
    return account, account_sessions.list_sessions(account["id"], idle_s, max_s)


def end_session(username, handle, actor=None):
    """End one session of an account (from the Accounts page). ApiError 404 when it is gone."""
    account = get(username)
    if not (isinstance(handle, str) and len(handle) == 16 and handle.isalnum()):
        raise ApiError(404, "No such session (it may have ended already)")
    if not account_sessions.end_one(account["id"], handle):
        raise ApiError(404, "No such session (it may have ended already)")
    audit.record_alone("session.end", target=account["username"], details={"session": handle},
                       actor=actor)
