"""Send a real digest of the sample corpus to a local SMTP server and screenshot its HTML part.

Run: .venv/bin/python scripts/digest_screenshot.py [OUT.png]   (needs /usr/bin/chromium)
Writes docs/screenshots/digest-html.png by default and prints the message's text part.
"""

import os
import socket
import subprocess
import sys
import tempfile
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots" / "digest-html.png"
received: list[bytes] = []


class Keep:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802, ANN001
        received.append(envelope.content)
        return "250 OK"


with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
smtp = Controller(Keep(), hostname="127.0.0.1", port=port)
smtp.start()
data = tempfile.mkdtemp()
env = {k: v for k, v in os.environ.items() if not k.startswith("DAILYPAPERS_")} | {
    "DAILYPAPERS_DATA_DIR": data, "DAILYPAPERS_SMTP_URL": f"smtp://127.0.0.1:{port}",
    "DAILYPAPERS_BASE_URL": "https://papers.example.org", "DAILYPAPERS_EMBEDDING_RUNTIME": "off",
    "DAILYPAPERS_MAIL_FROM": "Daily Papers <digest@papers.example.org>"}
cli = str(Path(sys.executable).with_name("dailypapers"))
for args in (["ingest", "sample"], ["subscribe", "ada@example.org", "--period", "daily", "--confirmed"],
             ["digest", "send", "--period", "daily"]):
    subprocess.run([cli, *args], env=env, check=True, capture_output=True)
smtp.stop()
message = message_from_bytes(received[-1], policy=policy.default)
html = message.get_body(("html",)).get_content()
text = message.get_body(("plain",)).get_content()
page_file = Path(data) / "digest.html"
page_file.write_text(html)
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    page = browser.new_page(viewport={"width": 760, "height": 1000})
    page.goto(page_file.as_uri())
    page.screenshot(path=str(out), full_page=False)
    browser.close()
print("Subject:", message["Subject"])
print(text)
