from django.db import DatabaseError
from django.http import HttpResponse
from django.shortcuts import render

from .models import Crop


def index(request):
    crops = Crop.objects.order_by("name")
    return render(request, "crops/index.html", {"crops": crops})


def health(request):
    try:
        Crop.objects.exists()
    except DatabaseError:
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")
