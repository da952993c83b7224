"""The payments example's checkout in a real browser: Debian's Chromium, headless, driven by Playwright.

Run by `tests/checkout_browser.rs`, which starts the example on a fresh PostgreSQL schema and passes:

- UPSTREAM: the example's address; the browser reaches it through a recording proxy started here, so each check
  can say which requests the server saw and what it answered;
- PROXY_PORT: the proxy's port. Pages come from http://127.0.0.1:PROXY_PORT, and from http://localhost:PROXY_PORT
  for the cross-origin check (another origin, which the example's CORS_ALLOWED_ORIGINS allows);
- DATABASE_URL and PAYMENTS_TABLE: where each check counts the payments it caused;
- CHROMIUM: the browser binary (Playwright downloads no browser here).

Every check runs in its own browser context, so in its own session (the user its payments are counted for).
Prints one line per check, then a `browser checkout:` summary line; exits non-zero on the first failed check.
"""

import http.client
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from playwright.sync_api import sync_playwright

UPSTREAM = os.environ["UPSTREAM"]  # host:port
PROXY_PORT = int(os.environ["PROXY_PORT"])
BASE = f"http://127.0.0.1:{PROXY_PORT}"
OTHER_ORIGIN = f"http://localhost:{PROXY_PORT}"
DATABASE_URL = os.environ["DATABASE_URL"]
PAYMENTS_TABLE = os.environ["PAYMENTS_TABLE"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The checkout route's `wait`: a payment slower than this shows the "still being processed" page.
ROUTE_WAIT_MS = 10_000

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class Exchange:
    """One request the server saw, and its answer."""

    def __init__(self, method, path, status, headers):
        self.method = method
        self.path = path
        self.status = status
        self.headers = {name.lower(): value for name, value in headers}

    def __repr__(self):
        location = self.headers.get("location", "")
        replayed = " replayed" if self.headers.get("idempotent-replayed") == "true" else ""
        return f"{self.method} {self.path} -> {self.status} {location}{replayed}".rstrip()


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.exchanges = []

    def add(self, exchange):
        with self.lock:
            self.exchanges.append(exchange)

    def mark(self):
        with self.lock:
            return len(self.exchanges)

    def since(self, mark, method=None, path=None):
        with self.lock:
            seen = self.exchanges[mark:]
        return [e for e in seen if (method is None or e.method == method) and (path is None or e.path == path)]


RECORDER = Recorder()


class Forward(BaseHTTPRequestHandler):
    """Forwards each request to the example unchanged (headers, body) and records the answer."""

    protocol_version = "HTTP/1.1"

    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(UPSTREAM, timeout=120)
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        RECORDER.add(Exchange(self.command, self.path, answer.status, answer.getheaders()))
        try:
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser gave up on this request (a cancelled navigation); the server answered all the same
        finally:
            upstream.close()

    do_GET = do_POST = do_OPTIONS = forward

    def log_message(self, *args):
        pass


def payments_of(user):
    """The payments of `user`, counted in PostgreSQL."""
    query = f"SELECT count(*) FROM {PAYMENTS_TABLE} WHERE user_id = :'user'"
    result = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", f"user={user}", DATABASE_URL],
        input=query,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.strip())


def one_payment(user):
    """Checks that `user` paid exactly once, in PostgreSQL; returns the count for the report."""
    count = payments_of(user)
    check(count == 1, f"one payment, got {count}")
    return count


def session_user(context):
    users = [cookie["value"] for cookie in context.cookies() if cookie["name"] == "session"]
    assert len(users) == 1, f"one session cookie, got {users}"
    return users[0]


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def click_twice(page, selector, gap_ms):
    """Two real mouse clicks `gap_ms` apart, as a person double-clicks: the second lands on the same page while
    the first one's navigation is pending (Playwright's own `click` would wait for that navigation)."""
    box = page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.click(x, y)
    page.wait_for_timeout(gap_ms)
    page.mouse.click(x, y)


def double_click(browser):
    """Two clicks on #pay 50 ms apart while the payment is slow: one payment, one receipt for both."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{BASE}/checkout?delay_ms=500")
    user = session_user(context)
    mark = RECORDER.mark()
    click_twice(page, "#pay", 50)
    # Not `wait_for_url`: the first click's navigation is aborted by the second, as in any browser.
    page.wait_for_selector("#paid-amount")
    posts = RECORDER.since(mark, "POST", "/checkout")
    shown = page.url.removeprefix(BASE)
    check(len(posts) == 2, f"the server saw both clicks' posts: {posts}")
    check(all(e.status == 303 and e.headers.get("location") == shown for e in posts), f"both to {shown}: {posts}")
    check(sum(e.headers.get("idempotent-replayed") == "true" for e in posts) == 1, f"one replayed: {posts}")
    check(page.inner_text("#paid-amount") == "1000", "the receipt shows the amount")
    count = one_payment(user)
    context.close()
    return f"double-click: 2 clicks, the server saw {len(posts)} POSTs ({posts}), {count} payment, page {shown}"


def reload_after_paying(browser):
    """A reload on the receipt is a GET (Post/Redirect/Get): the receipt again, no post, one payment. Going back
    to the form loads it again, with a new key: a new payment would be a new intent."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{BASE}/checkout")
    user = session_user(context)
    first_key = page.get_attribute("input[name=idempotency_key]", "value")
    page.click("#pay")
    page.wait_for_url("**/receipts/*")
    receipt = page.url
    mark = RECORDER.mark()
    page.reload()
    seen = RECORDER.since(mark)
    check(page.url == receipt, f"still the receipt: {page.url}")
    check([e.method for e in seen] == ["GET"] and seen[0].status == 200, f"one GET of the receipt: {seen}")
    count = one_payment(user)
    page.go_back()
    page.wait_for_selector("#pay")
    check(page.get_attribute("input[name=idempotency_key]", "value") != first_key, "back on the form: a new key")
    context.close()
    return f"reload of the receipt: the server saw {seen}, {count} payment; back on the form, a new key"


