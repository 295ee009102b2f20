"""Browser check: open the Dagster UI headless and fail on an error or an incomplete asset graph.

    .venv/bin/python scripts/browser_check.py [--out DIR] [--workspace workspace.yaml] [--home ABOS_HOME]

It installs Debian's chromium if /usr/bin/chromium is missing (as root), serves the UI with
`dagster-webserver` on a free loopback port with a throwaway ABOS_HOME and DAGSTER_HOME, then opens
the global asset graph (one box per group, then every asset) and the `insights/reports` asset page.
With `--home` (the ABOS_HOME of a finished `abos demo`), it serves that home's instance instead and
also opens the Runs page, the Overview timeline and a weekly report: every run must show its stage
job and who launched it, the timeline every job that ran, and the report its charts. It saves a
screenshot of each page and exits 1 when a page shows an error (an error boundary, a code location
that failed to load, a failed GraphQL call, an uncaught script error) or misses what it must show.
See docs/operations.md, "Browser check".
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import sync_playwright
except ImportError:  # run_check says what to run
    sync_playwright = None

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
REPORT_ASSET = "insights/reports"
GRAPH_WIDTH = 2200  # px; the viewport is then made tall enough for the whole graph at that width
REPORT_WIDTH = 1000  # px, about a laptop browser window's reading width
# The screenshots, by what they show (docs/img holds the ones the docs link: `--out docs/img`).
SHOTS = {"graph": "asset-graph.png", "all assets": "asset-graph-all.png", "report asset": "report-asset.png",
         "runs": "runs.png", "timeline": "timeline.png", "report": "report.png"}
SERVER_START_SECONDS = 180
PAGE_TIMEOUT_MS = 90_000

# Text Dagster's UI shows when something broke: its error boundary ("Sorry, <region> can't be
# displayed."), a code location that failed to load, and its generic error states.
ERROR_TEXTS = ("can't be displayed", "failed to load", "An error occurred", "Unexpected error", "Error loading")


def _say(message: str) -> None:
    print(f"[browser-check] {message}", file=sys.stderr, flush=True)


class CheckFailed(Exception):
    """The UI could not be checked, or showed a problem."""


def ensure_chromium() -> Path:
    """Debian's chromium, installed with apt-get when missing (needs root)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise CheckFailed(f"{CHROMIUM} is missing; install it as root: apt-get install -y chromium")
    _say(f"{CHROMIUM} missing: installing Debian's chromium with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # A clean machine may have no package lists yet.
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)
    if not CHROMIUM.exists():
        raise CheckFailed(f"apt-get installed chromium but {CHROMIUM} is still missing")
    return CHROMIUM


