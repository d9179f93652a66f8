"""Synthetic test clips.

Tests, demos and the benchmark need real, decodable videos with known
properties (length, size, frame rate, audio) without shipping binary fixtures.
The picture is deliberately colourful and moving: a flat or static clip would
let a broken colour grade or a frozen-frame bug pass unnoticed.
"""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Codecs per container: what a phone or editor would typically produce there.
_CODECS = {
    "mp4": ("libx264", "aac"),
    "mov": ("libx264", "aac"),
    "avi": ("mpeg4", "pcm_s16le"),
}
_SAMPLE_RATE = 48000


def make_clip(
    path,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 240,
    fps: int = 24,
    audio: bool = False,
    container: str = "mp4",
    rotation: int = 0,
) -> Path:
    """Write a deterministic, moving, colourful clip to ``path`` and return it.

    The same arguments always give the same pictures and sound, so tests can
    compare measured properties against expectations.

    ``rotation`` (0, 90, 180 or 270, clockwise) marks the clip the way a phone
    does: the ``width`` x ``height`` pictures are stored as drawn, and a display
    matrix tells players to turn them by that much; 90 is a portrait phone clip.
    Only mp4 and mov can carry it.
    """
    if container not in _CODECS:
        raise ValueError(f"unsupported container {container!r}")
    if rotation not in (0, 90, 180, 270):
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {rotation!r}")
    if rotation and container == "avi":
        raise ValueError("an AVI file cannot carry a rotation")
    video_codec, audio_codec = _CODECS[container]
    path = Path(path)
    n_frames = round(seconds * fps)
    with av.open(str(path), "w", format=container) as out:
        vstream = out.add_stream(video_codec, rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if rotation:
            # PyAV's angle is counter-clockwise (as VideoFrame.rotation reads it back):
            # a phone's portrait clip carries -90, which players show turned 90 clockwise.
            vstream.set_display_rotation(-rotation)
        if video_codec == "libx264":
            # ultrafast keeps test set-up cheap; one thread keeps output byte-stable.
            vstream.options = {"preset": "ultrafast", "crf": "23", "threads": "1"}
        else:
            vstream.bit_rate = 2_000_000
        tone = _Tone(out, out.add_stream(audio_codec, rate=_SAMPLE_RATE, layout="mono")) if audio else None
        painter = _Painter(width, height)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(painter.frame(i / fps), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(vstream.encode(frame))
            if tone:  # keep sound and picture interleaved, as real files are
                tone.write_until((i + 1) / fps)
        out.mux(vstream.encode())
        if tone:
            tone.finish()
    return path


class _Painter:
    """Draws frame ``t``: a drifting gradient plus a sweeping box and a bobbing circle.

    Per-pixel work is precomputed; each frame is a few uint8 additions (which
    wrap, giving the drift for free) and one table lookup, to keep clips cheap.
    """

    def __init__(self, width: int, height: int):
        self.w, self.h = width, height
        y, x = np.mgrid[0:height, 0:width]
        self.red = (x * 255 // max(width - 1, 1)).astype(np.uint8)
        self.green = (y * 255 // max(height - 1, 1)).astype(np.uint8)
        self.diagonal = x + y
        self.rgb = np.empty((height, width, 3), dtype=np.uint8)

    def frame(self, t: float) -> np.ndarray:
        w, h, img = self.w, self.h, self.rgb
        np.add(self.red, np.uint8(int(t * 90) % 256), out=img[..., 0])
        np.add(self.green, np.uint8(int(t * 60) % 256), out=img[..., 1])
        wave = 128 + 100 * np.sin(np.arange(w + h) / 40 + t * 3)
        img[..., 2] = wave.astype(np.uint8)[self.diagonal]
        bw, bh = w // 5, h // 4
        bx = int((w - bw) * (0.5 + 0.5 * np.sin(t * 2)))
        img[h // 8 : h // 8 + bh, bx : bx + bw] = (250, 250, 250)
        r = h // 6
        cx, cy = int(w * 0.7), int(h * (0.5 + 0.3 * np.cos(t * 3)))
        top, left = max(cy - r, 0), max(cx - r, 0)
        dy, dx = np.ogrid[top - cy : min(cy + r, h) - cy, left - cx : min(cx + r, w) - cx]
        img[top : top + dy.shape[0], left : left + dx.shape[1]][dx * dx + dy * dy < r * r] = (20, 30, 60)
        return img


class _Tone:
    """A 440 Hz tone, written in step with the picture so the file is interleaved."""

    def __init__(self, out, stream):
        self.out, self.stream, self.written = out, stream, 0
        self.fmt = stream.codec_context.format.name

    def write_until(self, seconds: float) -> None:
        end = round(seconds * _SAMPLE_RATE)
        t = np.arange(self.written, end) / _SAMPLE_RATE
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)
        if self.fmt == "s16":
            samples = (wave * 32767).astype(np.int16)
        else:
            samples = wave.astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format=self.fmt, layout="mono")
        frame.sample_rate, frame.pts = _SAMPLE_RATE, self.written
        frame.time_base = Fraction(1, _SAMPLE_RATE)
        self.out.mux(self.stream.encode(frame))
        self.written = end

    def finish(self) -> None:
        self.out.mux(self.stream.encode())
