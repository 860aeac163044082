"""Login, logout and the first-run set-up of the first admin; `/` sends people where they belong."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from ..auth import account, is_local_path
from ..sites import InvalidInput
from ..throttle import LoginThrottle
from ..users import authenticate, create_first_admin, user_count

bp = Blueprint("auth", __name__)


@bp.get("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect("/overview")
    if user_count() == 0:
        return redirect(url_for("auth.setup"))
    return redirect(url_for("auth.login"))


def _throttle() -> LoginThrottle:
    config = current_app.config
    return current_app.extensions.setdefault(
        "analytics.login_throttle",
        LoginThrottle(config["LOGIN_MAX_FAILURES"], config["LOGIN_WINDOW_SECONDS"]),
    )


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]] | str:
    if user_count() == 0:
        return redirect(url_for("auth.setup"))
    target = request.values.get("next", "")
    target = target if is_local_path(target) else "/overview"
    if current_user.is_authenticated:
        return redirect(target)
    if request.method == "POST":
        email = request.form.get("email", "")
        key = email.strip().lower()
        throttle = _throttle()
        wait = throttle.wait(key)
        if wait:
            flash(f"Too many failed logins: try again in {int(wait) // 60 + 1} min.", "error")
            page = render_template("login.html", next=target, email=email)
            return page, 429, {"Retry-After": str(int(wait) + 1)}
        user = authenticate(email, request.form.get("password", ""))
        if user is not None:
            throttle.succeeded(key)
            # A new session at login: nothing planted in the one before it (session fixation)
            # carries over, and its cookie changes.
            session.clear()
            login_user(account(user))
            return redirect(target)
        throttle.failed(key)
        flash("Wrong email or password.", "error")
        return render_template("login.html", next=target, email=email), 401
    return render_template("login.html", next=target, email="")


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> Response | tuple[str, int] | str:
    """Create the first admin; exists only while there is no user at all."""
    if user_count() > 0:
        abort(404)
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "")
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            flash("The two passwords differ.", "error")
        else:
            try:
                user = create_first_admin(email, password)
            except InvalidInput as exc:
                flash(str(exc), "error")
            else:
                session.clear()
                login_user(account(user))
                flash("Welcome! Create your first site below.")
                return redirect(url_for("settings.index"))
        return render_template("setup.html", email=email), 400
    return render_template("setup.html", email=email)
