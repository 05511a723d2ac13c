"""The status page in a real headless Chromium against a real daemon seeded with real traffic
(tests/support/status_seed.py): every page loads with no console error and shows what the
daemon holds, the burning SLO's burn-down falls, the budget near its limit shows its bar,
the block button works only with the admin token, hostile names stay text, and a browser
beyond loopback gets the login form and reads with the token it was given. Screenshots of
each page are written to test-output/screenshots/ (STATUS_PAGE_SCREENSHOTS) for a person.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import status_seed as seed
from tests.support.browser import chromium, screenshot, severe
from tests.support.daemon import DaemonProcess
from tests.support.stand_in import ThreadedProvider

if TYPE_CHECKING:
    from collections.abc import Iterator

    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.integration

OPTIONAL_APIS = ("/v1/fleet", "/v1/certifications")
"""APIs another part of the daemon may not serve (yet): their 404 is the page's to handle
(it shows that the view is not available and does not ask again for a minute)."""
PAGES = ("overview", "slos", "slos/llm", "slos/tasks", "budgets", "agents", "incidents",
         "chaos", "rollouts", "traces")  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, dict]]:
    with ThreadedProvider() as fake:
        workdir = tmp_path_factory.mktemp("status-page")
        daemon = DaemonProcess(workdir, seed.config(fake.url, workdir / "state")).start(timeout=60)
        try:
            made = seed.seed(daemon, fake)
            yield daemon, made
        finally:
            try:
                daemon.stop(timeout=20)
            except Exception:
                daemon.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def get(daemon: DaemonProcess, path: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(daemon.url("admin", path), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        data = exc.read()
        try:
            return exc.code, json.loads(data)
        except ValueError:
            return exc.code, data  # aiohttp's own 404 of an unknown route is text


def wait_loaded(driver: WebDriver, page: str, times: int = 1, timeout: float = 20) -> None:
    """Until the page named ``page`` has drawn its data ``times`` times."""
    from selenium.webdriver.support.ui import WebDriverWait

    def loaded(d: WebDriver) -> bool:
        return bool(d.execute_script(
            "const m = document.getElementById('main');"
            "return m.dataset.page === arguments[0] && Number(m.dataset.loaded) >= arguments[1];",
            page, times,
        ))  # fmt: skip

    WebDriverWait(driver, timeout).until(loaded, f"page {page} not drawn")


def open_page(driver: WebDriver, daemon: DaemonProcess, route: str) -> None:
    """Loads the page afresh (a new document: no search or page kept from before)."""
    driver.get("about:blank")
    driver.get(daemon.url("admin", "/#/" + route))
    wait_loaded(driver, route.split("/")[0])


def console_errors(driver: WebDriver, *allowed: str) -> list[dict[str, Any]]:
    return severe(driver.get_log("browser"), (*OPTIONAL_APIS, *allowed))


def wait(driver: WebDriver, condition: Any, timeout: float = 10) -> Any:
    """WebDriverWait that looks again when the live refresh redrew an element under it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, timeout, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition)


