"""What recording each comm call costs (the dashboard's timestamps, call
counts and spans): small calls timed by the microbench under two `burst`
binaries, interleaved, five runs each; prints microseconds per iteration,
median [min-max]. Usage:

    python3 bench/scripts/recording_overhead.py BASE_BURST NEW_BURST MICROBENCH_WASM
"""
import json, subprocess, statistics, sys
BINARIES = {"base": sys.argv[1], "new": sys.argv[2]}
W = sys.argv[3]
cases = [("barrier", 8, 8, 0, 20000), ("all-reduce", 8, 8, 64, 20000), ("pair", 2, 2, 64, 20000)]
res = {}
for rep in range(5):
    for name in ("base", "new"):
        for prim, n, g, size, it in cases:
            inp = json.dumps({"primitive": prim, "size": size, "iterations": it})
            out = subprocess.run([BINARIES[name], "run", W, "--workers", str(n), "--granularity", str(g), "--input", inp, "--json"], capture_output=True, text=True, check=True).stdout
            doc = json.loads(out)
            tot = statistics.median(sum(o["elapsed_us"]) for o in doc["outputs"])
            res.setdefault((prim, name), []).append(tot / it)
for prim, *_ in cases:
    b, n = res[(prim, "base")], res[(prim, "new")]
    print(f"{prim:10s} base {statistics.median(b):.3f} us/call [{min(b):.3f}-{max(b):.3f}]  new {statistics.median(n):.3f} [{min(n):.3f}-{max(n):.3f}]  ratio {statistics.median(n)/statistics.median(b):.3f}")
