#!/usr/bin/env python3
"""Keygate benchmark: token issuance (opaque and JWT), validation,
forward-auth (opaque and JWT), introspection and /healthz
(the ceiling of this machine and HTTP stack), driven by wrk against the
release binary on a fresh SQLite database; then the same issuance and
validation runs with 1,000,000 tokens and 10,000 applications seeded.

Prints requests/s, p50/p99 latency, errors, peak server RSS, and every
figure as a ratio to the ceiling measured in the same run. Also prints the
wasm bundle size and the server's start-up time on an existing database.
"""
import base64, hashlib, json, os, re, secrets, sqlite3, string, subprocess, sys, tempfile, time, urllib.error, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "keygate")
DURATION = os.environ.get("BENCH_DURATION", "10s")
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = 2
PORT = int(os.environ.get("BENCH_PORT", "3291"))
BASE = f"http://127.0.0.1:{PORT}"
HIGH = ["--rate-per-second", "100000", "--rate-per-hour", "100000000"]


def cli(db, *args):
    out = subprocess.run([BIN, *args, "--database-url", db], check=True, capture_output=True, text=True)
    return json.loads(out.stdout) if "--json" in args else out.stdout


def rss_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


KEY_FILE = os.path.join(tempfile.mkdtemp(prefix="keygate-bench-key-"), "keygate.key")


class Server:
    def __init__(self, db, port=PORT):
        self.db = db
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, KEYGATE_LOG="warn")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen([BIN, "serve", "--addr", f"127.0.0.1:{port}", "--database-url", db,
                                      "--key-file", KEY_FILE],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.005)
            if time.perf_counter() - t0 > 10:
                raise SystemExit("server did not start within 10 s")
        self.startup_ms = (time.perf_counter() - t0) * 1000

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def token(client_id, secret, base=BASE):
    req = urllib.request.Request(f"{base}/oauth2/token", data=b"grant_type=client_credentials", method="POST")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode())
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(req) as r:
        return json.load(r)["access_token"]


def wrk(name, path, script, server):
    return wrk_many(name, path, script, [server])


def wrk_many(name, path, script, servers):
    """One wrk per server, all at once; figures summed (latencies of the first)."""
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lua.write(script)
    lua.close()
    threads = max(1, THREADS // len(servers))
    conns = max(threads, CONNECTIONS // len(servers))
    procs = [subprocess.Popen(["wrk", "-t", str(threads), "-c", str(conns), "-d", DURATION, "--latency", "-s", lua.name,
                               s.base + path], stdout=subprocess.PIPE, text=True) for s in servers]
    outs = [p.communicate()[0] for p in procs]
    os.unlink(lua.name)
    parsed = [parse_wrk(name, out, s) for out, s in zip(outs, servers)]
    total = dict(parsed[0])
    for key in ("rps", "errors", "requests"):
        total[key] = sum(r[key] for r in parsed)
    total["peak_rss_mb"] = max(r["peak_rss_mb"] for r in parsed)
    return total


def parse_wrk(name, out, server):
    def lat(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockerr = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockerr.groups())) if sockerr else 0)
    return {"name": name, "rps": rps, "p50": lat("50"), "p99": lat("99"), "errors": errors, "requests": total,
            "peak_rss_mb": rss_kb(server.proc.pid, "VmHWM") / 1024}


def scripts(apps, bearer, jwt_bearer):
    def basic(pair):
        return base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()
    def issue(pair):
        return f'''wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic {basic(pair)}"
'''
    ibasic = basic(apps["introspector"])
    return {
        "issuance": ("/oauth2/token", issue(apps["client"])),
        "jwt_issuance": ("/oauth2/token", issue(apps["jwt_client"])),
        "validation": ("/api/v1/me", f'wrk.headers["Authorization"] = "Bearer {bearer}"\n'),
        "forward_auth": ("/oauth2/forward-auth?scope=applications:read",
                         f'wrk.headers["Authorization"] = "Bearer {bearer}"\n'),
        "forward_jwt": ("/oauth2/forward-auth?scope=applications:read",
                        f'wrk.headers["Authorization"] = "Bearer {jwt_bearer}"\n'),
        "introspection": ("/oauth2/introspect", f'''wrk.method = "POST"
wrk.body = "token={bearer}"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic {ibasic}"
'''),
        "ceiling": ("/healthz", ""),
    }


