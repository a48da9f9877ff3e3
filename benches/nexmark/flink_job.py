"""Runs one Flink SQL script on Apache Flink with PyFlink's TableEnvironment.

Used by benches/nexmark/flink.sh for the side-by-side benchmark: PyFlink
runs the job in a local mini-cluster inside its JVM, in streaming mode, as
`weir run` runs the same script in its embedded cluster. SET statements go
to the table configuration; an INSERT is waited for, so the process ends
when the job does.

    python flink_job.py script.sql [STATS]

PyFlink runs Flink in a JVM it starts as a child process, which a timer of
this process does not see; with STATS, the CPU seconds and peak RSS (kB) of
this process's descendants (the JVM) are written there when the job ends.
"""

import os
import re
import sys

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


def main(path, stats=None):
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    for statement in statements(open(path).read()):
        option = SET.match(statement)
        if option:
            env.get_config().set(option[1], option[2])
            continue
        result = env.execute_sql(statement)
        if statement.upper().startswith(("INSERT", "EXECUTE")):
            result.wait()
    if stats:
        write_stats(stats)


if __name__ == "__main__":
    main(*sys.argv[1:3])
