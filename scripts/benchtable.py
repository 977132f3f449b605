#!/usr/bin/env python3
"""Turns `go test -bench` output into a markdown table. Result lines may be separated from their
benchmark name by log lines, so each result line is attached to the last benchmark name seen."""
import re
import sys

name = None
rows = []
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"^(Benchmark\S+)(.*)$", line.rstrip("\n"))
    rest = line
    if m:
        name, rest = m.group(1), m.group(2)
    fields = [f.strip() for f in rest.split("\t") if f.strip()]
    if name is None or len(fields) < 2 or not re.fullmatch(r"\d+", fields[0]) or not re.match(r"^[-0-9.e+]+ \S+$", fields[1]):
        continue
    results = []
    for f in fields[1:]:
        if f.endswith(" ns/op"):
            ns = float(f.split()[0])
            f = f"{ns / 1e9:.3g} s/op" if ns >= 1e9 else f"{ns / 1e6:.3g} ms/op" if ns >= 1e6 else f"{ns / 1e3:.3g} µs/op"
        results.append(f)
    rows.append((name, fields[0], ", ".join(results)))
    name = None
print("| benchmark | runs | results |")
print("|---|---|---|")
for r in rows:
    print("| %s | %s | %s |" % r)
if not rows:
    print("| (no result line found) | | |")