def seed(db, apps=10_000, tokens=1_000_000):
    """Inserts applications and tokens straight into SQLite (not through HTTP)."""
    con = sqlite3.connect(db.removeprefix("sqlite:"))
    now = int(time.time())
    alphabet = string.ascii_letters + string.digits
    con.execute("BEGIN")
    first = con.execute("SELECT COALESCE(MAX(id), 0) FROM applications").fetchone()[0] + 1
    con.executemany(
        "INSERT INTO applications (name, notes, client_id, scopes, enabled, token_ttl_seconds, max_tokens, "
        "rate_per_second, rate_per_hour, created_at, updated_at) VALUES (?, '', ?, 'applications:read', 1, 3600, 30, 20, 15000, ?, ?)",
        ((f"seeded-{i:05}", "kgc_" + "".join(secrets.choice(alphabet) for _ in range(22)), now, now)
         for i in range(apps)))
    con.executemany(
        "INSERT INTO client_secrets (application_id, secret_hash, created_at) VALUES (?, ?, ?)",
        ((first + i, os.urandom(32), now) for i in range(apps)))
    per_app = tokens // apps
    def rows():
        for a in range(apps):
            for j in range(per_app):
                # A mix of live, expired and revoked tokens, as a real database has.
                expires = now + 3600 if j % 3 else now - 86_400
                revoked = now - 10 if j % 7 == 0 else None
                yield (first + a, os.urandom(32), "kgt_seeded", "token_endpoint", now - 100, expires, revoked)
    con.executemany(
        "INSERT INTO tokens (application_id, token_hash, display_prefix, scopes, source, created_at, expires_at, revoked_at) "
        "VALUES (?, ?, ?, '', ?, ?, ?, ?)", rows())
    con.commit()
    con.close()


def run_suite(apps, server, only=None, servers=None):
    # The bearers come from other applications: the issuance runs evict
    # all but the newest 30 tokens of their own applications.
    servers = servers or [server]
    bearer = token(*apps["caller"], base=servers[0].base)
    jwt_bearer = token(*apps["jwt_caller"], base=servers[0].base)
    results = {}
    for name, (path, script) in scripts(apps, bearer, jwt_bearer).items():
        if only and name not in only:
            continue
        results[name] = wrk_many(name, path, script, servers)
    return results


def bench_applications(db):
    """The applications every run uses: the clients that get tokens (opaque
    and JWT), the resource server that introspects them, and the callers
    whose tokens are validated. Returns their (client_id, client_secret)
    pairs by role."""
    made = {}
    for role, name, scope, fmt in (("client", "bench-client", "applications:read", "opaque"),
                                   ("jwt_client", "bench-jwt-client", "applications:read", "jwt"),
                                   ("introspector", "bench-resource-server", "introspect", "opaque"),
                                   ("caller", "bench-caller", "applications:read", "opaque"),
                                   ("jwt_caller", "bench-jwt-caller", "applications:read", "jwt")):
        m = cli(db, "app", "create", "--name", name, "--scope", scope, "--token-format", fmt, *HIGH, "--json")
        made[role] = (m["client_id"], m["client_secret"])
    return made


