"""Turn a video into a new one from the command line, through the same checks and lifecycle as the studio.

    python manage.py modify_video --user maria --video clip.mp4 --prompt "winter night" --wait --out results/

With ``--wait`` it prints each phase as the task moves and saves the result;
the django-q2 cluster (``make run`` or ``manage.py qcluster``) does the work.
"""

import argparse
import shutil
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from modify import intake
from modify.forms import TaskForm
from modify.models import ModifyTask
from team.quotas import QuotaExceeded


class Command(BaseCommand):
    help = "Turn a video (path or URL) into a new one with a prompt, as the given user."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username the task belongs to")
        parser.add_argument("--video", required=True, help="path of a local MP4/MOV/AVI, or an http(s) URL")
        parser.add_argument("--prompt", required=True, help="English description of the change")
        parser.add_argument("--watermark", default="", help="optional text drawn into the result")
        parser.add_argument("--wait", action="store_true", help="wait for the result and print progress")
        parser.add_argument("--out", help="with --wait: folder to save the result into")
        parser.add_argument("--timeout", type=float, default=3600, help="with --wait: give up waiting after this many seconds")
        parser.add_argument("--interval", type=float, default=2, help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user named {options['user']!r}.")
        task = self._accept(user, options)
        self.stdout.write(f"Task {task.pk} queued.")
        if not options["wait"]:
            return
        task = self._wait(task, options["timeout"], options["interval"])
        if task.is_failed:
            raise CommandError(f"Task {task.pk} failed while {task.failed_during.lower()}: {task.error_message}")
        self.stdout.write(self.style.SUCCESS(f"Done: {task.result_width}×{task.result_height}, {task.result_duration:.1f} s."))
        if options["out"]:
            out_dir = Path(options["out"])
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"{task.pk}.mp4"
            with task.result_file.open("rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            self.stdout.write(f"Saved {target}")

    def _accept(self, user, options):
        video = options["video"]
        data = {"prompt": options["prompt"], "watermark": options["watermark"]}
        files = {}
        if video.startswith(("http://", "https://")):
            data["video_url"] = video
        else:
            path = Path(video)
            if not path.is_file():
                raise CommandError(f"No such file: {video}")
            # A plain File, not one with temporary_file_path(): storage would move that one away.
            files["video"] = File(open(path, "rb"), name=path.name)
        form = TaskForm(data, files, user=user)
        try:
            if not form.is_valid():
                problems = [f"{field}: {' '.join(errors)}" if field != "__all__" else " ".join(errors)
                            for field, errors in form.errors.items()]
                raise CommandError("; ".join(problems))
            cleaned = form.cleaned_data
            return intake.accept(
                user,
                cleaned["prompt"],
                upload=cleaned.get("video"),
                url=cleaned.get("video_url", ""),
                watermark=cleaned.get("watermark", ""),
                duration=getattr(form, "video_duration", None),
                api_key=cleaned.get("key"),
            )
        except QuotaExceeded as refused:  # reached between the form's check and the insert
            raise CommandError(str(refused)) from None
        finally:
            for fh in files.values():
                fh.close()

    def _wait(self, task, timeout, interval):
        deadline = time.monotonic() + timeout
        last_state = None
        while True:
            task.refresh_from_db()
            if task.state != last_state:
                self.stdout.write(f"  {task.get_state_display():<11} after {task.elapsed.total_seconds():.0f} s")
                last_state = task.state
            if task.is_terminal:
                return task
            if time.monotonic() > deadline:
                raise CommandError(f"Gave up waiting after {timeout:.0f} s; task {task.pk} is still {task.state}.")
            time.sleep(interval)
