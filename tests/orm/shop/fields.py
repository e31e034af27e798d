"""Primary keys that several sites can allocate without meeting.

AUTOINCREMENT (SQLite) and serial/identity (PostgreSQL) count per database, so two sites
hand out the same ids and last-writer-wins would merge two different rows into one. This
field is a BigAutoField whose value is chosen by the application when the object is
created: milliseconds since 2020 in the high 41 bits, 22 random bits below. Two sites
collide only when they create rows in the same millisecond and draw the same 22 bits.
"""
import secrets
import time

from django.db import models

EPOCH_MS = 1577836800000  # 2020-01-01T00:00:00Z


def site_unique_id():
    """A 63-bit id: creation time first (ids sort roughly by age), random bits after."""
    return ((int(time.time() * 1000) - EPOCH_MS) << 22) | secrets.randbits(22)


class SiteUniqueAutoField(models.BigAutoField):
    """The app's default primary key (and that of its many-to-many tables)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", site_unique_id)
        super().__init__(*args, **kwargs)
