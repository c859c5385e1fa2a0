#!/usr/bin/env python3
"""Makes docs/status-page.png: the admin port's status page of a real host carrying traffic, in
Debian's headless Chromium.

The host runs pipelines/demo.json's stages in front of two echo upstreams with a warm pool
(a, b) and one that refuses every connect (c), so the breaker has opened c's circuit (after two
refusals here) and the page offers "reset breaker". The page stays open while sssonector-bench drives a few minutes'
worth of changing load (echo, then connection churn), so its chart has a history to draw.
Chromium is driven over its DevTools pipe (--remote-debugging-pipe: commands on descriptor 3,
answers on 4, each message ended by a NUL), as the tests do (Tests/.../HeadlessBrowser.swift).

Needs a debug build (`swift build`) and chromium (scripts/install-dependencies.sh --tests).
Usage: scripts/status-page-screenshot.py [--out docs/status-page.png] [--seconds 200]
"""
import argparse
import base64
import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, ".build", "debug")


def wait_for_line(path, pattern, seconds=30):
    """The first match of `pattern` in the file a child writes, waiting for it to appear."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        with open(path) as f:
            match = re.search(pattern, f.read())
        if match:
            return match
        time.sleep(0.1)
    sys.exit(f"{path} never printed {pattern!r}:\n" + open(path).read())


class Browser:
    """Chromium with one page, over the DevTools pipe."""

    def __init__(self, width, height, profile):
        reads, self.commands = os.pipe()
        self.answers, writes = os.pipe()
        # Above 4 first, so that placing them at 3 and 4 in the child never overwrites one another.
        reads_high, writes_high = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (reads, writes))
        os.close(reads)
        os.close(writes)
        self.process = subprocess.Popen(
            ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "--hide-scrollbars",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=lambda: (os.dup2(reads_high, 3), os.dup2(writes_high, 4)))
        os.close(reads_high)
        os.close(writes_high)
        self.buffer = b""
        self.next_id = 0
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def send(self, method, params, in_page=False):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if in_page:
            message["sessionId"] = self.session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.answers, 1 << 20)
                if not chunk:
                    sys.exit("chromium ended")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    sys.exit(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression):
        return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, True)["result"].get("value")

    def close(self):
        try:
            self.send("Browser.close", {})
        except SystemExit:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "status-page.png"))
    parser.add_argument("--seconds", type=int, default=200, help="how long the load runs while the page is open")
    args = parser.parse_args()
    for needed in [os.path.join(BIN, "sssonector"), os.path.join(BIN, "sssonector-bench"), "/usr/bin/chromium"]:
        if not os.access(needed, os.X_OK):
            sys.exit(f"{needed} is missing: run `swift build` and scripts/install-dependencies.sh --tests")

    work = tempfile.mkdtemp(prefix="status-page-")
    children = []
    browser = None
    try:
        def start(name, command):
            log = os.path.join(work, name + ".log")
            children.append(subprocess.Popen(command, stdout=open(log, "w"), stderr=subprocess.STDOUT))
            return log

        echoes = [wait_for_line(start(f"echo{i}", [os.path.join(BIN, "sssonector-bench"), "echo", "-listen", "127.0.0.1:0"]),
                                r"listening on .*:(\d+)").group(1) for i in range(2)]
        # A port nothing listens on: every connect to c is refused.
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        refused = closed.getsockname()[1]
        with open(os.path.join(ROOT, "pipelines", "demo.json")) as f:
            pipeline = json.load(f)
        pipeline.pop("$schema", None)
        pipeline["listen"]["address"] = "127.0.0.1:0"
        pipeline["upstreams"] = [{"name": "a", "address": f"127.0.0.1:{echoes[0]}"},
                                 {"name": "b", "address": f"127.0.0.1:{echoes[1]}"},
                                 {"name": "c", "address": f"127.0.0.1:{refused}", "pool": {"enabled": False}}]
        pipeline["connection"]["pool"] = {"enabled": True, "min_idle": 2}
        # c's circuit opens on its first two refusals (before the health checks take it out of
        # the rotation) and stays open for the picture.
        breaker = next(stage for stage in pipeline["stages"] if stage["plugin"] == "breaker")
        breaker["config"].update({"max_failures": 2, "reset_timeout": "1h"})
        file = os.path.join(work, "demo.json")
        with open(file, "w") as f:
            json.dump(pipeline, f)
        host_log = start("host", [os.path.join(BIN, "sssonector"), "run", "--admin", "127.0.0.1:0", file])
        admin = wait_for_line(host_log, r"admin listening on .*:(\d+)").group(1)
        port = wait_for_line(host_log, r"pipeline edge listening on .*:(\d+)").group(1)

        browser = Browser(1400, 1100, os.path.join(work, "profile"))
        browser.send("Page.navigate", {"url": f"http://127.0.0.1:{admin}/"}, True)

        def load(mode, connections, seconds, interval="0s"):
            subprocess.run([os.path.join(BIN, "sssonector-bench"), "load", "-target", f"127.0.0.1:{port}",
                            "-mode", mode, "-connections", str(connections), "-duration", f"{seconds}s",
                            "-warmup", "0s", "-interval", interval, "-payload", "16384"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

        step = max(5, args.seconds // 5)
        load("echo", 10, step, "20ms")
        load("echo", 40, step, "10ms")
        load("connect", 8, step)
        load("echo", 20, step, "50ms")
        time.sleep(step)  # idle, so the chart shows the load ending
        shot = browser.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, True)
        with open(args.out, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        status = browser.evaluate("document.getElementById('status').textContent")
        print(f"wrote {args.out}; the page said: {status}")
    finally:
        if browser:
            browser.close()
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
