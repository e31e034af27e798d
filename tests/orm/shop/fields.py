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


class DeltasyncIdField(models.BigIntegerField):
    """A primary key whose value is deltasync_id() of the database the row is saved to
    (docs/applications.md "Ids"): the site's id node in the top bits, the site's own counter
    below. The pre_save receiver below asks the database the save goes to (a field default
    cannot: it does not know the database alias). bulk_create sends no signals: give such
    objects ids first (next_deltasync_id)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("primary_key", True)
        super().__init__(*args, **kwargs)


def next_deltasync_id(using):
    """SELECT deltasync_id() on the connection of database alias `using`."""
    from django.db import connections
    with connections[using].cursor() as cur:
        cur.execute("SELECT deltasync_id()")
        return cur.fetchone()[0]


def assign_deltasync_id(sender, instance, raw, using, **kwargs):
    """pre_save: a new object of a model keyed by DeltasyncIdField gets its id from `using`."""
    if not raw and isinstance(sender._meta.pk, DeltasyncIdField) and instance.pk is None:
        instance.pk = next_deltasync_id(using)
