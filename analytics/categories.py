"""Categories accepted by the legacy collector contract."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select

from .extensions import db
from .models import Category
from .sites import InvalidInput


def add_category(name: str) -> Category:
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a category name is 1 to 100 characters")
    if db.session.execute(select(Category.id).where(Category.name == name)).first():
        raise InvalidInput(f"category {name!r} already exists")
    category = Category(name=name)
    db.session.add(category)
    db.session.commit()
    return category


def category_names() -> set[str]:
    return set(db.session.execute(select(Category.name)).scalars())


def remove_category(category_id: int) -> None:
    category = db.session.get(Category, category_id)
    if category is None:
        raise InvalidInput("no such category")
    db.session.delete(category)
    db.session.commit()
    current_app.extensions.pop("analytics.categories", None)  # the collector's cache
