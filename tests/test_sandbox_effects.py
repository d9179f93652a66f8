"""sandbox.effects: the transform really grades, keeps timing and audio, and watermarks."""

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.clips import make_clip
from modify.video_probe import MediaError, probe
from sandbox.effects import choose_grade, transform_video

FPS = 24


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("effects")
    return {
        "plain": make_clip(folder / "plain.mp4", seconds=2.0, fps=FPS),
        "aac": make_clip(folder / "aac.mp4", seconds=2.0, fps=FPS, audio=True),
        "avi": make_clip(folder / "pcm.avi", seconds=1.0, fps=FPS, audio=True, container="avi"),
        "tiny": make_clip(folder / "tiny.mp4", seconds=0.5, width=64, height=48, fps=FPS),
        # A phone's portrait clip: the same 320x240 pictures as "plain", marked "turn 90°".
        "portrait": make_clip(folder / "portrait.mp4", seconds=2.0, fps=FPS, rotation=90),
    }


def decode(path, fmt="rgb24"):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format=fmt).astype(np.int16) for f in container.decode(video=0)]


def sampled_difference(a, b, region=np.s_[:, :]):
    """Mean absolute difference (0-255) over five frames spread through the clip."""
    picks = np.linspace(0, min(len(a), len(b)) - 1, 5).astype(int)
    return float(np.mean([np.abs(a[i][region] - b[i][region]).mean() for i in picks]))


@pytest.mark.parametrize(
    "prompt, grade",
    [
        ("A quiet city street at night", "night"),
        ("film NOIR detective in the rain", "noir"),
        ("a sunset over the hills", "sunset"),
        ("a cat carefully playing the piano in a kitchen", None),
    ],
)
def test_transform_grades_visibly_and_keeps_timing(clips, tmp_path, prompt, grade):
    src, dst = clips["plain"], tmp_path / "out.mp4"
    used = transform_video(src, dst, prompt)
    assert used.name == grade if grade else used.name.startswith("tint-")
    before, after = probe(src), probe(dst)
    assert (after.container, after.codec) == ("mp4", "h264")
    assert (after.width, after.height) == (before.width, before.height)
    assert after.duration == pytest.approx(before.duration, abs=1 / FPS)
    assert after.fps == pytest.approx(before.fps)
    source_frames, output_frames = decode(src), decode(dst)
    assert abs(len(output_frames) - len(source_frames)) <= 1
    assert sampled_difference(source_frames, output_frames) > 8


def test_noir_is_nearly_grayscale(clips, tmp_path):
    transform_video(clips["plain"], tmp_path / "noir.mp4", "black and white noir")
    height = 240

    def chroma_spread(path):  # mean distance of U and V from neutral 128
        return float(np.mean([np.abs(f[height:] - 128).mean() for f in decode(path, "yuv420p")]))

    assert chroma_spread(clips["plain"]) > 10  # the source is colourful...
    assert chroma_spread(tmp_path / "noir.mp4") < 2  # ...the result is not


@pytest.mark.parametrize(
    "prompt, name",
    [
        ("Neon city at NIGHT", "neon"),  # neon outranks night
        ("cyberpunk alley", "neon"),
        ("a house on fire", "fire"),
        ("flames", "fire"),
        ("midnight train", "night"),
        ("sunrise over a lake", "sunset"),
        ("a snowy forest", "winter"),  # winter outranks forest
        ("deep in the ocean", "underwater"),
        ("underwater reef", "underwater"),
        ("forest trail", "forest"),
        ("retro arcade", "vintage"),
        ("a vintage car", "vintage"),
        ("a dreamy meadow", "dream"),
        ("monochrome portrait", "noir"),
        ("a knight in armour", None),  # word match: "knight" is not "night"
        ("bonfire", None),
    ],
)
def test_choose_grade_keywords(prompt, name):
    chosen = choose_grade(prompt).name
    assert chosen == name if name else chosen.startswith("tint-")


def test_other_prompts_get_distinct_stable_grades():
    prompts = ["a cat playing piano", "a dog on a skateboard", "two people dancing",
               "a busy market", "a slow pan across a library"]
    grades = [choose_grade(p) for p in prompts]
    assert len({g.filters for g in grades}) == len(prompts)
    assert choose_grade("  A Cat   playing PIANO ") == grades[0]


def test_two_other_prompts_look_different(clips, tmp_path):
    transform_video(clips["plain"], tmp_path / "a.mp4", "a dog on a skateboard")
    transform_video(clips["plain"], tmp_path / "b.mp4", "a slow pan across a library")
    assert sampled_difference(decode(tmp_path / "a.mp4"), decode(tmp_path / "b.mp4")) > 8


