"""The baseline of target 1: a plain Python script doing what a CSV job does, and nothing else.

It reads the CSV with the `csv` module, builds the same row dicts (column -> value, an empty cell
None), calls the same kind of function (returns OK), and writes the same output (the input header
plus `error`, each input row with an empty error cell) with `csv.writer`. No checks, no store, no
checkpoints: Python itself is the limit.

    python bench/plain_rows.py INPUT.csv OUTPUT.csv
"""

import csv
import sys

OK = object()


def ok(ctx, it, row):
    return OK


def main(src: str, dest: str) -> int:
    with open(src, newline="", encoding="utf-8-sig") as f, open(dest, "w", newline="", encoding="utf-8") as out:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader)]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header + ["error"])
        ctx = None
        it = None
        success = failure = 0
        for cells in reader:
            if not cells:
                continue
            row = {k: v or None for k, v in zip(header, cells, strict=False)}
            result = ok(ctx, it, row)
            if result is OK or result is None:
                success += 1
                writer.writerow([row.get(k) for k in header] + [None])
            else:
                failure += 1
    print(f"{success} {failure}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
