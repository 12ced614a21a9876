"""The storefront in a real browser: Playwright (pytest-playwright) driving Debian's
Chromium (/usr/bin/chromium; a browser is never downloaded) against a real HTTP server
of the app (pytest-django's live_server, one per xdist worker, on that worker's test
database), with the Stripe sandbox as Stripe: its hosted checkout page takes the card,
and it POSTs signed webhooks to that server.

Every page a journey visits gets an axe-core check (axe-core pinned below, installed
from the npm registry into .cache/axe-core/ on first use, never committed) and a
full-page screenshot in test-results/screenshots/<journey>/NN-step.png.

Without /usr/bin/chromium or npm these tests skip with the command that installs them;
with CI set they fail instead (.ci/run installs Chromium)."""

import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, Page, Playwright, sync_playwright

from djangomart.catalog.demo import demo_catalog_seed
from djangomart.payments import gateway
from tests.ci import CI
from tests.payments.conftest import WEBHOOK_SECRET
from tests.stripe_sandbox.harness import API_KEY, SandboxServer

CHROMIUM = Path("/usr/bin/chromium")
AXE_VERSION = "4.14.1"  # `npm view axe-core versions`; bump deliberately
ROOT = Path(__file__).resolve().parents[2]
AXE_CACHE = ROOT / ".cache" / "axe-core"
AXE_SCRIPT = AXE_CACHE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-results" / "screenshots"
# Local pages answer in milliseconds: a missing element fails a step in seconds, not 30.
TIMEOUT_MS = 10_000
# What fails a journey (axe's impacts: minor, moderate, serious, critical).
FAILING_IMPACTS = {"serious", "critical"}


def _missing(message: str) -> None:
    """A tool these tests need is absent: skip locally, fail in CI."""
    if CI:
        pytest.fail(f"{message} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


# Playwright's sync API keeps an asyncio loop running in the main thread for as long as
# it is started. The plugin's fixtures are session-scoped, which would leave that loop
# running through every later test of the xdist worker (Django's ORM then refuses to
# run: SynchronousOnlyOperation; asyncio.run() cannot start). These overrides give
# Playwright this folder's lifetime instead, and let the ORM run beside the loop (the
# tests seed data and read the mailbox while a page is open) only meanwhile.


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        _missing(
            f"the browser tests need Debian's Chromium at {CHROMIUM}: sudo apt-get install chromium"
        )
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="package")
def playwright(browser_type_launch_args: dict[str, Any]) -> Iterator[Playwright]:
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)  # type: ignore[no-any-return]


@pytest.fixture(scope="package")
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    launched = launch_browser()
    yield launched
    launched.close()


@pytest.fixture(scope="package")
def browser_context_args() -> dict[str, Any]:
    return {}


@pytest.fixture(scope="session", autouse=True)
def delete_output_dir() -> None:
    """pytest-playwright empties test-results/ when a worker starts; with two workers
    that can remove the other's screenshots. Each journey empties its own folder."""


# axe-core, from the npm registry, once per checkout (the workers take turns on a lock).


