"""The example's scheduled command: adds a done job "tick" saying which release's code ran it."""

import os

from django.core.management.base import BaseCommand
from django.utils import timezone

from crops.models import Job
from crops.release import RELEASE


class Command(BaseCommand):
    help = "Record a tick (a done crops.Job) with the release that ran it."

    def handle(self, *args, **options):
        job = Job.objects.create(text="tick", release=RELEASE, release_id=os.environ.get("PINNED_RELEASE", ""),
                                 done=timezone.now())
        self.stdout.write(f"tick {job.id} by release {RELEASE}")
