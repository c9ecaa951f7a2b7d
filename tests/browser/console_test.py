#!/usr/bin/env python3
"""The Bunker web console in a real headless Chromium, against a live `bunker serve`.

Run by scripts/browser-tests.sh, which starts the server and sets:
CONSOLE_URL, CONSOLE_SOURCES (the `studies` source's directory), CONSOLE_RESTORE_TARGET (a
directory that does not exist yet, for restoring chosen files), BROWSER_TEST_OUTPUT (where the
screenshots and downloads go), CONSOLE_ADMIN_PASSWORD and CONSOLE_AUDITOR_PASSWORD (users `admin`
and `auditor`). Every step asserts what the user would see; the first failure stops the run with
a screenshot of the page as it was.
"""
import os
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

BASE = os.environ["CONSOLE_URL"]
SOURCES = os.environ["CONSOLE_SOURCES"]
RESTORE_TARGET = os.environ["CONSOLE_RESTORE_TARGET"]
OUT = os.environ["BROWSER_TEST_OUTPUT"]
ADMIN_PASSWORD = os.environ["CONSOLE_ADMIN_PASSWORD"]
AUDITOR_PASSWORD = os.environ["CONSOLE_AUDITOR_PASSWORD"]
VIEWER_PASSWORD = os.environ["CONSOLE_VIEWER_PASSWORD"]
DOWNLOADS = os.path.join(OUT, "downloads")
WAIT = 60


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,1000", "--lang=en-US"]:
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": DOWNLOADS, "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Debian's driver, named: Selenium must not go looking for (and downloading) one.
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": DOWNLOADS})
    return driver


