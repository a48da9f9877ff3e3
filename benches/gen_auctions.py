#!/usr/bin/env python3
"""Writes a Nexmark-shaped auctions CSV matching gen_bids.py's bids:
id, seller, category, date_time, expires.

Usage: gen_auctions.py ROWS OUT.csv [--seed N]

gen_bids.py gives 90% of bid row i to auction 1000 + (i // 7) % 100000 at
about i ms, so each auction id gets its bids in a burst that comes back
every 700 s. Auction row j opens auction 1000 + j % 100000 two seconds
before the burst of cycle j // 100000 (a re-listed item keeps its id) and
expires 10 s after opening: the bids of that burst fall within its
lifetime, `b.date_time BETWEEN a.date_time AND a.expires`.
"""
import argparse
import datetime
import random

EPOCH = datetime.datetime(2015, 7, 15)
CYCLE_MS = 700_000


def stamp(millis):
    ts = EPOCH + datetime.timedelta(milliseconds=millis)
    return ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", buffering=1 << 20) as out:
        lines = []
        for j in range(args.rows):
            cycle, m = divmod(j, 100_000)
            opens = max(cycle * CYCLE_MS + 7 * m - 2000, 0)
            lines.append(
                f"{1000 + m},{1000 + rng.randrange(10000)},{rng.randrange(10, 20)},"
                f"{stamp(opens)},{stamp(opens + 10_000)}\n"
            )
            if len(lines) == 10000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))


if __name__ == "__main__":
    main()
