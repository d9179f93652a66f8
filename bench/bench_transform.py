"""How much the sandbox transform costs over a plain re-encode, and whether it streams.

Run: .venv/bin/python bench/bench_transform.py

Absolute times depend on the machine, so the figure to watch is the ratio to
a decode + re-encode baseline measured in the same run with the same encoder
settings, on a 10 s clip at 640x360 and at 1280x720 (24 fps, with sound).
Each step runs (best of three) in a fresh forked child, so its peak-RSS growth is
its own and not inflated by whatever ran before it; a transform that held
every frame would show growth of hundreds of MB on these clips.
Target (issue 7): at most 2.5x the baseline at 720p.
"""

import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table  # noqa: E402
from tests.clips import make_clip  # noqa: E402
from sandbox.effects import X264_OPTIONS, transform_video  # noqa: E402

SIZES = ((640, 360), (1280, 720))
TARGET = 2.5  # at 720p


def baseline(src: Path, dst: Path) -> int:
    """Decode every frame and re-encode it with the transform's encoder settings."""
    frames = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.options = X264_OPTIONS
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.codec_context.time_base = vin.time_base
        for frame in inp.decode(vin):
            out.mux(vout.encode(frame))
            frames += 1
        out.mux(vout.encode())
    return frames


def transform(src: Path, dst: Path) -> int:
    transform_video(src, dst, "a neon city at night", watermark="SANDBOX PREVIEW")
    with av.open(str(dst)) as out:
        return out.streams.video[0].frames


def _child(step, src, dst, conn) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    frames = step(src, dst)
    elapsed = time.perf_counter() - start
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before  # KiB on Linux
    conn.send((elapsed, frames, growth_kib))


def measure(step, src: Path, dst: Path, runs: int = 3) -> tuple[float, int, int]:
    """Best time of ``runs`` (timing noise only ever adds), frame count, worst RSS growth."""
    results = []
    for _ in range(runs):
        parent, child = mp.Pipe()
        proc = mp.get_context("fork").Process(target=_child, args=(step, src, dst, child))
        proc.start()
        results.append(parent.recv())
        proc.join()
    return min(r[0] for r in results), results[0][1], max(r[2] for r in results)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for width, height in SIZES:
            start = time.perf_counter()
            src = make_clip(tmp / f"src-{height}.mp4", seconds=10, width=width, height=height, fps=24, audio=True)
            print(f"clip: 10 s {width}x{height} 24 fps + AAC, made in {time.perf_counter() - start:.2f} s")
            base_s, base_frames, base_rss = measure(baseline, src, tmp / "base.mp4")
            tr_s, tr_frames, tr_rss = measure(transform, src, tmp / "out.mp4")
            ratio = tr_s / base_s
            print(f"  baseline decode+encode : {base_s:6.2f} s  {base_frames / base_s:7.1f} fps"
                  f"  peak RSS +{base_rss / 1024:.1f} MiB")
            print(f"  transform_video        : {tr_s:6.2f} s  {tr_frames / tr_s:7.1f} fps  peak RSS +{tr_rss / 1024:.1f} MiB")
            print(f"  ratio transform/baseline: {ratio:.2f}x  (frames {tr_frames} vs {base_frames})")
            at_720 = height >= 720
            table.record("7" if at_720 else "7 (360p)", f"sandbox transform, 10 s {width}x{height} clip",
                         f"{tr_s:.2f} s, peak RSS +{tr_rss / 1024:.0f} MiB",
                         f"decode+encode {base_s:.2f} s, +{base_rss / 1024:.0f} MiB", f"{ratio:.2f}×",
                         f"≤ {TARGET}×" if at_720 else "reported", ratio <= TARGET if at_720 else None)


if __name__ == "__main__":
    main()
