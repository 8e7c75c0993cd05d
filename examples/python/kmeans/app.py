"""``kmeans`` in Python: the twin of ``examples/kmeans`` (Rust), with the same
inputs and outputs, so that the tests can compare the two.

Input: ``"points": "/data/FILE.csv"`` (a CSV of numbers under a header
line) or ``"generate": {"points", "dimensions", "clusters", "seed"}`` (the
Rust twin's seeded clusters, bit for bit), ``"k"``, ``"tolerance"`` [1e-6]
and ``"max_iterations"`` [100]. The initial centroids are the first ``k``
rows; each worker holds a contiguous share of the rows (of a file, the
lines that start in its byte range; generated, rows ``[i·R/N, (i+1)·R/N)``);
every step it adds its points into per-cluster sums and counts, a
host-native ``all_reduce`` (f64 sum) adds the workers' vectors, and every
worker makes the same new centroids from it.

Every worker returns ``worker``, ``points``, ``bytes_read`` and ``seconds``;
worker 0 adds ``total_points``, ``dimensions``, ``k``, ``iterations``,
``converged``, ``movement``, ``centroids`` and ``sizes``.
"""

import array
import math
import os
import time

from burst_sdk import Context, ReduceOp, work

MAX_K = 4096
MAX_DIMENSIONS = 1024
MAX_ITERATIONS = 100_000
MAX_WORKER_CELLS = 1 << 25
MAX_POINTS = 1 << 40
MAX_CLUSTERS = 1 << 16
SPREAD = 10.0
NOISE_TERMS = 12
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z: int) -> int:
    """SplitMix64's finaliser."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Stream:
    """A SplitMix64 sequence."""

    def __init__(self, state: int) -> None:
        self.state = state

    def next(self) -> int:
        self.state = (self.state + GOLDEN) & MASK
        return mix(self.state)

    def unit(self) -> float:
        return (self.next() >> 11) / float(1 << 53)


def check_generate(spec: dict, burst_size: int) -> tuple:
    unknown = set(spec) - {"points", "dimensions", "clusters", "seed"}
    if unknown:
        raise ValueError(f"generate: unknown field {sorted(unknown)[0]!r}")
    points, dimensions, clusters, seed = spec["points"], spec["dimensions"], spec["clusters"], spec.get("seed", 0)
    if not 1 <= points <= MAX_POINTS:
        raise ValueError(f"generate.points must be in 1..={MAX_POINTS}, got {points}")
    if not 1 <= dimensions <= MAX_DIMENSIONS:
        raise ValueError(f"generate.dimensions must be in 1..={MAX_DIMENSIONS}, got {dimensions}")
    if not 1 <= clusters <= MAX_CLUSTERS:
        raise ValueError(f"generate.clusters must be in 1..={MAX_CLUSTERS}, got {clusters}")
    if -(-points // burst_size) * dimensions > MAX_WORKER_CELLS:
        raise ValueError(
            f"generate: {points} points of {dimensions} dimensions give a worker more than "
            f"{MAX_WORKER_CELLS} numbers; use more workers"
        )
    return points, dimensions, clusters, seed


def generate(rows: range, dimensions: int, clusters: int, seed: int) -> list:
    """The points of ``rows``, row-major, exactly as the Rust twin makes them."""
    centres = []
    for c in range(clusters):
        stream = Stream(seed ^ mix(~c & MASK))
        centres.extend(SPREAD * (2.0 * stream.unit() - 1.0) for _ in range(dimensions))
    points = []
    for i in rows:
        stream = Stream(seed ^ mix(i))
        c = stream.next() % clusters
        for j in range(dimensions):
            noise = 0.0
            for _ in range(NOISE_TERMS):
                noise += stream.unit()
            points.append(centres[c * dimensions + j] + (noise - NOISE_TERMS / 2.0))
    return points


def parse_row(line: bytes, columns: int, row: list) -> None:
    cells = [] if not line.strip() else line.split(b",")
    if len(cells) != columns:
        raise ValueError(f"{len(cells)} columns, the header has {columns}")
    for column, cell in enumerate(cells, 1):
        try:
            value = float(cell.strip().decode())
        except (UnicodeDecodeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"column {column} ({cell.decode(errors='replace')[:32]!r}) is not a finite number")
        row.append(value)


def lines_of(path: str, index: int, count: int):
    """The lines that start in split ``index`` of ``count`` of the file, as
    the Rust SDK's ``Split`` cuts them; yields (line, bytes fetched so far)."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        start, end = size * index // count, size * (index + 1) // count
        position = max(start - 1, 0)
        file.seek(position)
        fetched = 0
        if start > 0:
            partial = file.readline()
            position, fetched = position + len(partial), len(partial)
        while position < end:
            line = file.readline()
            if not line:
                return
            position, fetched = position + len(line), fetched + len(line)
            yield line.rstrip(b"\n").removesuffix(b"\r"), fetched


