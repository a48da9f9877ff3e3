#!/usr/bin/env python3
"""Writes a Nexmark-shaped bids CSV: auction, bidder, price, channel, url, date_time, extra.

Usage: gen_bids.py ROWS OUT.csv [--seed N] [--first-row N]

Rows are deterministic for a seed; --first-row continues a file generated
in blocks (row numbers, hence event times, go on from there). Event times start at 2015-07-15 00:00:00
and advance ~1 ms per row with up to 2 s of disorder, so a watermark of
`date_time - INTERVAL '1' SECOND` sees some late rows, as real streams do.
"""
import argparse
import datetime
import random

CHANNELS = ["Google", "Facebook", "Baidu", "Apple"]
EPOCH = datetime.datetime(2015, 7, 15)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", type=int)
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--first-row", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed + args.first_row)
    letters = "abcdefghijklmnopqrstuvwxyz"
    extras = ["".join(rng.choice(letters) for _ in range(rng.randint(5, 40))) for _ in range(997)]
    urls = [f"https://www.nexmark.com/{''.join(rng.choice(letters) for _ in range(5))}/item.htm?query=1&channel_id={i}" for i in range(101)]
    with open(args.out, "w", buffering=1 << 20) as out:
        lines = []
        for i in range(args.first_row, args.first_row + args.rows):
            auction = 1000 + (i // 7) % 100000 if rng.random() < 0.9 else 1000 + rng.randrange(1000000)
            bidder = 1000 + rng.randrange(100000)
            price = rng.randrange(100, 10_000_000)
            channel = CHANNELS[i % 4]
            url = urls[i % 101]
            millis = i - rng.randrange(0, 2000)
            ts = EPOCH + datetime.timedelta(milliseconds=max(millis, 0))
            stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
            lines.append(f"{auction},{bidder},{price},{channel},{url},{stamp},{extras[i % 997]}\n")
            if len(lines) == 10000:
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))


if __name__ == "__main__":
    main()
