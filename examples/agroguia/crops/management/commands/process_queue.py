"""The example's worker: a loop that processes the queue table (crops.Job), no broker.

Each pending job is marked done with the release whose code did it (crops/release.py) and the release id
the process runs in (PINNED_RELEASE, exported by pinned's units). SIGTERM ends the loop after the job at
hand (a graceful stop); a database error (e.g. writes refused during a schema change) is logged and retried.
"""

import os
import signal
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone

from crops.models import Job
from crops.release import RELEASE


class Command(BaseCommand):
    help = "Process the queue table (crops.Job) until SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0.2, help="seconds between polls")

    def handle(self, *args, **options):
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        release_id = os.environ.get("PINNED_RELEASE", "")
        self.stdout.write(f"worker of release {RELEASE} ({release_id or 'no id'}) started", ending="\n")
        while not stopping:
            try:
                close_old_connections()
                with transaction.atomic():
                    for job in Job.objects.select_for_update().filter(done__isnull=True).order_by("id")[:10]:
                        job.release, job.release_id, job.done = RELEASE, release_id, timezone.now()
                        job.save(update_fields=["release", "release_id", "done"])
                        self.stdout.write(f"processed job {job.id} ({job.text}) with release {RELEASE}")
            except DatabaseError as exc:
                self.stderr.write(f"database error, retrying: {exc}")
                time.sleep(1)
            time.sleep(options["interval"])
        self.stdout.write(f"worker of release {RELEASE} stopping (SIGTERM)")
