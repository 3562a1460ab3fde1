"""The playground page in headless Chromium: type a prompt, click Generate,
and watch streamed text appear."""
import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise RuntimeError("chromium and chromedriver are required (scripts/install-deps.sh installs them)")
    return browser, driver


def test_playground_streams_text(server):
    browser, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(server.url + "/")
        assert "flashneox" in driver.title
        prompt = driver.find_element(By.ID, "prompt")
        prompt.clear()
        prompt.send_keys("JULIET:\n")
        temperature = driver.find_element(By.ID, "temperature")
        temperature.clear()
        temperature.send_keys("0")
        driver.find_element(By.ID, "generate").click()
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: len(d.find_element(By.ID, "generated").text) > 0)
        wait.until(lambda d: "finished" in d.find_element(By.ID, "stats").text)
        assert "tokens/s" in driver.find_element(By.ID, "stats").text
        assert len(driver.find_element(By.ID, "generated").text.strip()) > 10
    finally:
        driver.quit()