def postgres_runs(base_url):
    """One instance, then two on the same database (each driven by its own
    wrk, figures summed), on a fresh PostgreSQL database."""
    name = "kg_bench_" + secrets.token_hex(4)
    subprocess.run(["psql", f"{base_url}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    db = f"{base_url}/{name}"
    apps = bench_applications(db)
    one = Server(db)
    single = run_suite(apps, one)
    one.stop()
    a, b = Server(db), Server(db, port=PORT + 1)
    double = run_suite(apps, a, servers=[a, b])
    a.stop()
    b.stop()
    return single, double


def console_post(base, path, fields, cookie=None):
    """A console form post as a browser without JavaScript sends it; the
    response's session cookie, or the one sent."""
    req = urllib.request.Request(f"{base}{path}", data=urllib.parse.urlencode(fields).encode(), method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    req.add_header("Accept", "text/html")
    req.add_header("Origin", base)
    if cookie:
        req.add_header("Cookie", cookie)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    try:
        r = urllib.request.build_opener(NoRedirect).open(req)
        headers = r.headers
    except urllib.error.HTTPError as e:
        headers = e.headers
    fresh = [v for k, v in headers.items() if k.lower() == "set-cookie" and v.startswith("keygate_session=")]
    return fresh[0].split(";")[0] if fresh else cookie


def sign_in(base, db):
    """A viewer's console session cookie. `admin add` sets a password the
    viewer must replace at first sign-in, so it does."""
    subprocess.run([BIN, "admin", "add", "bench-viewer", "--password-stdin", "--role", "viewer", "--database-url", db],
                   input="bench viewer password\n", check=True, capture_output=True, text=True)
    cookie = console_post(base, "/console/fn/sign_in", {"username": "bench-viewer", "password": "bench viewer password"})
    return console_post(base, "/console/fn/change_password", {
        "current_password": "bench viewer password",
        "new_password": "the viewer's own password",
        "confirm_password": "the viewer's own password",
    }, cookie)


def cold_load_bytes(base, path, cookie):
    """Bytes on the wire for a first visit with brotli: the page, then the
    stylesheet, script and wasm it names."""
    def fetch(url):
        req = urllib.request.Request(url, headers={"Cookie": cookie, "Accept-Encoding": "br", "Accept": "text/html"})
        with urllib.request.urlopen(req) as r:
            return r.read()
    page = fetch(base + path)
    total = len(page)
    html = subprocess.run(["brotli", "-dc"], input=page, capture_output=True, check=True).stdout.decode()
    assets = sorted(set(re.findall(r'/pkg/[A-Za-z0-9_.]+\.(?:css|js|wasm)', html)))
    for a in assets:
        total += len(fetch(base + a))
    return total, assets


def console_runs(server, db, apps):
    """Server-side rendering: the applications list (10,000 applications),
    an application page with 30 tokens and the overview (its charts and
    "Needs attention" panel over every application), signed in, as a share
    of /healthz."""
    cookie = sign_in(server.base, db)
    page_app = cli(db, "app", "create", "--name", "bench-page", "--scope", "applications:read", *HIGH, "--json")
    for _ in range(30):
        token(page_app["client_id"], page_app["client_secret"], base=server.base)
    headers = f'wrk.headers["Cookie"] = "{cookie}"\nwrk.headers["Accept"] = "text/html"\n'
    results = {
        "apps_page": wrk("apps_page", "/applications", headers, server),
        "app_detail": wrk("app_detail", f"/applications/{page_app['id']}", headers, server),
        "overview": wrk("overview", "/", headers, server),
        "ceiling": wrk("ceiling", "/healthz", "", server),
    }
    load, assets = cold_load_bytes(server.base, "/applications", cookie)
    return results, load, assets


def show(title, results, ceiling):
    print(f"\n{title}")
    print(f"{'run':<14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'peak RSS MB':>13}{'vs ceiling':>12}")
    for r in results.values():
        print(f"{r['name']:<14}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['errors']:>8}{r['peak_rss_mb']:>13.1f}"
              f"{r['rps'] / ceiling:>11.0%}")


def main():
    if not os.path.exists(BIN):
        raise SystemExit("build first: cargo leptos build --release")
    work = tempfile.mkdtemp(prefix="keygate-bench-")
    db = f"sqlite:{work}/bench.db"
    apps = bench_applications(db)

    server = Server(db)
    first_start = server.startup_ms
    idle_rss = rss_kb(server.proc.pid, "VmRSS") / 1024
    small = run_suite(apps, server)
    server.stop()

    # Start-up on an existing database (migrations already applied).
    starts = []
    for _ in range(3):
        s = Server(db)
        starts.append(s.startup_ms)
        s.stop()

    print(f"seeding 10,000 applications and 1,000,000 tokens …", flush=True)
    t0 = time.perf_counter()
    seed(db)
    seed_s = time.perf_counter() - t0
    server = Server(db)
    big_start = server.startup_ms
    big = run_suite(apps, server, only={"issuance", "validation", "ceiling"})
    big_idle_peak = rss_kb(server.proc.pid, "VmHWM") / 1024
    console, cold_load, cold_assets = console_runs(server, db, apps)
    server.stop()

    ceiling = small["ceiling"]["rps"]
    print(f"\nKeygate benchmark — wrk, {THREADS} threads, {CONNECTIONS} connections, {DURATION} per run, {os.cpu_count()} cores")
    show("Fresh database", small, ceiling)
    show(f"With 1,000,000 tokens and 10,000 applications (seeded in {seed_s:.1f} s)", big, big["ceiling"]["rps"])
    show("Console pages, signed in (10,000 applications; the detail page has 30 tokens; the overview)", console,
         console["ceiling"]["rps"])
    print(f"Cold load of /applications with brotli: {cold_load / 1024:.0f} KB ({len(cold_assets)} assets: "
          f"{', '.join(cold_assets)})")
    print("\nScale: figure with the large database as a share of the fresh one")
    for name in ("issuance", "validation"):
        print(f"  {name:<12} {big[name]['rps'] / small[name]['rps']:.0%}")
    print(f"\nIdle RSS after start: {idle_rss:.1f} MB; peak RSS over all runs: "
          f"{max(r['peak_rss_mb'] for r in list(small.values()) + list(big.values())):.1f} MB")
    print(f"Start-up to first healthy answer: fresh database {first_start:.0f} ms (runs migrations); "
          f"existing database {min(starts):.0f}–{max(starts):.0f} ms; with 1M tokens {big_start:.0f} ms")
    wasm = os.path.join(ROOT, "target", "site", "pkg", "keygate.wasm")
    wasm_br = None
    if os.path.exists(wasm):
        raw = os.path.getsize(wasm)
        try:
            br = len(subprocess.run(["brotli", "-c", wasm], check=True, capture_output=True).stdout)
            wasm_br = br
            print(f"Wasm bundle: {raw / 1024:.0f} KB raw, {br / 1024:.0f} KB brotli")
        except FileNotFoundError:
            print(f"Wasm bundle: {raw / 1024:.0f} KB raw (install brotli for the compressed size)")
    pg_url = os.environ.get("BENCH_POSTGRES_URL")
    pg = None
    if pg_url:
        print("PostgreSQL runs …", flush=True)
        pg = postgres_runs(pg_url)
        show("PostgreSQL, one instance", pg[0], pg[0]["ceiling"]["rps"])
        show("PostgreSQL, two instances on one database (summed)", pg[1], pg[1]["ceiling"]["rps"])
    errors = sum(r["errors"] for r in list(small.values()) + list(big.values()))
    print(f"Errors over all runs: {errors}")
    targets = [
        ("no errors", errors == 0),
        ("issuance >= 25% of ceiling", small["issuance"]["rps"] / ceiling >= 0.25),
        ("validation >= 60% of ceiling", small["validation"]["rps"] / ceiling >= 0.60),
        ("introspection >= 60% of ceiling", small["introspection"]["rps"] / ceiling >= 0.60),
        ("JWT issuance >= 80% of opaque issuance", small["jwt_issuance"]["rps"] >= 0.8 * small["issuance"]["rps"]),
        ("forward-auth (opaque) >= 60% of ceiling", small["forward_auth"]["rps"] / ceiling >= 0.60),
        ("forward-auth (JWT) >= 60% of ceiling", small["forward_jwt"]["rps"] / ceiling >= 0.60),
        ("idle RSS < 50 MB", idle_rss < 50),
        ("RSS during runs < 150 MB", max(r["peak_rss_mb"] for r in small.values()) < 150),
        ("start-up < 1 s", max(starts) < 1000),
        ("issuance with 1M tokens >= 90% of fresh", big["issuance"]["rps"] >= 0.9 * small["issuance"]["rps"]),
        ("validation with 1M tokens >= 90% of fresh", big["validation"]["rps"] >= 0.9 * small["validation"]["rps"]),
        ("applications page >= 25% of /healthz", console["apps_page"]["rps"] / console["ceiling"]["rps"] >= 0.25),
        ("applications page p99 < 20 ms", console["apps_page"]["p99"] < 20),
        ("console pages without errors", sum(r["errors"] for r in console.values()) == 0),
        ("wasm <= 250 KB brotli", wasm_br is not None and wasm_br <= 250 * 1024),
    ]
    if pg:
        for label, runs in (("one instance", pg[0]), ("two instances", pg[1])):
            c = runs["ceiling"]["rps"]
            targets.append((f"PostgreSQL {label}: validation >= 40% of its ceiling", runs["validation"]["rps"] / c >= 0.40))
            targets.append((f"PostgreSQL {label}: issuance >= 10% of its ceiling", runs["issuance"]["rps"] / c >= 0.10))
            targets.append((f"PostgreSQL {label}: no errors", sum(r["errors"] for r in runs.values()) == 0))
    print("\nTargets")
    for label, ok in targets:
        print(f"  [{'met' if ok else 'MISSED'}] {label}")


if __name__ == "__main__":
    main()
