"""``{{ task|live_version }}``: the version a card is rendered at, which the studio's poll sends back (``modify.live``)."""

from django import template

from modify import live

register = template.Library()
register.filter("live_version", live.version_of)
