#!/usr/bin/env python3
"""Plots `smolvlm bench --out RESULTS.jsonl` points: output tokens/s and TTFT p50 against
concurrency, one line per label.

    tools/smolvlm/plot_bench.py RESULTS.jsonl OUT.png [--title TITLE]

Each line of RESULTS.jsonl is one point (the JSON object `smolvlm bench` prints). When the
file holds the same (label, concurrency) more than once (runs appended), the last one wins.
Needs matplotlib (Debian: python3-matplotlib, installed by ./smolserve setup).
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_points(path):
    """{label: {concurrency: point}} from a JSON Lines file (blank lines skipped)."""
    series = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                p = json.loads(line)
                c = int(p["concurrency"])
                tok_s = float(p["output_tokens_per_s"])
                ttft = float(p["ttft_ms"]["p50"])
            except (ValueError, KeyError, TypeError) as e:
                raise SystemExit(f"{path}:{n}: not a bench point ({e})")
            label = p.get("label") or "(no label)"
            series.setdefault(label, {})[c] = (tok_s, ttft)
    if not series:
        raise SystemExit(f"{path}: no points")
    return series


def plot(series, out, title=None):
    fig, (ax_tok, ax_ttft) = plt.subplots(1, 2, figsize=(11, 4.2))
    concurrencies = sorted({c for pts in series.values() for c in pts})
    for label in series:  # in order of first appearance
        pts = series[label]
        xs = sorted(pts)
        ax_tok.plot(xs, [pts[c][0] for c in xs], marker="o", label=label)
        ax_ttft.plot(xs, [pts[c][1] / 1e3 for c in xs], marker="o", label=label)
    for ax, ylabel in ((ax_tok, "output tokens/s"), (ax_ttft, "TTFT p50 (s)")):
        if len(concurrencies) > 1 and concurrencies[-1] / concurrencies[0] >= 4:
            ax.set_xscale("log", base=2)
        ax.set_xticks(concurrencies)
        ax.set_xticklabels([str(c) for c in concurrencies])
        ax.set_xlabel("concurrency (closed-loop clients)")
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_tok.set_title("throughput")
    ax_ttft.set_title("time to first token (p50)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="JSON Lines from smolvlm bench --out")
    ap.add_argument("out", help="PNG to write")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    plot(load_points(args.results), args.out, args.title)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
