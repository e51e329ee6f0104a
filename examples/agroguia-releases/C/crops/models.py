from django.db import models


class Crop(models.Model):
    name = models.CharField(max_length=100, unique=True)
    planted_on = models.DateField(null=True, blank=True)
    variety = models.CharField(max_length=100, blank=True, default="")

    def __str__(self):
        return self.name


class Note(models.Model):
    """A visitor's note: the example's write endpoint (POST /notes/) adds one."""
    text = models.CharField(max_length=200)
    release = models.CharField(max_length=20, blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.text
