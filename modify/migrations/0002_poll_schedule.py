from django.db import migrations

from modify.schedules import POLL_SCHEDULE_NAME, ensure_poll_schedule


def create_schedule(apps, schema_editor):
    ensure_poll_schedule(apps.get_model("django_q", "Schedule"))


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=POLL_SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("modify", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
