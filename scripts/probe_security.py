"""Probe a running dailypapers as an attacker on the network would (issue 12's list), and print each result.

    python scripts/probe_security.py [--url http://127.0.0.1:8000] [--json]

Start the server as the README says (`make run`, or `dailypapers serve`) first. The probe signs up
one throwaway account. Each line: the probe, the status (or what happened) and whether that is the
safe answer; the exit status is 1 when any probe got an unsafe answer.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys

import httpx

EDGE_INPUTS = [
    "/papers/date/0001-01-01", "/papers/date/9999-12-31", "/papers/week/9999-W52", "/papers/month/0001-01",
    "/api/daily_papers?date=9999-12-31", "/feeds/daily.atom?date=9999-12-31", "/search?q=x&since=9999-12-31",
    "/search?q=x&" + "&".join(["cat=cs.LG"] * 3000), "/papers/%00", "/papers/month/9999-12",
]
NORMAL_OR_REFUSED = ["/search?q=%ff%fe", "/search?q=%00", "/papers/%C3%BC%E2%82%AC"]
HEADERS = ["content-security-policy", "x-frame-options", "x-content-type-options", "referrer-policy"]


def csrf(client: httpx.Client, path: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text)
    return match.group(1) if match else ""


def answer(client: httpx.Client, method: str, path: str, **kw: object) -> int | str:
    """The status, or what went wrong when the server dropped the connection instead of answering."""
    try:
        return client.request(method, path, **kw).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def probes(url: str) -> list[tuple[str, str, bool]]:
    results: list[tuple[str, str, bool]] = []

    def record(name: str, outcome: object, safe: bool) -> None:
        results.append((name, str(outcome), bool(safe)))

    with httpx.Client(base_url=url, timeout=30) as client:
        token = csrf(client, "/reset")
        forged = client.post("/reset", data={"email": "victim@example.org", "csrf_token": token},
                             headers={"Host": "evil.example"})
        record("POST /reset with Host: evil.example", forged.status_code, forged.status_code == 400)

        for path in EDGE_INPUTS:
            status = answer(client, "GET", path)
            record(f"GET {path[:60]}", status, isinstance(status, int) and 400 <= status < 500)
        for path in NORMAL_OR_REFUSED:
            status = answer(client, "GET", path)
            record(f"GET {path}", status, isinstance(status, int) and status < 500)

        page = client.get("/")
        missing = [h for h in HEADERS if h not in page.headers]
        record("security headers on /", "missing: " + ", ".join(missing) if missing else "all present",
               not missing)
        docs = client.get("/docs").text
        record("/docs assets", "CDN" if "cdn." in docs else "local", "cdn." not in docs)

        email = f"probe-{secrets.token_hex(4)}@example.org"
        token = csrf(client, "/signup")
        client.post("/signup", data={"email": email, "username": email.split("@")[0], "password": "probe password 1",
                                     "csrf_token": token})
        signed_in = client.get("/account").status_code == 200
        record("sign up", "signed in" if signed_in else "not signed in", signed_in)

        token = csrf(client, "/")
        foreign = client.post("/logout", data={"csrf_token": token}, headers={"Origin": "http://evil.example"})
        record("valid CSRF token from Origin: http://evil.example", foreign.status_code, foreign.status_code == 403)


        paper = re.search(r'href="/papers/([^"/?#]+)"', client.get("/").text)
        refused_at = None
        for n in range(1, 41):
            posted = client.post(f"/papers/{paper.group(1)}/comments", data={"body": f"probe {n}", "csrf_token": token},
                                 follow_redirects=False)
            if posted.status_code == 429:
                refused_at = n
                break
        record("40 comments in a row", f"refused at #{refused_at}" if refused_at else "all accepted", refused_at)

    with httpx.Client(base_url=url, timeout=60) as guesser:
        refused_at = None
        for n in range(1, 13):
            token = csrf(guesser, "/login")
            tried = guesser.post("/login", data={"email": email, "password": f"wrong {n}", "csrf_token": token},
                                 headers={"X-Forwarded-For": f"203.0.113.{n}"})
            if tried.status_code == 429 or "try again in" in tried.text:
                refused_at = n
                break
        record("12 wrong passwords from 12 X-Forwarded-For addresses", f"refused at #{refused_at}" if refused_at
               else "all checked", refused_at)
    with httpx.Client(base_url=url, timeout=30) as client:  # last: the server may drop this connection
        upvote = answer(client, "POST", "/papers/%C3%BC%E2%82%AC/upvote", data={"csrf_token": csrf(client, "/")})
        record("POST /papers/ü€/upvote (signed out)", upvote, isinstance(upvote, int) and 400 <= upvote < 500)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = probes(args.url.rstrip("/"))
    width = max(len(name) for name, _, _ in results)
    for name, outcome, safe in results:
        print(f"{name:<{width}}  {outcome:<22}  {'ok' if safe else 'UNSAFE'}")
    if args.json:
        print(json.dumps({"probes": [{"probe": n, "outcome": o, "safe": s} for n, o, s in results]}))
    return 0 if all(safe for _, _, safe in results) else 1


if __name__ == "__main__":
    sys.exit(main())