def reload_reposts(browser):
    """A payment slower than the route's wait: the duplicate shows "still being processed"; reloading that page
    posts the form again, which waits for the payment and lands on its receipt."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{BASE}/checkout?delay_ms={ROUTE_WAIT_MS + 2_000}")
    user = session_user(context)
    mark = RECORDER.mark()
    click_twice(page, "#pay", 50)
    page.wait_for_selector("#problem", timeout=ROUTE_WAIT_MS * 3)
    waiting = page.inner_text("#problem")
    check("still being processed" in waiting, f"the in-flight page: {waiting}")
    page.reload(timeout=ROUTE_WAIT_MS * 3)
    page.wait_for_selector("#paid-amount")
    posts = RECORDER.since(mark, "POST", "/checkout")
    shown = page.url.removeprefix(BASE)
    # The first click's answer and the re-post's replay arrive together, in either order.
    check(sorted(e.status for e in posts) == [303, 303, 409], f"the original's 303, a 409, the re-post's 303: {posts}")
    replayed = [e.headers.get("idempotent-replayed") == "true" for e in posts if e.status == 303]
    check(sorted(replayed) == [False, True], f"the re-post is a replay: {posts}")
    check(all(e.headers.get("location") == shown for e in posts if e.status == 303), f"to {shown}: {posts}")
    count = one_payment(user)
    context.close()
    return f"reload that re-posts: 2 clicks and 1 reload, the server saw {len(posts)} POSTs ({posts}), {count} payment"


def second_tab_other_amount(browser):
    """A second tab of the same page load (the same key) sent with another amount: a readable page, no charge."""
    context = browser.new_context()
    first = context.new_page()
    first.goto(f"{BASE}/checkout")
    user = session_user(context)
    key = first.get_attribute("input[name=idempotency_key]", "value")
    first.click("#pay")
    first.wait_for_url("**/receipts/*")
    second = context.new_page()
    second.goto(f"{BASE}/checkout")
    # A duplicated tab restores the page's form as it was: the same hidden key.
    second.eval_on_selector("input[name=idempotency_key]", "(field, key) => { field.value = key; }", key)
    second.fill("#amount", "2500")
    mark = RECORDER.mark()
    second.click("#pay")
    second.wait_for_selector("#problem")
    posts = RECORDER.since(mark, "POST", "/checkout")
    check(len(posts) == 1 and posts[0].status == 422, f"one 422: {posts}")
    check(posts[0].headers.get("content-type", "").startswith("text/html"), f"a page: {posts[0].headers}")
    heading = second.inner_text("#problem")
    check("already submitted" in heading, f"the key-reused page: {heading}")
    count = one_payment(user)
    context.close()
    return f"second tab, another amount: the server saw {posts}, page {heading!r}, {count} payment"


def fetch_from_another_origin(browser):
    """A page of another origin pays with fetch and its own key: the preflight allows the key, and the retry's
    Idempotent-Replayed is readable."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{OTHER_ORIGIN}/checkout")
    user = page.get_attribute("body", "data-user")
    mark = RECORDER.mark()
    result = page.evaluate("([base, user]) => payWithFetch(base, user, 700)", [BASE, user])
    seen = RECORDER.since(mark)
    preflights = [e for e in seen if e.method == "OPTIONS"]
    check(len(preflights) >= 1 and preflights[0].status == 200, f"a preflight: {seen}")
    allowed = preflights[0].headers.get("access-control-allow-headers", "")
    check("idempotency-key" in allowed, f"the preflight allows the key: {allowed}")
    check(result["first"] == 201 and result["retry"] == 201, f"created, then replayed: {result}")
    check(result["replayed"] == "true", f"the retry reads Idempotent-Replayed: {result}")
    count = one_payment(user)
    context.close()
    return f"fetch from {OTHER_ORIGIN}: the server saw {seen}, the script read {result}, {count} payment"


def main():
    proxy = ThreadingHTTPServer(("127.0.0.1", PROXY_PORT), Forward)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Root in CI needs --no-sandbox; localhost must reach the IPv4 proxy.
            args=["--no-sandbox", "--host-resolver-rules=MAP localhost 127.0.0.1"],
        )
        checks = [double_click, reload_after_paying, reload_reposts, second_tab_other_amount, fetch_from_another_origin]
        for run in checks:
            print(run(browser), flush=True)
        browser.close()
    proxy.shutdown()
    seen = RECORDER.mark()
    print(f"browser checkout: {len(checks)} checks passed in Chromium, {seen} requests seen by the server, "
          f"{time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"browser checkout FAILED: {failure}", flush=True)
        sys.exit(1)
