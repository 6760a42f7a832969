"""The smallest reference plugin: the original Kazoo `skel` examples (`id1`, `id2`, a minutely trigger).

Try it::

    kzconsole tasks add skel id2 --input examples/skel_id2.csv --wait-ms 0 --run
    kzconsole tasks add skel count --wait-ms 0 --run
"""

import logging

from kzconsole.plugin import STOP, Next, task, trigger, verifier

log = logging.getLogger("kzconsole.plugins.skel")


@task(
    "skel",
    "id1",
    description="Says whether col1 was set, row by row",
    doc="Takes an optional col1 column and writes a sentence about it next to it.",
    optional=["col1"],
    output_header=["col1", "result"],
)
def id1(ctx, it, row):
    value = row["col1"]
    if value is None:
        return [None, "col1 was not defined"]
    return [value, f"col1 was set to {value}"]


@task(
    "skel",
    "id2",
    description="The identity task",
    doc="Takes 2 columns and returns them.",
    mandatory=["col1", "col2"],
    output_header=["Col1", "Col2"],
)
def id2(ctx, it, row):
    return [row["col1"], row["col2"]]


@verifier("skel", "col2")
def col2(value):
    # Any non-empty string is a valid col2 (the engine never passes empty cells to verifiers).
    return bool(value)


@task(
    "skel",
    "count",
    description="Counts to 10 without input, one row per call",
    doc="A noinput task: `it` starts as INIT, each call hands the next number on with Next.",
    output_header=["n"],
)
def count(ctx, it):
    n = 1 if not isinstance(it, int) else it + 1
    if n > 10:
        return STOP
    return Next(n, [n])


@trigger("minutely")
def tick():
    log.info("skel: a minute has passed")
