"""Do a 500 MB upload and a 500 MB archive stream, or does the process hold the file in memory?

Run: .venv/bin/python bench/bench_memory.py [--megabytes 500]

Two operations, each in a fresh process of its own (so that one's peak never
hides in another's), on a throwaway SQLite world:

* upload: a POST of the studio form (``create_task`` with ``TaskForm``, through
  the whole middleware stack of the test client's handler) carrying a real
  8 s MP4 made 500 MB by a large ``free`` box after its ``moov`` (still a valid
  video: players and the probe skip it), stored as the task's source;
* archive: ``modify.archiving.archive`` of a task whose result URL is that
  file on a local HTTP server (``tests.httpserver.local_server``, in this
  process, not the measured one): download, probe, poster frame, stored.

Each process first does the operation once with the plain 8 s clip (a
warm-up: imports, templates, the codec's tables), then measures it again
with the plain clip (the baseline) and with the 500 MB file: the peak RSS
(``VmHWM``, reset through ``/proc/self/clear_refs`` before each; ``ru_maxrss``
where that is not possible) minus the RSS just before. The multipart body is
built on disk beforehand (the test client would build it in memory), and the
500 MB are mostly a hole in a sparse file, so making them costs no time.
Target (issue 7): a growth of at most 64 MB. No assertions: for reading.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import table, world  # noqa: E402

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--megabytes", type=int, default=500, help="the big file's size in MiB (500: the form's limit)")
ARGS.add_argument("--child", nargs=2, metavar=("OPERATION", "SPEC"), help=argparse.SUPPRESS)
OPTIONS = ARGS.parse_args()

TARGET_MB = 64
CLIP_SECONDS = 8
BOUNDARY = "----lumaweb-bench-boundary-7d3f"  # fixed: the parent writes the body, the child sends it


def status_kib(field):
    return int(re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1))


def reset_peak():
    """Start a fresh peak (``VmHWM``) from the current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return status_kib("VmHWM") == status_kib("VmRSS")


def measured(operation):
    """``(peak RSS growth in MiB, seconds)`` of ``operation()``."""
    resettable = reset_peak()
    before = status_kib("VmRSS") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    operation()
    took = time.perf_counter() - start
    peak = status_kib("VmHWM") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak - before) / 1024, took


# --- The files ------------------------------------------------------------------------------------

def padded(clip, path, size):
    """``clip`` followed by one ``free`` box up to ``size`` bytes: a valid MP4 (the box is skipped),
    mostly a hole in a sparse file."""
    data = clip.read_bytes()
    pad = size - len(data)
    assert pad >= 8, "the clip is already larger than the size asked"
    with open(path, "wb") as fh:
        fh.write(data)
        fh.write(pad.to_bytes(4, "big") + b"free")
        fh.truncate(size)
    return path


def multipart(video, path, prompt):
    """The body of the studio form's POST (a prompt and the video), written to ``path``; its size."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n{prompt}\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"clip.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    size = os.path.getsize(video)
    with open(path, "wb") as out, open(video, "rb") as src:
        out.write(head)
        if size < (64 << 20):
            shutil.copyfileobj(src, out, 1 << 20)
        else:
            _sparse_copy(src, out)
        out.write(tail)
    return os.path.getsize(path)


def _sparse_copy(src, out):
    """Copy a ``padded`` file, keeping its hole a hole (the zeros are never written)."""
    head = src.read(64 << 10)
    while head:
        out.write(head)
        if not head.strip(b"\0"):  # the padding's zeros from here on
            break
        head = src.read(64 << 10)
    rest = os.fstat(src.fileno()).st_size - src.tell()
    out.seek(rest, os.SEEK_CUR)


# --- In the measured process ---------------------------------------------------------------------

def child_upload(spec):
    """POST each body through the studio's view; peak growth per body."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from modify.models import ModifyTask

    client = Client()
    client.force_login(get_user_model().objects.get(username=spec["member"]))
    client.get("/")  # the studio: templates, session

    def post(body):
        size = os.path.getsize(body)
        with open(body, "rb") as fh:
            environ = client._base_environ(**{
                "REQUEST_METHOD": "POST", "PATH_INFO": "/tasks/", "CONTENT_LENGTH": str(size),
                "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}", "wsgi.input": fh,
            })
            response = client.handler(environ)
        assert response.status_code == 302, f"the studio answered {response.status_code}: {response.content[:2000]!r}"

    figures = {}
    for label, body in spec["bodies"]:
        figures[label] = measured(lambda: post(body))
        task = ModifyTask.objects.filter(owner__username=spec["member"]).order_by("-created_at").first()
        figures[label] += (task.source_file.size,)
    return figures


