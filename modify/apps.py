from django.apps import AppConfig


class ModifyConfig(AppConfig):
    name = "modify"
    verbose_name = "Video modification"
