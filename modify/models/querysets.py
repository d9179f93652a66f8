"""The recurring questions about tasks, asked in one place: by views, the sweep and the admin."""

from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce

from modify.states import TERMINAL, State


class ModifyTaskQuerySet(QuerySet):
    def active(self):
        return self.exclude(state__in=TERMINAL)

    def succeeded(self):
        return self.filter(state=State.SUCCEEDED)

    def failed(self):
        return self.filter(state=State.FAILED)

    def in_gallery(self):
        return self.succeeded().filter(shared=True)

    def visible_to(self, user):
        """What a member may open: their own tasks, whatever their state, and the team's shared
        results; staff, who run the account, may open every task."""
        if user.is_staff:
            return self.all()
        return self.filter(Q(owner=user) | Q(state=State.SUCCEEDED, shared=True))

    def due_for_poll(self, now):
        return self.filter(state=State.GENERATING).filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))

    def due_for_sending(self, now, lost_after):
        """Queued tasks that need their sending job enqueued: due (a retry's time has come) and
        not enqueued since, or enqueued (or created) ``lost_after`` ago and still not taken."""
        last_enqueued = Coalesce("enqueued_at", "created_at")
        due = Q(next_submit_at__isnull=True) | Q(next_submit_at__lte=now)
        not_since_due = Q(next_submit_at__isnull=False, enqueued_at__isnull=True) | Q(enqueued_at__lt=F("next_submit_at"))
        return (self.filter(due, state=State.QUEUED).alias(last_enqueued=last_enqueued)
                .filter(not_since_due | Q(last_enqueued__lte=now - lost_after)))

    def stale_archiving(self, before):
        """Archiving untouched since ``before``: the job archiving it died (only it changes the row meanwhile)."""
        return self.filter(state=State.ARCHIVING, updated_at__lte=before)

    def stale_submitting(self, before):
        """Claimed for sending before ``before`` and never moved on: its worker died."""
        return self.filter(state=State.SUBMITTING, submitting_at__lte=before)

    def unconfirmed_past_deadline(self, now):
        return self.filter(state=State.UNCONFIRMED, callback_deadline__lte=now)
