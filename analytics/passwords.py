"""Password rules for dashboard accounts: a minimum length, and not one of the passwords every
guessing tool tries first.

The list is short on purpose (the ones that top every published leak analysis, of 8 characters
or more since shorter ones fail the length rule anyway, plus this product's own obvious ones);
it is compared case-insensitively, and also with trailing digits and punctuation taken off, so
that "Password123!" goes the way of "password".
"""

from __future__ import annotations

import re

MIN_LENGTH = 10

COMMON = frozenset(
    """
    password passw0rd p@ssword p@ssw0rd password1 password12 password123 passwords
    12345678 123456789 1234567890 0123456789 987654321 9876543210 11111111 1111111111
    00000000 0000000000 12341234 12121212 11223344 88888888 99999999 66666666 123123123
    qwertyuiop qwerty123 qwertyui qwerty12 1q2w3e4r 1q2w3e4r5t 1qaz2wsx zaq12wsx azertyuiop
    azerty123 asdfghjkl asdfasdf zxcvbnm123 qazwsxedc abcd1234 abc12345 abcdefgh abcdefg1
    iloveyou iloveyou1 sunshine princess football baseball basketball superman batman123
    starwars whatever trustno1 letmein1 letmeinnow welcome1 welcome123 welcome2024 welcome2025
    welcome2026 changeme changeme1 changeit default1 administrator admin123 admin1234
    adminadmin administrateur rootroot master123 mastermind dragon123 monkey123 shadow123
    michael1 jennifer charlie1 jordan23 liverpool chelsea1 arsenal1 manchester soleil123
    bonjour1 motdepasse motdepasse1 azerty1234 doudou123 chouchou marseille loulou123
    nicolas1 football1 computer internet samsung1 google123 facebook1 linkedin instagram
    secret123 mysecret hello123 helloworld hunter22 freedom1 whatever1 summer2024 summer2025
    winter2024 winter2025 spring2025 autumn2025 january1 december1 pokemon1 minecraft
    analytics analytics1 dashboard dashboard1 statistics plausible matomo123 umami1234
    """.split()
)
_TAIL = re.compile(r"[\d\W_]+$")


def problem(password: str, email: str = "") -> str | None:
    """Why this password is refused, or None when it may be used."""
    if len(password) < MIN_LENGTH:
        return f"the password needs at least {MIN_LENGTH} characters"
    lowered = password.lower()
    if lowered in COMMON or _TAIL.sub("", lowered) in COMMON or len(set(lowered)) < 4:
        return "this password is one of the first that guessing tools try: choose another"
    local = email.split("@")[0].lower()
    if len(local) >= 4 and local in lowered:
        return "the password must not contain your email address"
    return None
