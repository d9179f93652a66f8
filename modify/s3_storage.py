"""The private S3 bucket as Django's default storage (django-storages), when one is configured.

A module of its own because boto3 costs every process that imports it some
35 MB and 0.2 s: the settings name it only when ``AWS_STORAGE_BUCKET_NAME``
is set, and nothing else imports it. What it guarantees is in
``modify.storage``.
"""

from boto3.s3.transfer import TransferConfig
from django.conf import settings
from django.utils.encoding import filepath_to_uri
from django.utils.http import content_disposition_header
from storages.backends.s3 import S3Storage

MB = 1024 * 1024


class PrivateS3Storage(S3Storage):
    """django-storages' S3 backend, private, and streaming large videos instead of holding them.

    Class attributes win over the ``AWS_*`` settings (django-storages reads a
    setting only where the class sets nothing), so none of these can be
    configured away.
    """

    default_acl = None  # no public-read: the bucket's own (private) policy applies
    querystring_auth = True  # every URL boto3 makes is signed and expires
    signature_version = "s3v4"  # X-Amz-Expires in the URL; what every S3-compatible server speaks
    # Like the local disk: a second "result.mp4" of a task (archived again) gets a name of its own,
    # so deleting the loser of a race never deletes the winner's file.
    file_overwrite = False
    # Reading an object spools it to a temporary file past this size, never a whole video in memory.
    max_memory_size = 4 * MB
    # Multipart transfers in 5 MB parts (S3's smallest), 4 at once and 2 read ahead: measured on a
    # 300 MB file, a save grows the process by some 25 MB and a read (spooled to disk) by as much,
    # where 8 MB parts with 10 held in memory (boto3's default) took 107 MB.
    transfer_config = TransferConfig(multipart_threshold=8 * MB, multipart_chunksize=5 * MB, max_concurrency=4,
                                     max_io_queue=32)
    transfer_config.max_in_memory_upload_chunks = 2  # not a keyword of boto3's TransferConfig

    def url(self, name, parameters=None, expire=None, http_method=None):
        """The app's own address of ``name`` (``/media/...``), as the local disk's would be."""
        return settings.MEDIA_URL + filepath_to_uri(name).lstrip("/")

    def presigned_url(self, name, download_name=None):
        """A URL of the object itself, signed, valid ``AWS_QUERYSTRING_EXPIRE`` seconds; with
        ``download_name``, the bucket answers it as an attachment of that name."""
        parameters = {}
        if download_name:
            parameters["ResponseContentDisposition"] = content_disposition_header(True, download_name)
        return super().url(name, parameters=parameters)
