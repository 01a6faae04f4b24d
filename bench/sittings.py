#!/usr/bin/env python3
"""Every saved sitting in one table, and how often each target of issue 6 was met.

Reads the harness tables saved in docs/bench-results/ (one file per sitting,
named STAMP-wN[-workloads].md) and prints, as Markdown, one row per sitting
with Terminus's ratios to nginx of the same sitting, then a count of the
sittings that met each target, per worker count.

    bench/sittings.py                      # every sitting
    bench/sittings.py --since 20261130-0451   # from the fat-LTO build on

Nothing is measured here: the figures are the harness's, as saved.
"""

import argparse
import pathlib
import re
import sys

RESULTS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "bench-results"

# Issue 6's targets: (column, test, wording).
TARGETS = [
    ("ka", lambda r: r["ka"] >= 1.25 and r["ka"] > r["haproxy_ka"], "keep-alive ≥ 1.25x nginx and above HAProxy"),
    ("ka_cpu", lambda r: r["ka_cpu"] <= 0.75, "keep-alive CPU per request ≤ 0.75x nginx"),
    ("hs_cpu", lambda r: r["hs_cpu"] <= 0.5, "CPU per full handshake ≤ 0.5x nginx"),
    ("bulk", lambda r: r["bulk"] >= 1.1, "1 MiB MB/s ≥ 1.1x nginx"),
    ("idle", lambda r: r["idle"] <= 0.6, "idle memory per connection ≤ 0.6x nginx"),
    ("errors", lambda r: r["errors"] == 0, "zero errors"),
]


def tables(text):
    """The Markdown tables of `text`, each as a list of rows of cells (header first, rule dropped)."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def ratio(cell):
    """1.29 from '1.29' or from '0.169 (0.71)'."""
    m = re.search(r"\(([0-9.]+)\)", cell) or re.fullmatch(r"([0-9.]+)", cell)
    return float(m.group(1)) if m else None


def sitting(path):
    text = path.read_text()
    stamp, workers = re.match(r"(\d{8}-\d{6})-w(\d+)", path.name).groups()
    reps = re.search(r"median of (\d+) reps", text)
    # The heading's last parenthesis: "(commit abc1234: what changed; how noisy)".
    heading = re.search(r"\(([^()]*)\)\s*$", text.splitlines()[0])
    about = heading.group(1) if heading else ""
    commit = re.match(r"commit ([0-9a-f]{7,})(?:'s code)?[:;,]? ?(.*)", about)
    row = {
        "file": path.name,
        "stamp": stamp,
        "workers": int(workers),
        "reps": int(reps.group(1)) if reps else None,
        "commit": commit.group(1)[:7] if commit else "",
        "note": commit.group(2) if commit else about,
    }
    for table in tables(text):
        header, body = table[0], {r[0].split("@")[0]: r for r in table[1:]}
        if "terminus" not in body:
            continue
        ours, haproxy = body["terminus"], body.get("haproxy")
        for i, name in enumerate(header):
            follows = header[i - 1] if i else ""
            # The throughput table: each "×ref" follows the figure it divides.
            if name == "×ref":
                key = {"keep-alive req/s": "ka", "new TLS conn/s": "hs", "1 MiB MB/s": "bulk",
                       "idle KiB/conn": "idle"}.get(follows)
                if key:
                    row[key] = ratio(ours[i])
                    if key == "ka" and haproxy:
                        row["haproxy_ka"] = ratio(haproxy[i])
            elif name in ("ka CPU s/10k", "hs CPU s/10k", "bulk CPU s/10k"):
                row[name.split()[0] + "_cpu"] = ratio(ours[i])
            elif name == "errors":
                row["errors"] = int(ours[i])
    return row


def cell(row, key, bold=None):
    v = row.get(key)
    if v is None:
        return ""
    text = f"{v:.2f}" if isinstance(v, float) else str(v)
    return f"**{text}**" if bold and bold(row) else text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--since", default="", help="first sitting to count, as a stamp prefix (20261130-0451)")
    parser.add_argument("--dir", type=pathlib.Path, default=RESULTS, help="where the saved tables are")
    args = parser.parse_args()
    rows = [sitting(p) for p in sorted(args.dir.glob("*-w*.md"))]
    rows = [r for r in rows if r["stamp"] >= args.since]
    if not rows:
        sys.exit(f"no sittings in {args.dir}")
    met = {key: test for key, test, _ in TARGETS}

    def safe(key):
        def check(r):
            try:
                return met[key](r)
            except (KeyError, TypeError):
                return False
        return check

    print("| sitting | workers | reps | commit | keep-alive ×nginx | HAProxy ×nginx | ka CPU ×nginx "
          "| hs CPU ×nginx | 1 MiB ×nginx | 1 MiB CPU ×nginx | idle ×nginx | errors | note |")
    print("|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in rows:
        s = r["stamp"]
        when = f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[9:11]}:{s[11:13]}"
        print(f"| [{when}](bench-results/{r['file']}) | {r['workers']} | {r['reps'] or ''} | {r['commit']} "
              f"| {cell(r, 'ka', safe('ka'))} | {cell(r, 'haproxy_ka')} | {cell(r, 'ka_cpu', safe('ka_cpu'))} "
              f"| {cell(r, 'hs_cpu', safe('hs_cpu'))} | {cell(r, 'bulk', safe('bulk'))} | {cell(r, 'bulk_cpu')} "
              f"| {cell(r, 'idle', safe('idle'))} | {cell(r, 'errors')} | {r['note']} |")
    print()
    print("Sittings that met each target (of those that ran its workload):")
    print()
    workers = sorted({r["workers"] for r in rows})
    print("| target | " + " | ".join(f"{w} worker{'s' if w > 1 else ''}" for w in workers) + " |")
    print("|---|" + "--:|" * len(workers))
    for key, _, words in TARGETS:
        counts = []
        for w in workers:
            ran = [r for r in rows if r["workers"] == w and r.get(key) is not None]
            counts.append(f"{sum(safe(key)(r) for r in ran)} of {len(ran)}")
        print(f"| {words} | " + " | ".join(counts) + " |")


if __name__ == "__main__":
    main()
