"""The inspect page at its stated size: 512 tokens × 16 heads, rendered in headless Chromium.

For a random 16-head Transformer of width 64 and 1, 2 and 4 layers over 512 tokens, the page
`seqlab.inspect.page.inspect_page` writes is loaded from disk by Playwright's Chromium, and timed
from navigation to the first frame after the page's scripts have drawn every view (the load event,
then two animation frames); then a head's thumbnail is clicked and timed to the frame after the
enlarged view is drawn. Reported: page size, load-to-render time (best and median of 3 loads),
enlarge time, and the bar (render under 2 s).

    python benchmarks/bench_inspect.py [--layers 1 2 4] [--repeats 3]

Chromium: /usr/bin/chromium (or `chromium` on PATH); without it the benchmark says so and measures
only the page sizes.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.common import machine_line, print_table, save  # noqa: E402

TOKENS = 512
HEADS = 16
WIDTH = 64
BAR_S = 2.0
NEXT_FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


def build_page(n_layer: int) -> str:
    from seqlab.config.schema import ModelConfig
    from seqlab.inspect import trace
    from seqlab.inspect.page import inspect_page
    from seqlab.models import TransformerLM

    torch.manual_seed(0)
    model = TransformerLM(ModelConfig(n_layer=n_layer, n_head=HEADS, d_model=WIDTH, block_size=TOKENS), 128).eval()
    ids = torch.randint(0, 128, (TOKENS,), generator=torch.Generator().manual_seed(0)).tolist()
    return inspect_page(trace(model, ids), [chr(32 + i % 90) for i in ids], top_strings=[chr(i) for i in range(128)])


def chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def render_times(path: Path, executable: str, repeats: int) -> tuple[list[float], float]:
    """Seconds from navigation to the frame after the first render, per load; and the seconds from a
    thumbnail click to the frame after the enlarged head is drawn (on the last load)."""
    from playwright.sync_api import sync_playwright

    loads, enlarge = [], float("nan")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            for _ in range(repeats):
                tab = browser.new_page()
                errors: list[str] = []
                tab.on("pageerror", lambda e: errors.append(str(e)))
                start = time.perf_counter()
                tab.goto(path.as_uri(), wait_until="load")
                tab.evaluate(NEXT_FRAMES)
                loads.append(time.perf_counter() - start)
                if errors:
                    raise RuntimeError(f"the page raised: {errors[0]}")
                start = time.perf_counter()
                tab.locator("#model-view .thumb").nth(HEADS // 2).click()
                tab.evaluate(NEXT_FRAMES)
                enlarge = time.perf_counter() - start
                tab.close()
        finally:
            browser.close()
    return loads, enlarge


def run(layers: tuple[int, ...] = (1, 2, 4), repeats: int = 3) -> dict:
    executable = chromium()
    if executable is None:
        print("Chromium is not installed (/usr/bin/chromium): page sizes only")
    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n_layer in layers:
            start = time.perf_counter()
            page = build_page(n_layer)
            build_s = time.perf_counter() - start
            path = Path(tmp) / f"page-{n_layer}.html"
            path.write_text(page, encoding="utf-8")
            entry = {"layers": n_layer, "bytes": len(page.encode()), "build_s": build_s}
            if executable is not None:
                loads, enlarge = render_times(path, executable, repeats)
                entry.update(render_best_s=min(loads), render_median_s=statistics.median(loads), enlarge_s=enlarge,
                             under_bar=statistics.median(loads) < BAR_S)
            results.append(entry)
            rows.append([n_layer, f"{entry['bytes']:,}", f"{build_s:.2f}",
                         *([f"{entry['render_best_s']:.2f}", f"{entry['render_median_s']:.2f}", f"{enlarge:.2f}",
                            "yes" if entry["under_bar"] else "NO"] if executable else ["-"] * 4)])
    print_table(f"inspect page: {TOKENS} tokens x {HEADS} heads, rendered in headless Chromium", rows,
                ["layers", "page bytes", "build s", "render best s", "render median s", "enlarge s",
                 f"median < {BAR_S:g} s"])
    result = {"machine": machine_line(), "tokens": TOKENS, "heads": HEADS, "width": WIDTH, "pages": results}
    save("inspect_page", result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine_line()}")
    run(tuple(args.layers), args.repeats)


if __name__ == "__main__":
    main()