@pytest.mark.parametrize(
    "prompt",
    ["night", "sunset", "snow", "noir", "retro", "neon", "forest", "flame", "ocean", "dream", "a teapot"],
)
def test_every_grade_runs_in_this_ffmpeg_build(clips, tmp_path, prompt):
    transform_video(clips["tiny"], tmp_path / "out.mp4", prompt)
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(0.5, abs=1 / FPS)


def test_watermark_marks_only_the_bottom_right(clips, tmp_path):
    transform_video(clips["plain"], tmp_path / "bare.mp4", "sunset")
    transform_video(clips["plain"], tmp_path / "marked.mp4", "sunset", watermark="SANDBOX")
    bare, marked = decode(tmp_path / "bare.mp4"), decode(tmp_path / "marked.mp4")
    corner = np.s_[216:240, 240:320]  # bottom-right of 320x240, where the text sits
    far_corner = np.s_[0:60, 0:100]
    assert sampled_difference(bare, marked, corner) > 10
    assert sampled_difference(bare, marked, far_corner) < 2


def test_audio_is_copied_when_aac(clips, tmp_path):
    transform_video(clips["aac"], tmp_path / "out.mp4", "forest")
    before, after = probe(clips["aac"]), probe(tmp_path / "out.mp4")
    assert after.has_audio
    assert after.duration == pytest.approx(before.duration, abs=1 / FPS)


def test_audio_is_reencoded_to_aac_from_avi(clips, tmp_path):
    transform_video(clips["avi"], tmp_path / "out.mp4", "vintage")
    with av.open(str(tmp_path / "out.mp4")) as out:
        audio = out.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert float(audio.duration * audio.time_base) == pytest.approx(1.0, abs=1 / FPS)
    assert probe(tmp_path / "out.mp4").duration == pytest.approx(1.0, abs=1 / FPS)


def test_odd_sized_source_gives_even_sized_output(tmp_path):
    src = tmp_path / "odd.mp4"
    with av.open(str(src), "w") as out:  # yuv444p allows odd sizes; yuv420p output does not
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 101, 75, "yuv444p"
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.full((75, 101, 3), i * 20, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    transform_video(src, tmp_path / "out.mp4", "dream", watermark="SANDBOX")
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height) == (100, 74)
    assert info.duration == pytest.approx(0.5, abs=1 / FPS)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_source_comes_out_upright_without_rotation(clips, tmp_path, rotation):
    """The result is turned upright in its pixels, so it shows the same in any player."""
    if rotation == 90:
        src = clips["portrait"]
    else:
        src = make_clip(tmp_path / "rotated.mp4", seconds=2.0, fps=FPS, rotation=rotation)
    # "winter" is a per-pixel grade (no vignette or noise), so turning commutes with it.
    transform_video(src, tmp_path / "out.mp4", "winter", watermark="SANDBOX")
    before, after = probe(src), probe(tmp_path / "out.mp4")
    assert before.rotation == rotation and after.rotation == 0
    assert (after.width, after.height) == (before.width, before.height)
    if rotation in (90, 270):
        assert after.width < after.height  # portrait, as the phone showed it
    assert after.duration == pytest.approx(before.duration, abs=1 / FPS)
    assert after.fps == pytest.approx(before.fps)
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert all(frame.rotation == 0 for frame in out.decode(video=0))

    transform_video(clips["plain"], tmp_path / "plain.mp4", "winter")
    plain, output = decode(tmp_path / "plain.mp4"), decode(tmp_path / "out.mp4")
    assert abs(len(output) - len(plain)) <= 1
    upright = [np.rot90(frame, k=-rotation // 90) for frame in plain]  # clockwise, as players turn it
    wrong_way = [np.rot90(frame, k=2) for frame in upright]  # the other orientation of this shape
    top = np.s_[: after.height // 2, :]  # away from the bottom-right watermark
    assert sampled_difference(upright, output, top) < 3
    assert sampled_difference(wrong_way, output, top) > 20
    # ...and the watermark sits bottom-right of the upright picture.
    corner = np.s_[after.height - 24 :, after.width - 60 :]
    assert sampled_difference(upright, output, corner) > 10


def test_unreadable_source_raises_media_error(tmp_path):
    src = tmp_path / "broken.mp4"
    src.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)) * 20)
    with pytest.raises(MediaError, match="not a video we can read"):
        transform_video(src, tmp_path / "out.mp4", "night")
    assert not (tmp_path / "out.mp4").exists()
