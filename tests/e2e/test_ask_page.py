"""The ask page of `abos serve` in headless Chromium (the browser check's set-up, scripts/browser_check.py),
against the shared `ask_server` (tests/ask_server.py): a person types a question and sees the answer
with the hand-worked numbers of tests/metric_tables.py."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from scripts.browser_check import ensure_chromium

NOV_2_TO_4 = "between November 2, 2026 and November 4, 2026"
expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(ensure_chromium()),
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    # script errors, what the Content-Security-Policy blocked ("Refused to ..."), failed requests
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    yield opened, problems
    context.close()


def table(page) -> list[list[str]]:
    return [[cell.inner_text() for cell in row.locator("th, td").all()]
            for row in page.locator("#answer-table tr").all()]


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.click("#ask-button")


def test_a_question_typed_in_the_page_shows_the_answer_and_its_numbers(ask_server, page):
    page, problems = page
    page.goto(f"{ask_server.url}/ask?workspace=shop")
    expect(page.locator("#workspace")).to_have_value("shop")
    page.fill("#token", "shop-token-1")
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#workspace-shown")).to_have_text("shop")

    ask(page, f"net sales and AOV {NOV_2_TO_4}")
    # the server's first answer loads the dbt manifest's definitions: seconds on a busy machine
    expect(page.locator("#answer-text")).to_contain_text("$279.00", timeout=60_000)  # 90 + 189 + 0
    assert table(page) == [["Net sales", "Average order value"], ["$279.00", "$39.86"]]  # AOV: 279 / 7 orders
    citations = page.locator("#answer-citations").inner_text()
    assert "from 2026-11-02 to 2026-11-04 (America/New_York)" in citations and "metrics.metric_values" in citations

    ask(page, f"net sales by country {NOV_2_TO_4}")
    expect(page.locator("#answer-table tbody tr")).to_have_count(2)
    assert table(page)[1:] == [["DE", "$144.00"], ["US", "$135.00"]]  # 160 − 16; 100 − 10 + 50 − 5

    ask(page, "customer emails")  # refused, and the page says so without a table
    expect(page.locator("#answer")).to_have_attribute("data-status", "refused")
    expect(page.locator("#answer-table")).to_be_hidden()
    assert problems == []


def test_a_wrong_token_or_another_workspaces_token_goes_back_to_sign_in(ask_server, page):
    page, _ = page
    for workspace, token in [("shop", "wrong"), ("shop", "saas-token-2"), ("nowhere", "shop-token-1")]:
        page.goto(f"{ask_server.url}/ask")
        page.fill("#workspace", workspace)
        page.fill("#token", token)
        page.click("#sign-in button[type=submit]")
        # the suggested questions, read as the workspace opens, find the token wrong
        expect(page.locator("#sign-in-error")).to_have_text("The workspace ID or token is not right.")
        expect(page.locator("#answer-text")).to_be_hidden()


def test_the_page_runs_only_its_own_files_and_names_no_workspace(ask_server):
    page = requests.get(f"{ask_server.url}/", timeout=30)
    assert page.url.endswith("/ask") and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert not any(name in page.text for name in ("shop-token", "saas", "quiet"))
    assert requests.get(f"{ask_server.url}/ask/ask.js", timeout=30).headers["content-type"].startswith("text/javascript")
    for path in ("/ask/ask.html", "/ask/..%2F__init__.py", "/ask/web.py"):
        assert requests.get(f"{ask_server.url}{path}", timeout=30).status_code == 404


def signed_in(page, url: str, workspace: str, token: str) -> None:
    page.goto(f"{url}/ask?workspace={workspace}")
    page.fill("#token", token)
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#workspace-shown")).to_have_text(workspace)


def test_suggestions_history_follow_ups_and_charts(ask_server, page):
    page, problems = page
    signed_in(page, ask_server.url, "saas", "saas-token-2")
    offered = page.locator("#suggestions li button")
    expect(offered.first).to_be_visible(timeout=60_000)
    first = offered.first.inner_text()
    assert first.startswith("MRR")  # the SaaS pack's headline metric
    offered.first.click()  # a suggestion is asked as it is
    expect(page.locator("#question")).to_have_value(first)
    expect(page.locator("#answer")).to_have_attribute("data-status", "answered", timeout=60_000)
    expect(page.locator("#history li button").first).to_have_text(first)

    page.click("#sign-out")
    signed_in(page, ask_server.url, "shop", "shop-token-1")
    ask(page, f"net sales {NOV_2_TO_4}")
    expect(page.locator("#answer-text")).to_contain_text("$279.00", timeout=60_000)
    ask(page, "and orders?")  # a follow-up of this page's conversation
    expect(page.locator("#answer-text")).to_contain_text("Orders")
    assert table(page) == [["Orders"], ["7"]]  # 1 + 6 + 0, over the same three days
    expect(page.locator("#history li button").nth(0)).to_have_text("and orders?")
    expect(page.locator("#history li button").nth(1)).to_have_text(f"net sales {NOV_2_TO_4}")

    hostile = "<img src=x onerror=\"document.title='pwned'\"> net sales"
    ask(page, hostile)  # shown back in the history as text, never as markup
    expect(page.locator("#history li button").first).to_have_text(hostile)
    assert page.locator("#history img").count() == 0 and page.title() != "pwned"

    ask(page, "daily net sales between November 2, 2026 and November 9, 2026")
    chart = page.locator("#answer-chart")
    expect(chart).to_be_visible()
    page.wait_for_function("document.getElementById('answer-chart').complete")
    assert chart.evaluate("image => image.naturalWidth") > 100
    assert problems == []
