from django.db import migrations

SEED_CROPS = ["Tomato", "Olive", "Wheat"]


def add_crops(apps, schema_editor):
    Crop = apps.get_model("crops", "Crop")
    for name in SEED_CROPS:
        Crop.objects.get_or_create(name=name)


def remove_crops(apps, schema_editor):
    Crop = apps.get_model("crops", "Crop")
    Crop.objects.filter(name__in=SEED_CROPS).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("crops", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(add_crops, remove_crops),
    ]
