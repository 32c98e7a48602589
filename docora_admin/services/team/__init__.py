"""The team: accounts, their sessions, and the audit trail.

Modules and their public functions:

account_sessions: Which sessions each account has, so that they can be listed and ended at once.
    handle_of, add, is_listed, list_sessions, end_all, end_one

accounts: Accounts: logging in, the account named by ADMIN_USERNAME, and changes to accounts (by
    the CLI and the Accounts page).
    check_username, check_role, check_password, authenticate, load_for_session,
    sync_environment_account, list_accounts, get, create, set_role, set_password,
    change_own_password, disable, enable, end_all_sessions, sessions_of, end_session

audit: The audit trail: who did what, when, from where, to what.
    set_context_provider, record, record_alone, events_page, prune, event_json, parse_filter
"""