@pytest.fixture(scope="session")
def axe_script() -> Path:
    AXE_CACHE.mkdir(parents=True, exist_ok=True)
    with open(AXE_CACHE.parent / "axe-core.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _axe_installed_version() != AXE_VERSION:
            _axe_install()
    return AXE_SCRIPT


def _axe_installed_version() -> str | None:
    package = AXE_SCRIPT.parent / "package.json"
    if not (package.exists() and AXE_SCRIPT.exists()):
        return None
    return str(json.loads(package.read_text()).get("version"))


def _axe_install() -> None:
    npm = shutil.which("npm")
    if npm is None:
        _missing(
            f"the browser tests' accessibility check installs axe-core@{AXE_VERSION} with "
            "npm, which is missing: sudo apt-get install npm"
        )
        return
    command = [
        *(npm, "install", "--prefix", str(AXE_CACHE), "--no-save", "--no-package-lock"),
        *("--no-audit", "--no-fund", "--ignore-scripts", f"axe-core@{AXE_VERSION}"),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    except subprocess.TimeoutExpired:
        _missing(f"`{' '.join(command)}` did not finish in 180 s (no npm registry?)")
        return
    if done.returncode != 0 or _axe_installed_version() != AXE_VERSION:
        _missing(
            f"`{' '.join(command)}` failed (exit {done.returncode}; no npm registry?):\n"
            f"{done.stderr[-2000:]}"
        )


# The shop: a live server with the sandbox as Stripe, and the demo catalog.


@dataclass
class Shop:
    url: str
    sandbox: SandboxServer

    def path(self, path: str) -> str:
        return self.url + path


@pytest.fixture
def shop(live_server: Any, settings: Any) -> Iterator[Shop]:
    """The app on a real port, talking to a SandboxServer, which delivers its webhooks
    to it. Stripe sends the browser back to this server's return page."""
    sandbox = SandboxServer()
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    settings.STRIPE_API_BASE = sandbox.url
    settings.PUBLIC_URL = live_server.url
    settings.CHECKOUT_SUCCESS_URL = settings.CHECKOUT_CANCEL_URL = (
        f"{live_server.url}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}"
    )
    # The sandbox's hosted page is on another port of the same host.
    settings.CHECKOUT_REDIRECT_HOSTS = [*settings.CHECKOUT_REDIRECT_HOSTS, "127.0.0.1"]
    gateway.client_reset()
    sandbox.add_endpoint(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    demo_catalog_seed()  # after PUBLIC_URL: the product pictures are this server's
    try:
        yield Shop(url=live_server.url, sandbox=sandbox)
    finally:
        sandbox.stop()
        gateway.client_reset()


# A journey: steps that each check the page with axe and save a screenshot.


@dataclass
class Violation:
    page: str
    rule: str
    impact: str
    help: str
    url: str
    targets: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = "\n".join(f"      at {t}" for t in self.targets[:5])
        more = f"\n      ... and {len(self.targets) - 5} more" if len(self.targets) > 5 else ""
        return f"  [{self.impact}] {self.rule}: {self.help} ({self.url})\n{where}{more}"


@dataclass
class Journey:
    name: str
    page: Page
    axe: Path
    folder: Path
    phone_width: int | None = None
    steps: int = 0
    violations: list[Violation] = field(default_factory=list)
    # Pages that are not the shop's (the sandbox stands in for Stripe's hosted page).
    foreign_prefixes: tuple[str, ...] = ()
    # axe runs in the page: not with JavaScript off (the same pages are checked with it on).
    accessibility_checked: bool = True

    def step(self, name: str) -> None:
        """The page as it is now: accessibility checked, width checked on a phone, and a
        full-page screenshot as NN-name.png."""
        self.page.wait_for_load_state("load")
        self.steps += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        shot = self.folder / f"{self.steps:02d}-{slug}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        if self.page.url.startswith(self.foreign_prefixes) or not self.accessibility_checked:
            return
        self._axe_check(f"{self.steps:02d}-{slug} ({self.page.url})")
        if self.phone_width is not None:
            width = self.page.evaluate("document.documentElement.scrollWidth")
            assert width <= self.phone_width, (
                f"{name}: the page scrolls sideways on a {self.phone_width} px wide phone "
                f"(scrollWidth {width}); see {shot}"
            )

    def _axe_check(self, label: str) -> None:
        if not self.page.evaluate("typeof window.axe !== 'undefined'"):
            self.page.add_script_tag(path=str(self.axe))
        results = self.page.evaluate("async () => await window.axe.run(document)")
        for v in results["violations"]:
            if v.get("impact") in FAILING_IMPACTS:
                self.violations.append(
                    Violation(
                        page=label,
                        rule=v["id"],
                        impact=v["impact"],
                        help=v["help"],
                        url=v["helpUrl"],
                        targets=[" ".join(map(str, n["target"])) for n in v["nodes"]],
                    )
                )

    def assert_accessible(self) -> None:
        if not self.violations:
            return
        pages: dict[str, list[Violation]] = {}
        for v in self.violations:
            pages.setdefault(v.page, []).append(v)
        report = "\n".join(
            f"{page}:\n" + "\n".join(str(v) for v in found) for page, found in pages.items()
        )
        pytest.fail(
            f"axe-core {AXE_VERSION} found serious or critical accessibility violations "
            f"in journey {self.name!r}:\n{report}",
            pytrace=False,
        )


@pytest.fixture
def journey(browser: Browser, axe_script: Path, shop: Shop) -> Iterator[Callable[..., Journey]]:
    """journey(name, **context_args): a fresh browser context (no cookies) and its page."""
    contexts = []

    def start(name: str, **context_args: Any) -> Journey:
        folder = SCREENSHOTS / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        context = browser.new_context(**context_args)
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        viewport = context_args.get("viewport")
        return Journey(
            name=name,
            page=page,
            axe=axe_script,
            folder=folder,
            phone_width=viewport["width"] if viewport else None,
            foreign_prefixes=(shop.sandbox.url,),
            accessibility_checked=context_args.get("java_script_enabled", True),
        )

    yield start
    for context in contexts:
        context.close()
