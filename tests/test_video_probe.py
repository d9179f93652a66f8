"""modify.video_probe: content sniffing, probing, limits and poster frames, on real files."""

import os
import random
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from tests.clips import make_clip
from modify.video_probe import MediaError, VideoInfo, check_limits, probe, sniff_container, write_poster

MB = 1024 * 1024


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=2.0)


@pytest.mark.parametrize(
    "head, expected",
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "mp4"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "mov"),
        (b"\x00\x00\x00\x08wide\x00\x01\x00\x00mdat", "mov"),  # old QuickTime, no ftyp
        (b"\x00\x00\x06\x2amoov\x00\x00\x00\x6cmvhd", "mov"),
        (b"RIFF\x24\x10\x00\x00AVI LIST", "avi"),
        (b"RIFF\x24\x10\x00\x00WAVEfmt ", None),  # RIFF, but sound
        (b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic", None),  # a photo
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", None),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", None),  # WebM / Matroska
        (b"hello, this is just a text file\n", None),
        (b"\x00\x00\x00\x05moov", None),  # impossible atom size
        (b"", None),
    ],
)
def test_sniff_container(head, expected):
    assert sniff_container(head) == expected


@pytest.mark.parametrize("container", ["mp4", "mov", "avi"])
def test_sniff_recognises_generated_files(tmp_path, container):
    path = make_clip(tmp_path / f"c.{container}", seconds=0.5, container=container)
    assert sniff_container(path.read_bytes()[:64]) == container


@pytest.mark.parametrize(
    "container, audio, codec",
    [("mp4", False, "h264"), ("mp4", True, "h264"), ("mov", True, "h264"), ("avi", True, "mpeg4")],
)
def test_probe_generated_clip(tmp_path, container, audio, codec):
    path = make_clip(tmp_path / f"c.{container}", seconds=1.5, width=160, height=96, fps=20,
                     audio=audio, container=container)
    info = probe(path)
    assert isinstance(info, VideoInfo)
    assert info.duration == pytest.approx(1.5, abs=1 / 20)
    assert (info.width, info.height) == (160, 96)
    assert info.fps == pytest.approx(20)
    assert info.codec == codec
    assert info.container == container
    assert info.has_audio is audio
    assert info.size == path.stat().st_size > 0
    assert info.rotation == 0


@pytest.mark.parametrize(
    "container, rotation, shown",
    [("mp4", 90, (96, 160)), ("mp4", 180, (160, 96)), ("mp4", 270, (96, 160)), ("mov", 90, (96, 160))],
)
def test_probe_reports_rotation_and_displayed_size(tmp_path, container, rotation, shown):
    """A phone's portrait clip is stored landscape with a display matrix saying "turn 90°"."""
    path = make_clip(tmp_path / f"c.{container}", seconds=1.5, width=160, height=96, fps=20,
                     container=container, rotation=rotation)
    with av.open(str(path)) as source:  # stored as drawn: the turn is metadata only
        stored = source.streams.video[0].codec_context
        assert (stored.width, stored.height) == (160, 96)
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == shown
    assert info.duration == pytest.approx(1.5, abs=1 / 20)
    assert info.fps == pytest.approx(20)


@pytest.mark.parametrize("rotation, container", [(45, "mp4"), (-90, "mp4"), (90, "avi")])
def test_make_clip_refuses_rotations_it_cannot_write(tmp_path, rotation, container):
    with pytest.raises(ValueError):
        make_clip(tmp_path / f"c.{container}", seconds=0.5, rotation=rotation, container=container)


