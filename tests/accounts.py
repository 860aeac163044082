"""Tiny factories for dashboard tests: users, and a logged-in test client."""

from __future__ import annotations

from flask.testing import FlaskClient

from analytics.models import User
from analytics.users import create_user

PASSWORD = "correct horse battery"


def make_user(email: str = "admin@example.org", role: str = "admin") -> User:
    return create_user(email, PASSWORD, role)


def login(client: FlaskClient, email: str = "admin@example.org") -> FlaskClient:
    """Log the client in through the real login form."""
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def logged_in(client: FlaskClient, role: str = "admin") -> FlaskClient:
    email = f"{role}@example.org"
    make_user(email, role)
    return login(client, email)
