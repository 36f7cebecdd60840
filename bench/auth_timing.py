#!/usr/bin/env python3
"""Times failed client authentication at the token endpoint: a wrong secret
for a known client against any secret for an unknown client. Keygate should
answer both in the same time (no oracle for which client IDs exist).

Usage: bench/auth_timing.py BASE_URL KNOWN_CLIENT_ID
Each source address (127.0.N.M) sends 9 of each kind (27 in all), under the failure
limits, so every request takes the full authentication path."""
import base64, http.client, statistics, sys, time, urllib.parse

base, known = sys.argv[1], sys.argv[2]
host, port = urllib.parse.urlparse(base).hostname, urllib.parse.urlparse(base).port
wrong = "kgs_" + "x" * 43
samples = {"known client, wrong secret": [], "unknown client (repeated)": [], "unknown client (fresh)": []}
for a in range(200):
    conn = http.client.HTTPConnection(host, port, source_address=(f"127.0.{100 + a // 250}.{1 + a % 250}", 0))
    for i in range(9):
        kinds = (("known client, wrong secret", known), ("unknown client (repeated)", f"kgc_unknown{a}"),
                 ("unknown client (fresh)", f"kgc_fresh{a}x{i}"))
        for kind, cid in kinds:
            auth = base64.b64encode(f"{cid}:{wrong}".encode()).decode()
            t = time.perf_counter()
            conn.request("POST", "/oauth2/token", body="grant_type=client_credentials",
                         headers={"Authorization": f"Basic {auth}",
                                  "Content-Type": "application/x-www-form-urlencoded"})
            r = conn.getresponse(); r.read()
            samples[kind].append((time.perf_counter() - t) * 1e6)
            assert r.status == 401, r.status
    conn.close()
for kind, xs in samples.items():
    print(f"{kind:28s} n={len(xs)} median {statistics.median(xs):7.0f} µs  p90 {statistics.quantiles(xs, n=10)[-1]:7.0f} µs")