def test_make_clip_is_deterministic_and_moving(tmp_path):
    a = make_clip(tmp_path / "a.mp4", seconds=0.5).read_bytes()
    b = make_clip(tmp_path / "b.mp4", seconds=0.5).read_bytes()
    assert a == b
    with av.open(str(tmp_path / "a.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert np.abs(frames[0] - frames[-1]).mean() > 10  # the picture really moves


def test_probe_measures_duration_by_decoding_when_headers_lack_it(tmp_path):
    """A raw H.264 stream has no container or stream duration at all."""
    source = make_clip(tmp_path / "c.mp4", seconds=1.5, fps=24)
    raw = tmp_path / "c.h264"
    with av.open(str(source)) as inp, av.open(str(raw), "w", format="h264") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(video=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    with av.open(str(raw)) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    info = probe(raw)
    assert info.duration == pytest.approx(1.5, abs=1 / 24)
    assert info.container is None


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", ["garbage", "empty", "text", "png"])
def test_probe_rejects_non_videos(tmp_path, kind):
    if kind == "png":
        path = tmp_path / "still.png"
        Image.new("RGB", (64, 48), "red").save(path)
    else:
        data = {
            "garbage": random.Random(7).randbytes(20_000),
            "empty": b"",
            "text": b"just some notes\n" * 200,
        }[kind]
        path = _write(tmp_path / f"{kind}.txt", data)
    with pytest.raises(MediaError) as excinfo:
        probe(path)
    assert str(excinfo.value) == "This file is not a video we can read."


def test_probe_rejects_audio_only_file(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4800), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, 0, Fraction(1, 48000)
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(MediaError, match="no video picture"):
        probe(path)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors via /proc")
def test_probe_and_poster_leave_no_open_files(clip, tmp_path):
    junk = _write(tmp_path / "junk.bin", random.Random(1).randbytes(4000))
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        probe(clip)
        write_poster(clip, tmp_path / "p.jpg")
        with pytest.raises(MediaError):
            probe(junk)
    assert len(os.listdir("/proc/self/fd")) == before


def _info(duration=5.0, size=10 * MB):
    return VideoInfo(duration=duration, width=640, height=360, fps=24.0, codec="h264",
                     container="mp4", has_audio=False, size=size)


def test_check_limits_accepts_video_within_limits():
    check_limits(_info(duration=10.0, size=500 * MB), max_seconds=10, max_bytes=500 * MB)


@pytest.mark.parametrize(
    "info, message",
    [
        (_info(duration=12.4), "The video is 12.4 s long; the limit is 10 s."),
        # Rounded up, so "just over" never reads as "exactly at" the limit.
        (_info(duration=10.04), "The video is 10.1 s long; the limit is 10 s."),
        (_info(size=600 * MB), "The file is 600 MB; the limit is 500 MB."),
        (_info(size=500 * MB + 1), "The file is 500.1 MB; the limit is 500 MB."),
        (_info(duration=11, size=900 * MB), "The video is 11 s long; the limit is 10 s."),
    ],
)
def test_check_limits_messages(info, message):
    with pytest.raises(MediaError) as excinfo:
        check_limits(info, max_seconds=10, max_bytes=500 * MB)
    assert str(excinfo.value) == message


def _jpeg(path):
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"
    image = Image.open(path)
    assert image.format == "JPEG"
    return np.asarray(image.convert("RGB"), dtype=int)


def test_write_poster_makes_jpeg_from_a_third_in(clip, tmp_path):
    size = write_poster(clip, tmp_path / "poster.jpg")
    assert size == (320, 240)
    poster = _jpeg(tmp_path / "poster.jpg")
    assert poster.shape == (240, 320, 3)
    with av.open(str(clip)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    # 48 frames over 2 s: a third in is frame 16, not the first frame.
    distances = [np.abs(poster - frame).mean() for frame in frames]
    assert int(np.argmin(distances)) == pytest.approx(16, abs=1)
    assert distances[0] > 10


def test_write_poster_at_explicit_time_and_past_the_end(clip, tmp_path):
    assert write_poster(clip, tmp_path / "start.jpg", at_seconds=0) == (320, 240)
    assert write_poster(clip, tmp_path / "late.jpg", at_seconds=60) == (320, 240)  # last frame
    assert np.abs(_jpeg(tmp_path / "start.jpg") - _jpeg(tmp_path / "late.jpg")).mean() > 10


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_write_poster_of_rotated_clip_is_upright(clip, tmp_path, rotation):
    """Same stored pictures as ``clip``; the poster is them turned as a player shows them."""
    rotated = make_clip(tmp_path / "rotated.mp4", seconds=2.0, rotation=rotation)
    size = write_poster(rotated, tmp_path / "rotated.jpg")
    shown = (240, 320) if rotation in (90, 270) else (320, 240)
    assert size == shown
    poster = _jpeg(tmp_path / "rotated.jpg")
    assert poster.shape == (shown[1], shown[0], 3)
    write_poster(clip, tmp_path / "plain.jpg")
    plain = _jpeg(tmp_path / "plain.jpg")
    upright = np.rot90(plain, k=-rotation // 90)  # clockwise, as players turn it
    assert np.abs(poster - upright).mean() < 3
    wrong_way = np.rot90(upright, k=2)  # the other orientation of the same shape
    assert np.abs(poster - wrong_way).mean() > 20


def test_write_poster_rejects_garbage(tmp_path):
    path = _write(tmp_path / "junk.mp4", random.Random(3).randbytes(5000))
    with pytest.raises(MediaError):
        write_poster(path, tmp_path / "poster.jpg")
    assert not (tmp_path / "poster.jpg").exists()
