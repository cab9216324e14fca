"""Screenshot of the demo page: serve an export base, explain one review in headless Chromium, save a PNG.

    python scripts/demo_screenshot.py --model-base saved_models/sst2_bilstm --output docs/img/demo_page.png

Needs the serve extra, selenium and Debian's chromium + chromium-driver (`make setup` installs them).
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

REVIEW = "A gorgeous, witty, seductive movie, though the plot is thin and the ending drags."


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_served(url, process, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit(f"error: the server exited ({process.returncode}); see its output above")
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"error: {url} did not answer within {seconds} s")


def screenshot(url, review, output, width, height):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "model-version").text not in ("", "…"))
        driver.find_element(By.ID, "text").send_keys(review)
        driver.find_element(By.ID, "explain-button").click()
        WebDriverWait(driver, 120).until(EC.visibility_of_element_located((By.ID, "result")))
        time.sleep(0.5)  # the probability bar's 0.2 s transition
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        driver.save_screenshot(output)
    finally:
        driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", required=True, help="export base to serve (integer version folders)")
    parser.add_argument("--output", default="docs/img/demo_page.png", help="PNG to write")
    parser.add_argument("--review", default=REVIEW, help="the review typed into the page")
    parser.add_argument("--width", type=int, default=1000, help="window width in pixels")
    parser.add_argument("--height", type=int, default=760, help="window height in pixels")
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "keras_sentiment.apps.cli", "serve", "--model-base", args.model_base,
                               "--port", str(port)], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_served(url, server)
        screenshot(url, args.review, args.output, args.width, args.height)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"Screenshot: {args.output}")


if __name__ == "__main__":
    main()
