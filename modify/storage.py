"""Where archived media live: the local disk, or a private S3-compatible bucket.

With ``AWS_STORAGE_BUCKET_NAME`` set, the settings make
``modify.s3_storage.PrivateS3Storage`` (django-storages' S3 backend) the
default storage: sources, results and posters, and the sandbox's own files,
are objects in a bucket that every host of the app shares. The bucket stays
private:

* a stored file's ``url`` is the app's own ``/media/<name>``, whatever the
  storage, so every page links through the permission check of
  ``modify.media_views.media``;
* only after that check does a member get ``presigned_url``: a link straight
  to the object, signed, valid ``AWS_QUERYSTRING_EXPIRE`` seconds;
* objects are written without an ACL and URLs are always signed, whatever
  ``AWS_DEFAULT_ACL`` or ``AWS_QUERYSTRING_AUTH`` say.

Code that reads a stored file never asks for its path on this machine (in a
bucket there is none): it opens it through the storage, which streams it, or,
when a tool needs a path (the sandbox's transform), takes a ``local_copy``.
"""

import contextlib
import shutil

from django.core.files.storage import default_storage

from modify.video_probe import temp_path

COPY_CHUNK = 1024 * 1024


def presigned_url(name, download_name=None):
    """A short-lived URL of ``name`` straight from the bucket; None when the app serves its files itself."""
    sign = getattr(default_storage, "presigned_url", None)
    return sign(name, download_name=download_name) if sign else None


@contextlib.contextmanager
def local_copy(field_file, suffix=""):
    """A path to ``field_file``'s bytes on this machine, for tools that need one.

    The file itself where the storage keeps files on this disk; else a
    temporary copy streamed from the storage, removed afterwards.
    """
    try:
        path = field_file.storage.path(field_file.name)
    except NotImplementedError:
        path = None
    if path:
        yield path
        return
    with temp_path(suffix) as path:
        with field_file.storage.open(field_file.name, "rb") as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target, COPY_CHUNK)
        yield path
