# Release E is broken on purpose: this migration raises (a deploy tool must not switch to it).

from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("migration 0004_broken fails on purpose")


class Migration(migrations.Migration):

    dependencies = [
        ("crops", "0003_crop_variety"),
    ]

    operations = [
        migrations.RunPython(fail, migrations.RunPython.noop),
    ]
