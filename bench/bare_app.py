"""The baseline: a minimal Flask app that only parses the JSON body and answers 204."""

from __future__ import annotations

import json

from flask import Flask, request

app = Flask(__name__)


@app.post("/api/events")
def events():
    json.loads(request.get_data())
    return "", 204
