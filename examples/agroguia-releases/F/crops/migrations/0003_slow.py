# Release F: a schema change on top of A whose migration takes a few seconds (time to observe it running).

import time

from django.db import migrations

SECONDS = 4


def slow(apps, schema_editor):
    time.sleep(SECONDS)


class Migration(migrations.Migration):

    dependencies = [
        ("crops", "0002_seed_crops"),
    ]

    operations = [
        migrations.RunPython(slow, migrations.RunPython.noop),
    ]
