"""One meaning per field (status note, callback deadline, enqueue lease), the unconfirmed state, and TaskEvent."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('modify', '0003_task_retries_and_protected_keys'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='modifytask',
            name='callback_deadline',
            field=models.DateTimeField(blank=True, help_text='An unconfirmed task fails after this.', null=True),
        ),
        migrations.AddField(
            model_name='modifytask',
            name='enqueued_at',
            field=models.DateTimeField(blank=True, help_text='When the sweep last enqueued its sending.', null=True),
        ),
        migrations.AddField(
            model_name='modifytask',
            name='status_note',
            field=models.CharField(blank=True, help_text='What a live task is waiting for, for the member.', max_length=500),
        ),
        migrations.AlterField(
            model_name='modifytask',
            name='error_message',
            field=models.TextField(blank=True, help_text='Why it failed, for the member.'),
        ),
        migrations.AlterField(
            model_name='modifytask',
            name='failed_stage',
            field=models.CharField(blank=True, choices=[('queued', 'Queued'), ('submitting', 'Submitting'), ('unconfirmed', 'Awaiting the provider'), ('generating', 'Generating'), ('archiving', 'Archiving'), ('succeeded', 'Done'), ('failed', 'Failed')], max_length=16),
        ),
        migrations.AlterField(
            model_name='modifytask',
            name='next_submit_at',
            field=models.DateTimeField(blank=True, help_text='A queued retry is not sent before this.', null=True),
        ),
        migrations.AlterField(
            model_name='modifytask',
            name='state',
            field=models.CharField(choices=[('queued', 'Queued'), ('submitting', 'Submitting'), ('unconfirmed', 'Awaiting the provider'), ('generating', 'Generating'), ('archiving', 'Archiving'), ('succeeded', 'Done'), ('failed', 'Failed')], db_index=True, default='queued', max_length=16),
        ),
        migrations.AlterField(
            model_name='modifytask',
            name='updated_at',
            field=models.DateTimeField(default=django.utils.timezone.now, help_text='The last lifecycle change.'),
        ),
        migrations.CreateModel(
            name='TaskEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(max_length=32)),
                ('from_state', models.CharField(blank=True, choices=[('queued', 'Queued'), ('submitting', 'Submitting'), ('unconfirmed', 'Awaiting the provider'), ('generating', 'Generating'), ('archiving', 'Archiving'), ('succeeded', 'Done'), ('failed', 'Failed')], max_length=16)),
                ('to_state', models.CharField(blank=True, choices=[('queued', 'Queued'), ('submitting', 'Submitting'), ('unconfirmed', 'Awaiting the provider'), ('generating', 'Generating'), ('archiving', 'Archiving'), ('succeeded', 'Done'), ('failed', 'Failed')], max_length=16)),
                ('actor', models.CharField(choices=[('member', 'Member'), ('staff', 'Staff'), ('provider', 'Provider'), ('system', 'System')], max_length=8)),
                ('detail', models.CharField(blank=True, max_length=500)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('actor_user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='task_events', to=settings.AUTH_USER_MODEL)),
                ('task', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='modify.modifytask')),
            ],
            options={
                'ordering': ['created_at', 'id'],
                'indexes': [models.Index(fields=['task', 'created_at'], name='modify_task_task_id_174161_idx'), models.Index(fields=['kind', 'created_at'], name='modify_task_kind_8d8361_idx')],
            },
        ),
    ]
