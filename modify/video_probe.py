"""Media probing: what a file really is, how long it runs, and a poster frame.

Uploads and provider results are checked by content, never by file name or
declared MIME type, because both are trivially wrong. Every failure surfaces
as :class:`MediaError`, whose text is written for the person who gave us the
file, so views can show it as is.
"""

import contextlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

# ftyp brands of ISO-BMFF files that are pictures or sound, not videos.
_NON_VIDEO_BRANDS = {b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B "}
# Top-level atoms an old QuickTime file may start with when it has no ftyp.
_QT_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
# FFmpeg also "reads" still images and ANSI text as videos; we don't.
_NOT_VIDEO_FORMATS = {"image2", "tty"}
_MB = 1024 * 1024
# Pillow turns counter-clockwise: these undo a clockwise display rotation.
_UPRIGHT_TRANSPOSE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


class MediaError(Exception):
    """A problem with a media file, phrased as a sentence for the user."""


def sniff_container(head: bytes) -> str | None:
    """Name the container ("mp4", "mov", "avi") from a file's first bytes, else None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) < 8:
        return None
    size, kind = int.from_bytes(head[:4], "big"), head[4:8]
    if kind == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _NON_VIDEO_BRANDS:
            return None
        return "mov" if brand == b"qt  " else "mp4"
    # Size 0 means "to end of file", 1 means a 64-bit size follows.
    if kind in _QT_ATOMS and (size in (0, 1) or size >= 8):
        return "mov"
    return None


@dataclass(frozen=True)
class VideoInfo:
    """What the app stores and shows about a video; frozen, as it describes a fixed file."""

    duration: float  # seconds
    width: int  # as displayed, i.e. after ``rotation``
    height: int
    fps: float
    codec: str
    container: str | None  # as sniff_container names it
    has_audio: bool
    size: int  # bytes
    # Clockwise degrees (0, 90, 180, 270) a player turns the stored picture to
    # show it upright, as phones record it; the legacy "rotate" tag's convention.
    rotation: int = 0


def probe(path) -> VideoInfo:
    """Describe the video at ``path``; raise MediaError if it isn't one we can read."""
    path = Path(path)
    with path.open("rb") as fh:
        container_name = sniff_container(fh.read(64))
    try:
        with av.open(str(path)) as container:
            if _is_still_or_text(container.format.name):
                raise MediaError("This file is not a video we can read.")
            if not container.streams.video:
                raise MediaError("This file has no video picture in it.")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = _duration(container, stream)
            rotation = display_rotation(path)
            if rotation in (90, 270):
                width, height = height, width
            return VideoInfo(
                duration=duration,
                width=width,
                height=height,
                fps=float(rate) if rate else 0.0,
                codec=stream.codec_context.name,
                container=container_name,
                has_audio=bool(container.streams.audio),
                size=path.stat().st_size,
                rotation=rotation,
            )
    except av.FFmpegError as exc:
        raise MediaError("This file is not a video we can read.") from exc


def display_rotation(path) -> int:
    """Clockwise degrees (0, 90, 180, 270) to turn the video at ``path`` upright.

    PyAV exposes no stream-level getter for the display matrix, but the decoder
    attaches it to every frame, so the first frame is decoded. A fresh demuxer
    is used because raw streams cannot seek back afterwards. Undecodable
    pictures count as unrotated: saying whether a file is readable is probe's job.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for frame in container.decode(container.streams.video[0]):
                return frame_rotation(frame)
    except av.FFmpegError:
        pass
    return 0


def frame_rotation(frame) -> int:
    """Clockwise degrees (0, 90, 180, 270) to show ``frame`` upright.

    ``VideoFrame.rotation`` is the display matrix's counter-clockwise angle
    (-90 for a phone's portrait clip); FFmpeg's own tools negate it likewise.
    Mirrored matrices are treated as their rotation alone.
    """
    return -round(frame.rotation / 90) * 90 % 360


def _is_still_or_text(format_name: str) -> bool:
    """True for FFmpeg's single-image ("png_pipe", "image2") and ANSI-text demuxers."""
    return format_name in _NOT_VIDEO_FORMATS or format_name.endswith("_pipe")


def _duration(container, stream) -> float:
    """Container duration, else the stream's, else found by decoding every frame.

    Some files (raw streams, badly muxed AVIs) carry no duration in their
    headers; decoding is slow but gives the true answer. Frames without
    timestamps are counted and divided by the frame rate.
    """
    if container.duration:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    rate = float(stream.guessed_rate or stream.average_rate or 25)
    count, end = 0, 0.0
    for frame in container.decode(stream):
        count += 1
        if frame.time is not None:
            step = float(frame.duration * frame.time_base) if frame.duration else 1 / rate
            end = max(end, frame.time + step)
    if not count:
        raise MediaError("This video has no frames we can play.")
    return end or count / rate


def write_poster(video_path, out_path, at_seconds: float | None = None) -> tuple[int, int]:
    """Save a JPEG still from the video and return its (width, height).

    By default the still comes from a third of the way in: first frames are
    often black fades or a title card, which make poor gallery thumbnails.
    """
    try:
        with av.open(str(video_path)) as container:
            if not container.streams.video:
                raise MediaError("This file has no video picture in it.")
            stream = container.streams.video[0]
            if at_seconds is None:
                at_seconds = _duration(container, stream) / 3
                container.seek(0)  # _duration may have decoded to the end
            frame = _frame_at(container, stream, max(at_seconds, 0.0))
    except av.FFmpegError as exc:
        raise MediaError("We could not take a picture from this video.") from exc
    if frame is None:
        raise MediaError("We could not take a picture from this video.")
    image = frame.to_image()
    turn = _UPRIGHT_TRANSPOSE.get(frame_rotation(frame))
    if turn is not None:
        image = image.transpose(turn)
    image.save(out_path, format="JPEG", quality=85)
    return image.size


def _frame_at(container, stream, seconds: float):
    """First frame at or after ``seconds``, or the last frame if the video ends earlier."""
    if seconds > 0 and stream.time_base:
        # Seeking lands on the keyframe before the target; decode forward from there.
        container.seek(int(seconds / stream.time_base), stream=stream, backward=True)
    frame = None
    for frame in container.decode(stream):
        if frame.time is None or frame.time >= seconds - 1e-3:
            break
    return frame


def check_size(size: int, max_bytes: int) -> None:
    """Raise MediaError when ``size`` is over ``max_bytes`` (shown rounded up, never "at" the limit)."""
    if size > max_bytes:
        shown = math.ceil(round(size / _MB * 10, 6)) / 10
        raise MediaError(f"The file is {shown:g} MB; the limit is {max_bytes / _MB:g} MB.")


def check_limits(info: VideoInfo, max_seconds: float, max_bytes: int) -> None:
    """Raise MediaError naming the first limit the video breaks.

    Shown values are rounded up, so a video just over a limit never reads as
    exactly at it ("10.1 s", not "10.0 s", for 10.04 s against 10 s).
    """
    if info.duration > max_seconds:
        shown = math.ceil(round(info.duration * 10, 6)) / 10
        raise MediaError(f"The video is {shown:g} s long; the limit is {max_seconds:g} s.")
    check_size(info.size, max_bytes)


def validate_video(path, max_seconds: float, max_bytes: int) -> VideoInfo:
    """Everything the provider would refuse, checked here first: the container by
    content, then a readable video stream, then duration and size."""
    with open(path, "rb") as fh:
        if sniff_container(fh.read(64)) is None:
            raise MediaError("This is not an MP4, MOV or AVI video.")
    info = probe(path)
    check_limits(info, max_seconds, max_bytes)
    return info


@contextlib.contextmanager
def temp_path(suffix=""):
    """A fresh temporary file path, removed afterwards whatever happens."""
    fd, path = tempfile.mkstemp(prefix="lumaweb-", suffix=suffix)
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
