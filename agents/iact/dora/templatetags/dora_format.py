"""Human units for the widgets; None always reads "no data", never 0."""

from __future__ import annotations

from django import template

register = template.Library()
NO_DATA = "no data"


@register.filter
def duration(seconds: float | None) -> str:
    """12 min, 5.5 h, 3.2 days."""
    if seconds is None:
        return NO_DATA
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@register.filter
def percent(rate: float | None) -> str:
    """0.125 -> 12.5%."""
    return NO_DATA if rate is None else f"{100 * rate:.1f}%"


@register.filter
def level_class(level: str | None) -> str:
    """CSS class of a level badge."""
    return f"level-{(level or 'none').lower()}"
