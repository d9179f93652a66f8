"""manage.py modify_video: the same checks and lifecycle as the studio, from a terminal."""

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from modify.video_probe import probe
from modify.models import ModifyTask


@pytest.fixture
def maria(transactional_db):
    return User.objects.create_user("maria")


@pytest.mark.e2e
def test_submits_waits_prints_progress_and_saves_the_result(e2e, maria, clip, tmp_path, capsys):
    source = clip(seconds=1.5)
    call_command(
        "modify_video", user="maria", video=str(source), prompt="a vintage film", watermark="CLI",
        wait=True, out=str(tmp_path / "out"), timeout=90, interval=0.2,
    )
    output = capsys.readouterr().out
    task = ModifyTask.objects.get(owner=maria)
    assert f"Task {task.pk} queued." in output
    assert "Done" in output and "Saved" in output
    saved = tmp_path / "out" / f"{task.pk}.mp4"
    assert abs(probe(saved).duration - probe(source).duration) < 0.1
    assert task.watermark == "CLI"


def test_unknown_user_is_refused(transactional_db, clip):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("modify_video", user="nobody", video=str(clip()), prompt="snow")


def test_bad_input_is_refused_with_the_forms_message_and_creates_nothing(maria, clip, tmp_path):
    with pytest.raises(CommandError, match="limit is 10 s"):
        call_command("modify_video", user="maria", video=str(clip(seconds=11, width=64, height=48, fps=8)), prompt="snow")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(CommandError, match="not an MP4, MOV or AVI video"):
        call_command("modify_video", user="maria", video=str(text), prompt="snow")
    with pytest.raises(CommandError, match="No such file"):
        call_command("modify_video", user="maria", video=str(tmp_path / "missing.mp4"), prompt="snow")
    with pytest.raises(CommandError, match="English"):
        call_command("modify_video", user="maria", video="https://example.com/a.mp4", prompt="снег и ночь")
    assert not ModifyTask.objects.exists()


def test_a_failed_task_exits_with_its_reason(e2e, maria, clip, inject_faults):
    inject_faults("generation_fail")
    with pytest.raises(CommandError, match="failed while generating: The provider could not generate"):
        call_command("modify_video", user="maria", video=str(clip(seconds=1)), prompt="neon", wait=True, timeout=60, interval=0.2)
