"""`seqlab serve` under a browser and under load (not unit tests: timings on a shared machine).

1. Keystroke to updated bars: headless Chromium types a 200-character Shakespeare passage into the
   page of a `seqlab --threads 1 serve RUN` process (RUN a shakespeare-char Transformer: runs/demo
   when it is one, else a briefly trained one), a key every 150 ms (a fast typist, 80 words a
   minute), after 20 keys of warm-up; the page records, for each keystroke, the time from its input
   event to the frame after the next-token bars were redrawn for its text or a later one
   (`window.seqlab.timings`). Beside it, the library's own work per keystroke (one
   `seqlab.serve.views.distribution_view` in this process, on one thread, same texts): the
   ratio says what the web round trip adds. The quality bar is p95 < 100 ms.
2. Load: 20 clients stream generations (100 tokens, random seeds; every 4th closes its stream after
   10 tokens, like the stop button) from a fresh server for 60 s. Counted: requests, tokens, errors,
   HTTP statuses (no 5xx allowed), and the server's resident memory (VmRSS) every 5 s: flat means
   the end within a few MB of the start.

    python benchmarks/bench_serve.py [--run runs/demo] [--seconds 60] [--clients 20] [--keystrokes 200]

Chromium: /usr/bin/chromium (or `chromium` on PATH); without it the browser part is skipped with a
message and the load part still runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import machine_line, print_table, save  # noqa: E402

PASSAGE = ("To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer the slings "
           "and arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end them. "
           "To die: to sleep; no more; and by a sleep to say we end the heart-ache.")
WARMUP_KEYS = 20
KEY_INTERVAL = 0.15  # seconds between keystrokes: a fast typist (80 words a minute)


def chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def shakespeare_run(given: str | None) -> Path:
    """A shakespeare-char Transformer run: `given`, runs/demo when it is one, else one trained now."""
    from seqlab import api
    from seqlab.runs import read_config

    for path in [given] if given else ["runs/demo", "runs/shakespeare-char"]:
        try:
            config = read_config(Path(path))
        except Exception:  # noqa: BLE001 - not a run: look further
            if given:
                raise
            continue
        if config.data.corpus == "shakespeare" and config.tokenizer.kind == "char":
            return Path(path)
    out = Path(tempfile.mkdtemp()) / "shakespeare-char"
    print(f"no shakespeare-char run in runs/: training a short one in {out}")
    return api.train("shakespeare-char", out=out, overrides=["train.max_steps=200", "train.eval_every=0"],
                     progress=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m seqlab --threads 1 serve RUN` in a child process."""

    def __init__(self, run: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen([sys.executable, "-m", "seqlab", "--threads", "1", "serve", str(run),
                                         "--port", str(self.port)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/api/runs", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not start: {self.output()}")

    def rss_mb(self) -> float:
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---- 1. keystroke to bars -----------------------------------------------------------------------

def keystrokes(run: Path, count: int) -> dict | None:
    browser_path = chromium()
    if browser_path is None:
        print("\nkeystroke benchmark skipped: Chromium is not installed (/usr/bin/chromium; apt-get install chromium)")
        return None
    from playwright.sync_api import sync_playwright

    text = (PASSAGE * (1 + (count + WARMUP_KEYS) // len(PASSAGE)))[:count + WARMUP_KEYS]
    server = Server(run)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path)
            # CSP bypassed for wait_for_function's polling only; the page's requests are unchanged.
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready='1']")
            page.focus("#text")
            for i, char in enumerate(text):
                if i == WARMUP_KEYS:  # after the warm-up keys are shown, count from here
                    page.wait_for_function("n => window.seqlab.timings.length >= n", arg=WARMUP_KEYS,
                                           polling="raf", timeout=30_000)
                    page.evaluate("() => { window.seqlab.timings.length = 0; }")
                started = time.perf_counter()
                page.keyboard.type(char)
                time.sleep(max(0.0, KEY_INTERVAL - (time.perf_counter() - started)))
            page.wait_for_function("n => window.seqlab.timings.length >= n", arg=count, polling="raf",
                                   timeout=30_000)
            timings = page.evaluate("() => window.seqlab.timings")
            browser.close()
    finally:
        server.stop()
    library = library_times(run, text[WARMUP_KEYS:], text[:WARMUP_KEYS])
    result = {"keystrokes": len(timings), "p50_ms": statistics.median(timings), "p95_ms": percentile(timings, 0.95),
              "p99_ms": percentile(timings, 0.99), "max_ms": max(timings),
              "library_p50_ms": statistics.median(library), "library_p95_ms": percentile(library, 0.95)}
    result["p95_ratio_page_vs_library"] = result["p95_ms"] / result["library_p95_ms"]
    print_table(f"keystroke -> updated bars, {run} (headless Chromium, server on 1 thread), {len(timings)} keys",
                [["page: input event -> bars redrawn", f"{result['p50_ms']:.1f}", f"{result['p95_ms']:.1f}",
                  f"{result['max_ms']:.1f}"],
                 ["library: distribution_view alone", f"{result['library_p50_ms']:.1f}",
                  f"{result['library_p95_ms']:.1f}", f"{max(library):.1f}"]],
                ["", "p50 ms", "p95 ms", "max ms"])
    print(f"p95 page / library = {result['p95_ratio_page_vs_library']:.1f}x; quality bar p95 < 100 ms: "
          f"{'met' if result['p95_ms'] < 100 else 'NOT met'}")
    return result


def library_times(run: Path, text: str, warmup: str) -> list[float]:
    """ms of `distribution_view` (the page's default 30 bars, the run's sampling) for each prefix."""
    from seqlab.serve import load_runs, views

    torch.set_num_threads(1)
    served = load_runs([run])[0]
    sample = served.config.sample
    times = []
    for i in range(1, len(warmup) + len(text) + 1):
        prefix = (warmup + text)[:i]
        start = time.perf_counter()
        views.distribution_view(served, prefix, temperature=sample.temperature, top_k=sample.top_k,
                                top_p=sample.top_p, bars=30)
        if i > len(warmup):
            times.append(1000 * (time.perf_counter() - start))
    served.close()
    return times


# ---- 2. load ------------------------------------------------------------------------------------

async def _client(url: str, stop_at: float, rng: random.Random, tally: dict) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        n = 0
        while time.time() < stop_at:
            n += 1
            hang_up = n % 4 == 0
            body = {"run": 0, "prompt": rng.choice(["ROMEO:", "JULIET:", "To be", ""]), "max_new_tokens": 100,
                    "seed": rng.randrange(2**31)}
            try:
                async with client.stream("POST", "/api/generate/stream", json=body) as response:
                    tally["status"][response.status_code] = tally["status"].get(response.status_code, 0) + 1
                    tokens = 0
                    async for line in response.aiter_lines():
                        if line.startswith('data: {"type": "token"'):
                            tokens += 1
                            if hang_up and tokens == 10:
                                break
                    tally["tokens"] += tokens
                    tally["hung_up" if hang_up else "finished"] += 1
            except httpx.HTTPError as exc:
                tally["errors"].append(repr(exc))


def load(run: Path, seconds: float, clients: int) -> dict:
    server = Server(run)
    try:
        httpx.post(server.url + "/api/generate", json={"run": 0, "max_new_tokens": 20}, timeout=60)  # warm up
        tally = {"status": {}, "tokens": 0, "finished": 0, "hung_up": 0, "errors": []}
        rss = [server.rss_mb()]

        async def main() -> None:
            stop_at = time.time() + seconds
            tasks = [asyncio.create_task(_client(server.url, stop_at, random.Random(i), tally)) for i in range(clients)]
            while time.time() < stop_at:
                await asyncio.sleep(5)
                rss.append(server.rss_mb())
            await asyncio.gather(*tasks)

        start = time.time()
        asyncio.run(main())
        elapsed = time.time() - start
        rss.append(server.rss_mb())
        still_up = httpx.get(server.url + "/api/runs", timeout=10).status_code == 200
    finally:
        server.stop()
    log = server.output()
    result = {"clients": clients, "seconds": elapsed, "requests": tally["finished"] + tally["hung_up"],
              "hung_up": tally["hung_up"], "tokens": tally["tokens"], "tokens_per_s": tally["tokens"] / elapsed,
              "status": tally["status"], "errors": len(tally["errors"]), "first_errors": tally["errors"][:3],
              "server_5xx": sum(v for k, v in tally["status"].items() if k >= 500),
              "internal_errors_logged": log.count("internal error"),
              "rss_mb": [round(r, 1) for r in rss], "rss_start_mb": rss[0], "rss_end_mb": rss[-1],
              "server_alive_after": still_up}
    print_table(f"{clients} clients streaming generations from {run} for {seconds:.0f} s (server on 1 thread)",
                [[str(result["requests"]), str(result["hung_up"]), f"{result['tokens_per_s']:.0f}",
                  str(result["errors"]), str(result["server_5xx"]), f"{rss[0]:.1f}", f"{rss[-1]:.1f}", f"{max(rss):.1f}"]],
                ["requests", "closed early", "tokens/s", "errors", "5xx", "RSS start MB", "RSS end MB", "RSS max MB"])
    print(f"statuses {result['status']}; RSS every 5 s: {result['rss_mb']}")
    return result


def run(run_dir: str | None = None, *, seconds: float = 60, clients: int = 20, keys: int = 200) -> dict:
    print(f"\nseqlab serve benchmarks [{machine_line()}]")
    run_path = shakespeare_run(run_dir)
    result = {"run": str(run_path), "keystrokes": keystrokes(run_path, keys), "load": load(run_path, seconds, clients)}
    path = save("serve", result)
    print(f"saved {path}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a shakespeare-char run (default runs/demo, else one trained now)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--keystrokes", type=int, default=200)
    args = parser.parse_args()
    run(args.run, seconds=args.seconds, clients=args.clients, keys=args.keystrokes)
