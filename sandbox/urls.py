from django.urls import path

from sandbox import views
from sandbox.envelope import unknown_endpoint

app_name = "sandbox"

urlpatterns = [
    path("", views.index, name="root"),
    path("api/v1/modify/generate", views.generate, name="generate"),
    path("api/v1/modify/record-info", views.record_info, name="record-info"),
    path("api/v1/chat/credit", views.credit, name="credit"),
    path("api/v1/common/download-url", views.download_url, name="download-url"),
    path("api/file-stream-upload", views.file_stream_upload, name="file-stream-upload"),
    path("api/file-url-upload", views.file_url_upload, name="file-url-upload"),
    path("api/file-base64-upload", views.file_base64_upload, name="file-base64-upload"),
    path("files/<str:kind>/<path:name>", views.serve_file, name="file"),
    path("<path:path>", unknown_endpoint),
]
