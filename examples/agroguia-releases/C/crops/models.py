from django.db import models


class Crop(models.Model):
    name = models.CharField(max_length=100, unique=True)
    planted_on = models.DateField(null=True, blank=True)
    variety = models.CharField(max_length=100, blank=True, default="")

    def __str__(self):
        return self.name