def expected_assets() -> tuple[int, list[str]]:
    """How many assets the project's Definitions define, and their groups: the graph must show them all."""
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    return len(keys), sorted({graph.get(key).group_name for key in keys})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def isolated_env(home: Path) -> dict[str, str]:
    """This environment with ABOS_HOME and DAGSTER_HOME in `home`, and the default warehouse in it."""
    from pipelines.run import ensure_dagster_home
    from pipelines.settings import load_settings

    env = {k: v for k, v in os.environ.items() if k != "ABOS_WAREHOUSE_URL"}
    env.update(ABOS_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    dagster_home = ensure_dagster_home(load_settings(env))
    # Dagster shows a newsletter dialog on a new instance; mark it seen so it covers no screenshot.
    (dagster_home / ".nux").mkdir(exist_ok=True)
    (dagster_home / ".nux" / "nux.yaml").write_text("seen: 1\n")
    return env


@contextmanager
def dagster_ui(workspace: Path, env: dict[str, str], log: Path) -> Iterator[Callable[[], str]]:
    """Start the Dagster UI for `workspace` on a free loopback port.

    Yields a function that waits until the UI answers and returns its base URL, so the caller can
    do other work while the server loads the code location.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    webserver = Path(sys.executable).parent / "dagster-webserver"
    command = [str(webserver), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def ready() -> str:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if server.poll() is not None:
                raise CheckFailed(f"dagster-webserver exited with {server.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    return url
            except OSError:
                if time.monotonic() > deadline:
                    raise CheckFailed(f"dagster-webserver did not answer on {url} in {SERVER_START_SECONDS}s; log: {log}")
                time.sleep(1)

    try:
        yield ready
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


class PageWatch:
    """Collects what went wrong while a page loads: failed GraphQL calls and uncaught script errors."""

    def __init__(self, page) -> None:
        self.problems: list[str] = []
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("response", self._on_response)

    def _on_response(self, response) -> None:
        if "/graphql" not in response.url:
            return
        if response.status >= 400:
            self.problems.append(f"GraphQL call failed with HTTP {response.status}")
            return
        try:
            raw = response.body()
        except Exception:  # noqa: BLE001 - the page moved on and the browser dropped the body: nothing to judge
            return
        if "json" not in (response.headers.get("content-type") or ""):
            return  # e.g. a multipart (streamed) reply; the page's own error texts still catch a failure
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self.problems.append(f"GraphQL call returned a body that is not JSON ({exc}): {raw[:200]!r}")
            return
        if body.get("errors"):
            self.problems.append(f"GraphQL errors: {json.dumps(body['errors'])[:500]}")
        # Dagster returns load failures as data: a PythonError in place of the object asked for.
        for error in _python_errors(body.get("data")):
            self.problems.append(f"GraphQL returned a PythonError: {str(error.get('message')).strip()[:500]}")

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def _python_errors(data) -> Iterator[dict]:
    if isinstance(data, dict):
        if data.get("__typename") == "PythonError":
            yield data
        for value in data.values():
            yield from _python_errors(value)
    elif isinstance(data, list):
        for value in data:
            yield from _python_errors(value)


def _shown_errors(page) -> list[str]:
    text = page.locator("body").inner_text()
    return [f"page shows {phrase!r}" for phrase in ERROR_TEXTS if phrase.lower() in text.lower()]


ASSET_NODES = '[class*="AssetNode_assetNodeContainer"]'  # one per asset node in the graph's DOM
GRAPH_CANVAS = "[data-svg-viewport]"
GRAPH_SVG = f"{GRAPH_CANVAS} svg[width][height]"


def _count_nodes_until(page, expected: int, timeout_ms: int) -> int:
    """Asset nodes in the DOM, waiting up to `timeout_ms` for `expected` of them."""
    try:
        page.wait_for_function(
            "([selector, expected]) => document.querySelectorAll(selector).length >= expected",
            arg=[ASSET_NODES, expected], timeout=timeout_ms,
        )
    except PageTimeout:
        pass  # report the count the page reached
    return page.locator(ASSET_NODES).count()


def _settle(page, timeout_ms: int = 15_000) -> None:
    """Wait for the page's network to go quiet, but no longer than `timeout_ms`.

    The UI keeps polling (runs, the daemon's health), so on a loaded machine "networkidle" may
    never come: after the page's load event, the checks below wait for what they need to see.
    """
    try:
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
    except PageTimeout:
        pass


def _open(page, url: str) -> None:
    page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
    _settle(page)


def _wait_for_graph(page, watch: "PageWatch") -> None:
    """Wait until the graph's SVG is on the page, or the page or a GraphQL reply shows an error."""
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        if page.locator(GRAPH_SVG).count() or watch.failed or _shown_errors(page):
            return
        page.wait_for_timeout(250)


def check_asset_graph(context, base_url: str, expected: int, groups: list[str], overview: Path,
                      screenshot: Path) -> list[str]:
    """Open the global asset graph: one box per group first (the overview a person reads, every group
    named), then with every group expanded and the whole graph in view (every asset shown)."""
    page = context.new_page()
    watch = PageWatch(page)
    _open(page, f"{base_url}/asset-groups")
    _wait_for_graph(page, watch)
    broken = bool(_shown_errors(page)) or watch.failed
    problems = []
    if not broken and page.locator(GRAPH_SVG).count():
        shown = page.locator(GRAPH_CANVAS).inner_text()
        problems += [f"the asset graph's overview does not name group {group!r}" for group in groups
                     if group not in shown]
        page.screenshot(path=str(overview))  # as it opens: the groups fitted to the window
        # The UI's own shortcut (Alt+E, "Expand all groups") shows every asset instead of one box
        # per group; the UI remembers it, so the reload below lays out the expanded graph.
        svg = page.locator(GRAPH_SVG).first
        collapsed_height = svg.get_attribute("height")
        page.keyboard.press("Alt+e")
        page.wait_for_function(
            "([selector, before]) => document.querySelector(selector)?.getAttribute('height') !== before",
            arg=[GRAPH_SVG, collapsed_height], timeout=PAGE_TIMEOUT_MS,
        )
        _fit_viewport_to_graph(page)
        page.reload(wait_until="load", timeout=PAGE_TIMEOUT_MS)
        _settle(page)
    shown = _count_nodes_until(page, expected, timeout_ms=1000 if broken else 30_000)
    page.screenshot(path=str(screenshot))
    problems += _shown_errors(page) + watch.problems
    if shown != expected:
        problems.append(f"asset graph shows {shown} asset nodes; the Definitions define {expected}")
    page.close()
    return problems


def _fit_viewport_to_graph(page) -> None:
    """The graph opens fitted to the canvas width: make the window tall enough to show it all."""
    svg = page.locator(GRAPH_SVG).first
    width, height = float(svg.get_attribute("width")), float(svg.get_attribute("height"))
    canvas = page.locator(GRAPH_CANVAS).bounding_box()
    viewport = page.viewport_size
    scale = canvas["width"] / width
    page.set_viewport_size({"width": viewport["width"],
                            "height": int(height * scale + viewport["height"] - canvas["height"]) + 40})


def check_runs(context, base_url: str, jobs: set[str], runs: Path, timeline: Path) -> list[str]:
    """The Runs page names every job that ran and who launched each run; the Overview timeline shows
    a row for each of those jobs (a run it cannot place in a code location, it leaves out)."""
    problems = []
    page = context.new_page()
    watch = PageWatch(page)
    _open(page, f"{base_url}/runs")
    try:
        page.get_by_text(sorted(jobs)[0], exact=True).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    except PageTimeout:
        pass  # reported below
    text = page.locator("body").inner_text()
    problems += [f"the Runs page does not name job {job!r}" for job in sorted(jobs) if job not in text]
    problems += [f"the Runs page shows {phrase!r}" for phrase in ("__ephemeral_asset_job__", "Manually launched")
                 if phrase in text]
    page.screenshot(path=str(runs))
    problems += _shown_errors(page) + watch.problems
    page.close()

    page = context.new_page()
    watch = PageWatch(page)
    _open(page, f"{base_url}/overview/activity/timeline")
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline and not all(job in page.locator("body").inner_text() for job in jobs):
        page.wait_for_timeout(500)
    text = page.locator("body").inner_text()
    problems += [f"the Overview timeline has no row for job {job!r}" for job in sorted(jobs) if job not in text]
    if "No runs" in text:
        problems.append("the Overview timeline says 'No runs'")
    page.screenshot(path=str(timeline))
    problems += _shown_errors(page) + watch.problems
    page.close()
    return problems


def check_report(context, report: Path, screenshot: Path) -> list[str]:
    """A weekly report as its owner opens it: it loads without a script error and shows its charts."""
    page = context.new_page()
    watch = PageWatch(page)
    page.set_viewport_size({"width": REPORT_WIDTH, "height": 900})
    _open(page, report.as_uri())
    charts = page.locator("svg, img").count()
    page.screenshot(path=str(screenshot), full_page=True)
    problems = watch.problems + ([] if charts else [f"the report {report} shows no chart"])
    page.close()
    return problems


def check_asset_page(context, base_url: str, asset_key: str, screenshot: Path) -> list[str]:
    """Open one asset's page; it must show the asset's definition and no error."""
    page = context.new_page()
    watch = PageWatch(page)
    _open(page, f"{base_url}/assets/{asset_key}")
    problems = []
    try:
        # An asset key the code location does not define gets a page too, without this panel.
        page.get_by_text("Definition", exact=True).first.wait_for(timeout=1000 if watch.failed else 30_000)
    except PageTimeout:
        problems.append(f"the page of {asset_key} shows no definition: the UI does not know the asset")
    page.screenshot(path=str(screenshot), full_page=True)
    problems += _shown_errors(page) + watch.problems
    page.close()
    return problems


def jobs_that_ran(env: dict[str, str]) -> set[str]:
    """The jobs of the runs in the instance of `env`'s DAGSTER_HOME."""
    import dagster as dg

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return {record.dagster_run.job_name for record in instance.get_run_records()}


def run_check(out_dir: Path, workspace: Path = PROJECT_ROOT / "workspace.yaml", home: Path | None = None) -> list[str]:
    """Serve the UI, check its pages, save screenshots in `out_dir`; returns the problems found."""
    if sync_playwright is None:
        raise CheckFailed("playwright is missing: it is a dev dependency, run `make install`") from None
    chromium = ensure_chromium()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="abos-browser-check-") as scratch:
        env = isolated_env(home or Path(scratch))
        jobs = jobs_that_ran(env) if home else set()
        reports = sorted((home or Path(scratch)).glob("reports/*/*/report.html"))
        if home and not (jobs and reports):
            raise CheckFailed(f"{home} holds no runs or no report: run `abos demo` with ABOS_HOME={home} first")
        with dagster_ui(workspace, env, Path(scratch) / "webserver.log") as ui_ready:
            os.environ.update(env)  # the Definitions counted here load as the server's do
            expected, groups = expected_assets()
            base_url = ui_ready()
            _say(f"Dagster UI at {base_url}; the Definitions define {expected} assets in {len(groups)} groups")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium), args=["--no-sandbox", "--disable-dev-shm-usage"]
                )
                context = browser.new_context(viewport={"width": GRAPH_WIDTH, "height": 1400})
                problems = check_asset_graph(context, base_url, expected, groups, out_dir / SHOTS["graph"],
                                             out_dir / SHOTS["all assets"])
                problems += check_asset_page(context, base_url, REPORT_ASSET, out_dir / SHOTS["report asset"])
                if home:
                    problems += check_runs(context, base_url, jobs, out_dir / SHOTS["runs"],
                                           out_dir / SHOTS["timeline"])
                    # the last by workspace id: in the demo, the US shop's (in English)
                    problems += check_report(context, reports[-1], out_dir / SHOTS["report"])
                browser.close()
    return list(dict.fromkeys(problems))  # a failure seen by several GraphQL calls, once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="where the screenshots go (default: ABOS_HOME/browser-check)")
    parser.add_argument("--workspace", type=Path, default=PROJECT_ROOT / "workspace.yaml",
                        help="the Dagster workspace file to serve (default %(default)s)")
    parser.add_argument("--home", type=Path,
                        help="the ABOS_HOME of a finished `abos demo`: also check its runs and a report")
    args = parser.parse_args(argv)
    if args.out is None:
        from pipelines.settings import load_settings

        args.out = load_settings().home / "browser-check"
    try:
        problems = run_check(args.out.absolute(), args.workspace.absolute(),
                             args.home.absolute() if args.home else None)
    except CheckFailed as exc:
        _say(f"FAILED: {exc}")
        return 1
    for problem in problems:
        _say(problem)
    shots = ", ".join(str(args.out / name) for name in SHOTS.values() if (args.out / name).exists())
    _say(f"{'FAILED' if problems else 'passed'}; screenshots: {shots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT))
    sys.exit(main())