def child_archive(spec):
    """Archive each task; peak growth per task."""
    from modify import archiving
    from modify.models import ModifyTask

    figures = {}
    for label, task_id in spec["tasks"]:
        figures[label] = measured(lambda: archiving.archive(task_id))
        task = ModifyTask.objects.get(pk=task_id)
        assert task.state == ModifyTask.State.SUCCEEDED, f"archiving ended {task.state}: {task.error_message}"
        figures[label] += (task.result_size,)
    return figures


def child(operation, spec_path):
    import django

    django.setup()  # the parent's world: LUMAWEB_VAR_DIR and the rest come from its environment
    spec = json.loads(Path(spec_path).read_text())
    figures = {"upload": child_upload, "archive": child_archive}[operation](spec)
    print(json.dumps(figures))


# --- The parent ----------------------------------------------------------------------------------

class _Files(BaseHTTPRequestHandler):
    """Serves the files of ``server.files`` (name → path) with their length, streamed."""

    def do_GET(self):
        path = self.server.files.get(self.path.lstrip("/"))
        if path is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.end_headers()
        with open(path, "rb") as fh:
            shutil.copyfileobj(fh, self.wfile, 1 << 20)

    def log_message(self, *args):
        pass


def in_fresh_process(operation, spec, folder):
    spec_path = folder / f"{operation}.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, __file__, "--child", operation, str(spec_path)], capture_output=True,
                          text=True, env=os.environ)
    if done.returncode:
        raise SystemExit(f"the {operation} process failed:\n{done.stderr[-5000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    # The archiving job builds its provider client first (used only should the download fail): any address.
    world.throwaway(LOG_LEVEL="WARNING", PUBLIC_BASE_URL="http://127.0.0.1:9")
    from modify.models import ModifyTask
    from tests.clips import make_clip
    from tests.factories import make_member, make_task
    from tests.httpserver import local_server

    size = OPTIONS.megabytes << 20
    member = make_member("bench")
    folder = Path(tempfile.mkdtemp(prefix="files-", dir=os.environ["LUMAWEB_VAR_DIR"]))
    clip = make_clip(folder / "clip.mp4", seconds=CLIP_SECONDS, width=640, height=360, audio=True)
    big = padded(clip, folder / "big.mp4", size)
    prompt = "Make it look like a snowy winter night"
    bodies = {label: folder / f"{label}.body" for label in ("warm-up", "clip", "big")}
    multipart(clip, bodies["warm-up"], prompt)
    multipart(clip, bodies["clip"], prompt)
    multipart(big, bodies["big"], prompt)
    upload = in_fresh_process("upload", {"member": member.username,
                                         "bodies": [[label, str(path)] for label, path in bodies.items()]}, folder)
    for path in bodies.values():
        path.unlink()

    with local_server(_Files, files={"clip.mp4": clip, "big.mp4": big}) as server:
        tasks = []
        for label, name in (("warm-up", "clip.mp4"), ("clip", "clip.mp4"), ("big", "big.mp4")):
            task = make_task(member, ModifyTask.State.GENERATING, prompt=prompt)
            assert task.result_found(f"{server.url}/{name}")
            tasks.append([label, str(task.pk)])
        archive = in_fresh_process("archive", {"tasks": tasks}, folder)

    print(f"file: a {CLIP_SECONDS} s 640x360 MP4 ({clip.stat().st_size / 1e6:.1f} MB) padded to {size >> 20} MiB"
          f" by a free box after its moov; each operation in a fresh process, after a warm-up")
    rows = {}
    for name, figures in (("upload through the studio form", upload), ("archive of a result", archive)):
        (base, base_s, _), (grown, took, stored) = figures["clip"], figures["big"]
        rows[name] = (grown, base)
        print(f"{name:31}: peak RSS +{grown:6.1f} MiB for {stored / 1e6:.0f} MB in {took:.1f} s"
              f" (the plain clip: +{base:.1f} MiB in {base_s:.2f} s); target ≤ {TARGET_MB} MB:"
              f" {'met' if grown <= TARGET_MB else 'NOT met'}")
    for letter, (name, (grown, base)) in zip("ab", rows.items()):
        table.record(f"6{letter}", f"peak RSS growth, {size >> 20} MiB {name}", f"+{grown:.1f} MiB",
                     f"the {CLIP_SECONDS} s clip alone: +{base:.1f} MiB", f"+{grown:.1f} MiB", f"≤ {TARGET_MB} MB",
                     grown <= TARGET_MB, "fresh process each")


if __name__ == "__main__":
    if OPTIONS.child:
        child(*OPTIONS.child)
    else:
        main()
