"""`dailypapers subscribe`, `digest send`, `alerts send`, `subscriptions`, `unsubscribe` as an operator
runs them: real processes, a real database file, a real SMTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_mail_delivery import link, smtp  # noqa: F401 - fixture

BIN = Path(sys.executable).with_name("dailypapers")


def run(args, data_dir, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")}
    environ |= {"DAILYPAPERS_DATA_DIR": str(data_dir), "DAILYPAPERS_EMBEDDING_RUNTIME": "off"} | env
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, env=environ, timeout=120)


@pytest.fixture
def home(tmp_path):
    assert run(["ingest", "sample"], tmp_path).returncode == 0
    return tmp_path


def mail_env(smtp):  # noqa: F811
    return {
        "DAILYPAPERS_SMTP_URL": smtp.url,
        "DAILYPAPERS_BASE_URL": "https://papers.example.org",
        "DAILYPAPERS_MAIL_FROM": "digest@papers.example.org",
    }


def test_subscribe_send_and_send_nothing_twice(home, smtp):  # noqa: F811
    env = mail_env(smtp)
    added = run(["subscribe", "ada@example.org", "--confirmed"], home, **env)
    assert added.stdout == "subscribed ada@example.org to the daily digest of trending papers (#1)\n"
    alert = run(
        [
            "subscribe",
            "bob@example.org",
            "--period",
            "weekly",
            "--query",
            "policy generalization",
            "--has-code",
            "--confirmed",
        ],
        home,
        **env,
    )
    assert alert.stdout == (
        "subscribed bob@example.org to the weekly alert for “policy generalization” (with code) (#2)\n"
    )

    dry = run(["digest", "send", "--period", "daily", "--dry-run"], home, **env)
    assert dry.returncode == 0 and smtp.messages == []
    assert (
        dry.stdout.splitlines()[0]
        == "would send to ada@example.org: Trending papers for Fri Oct 10: 9 papers"
    )
    assert dry.stdout.splitlines()[-1] == "daily digest: would send 1 message"

    sent = run(["digest", "send", "--period", "daily"], home, **env)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout == (
        "sent to ada@example.org: Trending papers for Fri Oct 10: 9 papers\ndaily digest: sent 1 message\n"
    )
    assert "https://papers.example.org/papers/25" in smtp.messages[0].text()
    again = run(["digest", "send"], home, **env)
    assert again.stdout == (
        "daily digest: everyone has had daily:2025-10-10: nothing new\ndaily digest: sent 0 messages\n"
    )

    alerts = run(["alerts", "send"], home, **env)
    assert alerts.returncode == 0 and "sent to bob@example.org: " in alerts.stdout
    assert len(smtp.messages) == 2
    assert run(["alerts", "send"], home, **env).stdout == (
        "alerts: nothing new for any alert\nalerts: sent 0 messages\n"
    )

    listing = run(["subscriptions"], home, **env).stdout.splitlines()
    assert listing[0].split()[:3] == ["#1", "active", "ada@example.org"] and listing[-1] == "2 subscriptions"
    gone = run(["unsubscribe", "ADA@example.org"], home, **env)
    assert gone.stdout == "unsubscribed 1 subscription of ada@example.org\n"


def test_subscribe_sends_a_confirmation_that_confirms(home, smtp):  # noqa: F811
    result = run(["subscribe", "ada@example.org", "--period", "weekly"], home, **mail_env(smtp))
    assert (
        result.stdout
        == "confirmation mail sent to ada@example.org for the weekly digest of trending papers (#1)\n"
    )
    (mail,) = smtp.messages
    assert mail.message["Subject"] == "Confirm your weekly digest of trending papers from dailypapers"
    assert "https://papers.example.org/subscriptions/confirm/" in mail.text()
    assert run(["subscriptions"], home).stdout.split()[:2] == ["#1", "pending"]


@pytest.mark.parametrize(
    "args, env, message",
    [
        (
            ["subscribe", "a@b.org\r\nBcc: x@y.org", "--confirmed"],
            {},
            "error: EMAIL: Enter one email address, without line breaks or control characters.\n",
        ),
        (
            ["subscribe", "nobody", "--confirmed"],
            {},
            "error: EMAIL: Enter a valid email address, like name@example.com.\n",
        ),
        (
            ["subscribe", "a@b.org", "--query", "x" * 10_000, "--confirmed"],
            {},
            "error: --query: A saved search can be at most 300 characters (this one has 10,000).\n",
        ),
        (
            ["subscribe", "a@b.org", "--period", "hourly", "--confirmed"],
            {},
            "error: --period: Choose daily or weekly.\n",
        ),
        (
            ["subscribe", "a@b.org", "--since", "soon", "--confirmed"],
            {},
            "error: --since: Enter a date like 2025-01-31, or leave it empty.\n",
        ),
        (
            ["subscribe", "a@b.org"],
            {},
            "error: a confirmation mail needs DAILYPAPERS_SMTP_URL and DAILYPAPERS_BASE_URL "
            "(or use --confirmed)\n",
        ),
        (["digest", "send", "--period", "hourly"], {}, "error: --period 'hourly': use daily or weekly\n"),
        (
            ["digest", "send"],
            {"DAILYPAPERS_BASE_URL": "https://papers.example.org"},
            "error: DAILYPAPERS_SMTP_URL is not set: set it to smtp://user:password@host:587 "
            "(or use --dry-run to see what would be sent)\n",
        ),
        (
            ["alerts", "send"],
            {"DAILYPAPERS_SMTP_URL": "smtp://localhost:1"},
            "error: DAILYPAPERS_BASE_URL is not set: links in mail need the site's public address, "
            "e.g. https://papers.example.org\n",
        ),
        (
            ["digest", "send"],
            {"DAILYPAPERS_MAIL_SEND_TIME": "25:00"},
            "error: setting DAILYPAPERS_MAIL_SEND_TIME: "
            "String should match pattern '^([01]\\d|2[0-3]):[0-5]\\d$'\n",
        ),
    ],
)
def test_errors_are_one_line(tmp_path, args, env, message):
    result = run(args, tmp_path, **env)
    assert result.returncode == 1
    assert result.stderr == message


def test_a_bounce_exits_3_and_says_so(home, smtp):  # noqa: F811
    env = mail_env(smtp)
    run(["subscribe", "bob@example.org", "--confirmed"], home, **env)
    smtp.refuse["bob@example.org"] = "550 5.1.1 no such user"
    result = run(["digest", "send"], home, **env)
    assert result.returncode == 3
    assert "bounced, no more mail to bob@example.org: RCPT TO: 550 5.1.1 no such user\n" in result.stdout
    assert run(["subscriptions"], home).stdout.split()[:2] == ["#1", "bouncing"]
