"""Accounts for tests: make one of a role and log a fresh client in as it."""
from docora_admin.services.team import accounts
from tests.conftest import AuthActions

PASSWORD = "a password of eight+"


def make_account(role, username=None):
    username = username or f"{role}-one"
    accounts.create(username, role, PASSWORD, actor="test")
    return username


def client_as(app, role, username=None):
    """(AuthActions, username) of a new client logged in as a new account of `role`."""
    username = make_account(role, username)
    actions = AuthActions(app.test_client())
    assert actions.login(username, PASSWORD).status_code == 200
    return actions, username
