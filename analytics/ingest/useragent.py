"""User-agent string -> browser, OS, device type, and whether it is a bot."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from ua_parser import parse

# ua-parser marks the crawlers it knows as device "Spider"; these catch the rest (monitoring,
# HTTP libraries that announce themselves as bots, headless browsers used for scraping).
_BOT_WORDS = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|headless|lighthouse|pingdom|uptime|monitor|preview|scan",
    re.IGNORECASE,
)
_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|(android(?!.*mobile))", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|windows phone|blackberry|opera mini", re.IGNORECASE)


class Agent(NamedTuple):
    browser: str | None
    os: str | None
    device: str | None
    is_bot: bool


@lru_cache(maxsize=4096)
def parse_agent(ua: str | None) -> Agent:
    """Parse a user agent once per distinct string (the cache makes repeat visitors free)."""
    if not ua:
        return Agent(None, None, None, False)
    ua = ua[:512]
    result = parse(ua)
    device_family = result.device.family if result.device else None
    browser = result.user_agent.family if result.user_agent else None
    is_bot = device_family == "Spider" or bool(_BOT_WORDS.search(ua))
    if is_bot:
        device = "bot"
    elif _TABLET.search(ua):
        device = "tablet"
    elif _MOBILE.search(ua):
        device = "mobile"
    else:
        device = "desktop"
    os_name = result.os.family if result.os else None
    return Agent(browser and browser[:64], os_name and os_name[:64], device, is_bot)
