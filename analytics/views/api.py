"""The stats API, `/api/v1/stats/...`: the dashboards' numbers as JSON, for a per-user token.

Every endpoint takes `site` (a public id), `period` (`today`, `7d`, `30d`, `12m`, `all`,
`custom`) or `start`/`end` (YYYY-MM-DD, `end` inclusive, UTC), and the segment filters, read
exactly as the dashboards read them (`views.common.current_filters`), then calls the stats
function behind the matching card or CSV. What is stricter than a dashboard URL: a wrong value
or an unknown parameter is a 400 that names it (a page falls back to a default instead), a site
that is not found is a 404, and no token, or a bad or revoked one, is a 401.

Who sees what: a token reads as its user, and today every logged-in user, viewer or admin, reads
every site; the API only reads, so a viewer's token does no more than the viewer's login.
Requests carry no session cookie and are never cached (`Cache-Control: no-store`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from flask import Blueprint, Response, jsonify, request
from flask_login import current_user

from .. import stats
from ..auth import visible_sites
from ..filters import PERIODS, Filters, parse_day
from ..goals import check_step_count, goal_named, parse_step, resolve_steps
from ..segments import (
    GOAL,
    MAX_PROP_FILTERS,
    PROP_PREFIX,
)
from ..sites import InvalidInput
from ..stats.breakdown import breakdown as breakdown_table
from ..stats.breakdown import is_dimension
from ..stats.funnels import funnel as funnel_table
from ..stats.goals import goal_conversions
from ..stats.timeline import MAX_BUCKETS
from .common import current_filters

bp = Blueprint("api", __name__, url_prefix="/api/v1/stats")

SCOPE = ("site", "period", "start", "end")
INTERVALS = ("hour", "day", "week", "month")
INTERVAL_LENGTH = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "month": dt.timedelta(days=28),
}
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
ECHO = 100  # characters of a bad value repeated in an error
REALM = 'Bearer realm="analytics stats API"'


class ApiError(Exception):
    """A request the API refuses: the status, a sentence, and the parameter at fault."""

    def __init__(self, status: int, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameter = status, message, parameter


def _bad(parameter: str, message: str) -> ApiError:
    return ApiError(400, f"{parameter}: {message}", parameter)


@bp.errorhandler(ApiError)
def _refused(exc: ApiError) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": exc.message}
    if exc.parameter:
        body["parameter"] = exc.parameter
    return jsonify(body), exc.status


@bp.before_request
def _authenticate() -> Response | None:
    """401 unless Flask-Login found the account of a valid token (auth.load_token_account)."""
    if current_user.is_authenticated:
        return None
    if request.headers.get("Authorization"):
        message, hint = "the API token is not valid, or was revoked", ', error="invalid_token"'
    else:
        message, hint = "an API token is needed: Authorization: Bearer <token>", ""
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = REALM + hint
    return response


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Authorization"
    return response


# --- reading the request -----------------------------------------------------------------


def _arg(name: str) -> str | None:
    """A parameter's value, stripped; None when absent or empty."""
    value = (request.args.get(name) or "").strip()
    return value or None


def _echo(value: str) -> str:
    return repr(value[:ECHO] + ("..." if len(value) > ECHO else ""))


def _scope(own: Iterable[str] = ()) -> Filters:
    """The request's site, period and filters, checked, then read as a dashboard reads them."""
    known = {*SCOPE, *own}
    for name in request.args:
        if name not in known and not is_dimension(name):  # the filters are the dimensions
            raise _bad(name, "unknown parameter")
    props = [n for n in request.args if n.startswith(PROP_PREFIX)]
    if len(props) > MAX_PROP_FILTERS:
        raise _bad(props[MAX_PROP_FILTERS], f"at most {MAX_PROP_FILTERS} property filters")

    public_id = _arg("site")
    if public_id is None:
        raise _bad("site", "required: a site's public id")
    if not any(s.public_id == public_id for s in visible_sites()):
        raise ApiError(404, f"site: no site {_echo(public_id)} for this token", "site")
    period = _arg("period")
    if period is not None and period not in PERIODS:
        raise _bad("period", f"{_echo(period)} is not one of {', '.join(PERIODS)}")
    days: dict[str, dt.date] = {}
    for name in ("start", "end"):
        if (text := _arg(name)) is not None:
            if (day := parse_day(text)) is None:
                raise _bad(name, f"{_echo(text)} is not a date YYYY-MM-DD from 1970 to 2200")
            days[name] = day
    if period == "custom" and not days:
        raise _bad("period", "custom needs start, end or both")
    if "start" in days and "end" in days and days["end"] < days["start"]:
        raise _bad("end", "is before start")

    filters = current_filters()
    for condition in filters.segment.conditions:
        if condition.dimension == GOAL:
            for name in condition.values:
                if goal_named(filters.site.id, name) is None:
                    raise _bad("goal", f"no goal {_echo(name)} on this site")
    return filters