def click_block(driver: WebDriver, agent: str) -> None:
    """Clicks the agent's block/unblock button (found again if a refresh redrew it)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(5):
        try:
            block_button(driver, agent).click()
            return
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"the button of {agent} kept being redrawn")


def main_text(driver: WebDriver) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, "main").text)


def set_token(driver: WebDriver, token: str) -> None:
    driver.execute_script("sessionStorage.setItem('agent-sre-admin-token', arguments[0])", token)


def clear_token(driver: WebDriver) -> None:
    driver.execute_script("sessionStorage.clear()")


# -- every page -----------------------------------------------------------------------------


def test_every_page_loads_without_a_console_error_and_is_screenshot(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, made = seeded
    trace_id = made["traces"][0]["trace_id"]
    chaos_run = made["chaos_run"]
    assert chaos_run, "the seed made no chaos run"
    browser.get(daemon.url("admin", "/"))
    clear_token(browser)
    for route in (*PAGES, f"traces/{trace_id}", f"incidents/{made['incidents'][0]['id']}"):
        open_page(browser, daemon, route)
        # one more refresh: the live update redraws without an error either
        wait_loaded(browser, route.split("/")[0], times=2)
        assert not browser.find_elements("css selector", "#main .error-box"), route
        assert console_errors(browser) == [], route
        path = screenshot(browser, route.replace("/", "-").replace(trace_id, "trace"))
        assert path.stat().st_size > 10_000, f"{route}: an empty screenshot"
    assert browser.execute_script("return window.__pwned") is None


def test_the_overview_shows_what_the_daemon_holds(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, made = seeded
    open_page(browser, daemon, "overview")
    text = main_text(browser)
    assert "status-node" in text
    _, agents = get(daemon, "/v1/agents")
    assert browser.find_element("id", "agents-seen").text == str(len(agents["agents"]))
    for incident in made["incidents"]:
        assert incident["id"] in text
    assert "llm" in text and "EXHAUSTED" in text  # the burning SLO, with its status
    assert "mini-to-41" in text  # the rollout
    status, fleet = get(daemon, "/v1/fleet")
    if status == 404:
        assert browser.find_element("id", "fleet-unavailable").text == (
            "fleet view not available on this daemon"
        )
    else:  # the fleet's nodes (this one alone here), with their state and health
        assert status == 200
        table = browser.find_element("css selector", "table.fleet-nodes").text
        for node in fleet["nodes"]:
            assert node["node"] in table and node["state"] in table
    assert console_errors(browser) == []


# -- SLO --------------------------------------------------------------------------------------


def test_the_burning_slo_shows_its_burn_down_falling(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, _ = seeded
    open_page(browser, daemon, "slos/llm")
    chart = browser.find_element("id", "burndown")
    first = float(chart.get_attribute("data-first"))
    last = float(chart.get_attribute("data-last"))
    assert first == 1.0 and last < 0, (first, last)
    _, burn = get(daemon, "/v1/slos/llm/burndown")
    assert burn["points"][0][1] == 1.0 and burn["points"][-1][1] < 0
    # the drawn line goes down: its last point is below its first on screen (SVG y grows down)
    path = chart.find_element("css selector", "svg path.series.burn").get_attribute("d")
    ys = [float(p.split(",")[1]) for p in path.replace("L", " ").replace("M", "").split()]
    assert ys[-1] > ys[0]
    _, report = get(daemon, "/v1/slos/llm")
    budget = report["overall"]["budget"]
    assert browser.find_element("id", "good-total").text == (
        f"good/total {budget['good']} / {budget['total']}"
    )
    text = main_text(browser)
    for alert in report["overall"]["alerts"]:
        assert alert["name"] in text
    assert "HEALTHY" in text and "EXHAUSTED" in text  # the recent status change
    assert console_errors(browser) == []


def test_the_slo_list_is_searchable(seeded: tuple[DaemonProcess, dict], browser: WebDriver) -> None:
    daemon, _ = seeded
    open_page(browser, daemon, "slos")
    rows = browser.find_elements("css selector", "table.slos tbody tr")
    assert len(rows) == 2
    box = browser.find_element("css selector", "input.search")
    box.send_keys("task")
    wait(browser, lambda d: len(d.find_elements("css selector", "table.slos tbody tr")) == 1)
    assert "tasks" in browser.find_element("css selector", "table.slos tbody").text
    assert "llm" not in browser.find_element("css selector", "table.slos tbody").text


# -- budgets ----------------------------------------------------------------------------------


def test_the_budget_near_its_limit_shows_its_bar(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, _ = seeded
    open_page(browser, daemon, "budgets")
    # read in one go in the page (a live refresh may redraw the table between two reads)
    row = browser.execute_script(
        """for (const tr of document.querySelectorAll('table.subjects tbody tr')) {
             if (tr.querySelector('td').textContent !== arguments[0]) continue;
             return {text: tr.textContent,
                     fill: Number(tr.querySelector('svg.bar rect.fill').getAttribute('width')),
                     track: Number(tr.querySelector('svg.bar rect.track').getAttribute('width')),
                     cls: tr.querySelector('svg.bar rect.fill').getAttribute('class')};
           }""",
        seed.NEAR_LIMIT_AGENT,
    )
    assert row, "no row of the subject near its limit"
    assert "90.0%" in row["text"]
    assert abs(row["fill"] / row["track"] - 0.9) < 0.01
    assert "warn" in row["cls"]  # past the 80% soft threshold
    # the spend chart of a subject, with the limit line
    browser.execute_script(
        """for (const b of document.querySelectorAll('table.subjects button.subject'))
             if (b.textContent === arguments[0]) b.click();""",
        seed.NEAR_LIMIT_AGENT,
    )
    wait(
        browser,
        lambda d: seed.NEAR_LIMIT_AGENT in d.find_element("css selector", ".spend-chart h3").text,
    )
    assert "limit $0.10" in browser.find_element("css selector", ".spend-chart").text
    assert console_errors(browser) == []


# -- agents: the block button -------------------------------------------------------------------


def block_button(driver: WebDriver, agent: str) -> Any:
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "table.agents button"):
        if button.get_attribute("data-agent") == agent:
            return button
    raise AssertionError(f"no button for {agent}")


def blocked(daemon: DaemonProcess) -> set[str]:
    _, body = get(daemon, "/v1/agents/blocked")
    return {row["agent_id"] for row in body["blocked"]}


def test_the_block_button_works_only_with_the_token(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, _ = seeded
    agent = "storm-agent"
    browser.get(daemon.url("admin", "/"))
    clear_token(browser)
    open_page(browser, daemon, "agents")
    # no token: the button asks for one and nothing is sent
    click_block(browser, agent)
    dialog = browser.find_element("id", "login")
    assert dialog.get_attribute("open") is not None
    browser.find_element("id", "login-cancel").click()
    assert agent not in blocked(daemon)

    # a wrong token: the daemon refuses, the page says so, the agent is not blocked
    set_token(browser, "not-the-token")
    browser.refresh()
    wait_loaded(browser, "agents")
    click_block(browser, agent)
    wait(browser, lambda d: "not done" in d.find_element("id", "agent-notice").text)
    assert agent not in blocked(daemon)
    assert console_errors(browser, "/v1/agents/storm-agent/block") == []

    # the token, typed into the login form: blocked, and the button turns to unblock
    clear_token(browser)
    browser.refresh()
    wait_loaded(browser, "agents")
    browser.find_element("id", "login-open").click()
    browser.find_element("id", "login-token").send_keys(seed.TOKEN)
    browser.find_element("id", "login-submit").click()
    click_block(browser, agent)
    wait(browser, lambda d: agent in blocked(daemon))
    wait(browser, lambda d: block_button(d, agent).text == "unblock")
    assert "blocked" in browser.find_element("css selector", "table.agents").text
    click_block(browser, agent)
    wait(browser, lambda d: agent not in blocked(daemon))
    # the token is in the tab's sessionStorage only: not in the URL, not in the daemon's log
    assert seed.TOKEN not in browser.current_url
    assert seed.TOKEN not in daemon.log()
    assert console_errors(browser) == []
    clear_token(browser)


def test_the_agents_list_is_paged_and_searched_by_the_daemon(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, _ = seeded
    open_page(browser, daemon, "agents")
    box = browser.find_element("css selector", "input.search")
    box.send_keys("SPEND")
    wait(browser, lambda d: len(d.find_elements("css selector", "table.agents tbody tr")) == 1)
    assert seed.NEAR_LIMIT_AGENT in browser.find_element("css selector", "table.agents").text


# -- hostile names -------------------------------------------------------------------------------


def test_hostile_names_are_shown_as_text(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, made = seeded
    hostile_trace = next(t for t in made["traces"] if t["root"] == seed.HOSTILE_SPAN)
    checks = {
        "agents": seed.HOSTILE_AGENT,
        "budgets": seed.HOSTILE_AGENT,
        "slos/tasks": seed.HOSTILE_LABEL,
        "traces": seed.HOSTILE_SPAN,
        f"traces/{hostile_trace['trace_id']}": seed.HOSTILE_SPAN,
        "incidents": seed.HOSTILE_LABEL,
    }
    for route, text in checks.items():
        open_page(browser, daemon, route)
        assert text in main_text(browser), route
        injected = browser.execute_script(
            "return document.querySelectorAll("
            "'#main script, #main img, #main [onerror], #main [onload]').length"
        )
        assert injected == 0, route
        assert browser.execute_script("return window.__pwned") is None, route
    assert console_errors(browser) == []


# -- traces ------------------------------------------------------------------------------------


def test_the_diff_of_two_runs_needs_the_token(
    seeded: tuple[DaemonProcess, dict], browser: WebDriver
) -> None:
    daemon, _ = seeded
    browser.get(daemon.url("admin", "/"))
    clear_token(browser)
    open_page(browser, daemon, "traces")
    boxes = browser.find_elements("css selector", "table.traces tbody input[type=checkbox]")
    boxes[0].click()
    boxes[1].click()
    browser.find_element("id", "diff").click()
    wait_loaded(browser, "traces")
    wait(browser, lambda d: "admin token only" in main_text(d))
    screenshot(browser, "traces-diff-without-token")
    set_token(browser, seed.TOKEN)
    browser.refresh()
    wait_loaded(browser, "traces")
    wait(browser, lambda d: "→" in d.find_element("css selector", "h2").text)
    assert browser.find_elements("css selector", "ul.diff li")
    screenshot(browser, "traces-diff")
    assert console_errors(browser, "/v1/traces/diff") == []
    clear_token(browser)


# -- beyond loopback ------------------------------------------------------------------------------


def test_beyond_loopback_the_page_asks_for_the_token_and_reads_with_it(
    seeded: tuple[DaemonProcess, dict],
) -> None:
    """A browser that reaches the admin listener by a name that is not loopback's (as one
    beyond the node would): the page loads, every read is refused until the token is typed
    into the login form, then the data shows."""
    from selenium.webdriver.support.ui import WebDriverWait

    daemon, _ = seeded
    port = daemon.addresses["admin"].rsplit(":", 1)[1]
    driver = chromium("--host-resolver-rules=MAP sre.example 127.0.0.1")
    try:
        driver.get(f"http://sre.example:{port}/#/overview")
        WebDriverWait(driver, 15).until(lambda d: d.find_element("id", "banner").is_displayed())
        assert "token" in driver.find_element("id", "banner").text
        assert "status-node" not in main_text(driver)
        screenshot(driver, "login-needed")
        driver.find_element("css selector", "#banner button").click()
        driver.find_element("id", "login-token").send_keys(seed.TOKEN)
        driver.find_element("id", "login-submit").click()
        WebDriverWait(driver, 15).until(lambda d: "status-node" in main_text(d))
        assert seed.TOKEN not in driver.current_url
        refused = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert all(" 401 " in e["message"] or "404" in e["message"] for e in refused), refused
    finally:
        driver.quit()


# -- hundreds of SLOs, a thousand agents --------------------------------------------------------

MANY_SLOS = 300
MANY_AGENTS = 1200


def test_hundreds_of_slos_and_a_thousand_agents_are_paged_and_searched(
    tmp_path_factory: pytest.TempPathFactory, browser: WebDriver
) -> None:
    """The lists stay one page of 50 rows whatever the count, the pager counts them all, and
    a search finds one among them (SLOs searched in the page, agents by the daemon)."""
    import concurrent.futures
    import http.client

    from tests.support.daemon import LOOPBACK_PORTS, merge

    with ThreadedProvider() as fake:
        workdir = tmp_path_factory.mktemp("status-page-many")
        slos = [{"name": f"slo-{i:03d}", "target": 0.99, "sli": {"kind": "llm_success"}}
                for i in range(MANY_SLOS)]  # fmt: skip
        cfg = merge(LOOPBACK_PORTS, {
            "state_dir": str(workdir / "state"),
            "proxy": {"routes": [{"name": "openai", "prefix": "/openai", "upstream": fake.url,
                                  "api": "openai"}]},
            "slos": slos,
        })  # fmt: skip
        daemon = DaemonProcess(workdir, cfg).start(timeout=60)
        try:
            host, port = daemon.addresses["proxy"].rsplit(":", 1)
            body = json.dumps({"model": "gpt-4o-mini", "messages": seed.MESSAGES}).encode()

            def calls(first: int) -> None:
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
                for index in range(first, MANY_AGENTS, 8):
                    headers = {"X-Agent-Id": f"agent-{index:04d}",
                               "Content-Type": "application/json"}  # fmt: skip
                    conn.request("POST", "/openai/v1/chat/completions", body=body, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200
                conn.close()

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(calls, range(8)))

            open_page(browser, daemon, "slos")
            assert len(browser.find_elements("css selector", "table.slos tbody tr")) == 50
            assert f"({MANY_SLOS})" in browser.find_element("css selector", ".pager").text
            browser.find_element("css selector", "input.search").send_keys("slo-257")
            wait(
                browser, lambda d: len(d.find_elements("css selector", "table.slos tbody tr")) == 1
            )
            assert "slo-257" in browser.find_element("css selector", "table.slos").text
            screenshot(browser, "many-slos-searched")

            open_page(browser, daemon, "agents")
            assert len(browser.find_elements("css selector", "table.agents tbody tr")) == 50
            pager = browser.find_element("css selector", ".pager").text
            assert f"page 1 of {MANY_AGENTS // 50} ({MANY_AGENTS})" in pager
            browser.find_elements("css selector", ".pager button")[1].click()  # next page
            wait(
                browser,
                lambda d: "agent-0050" in d.find_element("css selector", "table.agents").text,
            )
            browser.find_element("css selector", "input.search").send_keys("agent-1177")
            wait(
                browser,
                lambda d: len(d.find_elements("css selector", "table.agents tbody tr")) == 1,
            )
            screenshot(browser, "many-agents-searched")
            assert console_errors(browser) == []
            # the daemon goes away: the page says so at its next refresh, keeps what it showed
            daemon.stop(timeout=20)
            wait(browser, lambda d: "cannot be reached" in d.find_element("id", "live").text, 20)
            assert "bad" in browser.find_element("id", "live").get_attribute("class")
            assert "agent-1177" in browser.find_element("css selector", "table.agents").text
            assert "cannot be reached" in browser.find_element("css selector", ".error-box").text
        finally:
            daemon.stop(timeout=20)
