"""The sandbox's real video transform: a colour grade chosen from the prompt.

The sandbox stands in for the provider, so its results must be real videos
that visibly follow the prompt; otherwise the app's download, probe, poster
and gallery paths would be exercised on fakes. Frames are streamed through an
FFmpeg filter graph one at a time, so memory stays flat for any length.
PyAV's bundled FFmpeg lacks ``drawtext`` and ``eq``: the watermark is drawn
with Pillow, and the grades are built from curves, hue, vignette and friends.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from modify.video_probe import MediaError, display_rotation

X264_OPTIONS = {"preset": "veryfast", "crf": "20"}


@dataclass(frozen=True)
class Grade:
    """A named look: FFmpeg filters as (name, args) pairs, applied in order."""

    name: str
    filters: tuple[tuple[str, str], ...]


# Checked in this order; the first whose words appear in the prompt wins, so
# the more specific look ("neon city at night") beats the broader one.
# Tints are per-channel curves (lookup tables): colorbalance costs ~6x more.
_KEYWORD_GRADES = (
    (r"noir|black\s*(?:and|&)\s*white|b&w|monochrome|gr[ae]yscale", Grade("noir", (
        ("curves", "preset=strong_contrast"), ("noise", "alls=14:allf=t"),
        ("hue", "s=0"), ("vignette", "angle=PI/4"),
    ))),
    (r"neon|cyberpunk|synthwave", Grade("neon", (
        ("hue", "s=1.8"), ("unsharp", "5:5:1.2"),
        ("curves", "r=0/0.08 0.5/0.55 1/1:g=0/0 0.5/0.4 1/0.92:b=0/0.15 0.5/0.62 1/1"
                   ":m=0/0 0.25/0.16 0.75/0.86 1/1"),
    ))),
    (r"fire|flames?|fiery|burning|inferno", Grade("fire", (
        ("hue", "s=1.4"),
        ("curves", "r=0/0.1 0.5/0.75 1/1:g=0/0 0.5/0.45 1/0.9:b=0/0 0.5/0.25 1/0.6"
                   ":m=0/0 0.25/0.18 0.75/0.85 1/1"),
    ))),
    (r"night(?:s|time)?|midnight|moonlit|moonlight", Grade("night", (
        ("hue", "s=0.55"),
        ("curves", "r=0/0 0.5/0.2 1/0.55:g=0/0 0.5/0.25 1/0.65:b=0/0.05 0.5/0.4 1/0.85"),
        ("vignette", "angle=PI/3.5"),
    ))),
    (r"sunsets?|sunrises?|dusk|golden hour", Grade("sunset", (
        ("hue", "s=1.2"),
        ("curves", "r=0/0.05 0.5/0.66 1/1:g=0/0 0.5/0.5 1/0.95:b=0/0 0.5/0.34 1/0.8"),
        ("vignette", "angle=PI/5"),
    ))),
    (r"winter|wintry|snow(?:y|fall|ing)?|frozen|icy", Grade("winter", (
        ("hue", "s=0.45"), ("curves", "r=0/0.08 0.5/0.55 1/0.95:g=0/0.1 0.5/0.6 1/1:b=0/0.18 0.5/0.7 1/1"),
    ))),
    (r"underwater|undersea|oceans?|deep sea", Grade("underwater", (
        ("colorchannelmixer", "rr=0.45:rg=0.1:gg=0.9:gb=0.1:bg=0.2:bb=1.0"),
        ("curves", "g=0/0.05 0.5/0.55 1/1:b=0/0.12 0.5/0.62 1/1"),
        ("gblur", "sigma=1.5"),
    ))),
    (r"forests?|jungles?|woods|woodland", Grade("forest", (
        ("hue", "s=1.2"),
        ("curves", "r=0/0 0.5/0.4 1/0.9:g=0/0.05 0.5/0.6 1/1:b=0/0 0.5/0.38 1/0.85"),
        ("vignette", "angle=PI/4"),
    ))),
    (r"vintage|retro|sepia|old film", Grade("vintage", (
        ("colorchannelmixer", ".393:.769:.189:0:.349:.686:.168:0:.272:.534:.131"),
        ("curves", "preset=vintage"),
        ("noise", "alls=10:allf=t"), ("vignette", "angle=PI/4"),
    ))),
    (r"dreams?|dreamy|dreamlike|ethereal", Grade("dream", (
        ("gblur", "sigma=4"), ("hue", "s=0.7"),
        ("curves", "r=0/0.1 0.5/0.7 1/1:g=0/0.08 0.5/0.62 1/0.95:b=0/0.15 0.5/0.72 1/1"),
    ))),
)
_KEYWORD_PATTERNS = tuple((re.compile(rf"\b(?:{words})\b", re.I), grade) for words, grade in _KEYWORD_GRADES)


def choose_grade(prompt: str) -> Grade:
    """Pick the look for ``prompt``: a keyword grade, else one derived from its text."""
    for pattern, grade in _KEYWORD_PATTERNS:
        if pattern.search(prompt):
            return grade
    return _derived_grade(prompt)


def _derived_grade(prompt: str) -> Grade:
    """A clearly visible tint made from a hash of the prompt.

    Same prompt (ignoring case and spacing), same look; different prompts
    almost always differ, so a test or a demo can tell results apart.
    """
    text = " ".join(prompt.lower().split())
    digest = hashlib.sha256(text.encode()).digest()
    hue = 60 + digest[0] * 240 // 255  # keep well away from "no shift"
    saturation = 0.8 + digest[1] / 255 * 0.8
    shifts = [(d - 128) / 128 * 0.3 for d in digest[2:5]]  # per channel, -0.3..0.3
    curves = ":".join(
        f"{ch}=0/{max(0.0, d * 0.4):.2f} 0.5/{0.5 + d * 0.6:.2f} 1/{min(1.0, 1 + d * 0.4):.2f}"
        for ch, d in zip("rgb", shifts)
    )
    return Grade(f"tint-{digest[:3].hex()}", (("hue", f"h={hue}:s={saturation:.2f}"), ("curves", curves)))


def transform_video(src_path, dst_path, prompt: str, watermark: str = "") -> Grade:
    """Write ``src_path`` graded for ``prompt`` (and watermarked) as an H.264 MP4.

    Timestamps pass through unchanged, so the result has the source's frame
    count, frame rate and duration; audio is kept (copied if AAC, else
    re-encoded to AAC) so it stays in sync. A rotated source (a phone's
    portrait clip) is turned upright and written without rotation metadata,
    so the result shows the same way in every player, at its displayed size.
    """
    grade = choose_grade(prompt)
    try:
        src = av.open(str(src_path))
    except av.FFmpegError as exc:
        raise MediaError("This file is not a video we can read.") from exc
    rotation = display_rotation(src_path)
    dst_path = Path(dst_path)
    try:  # faststart: results are played in browsers straight from storage
        with src, av.open(str(dst_path), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            _Pipeline(src, dst, grade, watermark.strip(), rotation).run()
    except av.FFmpegError as exc:
        dst_path.unlink(missing_ok=True)  # never leave a half-written result behind
        raise MediaError("We could not transform this video.") from exc
    except BaseException:
        dst_path.unlink(missing_ok=True)
        raise
    return grade


class _Pipeline:
    """Demux once; grade and re-encode the picture; copy or re-encode the sound."""

    def __init__(self, src, dst, grade: Grade, watermark: str, rotation: int = 0):
        if not src.streams.video:
            raise MediaError("This file has no video picture in it.")
        self.src, self.dst = src, dst
        self.vin = src.streams.video[0]
        self.vin.thread_type = "AUTO"
        ctx = self.vin.codec_context
        width, height = ctx.width - ctx.width % 2, ctx.height - ctx.height % 2  # yuv420p needs even sizes
        # Crop (in stored orientation), turn upright, then grade: the output
        # carries no display matrix, so it must already be the way it is seen.
        filters = _UPRIGHT_FILTERS[rotation] + grade.filters
        if (width, height) != (ctx.width, ctx.height):
            filters = (("crop", f"{width}:{height}:0:0"),) + filters
        if rotation in (90, 270):
            width, height = height, width
        self.vout = dst.add_stream("libx264", rate=self.vin.average_rate or self.vin.guessed_rate or 25)
        self.vout.options = X264_OPTIONS
        self.vout.width, self.vout.height, self.vout.pix_fmt = width, height, "yuv420p"
        self.vout.codec_context.time_base = self.vin.time_base
        self.mark = _Watermark(watermark, width, height) if watermark else None
        self.graph = _build_graph(filters + (("format", "yuv420p"),), ctx, self.vin.time_base)
        self.ain = src.streams.audio[0] if src.streams.audio else None
        self.copy_audio = self.ain is not None and self.ain.codec_context.name == "aac"
        if self.copy_audio:
            self.aout = dst.add_stream_from_template(self.ain)
        elif self.ain is not None:
            # AVI/WAV layouts are often "N channels" with no order, which AAC
            # refuses; name the layout by count (multichannel mixes down to stereo).
            actx = self.ain.codec_context
            layout = "mono" if actx.layout.nb_channels == 1 else "stereo"
            self.aout = dst.add_stream("aac", rate=actx.sample_rate, layout=layout, format="fltp")

    def run(self) -> None:
        streams = [s for s in (self.vin, self.ain) if s is not None]
        for packet in self.src.demux(streams):
            if packet.stream is self.vin:
                for frame in packet.decode():
                    self.graph.push(frame)
                    self._drain_graph()
            elif self.copy_audio:
                if packet.dts is not None:  # the demuxer's final empty packet has none
                    packet.stream = self.aout
                    self.dst.mux(packet)
            else:
                for frame in packet.decode():
                    self.dst.mux(self.aout.encode(frame))
        self.graph.push(None)
        self._drain_graph()
        self.dst.mux(self.vout.encode())
        if self.ain is not None and not self.copy_audio:
            self.dst.mux(self.aout.encode())

    def _drain_graph(self) -> None:
        while True:
            try:
                frame = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            if self.mark:
                self.mark.apply(frame)
            self.dst.mux(self.vout.encode(frame))


# Filters that undo a clockwise display rotation, as FFmpeg's own autorotate does.
_UPRIGHT_FILTERS = {
    0: (),
    90: (("transpose", "clock"),),
    180: (("hflip", ""), ("vflip", "")),
    270: (("transpose", "cclock"),),
}


def _build_graph(filters, ctx, time_base) -> av.filter.Graph:
    """buffer -> filters -> buffersink, sized and timed like the source."""
    graph = av.filter.Graph()
    fmt = ctx.format or "yuv420p"
    nodes = [graph.add_buffer(width=ctx.width, height=ctx.height, format=fmt, time_base=time_base)]
    nodes += [graph.add(name, args) for name, args in filters]
    nodes.append(graph.add("buffersink"))
    graph.link_nodes(*nodes)
    graph.configure()
    return graph


class _Watermark:
    """Semi-transparent light text with a dark outline, bottom-right.

    Rendered once with Pillow, then blended per frame straight into the
    yuv420p planes, and only in the corner it covers: no RGB round trip.
    The ink is grey, so the chroma planes are just pulled towards neutral.
    """

    def __init__(self, text: str, width: int, height: int):
        font = ImageFont.load_default(size=max(12, height // 18))
        stroke = max(1, height // 240)
        left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
        # Even box and position, so the half-resolution chroma lines up.
        box_w = min(right - left + 1, width) // 2 * 2
        box_h = min(bottom - top + 1, height) // 2 * 2
        layer = Image.new("LA", (box_w, box_h))
        ImageDraw.Draw(layer).text((-left, -top), text, font=font, fill=(255, 255),
                                   stroke_width=stroke, stroke_fill=(0, 255))
        grey, alpha = (np.asarray(band, dtype=np.float32) / 255 for band in layer.split())
        alpha *= 0.7  # opacity: clearly there, yet the picture shows through
        self.luma_alpha, self.luma_ink = alpha, (16 + 219 * grey) * alpha  # limited-range Y
        chroma_alpha = alpha.reshape(box_h // 2, 2, box_w // 2, 2).mean(axis=(1, 3))
        self.chroma_alpha, self.chroma_ink = chroma_alpha, 128 * chroma_alpha
        margin = max(4, height // 40) // 2 * 2
        self.x0 = max(0, width - box_w - margin)
        self.y0 = max(0, height - box_h - margin)

    def apply(self, frame: av.VideoFrame) -> None:
        """Blend the text into ``frame`` (yuv420p) in place."""
        frame.make_writable()
        luma = (self.luma_alpha, self.luma_ink, 1)
        chroma = (self.chroma_alpha, self.chroma_ink, 2)
        for plane, (alpha, ink, scale) in zip(frame.planes, (luma, chroma, chroma)):
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
            y, x = self.y0 // scale, self.x0 // scale
            corner = rows[y : y + alpha.shape[0], x : x + alpha.shape[1]]
            corner[:] = corner * (1 - alpha) + ink