def _limit() -> int:
    text = _arg("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad("limit", f"{_echo(text)} is not a whole number from 1 to {MAX_LIMIT}")
    return int(text)


@dataclass(frozen=True)
class Bucketed(Filters):
    """A dashboard view with a chosen time bucket instead of the one its length suggests."""

    interval: str = "day"

    @property
    def bucket(self) -> str:
        return self.interval


def _interval(filters: Filters) -> Filters:
    interval = _arg("interval")
    if interval is None:
        return filters
    if interval not in INTERVALS:
        raise _bad("interval", f"{_echo(interval)} is not one of {', '.join(INTERVALS)}")
    if filters.length / INTERVAL_LENGTH[interval] > MAX_BUCKETS:
        raise _bad("interval", f"{interval} gives more than {MAX_BUCKETS} points over this range")
    values = {f.name: getattr(filters, f.name) for f in dataclasses.fields(filters)}
    return Bucketed(**values, interval=interval)


def _steps(filters: Filters) -> list[Any]:
    """`steps`: comma-separated (a comma in a goal's name written `\\,`), or repeated."""
    texts: list[str] = []
    for value in request.args.getlist("steps"):
        texts.extend(t.replace("\\,", ",").strip() for t in re.split(r"(?<!\\),", value))
    texts = [t for t in texts if t]
    try:
        check_step_count(texts)
        return resolve_steps([parse_step(t, filters.site.id) for t in texts], filters.site.id)
    except InvalidInput as exc:
        raise _bad("steps", str(exc)) from None


# --- writing the answer ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A cell as JSON: numbers as numbers, times as ISO 8601 UTC, missing as null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _answer(filters: Filters, **body: Any) -> Response:
    """Every answer: what was asked (site, period, filters), then the endpoint's own keys."""
    return jsonify(
        {
            "site": filters.site.public_id,
            "period": {
                "name": filters.period,
                "start": filters.start.date().isoformat(),
                "end": filters.last_day.isoformat(),
            },
            "filters": filters.segment.query_args(),
            **body,
        }
    )


# --- the endpoints -----------------------------------------------------------------------


@bp.get("/summary")
def summary() -> Response:
    """The Overview's headline numbers, each with the previous period's and the change."""
    filters = _scope()
    df = stats.overview_summary(filters)
    results = {
        row["metric"]: {k: _plain(row[k]) for k in ("value", "previous", "change_pct")}
        for row in df.to_dict("records")
    }
    return _answer(filters, results=results)


@bp.get("/timeseries")
def timeseries() -> Response:
    """Page views and visitors per bucket (the Overview's chart), empty buckets as zeros."""
    filters = _interval(_scope(("interval",)))
    df = stats.pageviews_over_time(filters).rename(columns={"bucket": "time"})
    return _answer(filters, interval=filters.bucket, results=_rows(df))


@bp.get("/breakdown")
def breakdown() -> Response:
    """One dimension's table (analytics/stats/breakdown.py), most first, cut to `limit`."""
    filters = _scope(("by", "limit"))
    by = _arg("by")
    if by is None:
        raise _bad("by", "required: a filter dimension (path, referrer, country, prop.KEY, ...)")
    if not is_dimension(by):
        raise _bad("by", f"{_echo(by)} is not a filter dimension")
    limit = _limit()
    df = breakdown_table(filters, by)
    return _answer(filters, by=by, limit=limit, total_rows=len(df), results=_rows(df.head(limit)))


@bp.get("/goals")
def goals() -> Response:
    """Each goal's converted visits, conversion rate and events (the Overview's Goals card)."""
    filters = _scope()
    return _answer(filters, results=_rows(goal_conversions(filters)))


@bp.get("/funnel")
def funnel() -> Response:
    """Visits reaching each step in order, with conversion and drop-off (the funnel page)."""
    filters = _scope(("steps",))
    steps = _steps(filters)
    df = funnel_table(filters, steps)
    return _answer(filters, steps=[s.label for s in steps], results=_rows(df))
