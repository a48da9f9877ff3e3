"""Runs one Flink SQL script on Apache Flink with PyFlink's TableEnvironment.

Used by benches/nexmark/flink.sh for the side-by-side benchmark: PyFlink
runs the job in a local mini-cluster inside its JVM, in streaming mode, as
`weir run` runs the same script in its embedded cluster. SET statements go
to the table configuration; an INSERT is waited for, so the process ends
when the job does.

    python flink_job.py script.sql [STATS [REPEAT TIMES]]

PyFlink runs Flink in a JVM it starts as a child process, which a timer of
this process does not see; with STATS, the CPU seconds and peak RSS (kB) of
this process's descendants (the JVM) are written there when the job ends.

With REPEAT, the script's INSERT and EXECUTE statements run REPEAT times in
the same JVM, one after the other, and the wall seconds of each round are
written to TIMES, one line each: the later rounds measure Flink warm, its
classes loaded and its code compiled by the JIT (steady state).
"""

import os
import re
import sys
import time

from pyflink.table import EnvironmentSettings, TableEnvironment

SET = re.compile(r"SET\s+'([^']+)'\s*=\s*'([^']*)'$", re.IGNORECASE | re.DOTALL)


def statements(text):
    """The script's statements, without `--` comments (none of the Nexmark
    scripts holds a `;` or `--` inside a string literal)."""
    lines = [line.split("--", 1)[0] for line in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def descendants(pid):
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                children += [int(c) for c in f.read().split()]
        except FileNotFoundError:  # a thread that has ended since
            pass
    return children + [d for c in children for d in descendants(c)]


def write_stats(path):
    """CPU seconds and peak RSS of the JVM (and anything else this process started)."""
    ticks, cpu, rss_kb = os.sysconf("SC_CLK_TCK"), 0.0, 0
    for pid in descendants(os.getpid()):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / ticks
        with open(f"/proc/{pid}/status") as f:
            rss_kb += next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    with open(path, "w") as f:
        f.write(f"{cpu:.2f} {rss_kb}\n")


def main(path, stats=None, repeat="1", times=None):
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    jobs = []
    for statement in statements(open(path).read()):
        option = SET.match(statement)
        if option:
            env.get_config().set(option[1], option[2])
        elif statement.upper().startswith(("INSERT", "EXECUTE")):
            # Run once the tables exist; the scripts put them last anyway.
            jobs.append(statement)
        else:
            env.execute_sql(statement)
    rounds = []
    for _ in range(int(repeat)):
        start = time.monotonic()
        for job in jobs:
            env.execute_sql(job).wait()
        rounds.append(time.monotonic() - start)
    if times:
        with open(times, "w") as f:
            f.write("".join(f"{seconds:.3f}\n" for seconds in rounds))
    if stats:
        write_stats(stats)


if __name__ == "__main__":
    main(*sys.argv[1:5])
