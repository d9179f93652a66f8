"""manage.py modify_video: the same checks and lifecycle as the studio, from a terminal."""

import pytest
from django.core.management import CommandError, call_command

from modify.models import ModifyTask
from modify.states import Actor
from modify.video_probe import probe


@pytest.mark.e2e
def test_submits_waits_prints_progress_and_saves_the_result(e2e, member, clip, tmp_path, capsys):
    source = clip(seconds=1.5)
    call_command(
        "modify_video", user="maria", video=str(source), prompt="a vintage film", watermark="CLI",
        wait=True, out=str(tmp_path / "out"), timeout=90, interval=0.2,
    )
    output = capsys.readouterr().out
    task = ModifyTask.objects.get(owner=member)
    assert f"Task {task.pk} queued." in output
    assert "Done" in output and "Saved" in output
    saved = tmp_path / "out" / f"{task.pk}.mp4"
    assert abs(probe(saved).duration - probe(source).duration) < 0.1
    assert task.watermark == "CLI"
    # The studio's lifecycle: made by the member, archived by the app.
    events = list(task.events.all())
    assert (events[0].kind, events[0].actor, events[0].actor_user) == ("created", Actor.MEMBER, member)
    assert events[0].detail == f"from an upload, {source.name}"
    assert events[-1].kind == "archived" and task.state == ModifyTask.State.SUCCEEDED


def test_unknown_user_is_refused(db, clip):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("modify_video", user="nobody", video=str(clip()), prompt="snow")
    assert not ModifyTask.objects.exists()


def test_bad_input_is_refused_with_the_forms_message_and_creates_nothing(member, clip, tmp_path):
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


@pytest.mark.e2e
def test_a_failed_task_exits_with_its_reason(e2e, member, clip, inject_faults):
    inject_faults("generation_fail")
    with pytest.raises(CommandError, match="failed while generating: The provider could not generate"):
        call_command("modify_video", user="maria", video=str(clip(seconds=1)), prompt="neon", wait=True, timeout=60, interval=0.2)
    task = ModifyTask.objects.get(owner=member)
    failed = task.events.last()
    assert (failed.kind, failed.from_state, failed.to_state) == ("fail", "generating", "failed")
    assert failed.detail == task.error_message and failed.detail.startswith("The provider could not generate")


def test_a_member_over_a_quota_is_told_which_limit(member, clip):
    from team.models import Quota

    Quota.objects.create(member=None, tasks_in_flight=0)
    with pytest.raises(CommandError, match="tasks in flight"):
        call_command("modify_video", user="maria", video=str(clip(seconds=1)), prompt="snow")
    assert not ModifyTask.objects.exists()
