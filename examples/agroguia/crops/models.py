from django.db import models


class Crop(models.Model):
    name = models.CharField(max_length=100, unique=True)
    planted_on = models.DateField(null=True, blank=True)

    def __str__(self):
        return self.name


class Note(models.Model):
    """A visitor's note: the example's write endpoint (POST /notes/) adds one."""
    text = models.CharField(max_length=200)
    release = models.CharField(max_length=20, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.text


class Job(models.Model):
    """A queued job: the worker (`manage.py process_queue`) takes the pending ones, the scheduled command
    (`manage.py tick`) adds done ones; each records which release's code did it."""
    text = models.CharField(max_length=200)
    release = models.CharField(max_length=20, blank=True, default="")  # the code's label (crops/release.py)
    release_id = models.CharField(max_length=64, blank=True, default="")  # PINNED_RELEASE of the process
    done = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.text
