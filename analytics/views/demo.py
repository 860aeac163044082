"""Demo pages under /demo/ (only when DEMO is on): a small site that wears the tracker.

A new user clicks around here and then finds the events in the dashboards; the browser tests
drive the same pages. Every page carries the one-line script tag with the public id of the demo
site, which is created on first use.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for

from ..sites import get_or_create_site

bp = Blueprint("demo", __name__, url_prefix="/demo")

DEMO_SITE = "demo"
DEMO_SITE_NAME = "Demo site"
GUIDE_NAME = "benefits-guide.pdf"
OUTBOUND_URL = "https://www.example.org/benefits"


class Benefit(NamedTuple):
    id: str
    title: str
    summary: str


BENEFITS = (
    Benefit("housing-benefit", "Housing Benefit", "Help with rent if you are on a low income."),
    Benefit("child-benefit", "Child Benefit", "A regular payment for anyone raising a child."),
    Benefit("jobseekers-allowance", "Jobseeker's Allowance", "Support while you look for work."),
    Benefit("pension-credit", "Pension Credit", "Tops up a weekly income over State Pension age."),
    Benefit("disability-allowance", "Disability Allowance", "Extra costs of a long-term illness."),
    Benefit("carers-allowance", "Carer's Allowance", "For people caring 35 hours a week or more."),
    Benefit("council-tax-reduction", "Council Tax Reduction", "A lower bill on a low income."),
    Benefit("free-school-meals", "Free School Meals", "Lunch at school for eligible children."),
    Benefit("winter-fuel-payment", "Winter Fuel Payment", "Help with heating bills in winter."),
    Benefit("travel-discount", "Travel Discount", "Cheaper bus and train fares for some groups."),
)
BY_ID = {benefit.id: benefit for benefit in BENEFITS}

# The smallest well-formed PDF: something real to download without shipping a binary file.
GUIDE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@bp.before_request
def demo_only() -> None:
    """Exist only with DEMO on; make sure the demo site exists before a page names it."""
    if not current_app.config.get("DEMO"):
        abort(404)
    g.demo_site = get_or_create_site(DEMO_SITE, DEMO_SITE_NAME)


def _page(template: str, **context: Any) -> str:
    return render_template(
        f"demo/{template}",
        site=g.demo_site,
        tracker_src=url_for("collect.tracker"),
        outbound_url=OUTBOUND_URL,
        guide_url=url_for("demo.download", name=GUIDE_NAME),
        **context,
    )


@bp.get("/")
def index() -> str:
    return _page("index.html")


@bp.get("/results")
def results() -> str:
    return _page("results.html", benefits=BENEFITS)


@bp.get("/benefits/<benefit_id>")
def benefit(benefit_id: str) -> str:
    found = BY_ID.get(benefit_id)
    if found is None:
        abort(404)
    return _page("benefit.html", benefit=found, position=BENEFITS.index(found) + 1)


@bp.get("/article")
def article() -> str:
    return _page("article.html", sections=BENEFITS)


@bp.route("/form", methods=["GET", "POST"])
def form() -> str:
    """A contact form; what is typed is neither stored nor echoed (the tracker sends its id)."""
    return _page("form.html", sent=request.method == "POST")


@bp.get("/app/", defaults={"tab": ""})
@bp.get("/app/<path:tab>")
def spa(tab: str) -> str:
    """One shell for every path of the single-page app; `static/demo/spa.js` draws the tab."""
    return _page("app.html")


@bp.get("/files/<name>")
def download(name: str) -> Response:
    if name != GUIDE_NAME:
        abort(404)
    return Response(
        GUIDE_PDF,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{GUIDE_NAME}"'},
    )
