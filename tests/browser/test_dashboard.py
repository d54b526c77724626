"""The dashboard in a real browser: headless Chromium (Debian's chromium and chromium-driver,
installed by scripts/browser.sh) driven through WebDriver (selenium), against `quiver serve`.

Checks, on a server holding a text collection (documents embedded by the server with
all-MiniLM-L6-v2) and a vector collection of clustered points:
- every page loads and draws with no error in the browser's console;
- a text search typed into the Search page returns the same hits, in order, as the REST API;
  hybrid search shows the dense and keyword rankings beside their fusion, each equal to REST;
- the By hand page shows "who am I" for "am I you" and, for another query, the scores and the
  nearest the server computes for it;
- the Map draws as many points as the sample, and a query with its neighbours;
- the Explain page draws tokens, the token-embedding heat map, the plan and the winners;
- the Points page shows a filter's error as the server words it, and pages through points;
- a server with API keys: the key prompt appears; the read-only key hides every write control,
  the full key shows them and can create a collection from the page.
Screenshots of every page go to target/dashboard/.

Usage: python tests/browser/test_dashboard.py path/to/quiver
Prints one line per test and a closing 'browser: N passed, M failed'.
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

QUIVER = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/quiver")
SHOTS = os.path.abspath("target/dashboard")
TOPICS = {
    "cats": ["The cat sleeps on the warm windowsill", "Kittens chase a ball of yarn", "A tabby cat purrs on the sofa",
             "Cats groom their fur every day", "The kitten hides under the bed", "An old cat naps in the sun"],
    "cooking": ["Simmer the tomato sauce for twenty minutes", "Knead the bread dough until smooth", "Roast the vegetables with olive oil",
                "Whisk eggs and sugar for the cake", "Season the soup with salt and pepper", "Bake the pie at two hundred degrees"],
    "space": ["The rocket launched toward the moon", "Astronauts repair the space station", "A telescope photographs distant galaxies",
              "Mars rovers drive across red dust", "The comet passes close to the sun", "Satellites orbit the earth every ninety minutes"],
    "finance": ["Interest rates rose again this quarter", "The stock market closed higher today", "Bonds pay a fixed coupon each year",
                "Inflation reduces the value of savings", "The bank approved the mortgage loan", "Investors diversify across many assets"],
}
MAP_POINTS = 2000
MAP_DIM = 16


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *extra, key=None):
        self.dir = tempfile.mkdtemp(prefix="quiver-browser-")
        self.port = free_port()
        self.key = key
        self.proc = subprocess.Popen(
            [QUIVER, "--data-dir", self.dir, "serve", "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline()  # blocks until the server is listening
        assert "quiver serving on" in line, f"server did not start: {line!r}"
        self.url = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.key:
            req.add_header("api-key", self.key)
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())["result"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def fill(server):
    server.call("PUT", "/collections/docs", {"vectors": {"size": 384, "distance": "Cosine"}, "embedder": "all-minilm-l6-v2"})
    points = []
    for t, texts in TOPICS.items():
        for text in texts:
            points.append({"id": len(points) + 1, "vector": {"text": text}, "payload": {"topic": t, "n": len(points)}})
    server.call("PUT", "/collections/docs/points?wait=true", {"points": points})
    server.call("PUT", "/collections/docs/index", {"field_name": "document", "field_schema": "text"})
    server.call("PUT", "/collections/docs/index", {"field_name": "topic", "field_schema": "keyword"})
    rng = random.Random(11)
    centres = [[rng.gauss(0, 4) for _ in range(MAP_DIM)] for _ in range(5)]
    vecs = []
    for i in range(MAP_POINTS):
        c = i % 5
        vecs.append({"id": i, "vector": [x + rng.gauss(0, 1) for x in centres[c]], "payload": {"cluster": f"c{c}", "i": i}})
    server.call("PUT", "/collections/vecs", {"vectors": {"size": MAP_DIM, "distance": "Euclid"}})
    server.call("PUT", "/collections/vecs/points?wait=true", {"points": vecs})
    server.call("PUT", "/collections/terms", {"sparse_vectors": {"kw": {"modifier": "idf"}}})
    sparse = [{"id": i, "vector": {"kw": {"indices": [i % 5, 10 + i % 9], "values": [1.0, 1.0 + i % 3]}}, "payload": {"i": i}} for i in range(60)]
    server.call("PUT", "/collections/terms/points?wait=true", {"points": sparse})


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp(prefix='quiver-chromium-')}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


class Page:
    def __init__(self, driver, server):
        self.d = driver
        self.s = server

    def console_errors(self):
        return [e for e in self.d.get_log("browser") if e["level"] == "SEVERE"]

    def wait(self, cond, what, timeout=60):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.05).until(lambda d: cond(d))
        except TimeoutException:
            raise AssertionError(f"timed out waiting for {what}")

    def ready(self, page):
        return self.wait(lambda d: d.execute_script(
            "const m = document.getElementById('main'); return m && m.dataset.page === arguments[0] && m.dataset.ready === 'true'", page),
            f"page {page} to be drawn")

    def open(self, route, page):
        # A fresh load each time: going to an address that differs only after '#' would keep
        # the page (and what was typed into it).
        self.d.get("about:blank")
        self.d.get(f"{self.s.url}/dashboard/#/{route}")
        self.ready(page)

    def shot(self, name):
        # The whole page: the window grows to the page's height for the picture.
        os.makedirs(SHOTS, exist_ok=True)
        height = self.d.execute_script("return document.documentElement.scrollHeight")
        self.d.set_window_size(1400, min(max(1000, height + 160), 4000))
        self.d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))
        self.d.set_window_size(1400, 1000)

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def submit(self, form_child_css):
        self.d.execute_script("arguments[0].form.requestSubmit()", self.find(form_child_css))


def ids_of_rows(p, table_css):
    # One script call: the rows may be redrawn between two WebDriver calls.
    return p.d.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map(tr => tr.dataset.id).filter(x => x !== undefined)", table_css)


def rest_ids(points):
    return [str(x["id"]) for x in points]


def test_every_page_loads_without_console_errors(p):
    for route, page in [("collections", "collections"), ("points/docs", "points"), ("search/docs", "search"), ("explain/docs", "explain"),
                        ("byhand", "byhand"), ("map/vecs", "map"), ("metrics", "metrics")]:
        p.open(route, page)
        p.shot(page)
        errors = p.console_errors()
        assert not errors, f"console errors on {page}: {errors}"
    rows = p.d.execute_script("location.hash = '#/collections'; return 0")
    p.ready("collections")
    names = [tr.get_attribute("data-collection") for tr in p.finds("#collections tbody tr")]
    assert names == ["docs", "terms", "vecs"], names


def test_text_search_equals_rest(p):
    p.open("search/docs", "search")
    q = "a sleepy kitten"
    box = p.find("#query")
    box.clear()
    box.send_keys(q)
    p.find("#mode").send_keys("text")
    p.submit("#query")
    p.wait(lambda d: len(ids_of_rows(p, "#hits")) > 0 and d.execute_script("return document.getElementById('main').dataset.ready") == "true", "search hits")
    shown = ids_of_rows(p, "#hits")
    rest = rest_ids(p.s.call("POST", "/collections/docs/points/query", {"query": {"text": q}, "limit": 10, "with_payload": True})["points"])
    assert shown == rest, (shown, rest)
    assert shown[0] in {str(i) for i in range(1, 7)}, f"a cat sentence first: {shown}"
    p.shot("search")
    assert not p.console_errors()


def test_hybrid_shows_both_rankings_and_fusion(p):
    p.open("search/docs", "search")
    q = "cat sleeps"
    p.d.execute_script("document.getElementById('mode').value = 'hybrid'")
    p.find("#query").send_keys(q)
    p.submit("#query")
    p.wait(lambda d: len(ids_of_rows(p, "#hits")) > 0, "fused hits")
    depth = 30
    dense = rest_ids(p.s.call("POST", "/collections/docs/points/query", {"query": {"text": q}, "limit": depth})["points"])[:10]
    keyword = rest_ids(p.s.call("POST", "/collections/docs/points/query", {"query": q, "using": "bm25", "limit": depth})["points"])[:10]
    fused = rest_ids(p.s.call("POST", "/collections/docs/points/query", {
        "prefetch": [{"query": {"text": q}, "limit": depth}, {"query": q, "using": "bm25", "limit": depth}],
        "query": {"fusion": "rrf"}, "limit": 10})["points"])
    assert ids_of_rows(p, "#dense") == dense, (ids_of_rows(p, "#dense"), dense)
    assert ids_of_rows(p, "#keyword") == keyword, (ids_of_rows(p, "#keyword"), keyword)
    assert ids_of_rows(p, "#hits") == fused, (ids_of_rows(p, "#hits"), fused)
    p.shot("search-hybrid")


def test_by_hand(p):
    p.open("byhand", "byhand")
    assert p.find("#nearest").text == "who am I", p.find("#nearest").text
    # The sheet's matrices are all there: E (two halves), W, X, b, W X + b, H, mean, P, vector, V, q, V q.
    names = [e.text for e in p.finds(".matrix .name")]
    for n in ["W", "X", "b", "W X + b", "H = ReLU", "mean", "P", "vector", "V", "q", "V q"]:
        assert n in names, (n, names)
    p.shot("byhand")
    box = p.find("#byhand-query")
    box.clear()
    box.send_keys("you")
    p.submit("#byhand-query")
    p.wait(lambda d: "\"you\"" in d.find_element(By.ID, "byhand-out").text, "the sheet for the new query")
    rest = p.s.call("GET", "/walkthrough?query=you")
    assert p.find("#nearest").text == rest["nearest"]["text"]
    shown = [c.text for c in p.finds(".matrix")[-0:] if c.find_element(By.CSS_SELECTOR, ".name").text == "V q"]
    want = [f"{v:.2f}" if v != int(v) else str(int(v)) for v in rest["dot_products"]["scores"]]
    assert shown and all(w in shown[-1] for w in want), (shown, want)
    # A word outside the vocabulary: the server's error, shown.
    box = p.find("#byhand-query")
    box.clear()
    box.send_keys("hello")
    p.submit("#byhand-query")
    p.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#byhand-out .error"), "the error for an unknown word")
    assert "hello" in p.find("#byhand-out .error").text


def test_map_draws_the_sample(p):
    p.open("map/vecs", "map")
    fills = p.d.execute_script("return [...document.querySelectorAll('#map-svg circle.point')].map(c => c.getAttribute('fill'))")
    n = len(fills)
    assert n == 1000 == int(p.find("#main").get_attribute("data-mapped")), n
    # Five clusters: coloured by the first payload key, five colours.
    colours = set(fills)
    assert len(colours) == 5, colours
    sample = p.find("#map-sample")
    sample.clear()
    sample.send_keys("250")
    p.find("#map-query-input").send_keys(json.dumps([0.0] * MAP_DIM))
    p.submit("#map-sample")
    p.wait(lambda d: d.execute_script("return document.querySelectorAll('#map-svg circle.point').length") == 250, "a 250-point map")
    assert len(p.finds("#map-svg circle.neighbour")) == 10
    assert p.finds("#map-query")
    p.shot("map")
    assert not p.console_errors()


def test_map_of_a_text_collection_with_a_query(p):
    p.open("map/docs", "map")
    assert len(p.finds("#map-svg circle.point")) == 24
    p.find("#map-query-input").send_keys("rockets and planets")
    p.submit("#map-sample")
    p.wait(lambda d: d.find_elements(By.ID, "map-query"), "the query on the map")
    assert len(p.finds("#map-svg circle.neighbour")) == 10


def test_explain(p):
    p.open("explain/docs", "explain")
    p.find("#explain-query").send_keys("where do cats sleep")
    p.submit("#explain-query")
    p.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#winners tr"), "the winners")
    tokens = p.d.execute_script("return [...document.querySelectorAll('#tokens .chip')].map(c => c.firstChild.textContent)")
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "cats" in tokens, tokens
    assert "exact scan" in p.find("#plan").text
    assert len(p.finds("#explain-out canvas")) >= 3
    assert len(p.finds("#winners tr")) == 5
    p.shot("explain")
    assert not p.console_errors()


def test_explain_a_sparse_query(p):
    p.open("explain/terms", "explain")
    assert p.find("#explain-kind").get_attribute("value") == "sparse:kw"
    q = {"indices": [2, 13, 500], "values": [1.0, 2.0, 1.0]}
    p.find("#explain-query").send_keys(json.dumps(q))
    p.submit("#explain-query")
    p.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#winners tr"), "the winners")
    rows = p.d.execute_script("return [...document.querySelectorAll('#terms tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
    assert [r[0] for r in rows] == ["2", "13", "500"], rows
    assert rows[0][5] == "12" and rows[2][7] == "absent", rows
    shown = p.d.execute_script("return [...document.querySelectorAll('#winners tr td:first-child')].map(c => c.textContent.trim().split(' ')[0])")
    rest = rest_ids(p.s.call("POST", "/collections/terms/points/query", {"query": q, "using": "kw", "limit": 5})["points"])
    assert shown == rest, (shown, rest)
    p.shot("explain-sparse")
    assert not p.console_errors()


def test_points_filter_errors_and_paging(p):
    p.open("points/vecs", "points")
    assert len(p.finds("#points tbody tr")) == 20
    first = ids_of_rows(p, "#points")
    p.find("#next-page").click()
    p.wait(lambda d: ids_of_rows(p, "#points") != first, "the next page")
    box = p.find("#filter")
    box.send_keys('{"must": [{"key": "cluster", "match": {"valu": "c1"}}]}')
    p.wait(lambda d: "error" in d.find_element(By.ID, "filter-message").get_attribute("class"), "the filter's error")
    msg = p.find("#filter-message").text
    try:
        p.s.call("POST", "/collections/vecs/points/scroll", {"filter": {"must": [{"key": "cluster", "match": {"valu": "c1"}}]}, "limit": 1})
        raise AssertionError("the server accepted a bad filter")
    except urllib.error.HTTPError as e:
        assert json.loads(e.read())["status"]["error"] == msg, msg
    box.clear()
    box.send_keys('{"must": [{"key": "cluster", "match": {"value": "c1"}}]}')
    p.wait(lambda d: d.find_element(By.ID, "filter-message").text == "Filter accepted.", "the filter accepted")
    p.wait(lambda d: all(int(r) % 5 == 1 for r in ids_of_rows(p, "#points")) and ids_of_rows(p, "#points"), "filtered points")
    assert len(p.finds("#points canvas.strip")) == 20
    p.shot("points")
    # 400s of the filter check are the only console errors (the browser logs failed loads).
    assert all("400" in e["message"] for e in p.console_errors())


def test_points_edit_payload_and_delete(p):
    p.open("points/docs", "points")
    p.d.execute_script("window.confirm = () => true")
    row = p.find("#points tbody tr[data-id='1']")
    row.find_element(By.XPATH, ".//button[text()='Edit payload']").click()
    box = row.find_element(By.CSS_SELECTOR, "textarea")
    box.clear()
    box.send_keys('{"topic": "cats", "edited": true}')
    row.find_element(By.XPATH, ".//button[text()='Save payload']").click()
    p.wait(lambda d: "edited" in d.find_element(By.CSS_SELECTOR, "#points tbody tr[data-id='1']").text, "the new payload shown")
    stored = p.s.call("POST", "/collections/docs/points", {"ids": [1], "with_payload": True})[0]["payload"]
    assert stored == {"topic": "cats", "edited": True}, stored
    before = p.s.call("POST", "/collections/docs/points/count", {})["count"]
    p.find("#points tbody tr[data-id='2']").find_element(By.XPATH, ".//button[text()='Delete']").click()
    p.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "#points tbody tr[data-id='2']"), "the row gone")
    assert p.s.call("POST", "/collections/docs/points/count", {})["count"] == before - 1
    assert p.s.call("POST", "/collections/docs/points", {"ids": [2]}) == []
    assert not p.console_errors()


def test_map_hover_shows_the_payload(p):
    from selenium.webdriver.common.action_chains import ActionChains
    p.open("map/vecs", "map")
    dot = p.finds("#map-svg circle.point")[0]
    ActionChains(p.d).move_to_element(dot).perform()
    tip = p.wait(lambda d: d.find_element(By.CSS_SELECTOR, ".tooltip") if d.find_element(By.CSS_SELECTOR, ".tooltip").is_displayed() else None, "the tooltip")
    assert "cluster" in tip.text and tip.text.startswith("id "), tip.text


def test_metrics(p):
    p.open("metrics", "metrics")
    routes = p.find("#routes").text
    assert "/collections/{name}/points/query" in routes, routes
    assert p.finds("#points-chart polyline")
    p.shot("metrics")


def test_keys(_p, driver):
    server = Server("--api-key", "full-key", "--read-only-api-key", "ro-key", key="full-key")
    try:
        server.call("PUT", "/collections/k", {"vectors": {"size": 4, "distance": "Dot"}})
        p = Page(driver, server)
        driver.get(f"{server.url}/dashboard/#/collections")
        p.wait(lambda d: d.find_element(By.ID, "key-dialog").is_displayed(), "the key prompt")
        p.shot("key-prompt")
        p.find("#key-input").send_keys("ro-key")
        p.find("#key-submit").click()
        p.ready("collections")
        assert "read-only" in p.find("body").get_attribute("class")
        assert not p.find("#create-form").is_displayed()
        assert not any(b.is_displayed() for b in p.finds("button.danger"))
        p.open("points/k", "points")
        assert not any(b.is_displayed() for b in p.finds("#points .write, #points button"))
        # A new tab session: the full key shows the write controls, and they work.
        driver.execute_script("sessionStorage.clear(); location.hash = '#/collections'")
        driver.refresh()
        p.wait(lambda d: d.find_element(By.ID, "key-dialog").is_displayed(), "the key prompt again")
        p.find("#key-input").send_keys("wrong")
        p.find("#key-submit").click()
        p.wait(lambda d: "refused" in d.find_element(By.ID, "key-reason").text, "the wrong key refused")
        p.find("#key-input").clear()
        p.find("#key-input").send_keys("full-key")
        p.find("#key-submit").click()
        p.ready("collections")
        assert p.find("#create-form").is_displayed()
        p.find("#new-name").send_keys("made-in-browser")
        p.find("#new-size").clear()
        p.find("#new-size").send_keys("8")
        p.submit("#new-name")
        p.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-collection='made-in-browser']"), "the new collection listed")
        assert server.call("GET", "/collections/made-in-browser")["config"]["params"]["vectors"]["size"] == 8
        assert not p.console_errors()
    finally:
        server.stop()


def main():
    shutil.rmtree(SHOTS, ignore_errors=True)
    server = Server()
    passed = failed = 0
    driver = None
    try:
        fill(server)
        driver = browser()
        p = Page(driver, server)
        tests = [(n, f) for n, f in globals().items() if n.startswith("test_")]
        for name, f in tests:
            t0 = time.time()
            try:
                driver.get_log("browser")  # start each test with an empty console
                if name == "test_keys":
                    f(p, driver)
                else:
                    f(p)
                passed += 1
                print(f"ok   {name} ({time.time() - t0:.1f}s)", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {name}", flush=True)
                traceback.print_exc()
                try:
                    p.shot(f"FAILED-{name}")
                except Exception:
                    pass
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    print(f"browser: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
