"""htmx requests that hit the login redirect navigate the whole page to it.

Without this, a status card polling after the session expired would follow
the 302 and swap the login page into itself. After signing in, the member
returns to the page they were on (htmx's ``HX-Current-URL``), not to the
fragment or the POST-only URL the htmx request was for.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect


class HtmxLoginRedirectMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        login_url = resolve_url(settings.LOGIN_URL)
        if getattr(request, "htmx", False) and response.status_code == 302 and response["Location"].startswith(login_url):
            page = request.htmx.current_url_abs_path  # None when missing or from another origin
            return HttpResponseClientRedirect(redirect_to_login(page)["Location"] if page else login_url)
        return response
