"""The manifest flow's one web page, driven by a real headless browser (Debian's chromium).

``requests`` proves the wire format; only a browser proves what a person gets:
that the page on the loopback listener auto-posts its form, that the manifest
JSON survives HTML escaping and form encoding byte for byte, that GitHub's
(the emulator's) confirmation page follows, and that the redirect back to the
listener carries a code only a matching ``state`` can deliver.

The browser and its driver come from apt (``chromium``, ``chromium-driver``;
.ci/install); the driver path is given explicitly so Selenium Manager never
runs, and host resolution outside 127.0.0.1 is switched off so the browser
cannot reach beyond loopback. Waits are generous: the machine may be busy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from bootstrap.clients.github_manifest import ManifestFlow
from sandbox.github import GitHubEmulator

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 90.0
TRICKY = "quotes \" ' & <b>tags</b> </script><script>window.pwned=1</script> ünïcødé ✓ \\ back"


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("chromium and chromium-driver are missing: run .ci/install (apt-get install them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, element_id: str) -> str:
    found = WebDriverWait(driver, WAIT).until(
        expected_conditions.presence_of_element_located((By.ID, element_id))
    )
    return str(found.text)


def test_browser_posts_the_manifest_confirms_and_comes_back_with_the_code(
    github_emu: GitHubEmulator, browser: webdriver.Chrome
) -> None:
    manifest = {
        "name": 'Argo "CD" <acme> & co',
        "url": "https://argocd.acme.test",
        "description": TRICKY,
        "callback_urls": [
            "https://argocd.acme.test/api/dex/callback",
            "https://grafana.acme.test/login/github",
        ],
        "public": False,
        "default_permissions": {"members": "read", "emails": "read"},
        "request_oauth_on_install": True,
    }
    with ManifestFlow(github_emu.url, "acme", manifest) as flow:
        # a forged callback (wrong state) is refused in the browser too, and the flow keeps waiting
        browser.get(f"{flow.url}callback?code=forged&state=guessed")
        assert "state mismatch" in browser.find_element(By.TAG_NAME, "body").text
        with pytest.raises(TimeoutError):
            flow.wait(0.01)

        browser.get(flow.url)  # the page submits itself to GitHub's form…
        assert wait_for(browser, "app-name") == manifest["name"]  # …which shows the name as sent
        assert browser.execute_script("return window.pwned === undefined")
        assert github_emu.apps == {}  # nothing exists before the person confirms
        browser.find_element(By.ID, "create").click()
        code = flow.wait(WAIT)
        WebDriverWait(browser, WAIT).until(lambda d: "GitHub App created" in d.page_source)
        assert browser.current_url.startswith(f"{flow.url}callback?code=")
        assert f"state={flow.state}" in browser.current_url

    [app] = github_emu.apps.values()
    sent = {**manifest, "redirect_url": flow.manifest["redirect_url"]}
    assert app.manifest == sent  # byte for byte through HTML escaping and form encoding
    converted = requests.post(f"{github_emu.url}/app-manifests/{code}/conversions", timeout=30)
    assert converted.status_code == 201 and converted.json()["client_id"] == app.client_id


def test_browser_sees_githubs_error_page_for_an_invalid_manifest(
    github_emu: GitHubEmulator, browser: webdriver.Chrome
) -> None:
    """The manifest the step used to send (hook_attributes without url) stops at GitHub's error page."""
    manifest = {
        "name": "argocd-acme",
        "url": "https://argocd.acme.test",
        "hook_attributes": {"active": False},
    }
    with ManifestFlow(github_emu.url, "acme", manifest) as flow:
        browser.get(flow.url)
        WebDriverWait(browser, WAIT).until(lambda d: "Invalid GitHub App configuration" in d.page_source)
        assert '"url" wasn\'t supplied.' in browser.find_element(By.TAG_NAME, "body").text
        with pytest.raises(TimeoutError):
            flow.wait(0.01)
    assert github_emu.apps == {}
