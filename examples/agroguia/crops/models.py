from django.db import models


class Crop(models.Model):
    name = models.CharField(max_length=100, unique=True)
    planted_on = models.DateField(null=True, blank=True)

    def __str__(self):
        return self.name