class Console:
    def __init__(self, driver):
        self.driver = driver
        self.wait = WebDriverWait(driver, WAIT)
        self.shots = []

    def shot(self, name):
        self.labelled(name)
        path = os.path.join(OUT, name + ".png")
        self.driver.save_screenshot(path)
        self.shots.append(path)

    def labelled(self, page):
        """Every form control on the page has a label a screen reader announces."""
        unlabelled = self.driver.execute_script("""
            return [...document.querySelectorAll('input, select, textarea')]
                .filter((e) => e.offsetParent !== null && e.labels.length === 0 && !e.getAttribute('aria-label'))
                .map((e) => e.id || e.name || e.outerHTML.slice(0, 60));
        """)
        check(not unlabelled, f"{page}: controls without a label: {unlabelled}")

    def find(self, selector):
        return self.wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def text_in(self, selector, text):
        try:
            self.wait.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text))
        except TimeoutException:
            shown = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, selector)]
            raise Failure(f"{selector} never showed {text!r}; it shows {shown!r}")
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def heading(self, text):
        self.text_in("main h1", text)

    def absent(self, selector):
        check(not self.driver.find_elements(By.CSS_SELECTOR, selector), f"{selector} is on the page but must not be")

    def go(self, hash_route):
        self.driver.get(BASE + "/" + hash_route)

    def login(self, username, password):
        self.go("")
        self.find("#login-form")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(password)
        self.driver.find_element(By.ID, "login-submit").click()
        self.heading("Overview")
        self.text_in("#role", "")

    def logout(self):
        self.driver.find_element(By.ID, "logout").click()
        self.find("#login-form")

    def errors(self):
        """Script errors and CSP violations; failed loads (the 401 before login) are expected."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]]


def wait_for_download(name, timeout=WAIT):
    path = os.path.join(DOWNLOADS, name)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and not os.path.exists(path + ".crdownload"):
            return path
        time.sleep(0.1)
    raise Failure(f"{name} was not downloaded into {DOWNLOADS}; there is {os.listdir(DOWNLOADS)}")


def run(c):
    d = c.driver
    scan = os.path.join(SOURCES, "2025", "scan-0001.dcm")
    note = os.path.join(SOURCES, "2025", "note-1.txt")
    original_note = open(note, "rb").read()

    # Log in: a wrong password is refused on the page.
    c.go("")
    c.find("#login-form")
    c.shot("01-login")
    d.find_element(By.ID, "username").send_keys("admin")
    d.find_element(By.ID, "password").send_keys("not-the-password")
    d.find_element(By.ID, "login-submit").click()
    c.text_in("#login-message", "Wrong user name or password")
    c.login("admin", ADMIN_PASSWORD)
    c.text_in("#role", "SYSTEM_ADMIN")
    c.find("#sources")
    c.text_in("#sources", "app-db")
    # Only the database was backed up before: the file tree has no backup, and that is red.
    studies = d.find_element(By.CSS_SELECTOR, "#sources tr[data-id='studies']")
    check("bad" in studies.get_attribute("class") and "never backed up" in studies.text, f"a source never backed up is not shown red: {studies.text!r}")
    app_db = d.find_element(By.CSS_SELECTOR, "#sources tr[data-id='app-db']")
    check("bad" not in app_db.get_attribute("class"), f"a fresh backup is shown red: {app_db.text!r}")
    check("bad" in d.find_element(By.ID, "card-rpo").get_attribute("class"), "the achieved RPO is not red while a source has no backup")
    c.text_in("#alerts", "studies: never backed up")
    c.shot("00a-overview-before")

    # The session survives a reload, and the token is where no script can read it.
    d.refresh()
    c.heading("Overview")
    check(not d.find_elements(By.ID, "login-form"), "a reload asked for the login again")
    cookie = d.get_cookie("bunker_session")
    check(cookie is not None and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", f"the session cookie is not HttpOnly and SameSite=Strict: {cookie}")
    check("bunker_session" not in d.execute_script("return document.cookie"), "a script can read the session cookie")
    check(d.execute_script("return localStorage.length + sessionStorage.length") == 0, "the console stored something in web storage")

    # Back up now, watching the job until it is done.
    d.find_element(By.LINK_TEXT, "Back up now").click()
    c.heading("Back up now")
    Select(d.find_element(By.ID, "backup-type")).select_by_value("full")
    d.find_element(By.ID, "backup-description").send_keys("before the <b>4.2</b> upgrade")
    d.find_element(By.ID, "backup-start").click()
    c.find("#backup-progress")
    c.text_in("#backup-outcome", "Backup done")
    c.text_in("#job-state", "succeeded")
    progress = d.find_element(By.ID, "backup-progress")
    check(progress.get_attribute("value") == progress.get_attribute("max"), "the progress bar did not reach its end")
    check(not d.find_element(By.ID, "backup-cancel").is_displayed(), "Cancel is still offered for a finished job")
    c.shot("03-backup-now")
    d.find_element(By.ID, "backup-result-link").click()

    # The backup's page: the description is shown as text, never as markup.
    facts = c.find("#backup-facts")
    check("before the <b>4.2</b> upgrade" in facts.text, f"the description is not shown as typed: {facts.text!r}")
    check(not d.find_elements(By.CSS_SELECTOR, "#backup-facts b"), "a description became markup")
    backup_id = d.current_url.rsplit("/", 1)[1]
    check(len(backup_id) == 64, f"unexpected backup address {d.current_url}")

    # Verify.
    d.find_element(By.ID, "verify-button").click()
    c.text_in("#verify-outcome", "Verified.")

    # A restore drill: restored elsewhere, checked and timed.
    d.find_element(By.ID, "drill-button").click()
    c.text_in("#drill-outcome", "Drill passed.")
    c.text_in("#backup-action-result", "Measured RTO")

    # Browse a folder at a time and download a file whose bytes match the source.
    c.find("#browser-table")
    d.find_element(By.CSS_SELECTOR, "#browser-table [data-folder='studies']").click()
    c.find("#browser-table [data-folder='2025']").click()
    c.find("#browser-table [data-file='scan-0001.dcm']")
    c.shot("04-backup-detail-browser")
    d.find_element(By.CSS_SELECTOR, "#browser-table [data-file='scan-0001.dcm']").click()
    downloaded = wait_for_download("scan-0001.dcm")
    check(open(downloaded, "rb").read() == open(scan, "rb").read(), "the downloaded file's bytes differ from the source's")

    # Restore two chosen files into a new directory, signed.
    d.find_element(By.CSS_SELECTOR, "#browser-table [data-choose='scan-0001.dcm']").click()
    d.find_element(By.CSS_SELECTOR, "#browser-table [data-choose='note-2.txt']").click()
    c.text_in("#chosen-count", "2 chosen")
    d.find_element(By.ID, "restore-chosen").click()
    c.find("#files-target").send_keys(RESTORE_TARGET)
    d.find_element(By.ID, "files-password").send_keys(ADMIN_PASSWORD)
    d.find_element(By.ID, "files-reason").send_keys("Browser test: a copy for the ward")
    d.find_element(By.ID, "files-sign").click()
    c.text_in("#files-outcome", "Restored.")
    c.shot("04b-restore-chosen")
    for name in ("scan-0001.dcm", "note-2.txt"):
        copy = os.path.join(RESTORE_TARGET, "studies", "2025", name)
        check(os.path.exists(copy) and open(copy, "rb").read() == open(os.path.join(SOURCES, "2025", name), "rb").read(),
              f"{name} was not restored whole into {RESTORE_TARGET}")
    check(not os.path.exists(os.path.join(RESTORE_TARGET, "studies", "2025", "note-1.txt")), "a file that was not chosen was restored")
    d.execute_script("document.getElementById('dialog').close()")

    # Restore: change a file, sign with a wrong password (refused), then the right one.
    with open(note, "wb") as f:
        f.write(b"changed after the backup\n")
    d.find_element(By.ID, "restore-button").click()
    c.find("#restore-password")
    c.text_in("#dialog", "approved restore")
    c.text_in("#dialog", "Ada Admin")
    c.text_in("#dialog", "safety backup")
    check(d.find_element(By.ID, "restore-safety").is_selected(), "the safety backup is not chosen by default")
    d.find_element(By.ID, "restore-password").send_keys("wrong-password")
    d.find_element(By.ID, "restore-reason").send_keys("Browser test: note-1 was overwritten")
    c.shot("05-restore-dialog")
    d.find_element(By.ID, "restore-sign").click()
    c.text_in("#restore-refused", "Signature refused")
    c.shot("06-restore-refused")
    check(open(note, "rb").read() == b"changed after the backup\n", "a refused signature restored something")
    d.find_element(By.ID, "restore-password").send_keys(ADMIN_PASSWORD)
    d.find_element(By.ID, "restore-sign").click()
    c.text_in("#restore-outcome", "Restored.")
    c.shot("07-restored")
    check(open(note, "rb").read() == original_note, "the restore did not put the file back")

    # The backups list, newest first, filtered by type.
    d.find_element(By.LINK_TEXT, "Backups").click()
    c.heading("Backups")
    rows = c.find("#backups")
    ids = [r.get_attribute("data-id") for r in d.find_elements(By.CSS_SELECTOR, "#backups tbody tr")]
    check(len(ids) >= 3, f"expected the database backup, the console's and the safety backup; got {ids}")
    Select(d.find_element(By.ID, "filter-type")).select_by_value("database")
    c.text_in("#backup-count", "1 of")
    Select(d.find_element(By.ID, "filter-type")).select_by_value("")
    Select(d.find_element(By.ID, "filter-held")).select_by_value("yes")
    c.text_in("#backup-count", "1 of")
    c.text_in("#backups", "last night's database backup")
    c.text_in("#backups", "held")
    # textContent, not the rendered text: the stylesheet shows column heads in capitals.
    heads = [th.get_attribute("textContent").strip() for th in d.find_elements(By.CSS_SELECTOR, "#backups thead th")]
    check("Retention until" in heads, f"the backups table has no 'Retention until' column: {heads}")
    Select(d.find_element(By.ID, "filter-held")).select_by_value("")
    c.shot("02-backups")

    # The audit trail has the restore's rows and the refused signature; the chain is intact.
    d.find_element(By.LINK_TEXT, "Audit trail").click()
    c.heading("Audit trail")
    c.find("#audit-table")
    d.find_element(By.ID, "audit-action").send_keys("restore")
    d.find_element(By.ID, "audit-apply").click()
    c.text_in("#audit-table", backup_id[:8])
    restore_rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr") if backup_id[:8] in r.text]
    check(any("started" in r and "Browser test: note-1 was overwritten" in r for r in restore_rows),
          f"no restore start row for {backup_id} with the signed reason: {restore_rows}")
    check(any("success" in r for r in restore_rows), f"no successful restore row for {backup_id}: {restore_rows}")
    d.find_element(By.ID, "audit-action").clear()
    d.find_element(By.ID, "audit-action").send_keys("esign")
    d.find_element(By.ID, "audit-apply").click()
    c.text_in("#audit-table", "esign")
    signatures = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")]
    check(any("denied" in r and "wrong password" in r and backup_id[:8] in r for r in signatures),
          f"the refused signature is not in the audit trail: {signatures}")
    d.find_element(By.ID, "audit-verify").click()
    c.text_in("#audit-chain-state", "Chain intact")
    c.shot("08-audit")

    # The drill is in the drill reports.
    d.find_element(By.LINK_TEXT, "Drills").click()
    c.heading("Restore drills")
    c.text_in("#drills", backup_id[:8])
    c.text_in("#drills", "passed")
    check(len(d.find_elements(By.CSS_SELECTOR, "#drills tbody tr")) == 2, "expected the CLI's drill and the console's")
    check(len(d.find_elements(By.CSS_SELECTOR, ".chart svg circle")) == 2, "the RTO chart does not show both drills")
    c.shot("11-drills")

    # Users: add a viewer, then disable them; the administrator cannot disable themselves.
    d.find_element(By.LINK_TEXT, "Users").click()
    c.heading("Users")
    c.find("#users")
    d.find_element(By.ID, "new-username").send_keys("nina")
    d.find_element(By.ID, "new-full-name").send_keys("Nina Nurse")
    d.find_element(By.ID, "new-email").send_keys("nina@clinic.example")
    Select(d.find_element(By.ID, "new-role")).select_by_value("VIEWER")
    d.find_element(By.ID, "new-password").send_keys("nina-password-1")
    d.find_element(By.ID, "add-user-submit").click()
    c.text_in("#users-message", "Added nina")
    c.text_in("#users", "Nina Nurse")
    c.find("[data-toggle-of='nina']").click()
    c.text_in("#users-message", "nina is disabled")
    c.text_in("#users tr[data-id='nina']", "disabled")
    c.absent("[data-toggle-of='admin']")
    c.shot("10-users")

    # The overview after all that, for the record.
    d.find_element(By.LINK_TEXT, "Overview").click()
    c.find("#sources")
    c.text_in("#card-verify", "Passed")
    check(not d.find_elements(By.CSS_SELECTOR, "#sources tr.bad"), "a source is still red after the full backup")
    check("bad" not in d.find_element(By.ID, "card-rpo").get_attribute("class"), "the achieved RPO is red after the full backup")
    # Data added per day: a bar per day with backups, whose title names its megabytes; the
    # growth line: a point per kept backup.
    bars = d.find_elements(By.CSS_SELECTOR, "#added-per-day svg rect.bar")
    check(len(bars) >= 1 and all("MB added" in b.find_element(By.TAG_NAME, "title").get_attribute("textContent") for b in bars),
          "the data-added-per-day chart has no bars with their megabytes")
    kept = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/v1/backups?limit=200', {credentials: 'same-origin'}).then((r) => r.json()).then((j) => done(j.length));")
    check(len(d.find_elements(By.CSS_SELECTOR, "#growth svg circle")) == kept, "the growth chart does not have a point per kept backup")
    c.shot("00-overview")
    errors = c.errors()
    check(not errors, f"the console logged errors: {errors}")

    # Logging out ends the session, also after a reload, and a copy of the cookie taken before
    # it no longer works.
    stolen = {k: v for k, v in d.get_cookie("bunker_session").items() if k in ("name", "value", "path", "httpOnly", "sameSite")}
    c.logout()
    d.refresh()
    c.find("#login-form")
    check(d.get_cookie("bunker_session") is None, "the session cookie outlived the logout")
    d.add_cookie(stolen)
    d.refresh()
    c.find("#login-form")
    check(not d.find_elements(By.ID, "role"), "a copy of the logged-out session cookie still works")
    d.delete_cookie("bunker_session")

    # An auditor sees no restore or backup button, and the route refuses the restore.
    c.login("auditor", AUDITOR_PASSWORD)
    c.text_in("#role", "AUDITOR")
    c.absent("#nav a[href='#/backup-now']")
    c.go("#/backups/" + backup_id)
    c.find("#read-only-note")
    c.find("#retention-until")
    c.absent("#restore-button")
    c.absent("#verify-button")
    c.absent("#drill-button")
    c.absent("#download-zip")
    c.absent("#snapshot-browser")
    c.shot("09-auditor-backup")
    status = d.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const csrf = document.cookie.split('; ').find((c) => c.startsWith('bunker_csrf=')).slice(12);
        fetch('/api/v1/restore/' + arguments[0], {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({password: arguments[1], reason: 'an auditor tries'})}).then((r) => done(r.status), (e) => done(String(e)));
    """, backup_id, AUDITOR_PASSWORD)
    check(status == 403, f"the restore route answered the auditor {status}, not 403")
    c.absent("#nav a[href='#/users']")
    d.find_element(By.LINK_TEXT, "Drills").click()
    c.text_in("#drills", "passed")
    d.find_element(By.LINK_TEXT, "Audit trail").click()
    c.find("#audit-table")
    c.shot("12-auditor-audit")

    # A viewer, who may not read the health detail, still sees the repository's free space
    # (from the statistics every role reads), as a share that can turn red.
    c.logout()
    c.login("viewer", VIEWER_PASSWORD)
    c.text_in("#role", "VIEWER")
    c.text_in("#card-space", "free of")
    check("%" in c.find("#card-space").text, "the viewer's free-space card shows no share")
    c.absent("#nav a[href='#/audit']")
    c.shot("13-viewer-overview")


def main():
    os.makedirs(DOWNLOADS, exist_ok=True)
    started = time.time()
    driver = start_browser()
    console = Console(driver)
    try:
        run(console)
    except Exception as error:
        console.shot("failure")
        if not isinstance(error, Failure):
            traceback.print_exc()
        print(f"FAIL: {error} (at {driver.current_url}; screenshot {OUT}/failure.png)", file=sys.stderr)
        return 1
    finally:
        driver.quit()
    print(f"browser tests passed in {time.time() - started:.0f} s; {len(console.shots)} screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
