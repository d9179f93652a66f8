from django.urls import path

from modify import health, media_views, oversight_views, views

urlpatterns = [
    path("", views.studio, name="studio"),
    path("tasks/", views.create_task, name="task-create"),
    path("tasks/live/", views.live_status, name="tasks-live"),
    path("tasks/<uuid:pk>/", views.task_detail, name="task-detail"),
    path("tasks/<uuid:pk>/status/", views.task_status, name="task-status"),
    path("tasks/<uuid:pk>/share/", views.task_share, name="task-share"),
    path("tasks/<uuid:pk>/retry/", views.task_retry, name="task-retry"),
    path("tasks/<uuid:pk>/staff/<slug:action>/", oversight_views.task_action, name="task-staff-action"),
    path("gallery/", views.gallery, name="gallery"),
    path("media/<path:path>", media_views.media, name="media"),
    path("callbacks/<str:token>/", views.callback, name="callback"),
    path("healthz", health.healthz, name="healthz"),
    path("livez", health.livez, name="livez"),
]
