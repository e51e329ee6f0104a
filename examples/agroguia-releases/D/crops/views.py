from django.http import HttpResponse
from django.shortcuts import render

from .models import Crop


def index(request):
    crops = Crop.objects.order_by("name")
    return render(request, "crops/index.html", {"crops": crops})


def health(request):
    # Release D is broken on purpose: its health check fails (a deploy tool must refuse to switch to it).
    return HttpResponse("broken on purpose", status=500, content_type="text/plain")
