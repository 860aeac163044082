"""The app as gunicorn serves it in the dashboards benchmark: `wsgi:app` with CSRF off.

The benchmark logs in with a plain POST; everything else is the environment's configuration,
as under `make run`.
"""

from __future__ import annotations

from analytics import create_app

app = create_app({"WTF_CSRF_ENABLED": False})
