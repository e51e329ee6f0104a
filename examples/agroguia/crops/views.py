from django.db import DatabaseError
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Crop, Note
from .release import RELEASE


def index(request):
    crops = Crop.objects.order_by("name")
    return render(request, "crops/index.html", {"crops": crops})


def health(request):
    try:
        Crop.objects.exists()
    except DatabaseError:
        return HttpResponse("database unavailable", status=503, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


def _text(body, status=200):
    response = HttpResponse(body, status=status, content_type="text/plain")
    response["X-Release"] = RELEASE
    return response


@csrf_exempt
@require_POST
def notes(request):
    """Write endpoint: POST text=... adds a note; 201 with its id and the release that stored it."""
    text = request.POST.get("text", "").strip()
    if not 0 < len(text) <= 200:
        return _text("text: give 1 to 200 characters\n", status=400)
    note = Note.objects.create(text=text, release=RELEASE)
    return _text(f"note {note.id}\nRelease: {RELEASE}\n", status=201)


@require_GET
def visit(request):
    """A page that writes as a side effect of a GET: the visit counter lives in the (database) session."""
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    return _text(f"visits {visits}\nRelease: {RELEASE}\n")