def load_file(path: str, k: int, ctx: Context) -> tuple:
    head = lines_of(path, 0, 1)
    try:
        header, _ = next(head)
    except StopIteration:
        raise ValueError(f"{path}: empty (no header line)") from None
    if not header.strip():
        raise ValueError(f"{path} line 1: the header is blank")
    columns = header.count(b",") + 1
    if columns > MAX_DIMENSIONS:
        raise ValueError(f"{path} line 1: {columns} columns; at most {MAX_DIMENSIONS}")
    initial = []
    for number, (line, _) in enumerate(head, 2):
        if len(initial) == k * columns:
            break
        try:
            parse_row(line, columns, initial)
        except ValueError as error:
            raise ValueError(f"{path} line {number}: {error}") from None
    if len(initial) < k * columns:
        raise ValueError(f"k = {k} but {path} has only {len(initial) // columns} rows")
    # Only a split from byte 0 can read the line there: the header.
    has_header = os.path.getsize(path) * ctx.worker_id // ctx.burst_size == 0
    points, lines, bad, fetched = [], 0, None, 0
    for line, fetched in lines_of(path, ctx.worker_id, ctx.burst_size):
        lines += 1
        if has_header and lines == 1:
            continue
        try:
            if len(points) + columns > MAX_WORKER_CELLS:
                raise ValueError(f"more than {MAX_WORKER_CELLS} numbers in one worker's share; use more workers")
            parse_row(line, columns, points)
        except ValueError as error:
            bad = (lines - 1, str(error))
            break
    shared = ctx.all_gather((lines, bad, len(points) // columns))
    first_line = 1
    for split_lines, split_bad, _ in shared:
        if split_bad is not None:
            raise ValueError(f"{path} line {first_line + split_bad[0]}: {split_bad[1]}")
        first_line += split_lines
    return columns, initial, points, sum(rows for _, _, rows in shared), fetched


def accumulate(points: list, centroids: list, d: int) -> array.array:
    """Per-cluster coordinate sums and counts, ``k·(d+1)`` numbers."""
    k = len(centroids) // d
    rows = [centroids[c * d : (c + 1) * d] for c in range(k)]
    sums = array.array("d", bytes(8 * k * (d + 1)))
    for at in range(0, len(points), d):
        point = points[at : at + d]
        best, best_distance = 0, math.inf
        for c, centroid in enumerate(rows):
            distance = 0.0
            for x, m in zip(point, centroid):
                distance += (x - m) * (x - m)
            if distance < best_distance:
                best, best_distance = c, distance
        base = best * (d + 1)
        for j, x in enumerate(point):
            sums[base + j] += x
        sums[base + d] += 1.0
    return sums


def update(totals: array.array, centroids: list, d: int) -> tuple:
    """The new centroids (an empty cluster keeps its own), sizes, movement."""
    new, sizes, movement = [], [], 0.0
    for c in range(len(centroids) // d):
        sums, old = totals[c * (d + 1) : (c + 1) * (d + 1)], centroids[c * d : (c + 1) * d]
        count = sums[d]
        sizes.append(int(count))
        if count == 0.0:
            new.extend(old)
            continue
        moved = 0.0
        for total, x in zip(sums[:d], old):
            mean = total / count
            new.append(mean)
            moved += (mean - x) * (mean - x)
        movement = max(movement, math.sqrt(moved))
    return new, sizes, movement


@work
def kmeans(input: dict, ctx: Context) -> dict:
    unknown = set(input) - {"points", "generate", "k", "tolerance", "max_iterations"}
    if unknown:
        raise ValueError(f"unknown field {sorted(unknown)[0]!r}")
    k = input["k"]
    tolerance, max_iterations = input.get("tolerance", 1e-6), input.get("max_iterations", 100)
    if not (tolerance >= 0.0 and math.isfinite(tolerance)):
        raise ValueError(f"tolerance must be a finite number ≥ 0, got {tolerance}")
    if not 1 <= max_iterations <= MAX_ITERATIONS:
        raise ValueError(f"max_iterations must be in 1..={MAX_ITERATIONS}, got {max_iterations}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in 1..={MAX_K}, got {k}")
    seconds = {"read": 0.0, "assign": 0.0, "reduce": 0.0}
    clock = time.perf_counter()
    if ("points" in input) == ("generate" in input):
        raise ValueError('give either "points" (a CSV file under /data) or "generate", not both or neither')
    if "generate" in input:
        total, d, clusters, seed = check_generate(input["generate"], ctx.burst_size)
        if k > total:
            raise ValueError(f"k = {k} but generate.points is {total}")
        n, me = ctx.burst_size, ctx.worker_id
        initial = generate(range(k), d, clusters, seed)
        points = generate(range(total * me // n, total * (me + 1) // n), d, clusters, seed)
        bytes_read = 0
    else:
        d, initial, points, total, bytes_read = load_file(input["points"], k, ctx)
    seconds["read"] = time.perf_counter() - clock
    centroids, sizes, movement, iterations, converged = initial, [], math.inf, 0, False
    while iterations < max_iterations and not converged:
        clock = time.perf_counter()
        sums = accumulate(points, centroids, d)
        seconds["assign"] += time.perf_counter() - clock
        clock = time.perf_counter()
        totals = ctx.all_reduce(sums, ReduceOp.SUM)
        seconds["reduce"] += time.perf_counter() - clock
        centroids, sizes, movement = update(totals, centroids, d)
        iterations += 1
        converged = movement <= tolerance
    output = {"worker": ctx.worker_id, "points": len(points) // d, "bytes_read": bytes_read, "seconds": seconds}
    if ctx.worker_id == 0:
        output.update(
            total_points=total,
            dimensions=d,
            k=k,
            iterations=iterations,
            converged=converged,
            movement=movement,
            centroids=[centroids[c * d : (c + 1) * d] for c in range(k)],
            sizes=sizes,
        )
    return output
