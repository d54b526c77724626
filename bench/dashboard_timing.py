"""Times each dashboard page on a running server: navigation to drawn, median of 5 (see
bench/dashboard.sh). Prints a table and writes bench/results/dashboard.{json,md}."""
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "browser"))
import test_dashboard as t  # the same browser set-up as the tests

url, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cold = float(sys.argv[4]) if len(sys.argv) > 4 else None
cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
driver = t.browser()
server = type("S", (), {"url": url})()
p = t.Page(driver, server)
q = json.dumps([0.1] * dim)
cases = [
    ("collections", "collections", None),
    ("points", "points/c", None),
    ("search (page)", "search/c", None),
    ("explain (page)", "explain/c", None),
    ("by hand", "byhand", None),
    ("map, 1,000-point sample", "map/c", None),
    ("map, 5,000-point sample + query", "map/c", "map5000"),
    ("search, vector query typed", "search/c", "search"),
    ("metrics", "metrics", None),
]
rows = []
for label, route, action in cases:
    page = route.split("/")[0]
    times = []
    for _ in range(6):
        p.d.get("about:blank")
        t0 = time.perf_counter()
        p.open(route, page)
        if action == "map5000":
            s = p.find("#map-sample")
            s.clear()
            s.send_keys("5000")
            p.find("#map-query-input").send_keys(q)
            t0 = time.perf_counter()
            p.submit("#map-sample")
            # Polled in the page: asking WebDriver for 5,000 elements would time the asking.
            p.wait(lambda d: d.execute_script("const m = document.getElementById('main'); return m.dataset.ready === 'true' && m.dataset.mapped === '5000' && document.querySelectorAll('#map-svg circle.point').length === 5000 && !!document.getElementById('map-query')"), "5,000 points")
        elif action == "search":
            p.d.execute_script("document.getElementById('mode').value = 'vector'")
            p.find("#query").send_keys(q)
            t0 = time.perf_counter()
            p.submit("#query")
            p.wait(lambda d: t.ids_of_rows(p, "#hits"), "hits")
        times.append(time.perf_counter() - t0)
    times = times[1:]  # the first load warms the browser's cache of the page's files
    errors = p.console_errors()
    rows.append({"page": label, "median_s": statistics.median(times), "max_s": max(times), "console_errors": len(errors)})
    print(f"{label:36s} median {statistics.median(times) * 1e3:7.0f} ms  max {max(times) * 1e3:7.0f} ms", flush=True)
driver.quit()
os.makedirs("bench/results", exist_ok=True)
out = {"points": n, "dim": dim, "cpu": cpu, "runs": 5, "pages": rows, "first_request_after_start_s": cold}
json.dump(out, open("bench/results/dashboard.json", "w"), indent=1)
with open("bench/results/dashboard.md", "w") as f:
    f.write(f"# Dashboard pages on {n:,} points x {dim} (HNSW index, a payload per point)\n\n")
    f.write(f"Headless Chromium on {cpu} (2 cores), server and browser on the same machine; from the navigation\n")
    f.write("(or the submit, for the typed actions) to the page drawn with its data; median and max of 5 after one warm-up load.\n")
    f.write("Produced by `bash bench/dashboard.sh`.\n\n| page | median | max |\n| --- | ---: | ---: |\n")
    for r in rows:
        f.write(f"| {r['page']} | {r['median_s'] * 1e3:.0f} ms | {r['max_s'] * 1e3:.0f} ms |\n")
    f.write("\nEach time includes loading the page's files and asking the server what the key may do (about 200 ms of\n")
    f.write("every row). No page reads the whole collection: the map samples by random row probes.\n")
    if cold is not None:
        f.write(f"\nNot in the table: the first request after `quiver serve` starts opens the collection, {cold:.1f} s here\n")
        f.write("(the graph and codes file is read into memory: the part of issue 15's constant-time open still missing).\n")
