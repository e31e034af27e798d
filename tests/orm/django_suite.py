#!/usr/bin/python3
"""deltasync under a real ORM: a Django shop on two SQLite sites and one PostgreSQL site,
syncing through a real hub (`deltasync serve`).

Run under pg_virtualenv (ctest does, label e2e), which sets PGHOST/PGPORT/PGUSER/PGPASSWORD
for a throwaway cluster:

    pg_virtualenv -t -- /usr/bin/python3 tests/orm/django_suite.py \
        --ext build/sqlite_ext/deltasync.so --cli build/server/deltasync

The driver builds a Django project in a temporary directory (the app in tests/orm/shop,
its migrations made there by makemigrations), starts a hub on 127.0.0.1 and runs each phase
in a fresh interpreter, because a phase after a model edit needs the edited models loaded:

  v1      makemigrations, migrate every site, deltasync_enable every app table (Django's
          bookkeeping refused); data made
          through the ORM on each site, sync, identical dumpdata everywhere; an update of one
          NOT NULL field; deletes that cascade (an order to its lines, a store to everything)
          and a many-to-many removal.
  constraints  two sites create one sku: the rest syncs, each site holds the other's row
          (deltasync_quarantine, status), a rename of one sku fixes every site; an order
          deleted while another site adds a line to it: the delete wins, no orphan.
  rename  Product.name renamed to title (RenameField, makemigrations), migrated on every
          site, then new rows through the ORM on every site, the delete of a row made
          before the rename and edits of the renamed column in such rows, sync, identical
          dumpdata.
  repr    UUIDField and DateTimeField values across engines (every SQLite site enables its
          tables with representations, docs/types.md): a Coupon (UUID primary key) made on
          PostgreSQL is found on SQLite by filter(pk=…), a Product made there by
          filter(created_at=…); updates and a delete from either side reach the one row.
  sqlalchemy  SQLAlchemy sessions on a SQLite site and the PostgreSQL site write the same
          tables (reflected), sync through their own connections; identical dumpdata.
  addfield  Product.weight_g (AddField with a default: a SQLite rebuild) on every site, then
          writes on three sites: nothing lost or re-stamped.
  ids     a model keyed by deltasync_id() (shop.fields.DeltasyncIdField, its pre_save
          receiver asks the database the object is saved to): ids of each site's id node,
          none shared; identical dumpdata.
  lag     Store.phone migrated on site_a and PostgreSQL only; every site writes (site_b what
          its schema has), sync: site_b keeps the phone changes; it migrates, sync: nothing
          lost, identical dumpdata.
  orders  two migrations on one parent (Tag.color, Order.note) and their merge, applied in
          different orders on the three sites with writes between the steps; identical
          dumpdata once all are on the merge.
  datamigration  AddField (a rebuild) and a RunPython that gives every product a random
          code, in one migration, with no deltasync call between them: run on site_a and
          synced, the sites behind keep a code for every product (the data migration's
          UPDATEs were captured); then every site migrates; one code per row everywhere.

Sites are compared by `dumpdata shop`: the two SQLite sites byte for byte, the PostgreSQL
site record for record (see compare_sites). Exits non-zero on the first failed check.
"""
import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
SQLITE_SITES = ["site_a", "site_b"]
PG_SITE = "site_pg"
SITES = SQLITE_SITES + [PG_SITE]
PG_DATABASE = "shop_pg"
SYNC_OPTIONS = '{"timeout_ms":10000}'


class CheckFailed(Exception):
    """A scenario's expectation that did not hold."""


def check(condition, message):
    """Fails the phase with message when condition is false."""
    if not condition:
        raise CheckFailed(message)


# ---------------------------------------------------------------------------------------
# Inside a phase: Django set up with the project in the temporary directory.


def setup_django(project):
    """Configures Django for the project: three database aliases, the extension per connection."""
    with open(os.path.join(project, "config.json")) as f:
        config = json.load(f)
    sys.path.insert(0, project)
    import django
    from django.conf import settings
    from django.db.backends.signals import connection_created

    pg = config["pg"]
    settings.configure(
        SECRET_KEY="deltasync-orm-suite",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "shop"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        DATABASES={
            # No default database: every query in this suite names its site.
            "default": {},
            "site_a": {"ENGINE": "django.db.backends.sqlite3",
                       "NAME": os.path.join(project, "site_a.sqlite3")},
            "site_b": {"ENGINE": "django.db.backends.sqlite3",
                       "NAME": os.path.join(project, "site_b.sqlite3")},
            PG_SITE: {"ENGINE": "django.db.backends.postgresql", "NAME": PG_DATABASE,
                      "HOST": pg["host"], "PORT": pg["port"], "USER": pg["user"],
                      "PASSWORD": pg["password"]},
        },
    )
    extension = config["ext"]

    def load_deltasync(sender, connection, **kwargs):
        # Every SQLite connection that writes a tracked table needs the extension: the
        # capture triggers call its functions (a write without it fails).
        if connection.vendor == "sqlite":
            connection.connection.enable_load_extension(True)
            connection.connection.load_extension(extension)
            connection.connection.enable_load_extension(False)

    # weak=False: the handler is a closure, and signals hold receivers weakly by default.
    connection_created.connect(load_deltasync, weak=False)
    django.setup()
    return config


def sql(site, statement, params=()):
    """One statement on a site's Django connection; its first column of the first row."""
    from django.db import connections
    with connections[site].cursor() as cur:
        cur.execute(statement, params)
        row = cur.fetchone()
    return row[0] if row else None


def as_json(value):
    """A deltasync result as a dict (PostgreSQL returns jsonb already decoded)."""
    return value if isinstance(value, dict) else json.loads(value)


def sync(config, site):
    """deltasync_sync through the site's Django connection; returns its result."""
    from django.db import DatabaseError
    try:
        result = sql(site, "SELECT deltasync_sync(%s, %s)", (config["hub"], SYNC_OPTIONS))
    except DatabaseError as e:
        raise CheckFailed(f"deltasync_sync on {site}: {e}") from e
    return as_json(result)


def sync_all(config, rounds=2):
    """Every site syncs, round-robin, `rounds` times: twice carries every change everywhere."""
    for _ in range(rounds):
        for site in SITES:
            sync(config, site)


def shop_tables():
    """The tables the shop app owns, its many-to-many tables included."""
    from django.apps import apps
    tables = []
    for model in apps.get_app_config("shop").get_models(include_auto_created=True):
        tables.append(model._meta.db_table)
    return sorted(tables)


def tracking_options(model):
    """deltasync_enable's options on SQLite for a model: its UUIDField and DateTimeField
    columns as Django spells them there (docs/applications.md "Values across engines")."""
    from django.db import models
    columns = {}
    for f in model._meta.concrete_fields:
        if isinstance(f, models.UUIDField):
            columns[f.column] = {"uuid": "hex32"}
        elif isinstance(f, models.DateTimeField):  # USE_TZ = True: naive UTC text
            columns[f.column] = {"timestamp": "naive_utc"}
    return json.dumps({"columns": columns}) if columns else None


def enable_tracking():
    """deltasync_enable for every shop table on every site, and for nothing else: Django's
    bookkeeping (django_migrations, django_content_type, auth_*) is made per site by migrate
    and never tracked (docs/applications.md says why). SQLite sites declare how Django spells
    uuids and datetimes; PostgreSQL's column types already give the canonical form."""
    from django.apps import apps
    models = list(apps.get_app_config("shop").get_models(include_auto_created=True))
    for site in SITES:
        for model in models:
            options = tracking_options(model) if site in SQLITE_SITES else None
            sql(site, "SELECT deltasync_enable(%s, %s)", (model._meta.db_table, options))
        status = as_json(sql(site, "SELECT deltasync_status()"))
        tracked = sorted(t["table"] for t in status["tables"])
        check(tracked == shop_tables(), f"{site} tracks {tracked}")
        from django.db import DatabaseError, transaction
        for table in ("django_migrations", "django_content_type", "auth_permission"):
            try:
                with transaction.atomic(using=site):
                    sql(site, "SELECT deltasync_enable(%s)", (table,))
                raise CheckFailed(f"{site}: deltasync_enable('{table}') was not refused")
            except DatabaseError as e:
                check("deltasync:" in str(e) and table in str(e), f"{site}: refusal of {table}: {e}")


def migrate(site):
    """manage.py migrate on one site."""
    from django.core.management import call_command
    call_command("migrate", database=site, verbosity=0, interactive=False)


def makemigrations(name, answer_yes=False):
    """manage.py makemigrations shop; answer_yes answers its rename questions with yes."""
    import builtins
    from django.core.management import call_command
    out = io.StringIO()
    if answer_yes:
        real_input = builtins.input
        builtins.input = lambda prompt="": "y"
        try:
            call_command("makemigrations", "shop", name=name, interactive=True, stdout=out)
        finally:
            builtins.input = real_input
    else:
        call_command("makemigrations", "shop", name=name, interactive=False, stdout=out)
    return out.getvalue()


def dumpdata(site):
    """`manage.py dumpdata shop` on one site, as text."""
    from django.core.management import call_command
    out = io.StringIO()
    call_command("dumpdata", "shop", database=site, indent=1, stdout=out)
    return out.getvalue()


def compare_sites(label):
    """Identical dumpdata of the shop app on every site, and no orphans; returns the records.

    The two SQLite sites must agree byte for byte. The PostgreSQL site must hold the same
    records, compared after parsing: jsonb keeps an object's keys in its own order
    (shorter keys first), so a JSONField written on SQLite as {"color":…,"dims":…} dumps as
    {"dims":…,"color":…} there. Every other value (uuid, timestamps, decimals) dumps as the
    same text on both engines.
    """
    dumps = {site: dumpdata(site) for site in SITES}
    for site, text in dumps.items():  # kept with the temporary directory when a check fails
        with open(f"dumpdata-{label.replace(' ', '_')}-{site}.json", "w") as f:
            f.write(text)
    a = dumps["site_a"]
    if dumps["site_b"] != a:
        raise CheckFailed(f"{label}: dumpdata of site_a and site_b differ: "
                          f"{first_difference(a, dumps['site_b'])}")
    records = json.loads(a)
    if json.loads(dumps[PG_SITE]) != records:
        raise CheckFailed(f"{label}: dumpdata of site_a and {PG_SITE} differ: "
                          f"{first_difference(a, dumps[PG_SITE])}")
    for site in SITES:
        check(not orphans(site), f"{label}: {site} holds rows without their parent: "
                                 f"{orphans(site)}")
    print(f"  {label}: dumpdata identical on {', '.join(SITES)} ({len(records)} records)")
    return records


def first_difference(left, right):
    """The first differing record of two dumpdata texts, for the failure message."""
    lrec, rrec = json.loads(left), json.loads(right)
    lmap = {(r["model"], str(r["pk"])): r for r in lrec}
    rmap = {(r["model"], str(r["pk"])): r for r in rrec}
    for key in sorted(set(lmap) | set(rmap)):
        if lmap.get(key) != rmap.get(key):
            return f"{key}: {lmap.get(key)} != {rmap.get(key)}"
    return "same records, different text"


def count(site, model, **filters):
    """How many rows of a shop model on a site match filters."""
    from django.apps import apps
    return apps.get_model("shop", model).objects.using(site).filter(**filters).count()


def orphans(site):
    """Rows whose foreign key names a missing row: SQLite's foreign_key_check (Django turns
    foreign_keys on), and on every engine the order lines whose order is gone."""
    from django.db import connections
    from shop.models import Order, OrderLine
    found = []
    if site in SQLITE_SITES:
        with connections[site].cursor() as cur:
            cur.execute("PRAGMA foreign_key_check")
            found += cur.fetchall()
    orders = Order.objects.using(site).values("id")
    lines = OrderLine.objects.using(site).exclude(order_id__in=orders)
    found += [("shop_orderline", line.pk) for line in lines]
    return found


def seed(site, n):
    """Initial data through the ORM on one site: a store, products, tags, orders, a coupon."""
    from shop.models import Coupon, Order, OrderLine, Product, Store, Tag
    store = Store.objects.using(site).create(name=f"Store {n}", city=f"City {n}")
    tags = [Tag.objects.using(site).create(label=f"{site}-{t}") for t in ("new", "sale")]
    products = []
    for i in range(3):
        p = Product.objects.using(site).create(
            store=store, sku=f"SKU-{n}-{i}", name=f"Widget {n}.{i}",
            price=Decimal(f"{n}{i}.99"), stock=10 * i + n,
            attrs={"color": ["red", "green", "blue"][i], "dims": [i, n], "note": f"ü{n}"})
        p.tags.add(*tags[: i % 2 + 1])
        products.append(p)
    for k in range(2):
        order = Order.objects.using(site).create(store=store, customer=f"customer {n}.{k}")
        for j, p in enumerate(products[: k + 2]):
            OrderLine.objects.using(site).create(order=order, product=p, quantity=j + 1,
                                                 unit_price=p.price)
    Coupon.objects.using(site).create(code=f"C{n}", percent_off=5 * n)


# ---------------------------------------------------------------------------------------
# Phases.


def start_fleet(config):
    """The first schema on every site, its tables tracked, data made on each, synced, compared."""
    print(makemigrations("initial").strip())
    for site in SITES:
        migrate(site)
    enable_tracking()
    print("scenario: initial data through the ORM on every site, then sync")
    for n, site in enumerate(SITES, start=1):
        seed(site, n)
    sync_all(config)
    return compare_sites("initial")


def phase_v1(config):
    """First schema: migrate, enable, seed every site, sync; an update; deletes that cascade."""
    from shop.models import Order, Product, Store, Tag
    records = start_fleet(config)
    for site in SITES:
        check(count(site, "Product") == 9, f"{site} holds {count(site, 'Product')} products")
        check(count(site, "OrderLine") == 15, f"{site} holds {count(site, 'OrderLine')} lines")
        check(count(site, "Coupon") == 3, f"{site} holds {count(site, 'Coupon')} coupons")
    check(sum(1 for r in records if r["model"] == "shop.store") == 3, "three stores")

    print("scenario: one NOT NULL field updated through the ORM on one site")
    # site_b edits a product site_a made; the PostgreSQL site edits one of site_b's and
    # site_a one of the PostgreSQL site's.
    edits = [("site_b", "SKU-1-0", 999), ("site_pg", "SKU-2-1", 998), ("site_a", "SKU-3-2", 997)]
    for site, sku, stock in edits:
        p = Product.objects.using(site).get(sku=sku)
        p.stock = stock
        p.save(update_fields=["stock", "updated_at"])
    sync_all(config)
    compare_sites("update")
    for site in SITES:
        for _, sku, stock in edits:
            got = Product.objects.using(site).get(sku=sku).stock
            check(got == stock, f"{site}: {sku} stock {got}, expected {stock}")
    # Two sites edit different fields of one row: both edits survive (column-level merge).
    p = Product.objects.using("site_a").get(sku="SKU-2-0")
    p.price = Decimal("123.45")
    p.save(update_fields=["price"])
    p = Product.objects.using(PG_SITE).get(sku="SKU-2-0")
    p.attrs = {"color": "black", "edited_on": "pg"}
    p.save(update_fields=["attrs"])
    sync_all(config)
    compare_sites("two fields of one row")
    for site in SITES:
        p = Product.objects.using(site).get(sku="SKU-2-0")
        check(p.price == Decimal("123.45") and p.attrs == {"color": "black", "edited_on": "pg"},
              f"{site}: SKU-2-0 price {p.price} attrs {p.attrs}")

    print("scenario: deletes that cascade, and a many-to-many removal")
    # The PostgreSQL site deletes one of site_a's orders (Django deletes its lines first);
    # site_b deletes the PostgreSQL site's whole store (products, their tags links and
    # lines, orders); site_a takes a tag off one of site_b's products.
    order = Order.objects.using(PG_SITE).filter(store__name="Store 1").order_by("customer").last()
    lines_of_order = order.lines.count()
    order.delete()
    Store.objects.using("site_b").get(name="Store 3").delete()
    p = Product.objects.using("site_a").get(sku="SKU-2-1")
    p.tags.remove(Tag.objects.using("site_a").get(label="site_b-sale"))
    sync_all(config)
    compare_sites("deletes")
    for site in SITES:
        check(count(site, "Store") == 2, f"{site}: {count(site, 'Store')} stores")
        check(count(site, "Product", store__name="Store 3") == 0, f"{site}: Store 3 products left")
        check(count(site, "Order") == 3, f"{site}: {count(site, 'Order')} orders")
        check(count(site, "OrderLine") == 10 - lines_of_order,
              f"{site}: {count(site, 'OrderLine')} lines")
        check(not orphans(site), f"{site}: rows without their parent: {orphans(site)}")
        tags = sorted(t.label for t in Product.objects.using(site).get(sku="SKU-2-1").tags.all())
        check(tags == ["site_b-new"], f"{site}: SKU-2-1 tags {tags}")


def phase_repr(config):
    """Values of PostgreSQL's uuid and timestamptz found by the ORM on SQLite, one row per key."""
    import uuid
    from shop.models import Coupon, Product, Store
    print("scenario: a UUID-keyed row and a DateTimeField made on PostgreSQL, looked up on SQLite")
    for site in SQLITE_SITES:
        status = as_json(sql(site, "SELECT deltasync_status()"))
        options = {t["table"]: t.get("column_options") for t in status["tables"]}
        check(options["shop_coupon"] == {"id": {"uuid": "hex32"}}, f"{site}: coupon options {options}")
        check(options["shop_product"] == {"created_at": {"timestamp": "naive_utc"},
                                          "updated_at": {"timestamp": "naive_utc"}},
              f"{site}: product options {options['shop_product']}")
    coupon = Coupon.objects.using(PG_SITE).create(code="PG-REPR", percent_off=15)
    store = Store.objects.using(PG_SITE).first()
    product = Product.objects.using(PG_SITE).create(
        store=store, sku="SKU-REPR", name="Made on PostgreSQL", price=Decimal("1.50"), stock=7, attrs={})
    product.refresh_from_db(using=PG_SITE)
    sync_all(config)
    for site in SQLITE_SITES:
        check(Coupon.objects.using(site).filter(pk=coupon.pk).count() == 1,
              f"{site}: Coupon {coupon.pk} made on PostgreSQL not found by pk")
        got = Coupon.objects.using(site).get(pk=coupon.pk)
        check(got.code == "PG-REPR", f"{site}: coupon code {got.code}")
        check(Product.objects.using(site).filter(created_at=product.created_at, sku="SKU-REPR").count() == 1,
              f"{site}: Product not found by created_at={product.created_at}")
        stored = sql(site, "SELECT id FROM shop_coupon WHERE code = 'PG-REPR'")
        check(stored == coupon.pk.hex, f"{site}: the coupon's key is stored as {stored!r}")
    print("scenario: the PostgreSQL-origin coupon saved through the ORM on SQLite, a SQLite-origin one on PostgreSQL")
    c = Coupon.objects.using("site_a").get(pk=coupon.pk)
    c.percent_off = 20
    c.save()
    local = Coupon.objects.using("site_b").create(code="B-REPR", percent_off=3)
    sync_all(config)
    c = Coupon.objects.using(PG_SITE).get(pk=local.pk)
    c.percent_off = 4
    c.save()
    sync_all(config)
    compare_sites("repr")
    for site in SITES:
        check(count(site, "Coupon", code="PG-REPR") == 1, f"{site}: {count(site, 'Coupon', code='PG-REPR')} PG-REPR coupons")
        check(Coupon.objects.using(site).get(pk=coupon.pk).percent_off == 20, f"{site}: update from site_a lost")
        check(Coupon.objects.using(site).get(pk=local.pk).percent_off == 4, f"{site}: update from PostgreSQL lost")
    print("scenario: the ORM on SQLite deletes the PostgreSQL-origin coupon: the one row goes everywhere")
    Coupon.objects.using("site_b").filter(pk=coupon.pk).delete()
    sync_all(config)
    compare_sites("repr delete")
    for site in SITES:
        check(count(site, "Coupon", code="PG-REPR") == 0, f"{site}: the deleted coupon is still there")
        check(count(site, "Coupon", pk=local.pk) == 1, f"{site}: the other coupon went too")
    check(isinstance(coupon.pk, uuid.UUID), "a UUID primary key")


def held(site):
    """The rows a site holds in quarantine (deltasync_quarantine()['rows'])."""
    return as_json(sql(site, "SELECT deltasync_quarantine()"))["rows"]


def phase_constraints(config):
    """Two sites create one sku (a UNIQUE conflict): the other rows keep syncing, each site
    holds the row it cannot write, a rename of one sku fixes every site. A deleted order
    while another site adds a line to it: the delete wins, no orphan anywhere."""
    from shop.models import Order, OrderLine, Product, Store, Tag
    print("scenario: two sites create a product with sku NEW-1, then sync")
    for site in ("site_a", PG_SITE):
        store = Store.objects.using(site).get(name="Store 1")
        Product.objects.using(site).create(store=store, sku="NEW-1", name=f"New on {site}",
                                           price=Decimal("1.00"), stock=1, attrs={})
    Tag.objects.using(PG_SITE).create(label="made-meanwhile")
    sync_all(config)
    for site in SITES:
        check(count(site, "Tag", label="made-meanwhile") == 1, f"{site}: the rest of the page did not sync")
        check(count(site, "Product", sku="NEW-1") == 1, f"{site}: {count(site, 'Product', sku='NEW-1')} NEW-1")
        rows = held(site)
        check(len(rows) == 1 and rows[0]["table"] == "shop_product", f"{site}: held {rows}")
        check("sku" in rows[0]["error"], f"{site}: the error names no constraint: {rows[0]['error']}")
        status = as_json(sql(site, "SELECT deltasync_status()"))
        check(status["quarantined"] == 1, f"{site}: status quarantined {status.get('quarantined')}")
    print("scenario: site_a renames its sku (the fix), sync")
    p = Product.objects.using("site_a").get(sku="NEW-1", name="New on site_a")
    p.sku = "NEW-2"
    p.save(update_fields=["sku", "updated_at"])
    sync_all(config)
    compare_sites("sku conflict fixed")
    for site in SITES:
        check(count(site, "Product", sku__in=["NEW-1", "NEW-2"]) == 2, f"{site}: the two new products")
        check(not held(site), f"{site}: still holds {held(site)}")

    print("scenario: site_a deletes an order while site_b adds a line to it, sync")
    order = Order.objects.using("site_a").filter(store__name="Store 1").order_by("customer").first()
    product = Product.objects.using("site_b").filter(store__name="Store 1").order_by("sku").first()
    Order.objects.using("site_a").get(pk=order.pk).delete()  # Django deletes its lines first
    OrderLine.objects.using("site_b").create(order=Order.objects.using("site_b").get(pk=order.pk),
                                             product=product, quantity=7, unit_price=product.price)
    sync_all(config)
    compare_sites("order deleted while a line was added")
    for site in SITES:
        check(count(site, "Order", pk=order.pk) == 0, f"{site}: the deleted order is back")
        check(count(site, "OrderLine", order_id=order.pk) == 0, f"{site}: a line of the deleted order is left")
        check(not held(site), f"{site}: still holds {held(site)}")


def phase_rename(config):
    """Product.name renamed to title on every site (RenameField), then new rows on every site
    and a delete of a row made before the rename."""
    from shop.models import Product, Store
    made = makemigrations("product_title", answer_yes=True)
    print(made.strip())
    check("Rename field name on product to title" in made, "makemigrations made no RenameField")
    for site in SITES:
        migrate(site)
    print("scenario: a RenameField migration on every site, then new rows and a delete, sync")
    for n, site in enumerate(SITES, start=1):
        store = Store.objects.using(site).get(name=f"Store {2 - n % 2}")  # Store 3 is gone
        Product.objects.using(site).create(store=store, sku=f"SKU-NEW-{n}", title=f"made on {site}",
                                           price=Decimal(f"{n}.50"), stock=n, attrs={"n": n})
    Product.objects.using("site_b").get(sku="SKU-1-0").delete()
    # An edit of the renamed column in a row made before the rename.
    Product.objects.using(PG_SITE).filter(sku="SKU-2-2").update(title="retitled on pg")
    Product.objects.using("site_a").filter(sku="SKU-1-2").update(title="retitled on a")
    sync_all(config)
    compare_sites("rename")
    for site in SITES:
        got = dict(Product.objects.using(site).filter(sku__in=["SKU-1-2", "SKU-2-2"]).values_list("sku", "title"))
        check(got == {"SKU-1-2": "retitled on a", "SKU-2-2": "retitled on pg"}, f"{site}: titles {got}")
    for site in SITES:
        for n, origin in enumerate(SITES, start=1):
            title = Product.objects.using(site).get(sku=f"SKU-NEW-{n}").title
            check(title == f"made on {origin}", f"{site}: SKU-NEW-{n} title {title!r}")
        check(count(site, "Product", sku="SKU-1-0") == 0, f"{site}: SKU-1-0 not deleted")
        check(count(site, "Product", title="Widget 1.1") == 1, f"{site}: Widget 1.1 lost its title")


def sqlalchemy_engine(config, site):
    """A SQLAlchemy engine on one site's database; on SQLite it loads the extension on connect."""
    from django.conf import settings
    from sqlalchemy import create_engine, event
    db = settings.DATABASES[site]
    if db["ENGINE"].endswith("sqlite3"):
        engine = create_engine(f"sqlite:///{db['NAME']}", future=True)

        @event.listens_for(engine, "connect")
        def load_deltasync(dbapi_connection, connection_record):
            dbapi_connection.enable_load_extension(True)
            dbapi_connection.load_extension(config["ext"])
            dbapi_connection.enable_load_extension(False)
        return engine
    return create_engine("postgresql+psycopg2://", future=True, connect_args={
        "dbname": db["NAME"], "host": db["HOST"], "port": db["PORT"], "user": db["USER"],
        "password": db["PASSWORD"]})


def phase_sqlalchemy(config):
    """A second ORM on the same databases: SQLAlchemy sessions on site_b and the PostgreSQL
    site write the Django-made tables (reflected) and sync; Django sees the result everywhere."""
    from sqlalchemy import MetaData, Table, select, text
    from sqlalchemy.orm import Session
    from shop.fields import site_unique_id
    from shop.models import Product, Tag
    print("scenario: writes through SQLAlchemy sessions on a SQLite and the PostgreSQL site, sync")
    for site, sku, stock, label in [("site_b", "SKU-NEW-1", 4242, "via sqlalchemy on b"),
                                     (PG_SITE, "SKU-NEW-2", 4343, "via sqlalchemy on pg")]:
        engine = sqlalchemy_engine(config, site)
        meta = MetaData()
        product = Table("shop_product", meta, autoload_with=engine)
        tag = Table("shop_tag", meta, autoload_with=engine)
        with Session(engine) as session, session.begin():
            session.execute(product.update().where(product.c.sku == sku).values(stock=stock))
            session.execute(tag.insert().values(id=site_unique_id(), label=label))
        with engine.connect() as conn:
            got = conn.execute(select(product.c.stock).where(product.c.sku == sku)).scalar_one()
            check(got == stock, f"{site}: SQLAlchemy wrote stock {got}")
            conn.execute(text("SELECT deltasync_sync(:url, :options)"),
                         {"url": config["hub"], "options": SYNC_OPTIONS})
            conn.commit()
        engine.dispose()
    sync_all(config)
    compare_sites("sqlalchemy")
    for site in SITES:
        check(Product.objects.using(site).get(sku="SKU-NEW-1").stock == 4242, f"{site}: SKU-NEW-1")
        check(Product.objects.using(site).get(sku="SKU-NEW-2").stock == 4343, f"{site}: SKU-NEW-2")
        labels = set(Tag.objects.using(site).filter(label__startswith="via sqlalchemy")
                     .values_list("label", flat=True))
        check(labels == {"via sqlalchemy on b", "via sqlalchemy on pg"}, f"{site}: tags {labels}")


def phase_addfield(config):
    """Product.weight_g added with a default (AddField: on SQLite Django rebuilds the table),
    migrated on every site, then stock written on two sites and weight_g on a third: nothing
    is lost or re-stamped, and the new column syncs."""
    from shop.models import Product
    made = makemigrations("product_weight")
    check("weight_g" in made, "makemigrations made no AddField")
    for site in SITES:
        migrate(site)
        # docs/applications.md: a deltasync call right after migrate follows the rebuild
        # before the application writes.
        sql(site, "SELECT deltasync_status()")
    print("scenario: AddField (a SQLite table rebuild) on every site, then writes on three sites, sync")
    skus = sorted(Product.objects.using("site_a").values_list("sku", flat=True))[:3]
    Product.objects.using("site_pg").filter(sku=skus[0]).update(stock=333)
    Product.objects.using("site_a").filter(sku=skus[1]).update(stock=999)
    Product.objects.using("site_b").filter(sku=skus[2]).update(weight_g=42)
    sync_all(config)
    compare_sites("addfield")
    for site in SITES:
        check(Product.objects.using(site).get(sku=skus[0]).stock == 333, f"{site}: stock written on PostgreSQL lost")
        check(Product.objects.using(site).get(sku=skus[1]).stock == 999, f"{site}: stock written on site_a lost")
        check(Product.objects.using(site).get(sku=skus[2]).weight_g == 42, f"{site}: weight_g written on site_b lost")
        check(count(site, "Product", weight_g=100) == count(site, "Product") - 1, f"{site}: default weight_g")


def migrate_to(site, target):
    """manage.py migrate shop <target> on one site, then the deltasync call that follows the
    migration's rebuilds (docs/applications.md, "Migrations")."""
    from django.core.management import call_command
    call_command("migrate", "shop", target, database=site, verbosity=0, interactive=False)
    sql(site, "SELECT deltasync_status()")


def leaf_migration():
    """The name of the shop app's latest migration on disk."""
    from django.db.migrations.loader import MigrationLoader
    leaves = MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes("shop")
    check(len(leaves) == 1, f"shop has {leaves} leaves")
    return leaves[0][1]


def write_migration(name, dependencies, operations, imports=""):
    """A hand-written migration file in the temporary app, as a developer would write one."""
    from django.apps import apps
    path = os.path.join(apps.get_app_config("shop").path, "migrations", name + ".py")
    deps = ", ".join(f"('shop', {d!r})" for d in dependencies)
    with open(path, "w") as f:
        f.write(f"from django.db import migrations, models\n{imports}\n\n"
                f"class Migration(migrations.Migration):\n"
                f"    dependencies = [{deps}]\n"
                f"    operations = [\n{operations}    ]\n")


def kept(site):
    return as_json(sql(site, "SELECT deltasync_status()"))["kept"]


def phase_ids(config):
    """deltasync_id() as the primary key of a model through the ORM (shop.fields.DeltasyncIdField
    and its pre_save receiver): notes made on every site, by create() and by save(), get ids of
    their site's id node, never another's; synced, every site holds every note."""
    from shop.models import Note
    made = makemigrations("note")
    check("Create model Note" in made, f"makemigrations made no Note: {made}")
    for site in SITES:
        migrate(site)
        sql(site, "SELECT deltasync_enable('shop_note')")
    print("scenario: notes keyed by deltasync_id() through the ORM on every site, sync")
    ids = {}
    for site in SITES:
        node = sql(site, "SELECT deltasync_id()") >> 43
        first = Note.objects.using(site).create(text=f"created on {site}")
        second = Note(text=f"saved on {site}")
        second.save(using=site)
        ids[site] = [first.pk, second.pk]
        check(all(i >> 43 == node for i in ids[site]), f"{site}: ids {ids[site]} not of node {node}")
        check(Note.objects.using(site).get(pk=first.pk).text == f"created on {site}", f"{site}: note by pk")
    every = [i for v in ids.values() for i in v]
    check(len(set(every)) == 6, f"note ids collide: {ids}")
    sync_all(config)
    compare_sites("deltasync_id ids")
    for site in SITES:
        check(sorted(Note.objects.using(site).values_list("pk", flat=True)) == sorted(every), f"{site}: notes")


def phase_lag(config):
    """Two sites one migration apart both writing: Store.phone (AddField with a default: a SQLite
    rebuild) migrated on site_a and the PostgreSQL site only; site_a and PostgreSQL write phones,
    site_b (behind) writes other columns and tables; sync; then site_b migrates: nothing lost."""
    from shop.models import Order, OrderLine, Product, Store
    made = makemigrations("store_phone")
    check("phone" in made, f"makemigrations made no AddField: {made}")
    target = leaf_migration()
    for site in ("site_a", PG_SITE):
        migrate_to(site, target)
    print("scenario: site_b a migration behind, every site writes, sync, then site_b migrates")
    Store.objects.using("site_a").filter(name="Store 1").update(phone="+1 555 0101")
    Store.objects.using(PG_SITE).filter(name="Store 2").update(phone="+1 555 0202", city="Pg City")
    # site_b's schema has no phone yet: the ORM writes what does not touch it.
    sku = sorted(Product.objects.using("site_b").values_list("sku", flat=True))[0]
    Product.objects.using("site_b").filter(sku=sku).update(stock=4711)
    order = Order.objects.using("site_b").only("id").order_by("customer").first()
    product = Product.objects.using("site_b").get(sku=sku)
    line = OrderLine.objects.using("site_b").create(order_id=order.pk, product=product, quantity=3,
                                                    unit_price=product.price)
    sync_all(config)
    check(kept("site_b") >= 2, f"site_b kept {kept('site_b')} changes of the column it lacks")
    for site in ("site_a", PG_SITE):
        check(Product.objects.using(site).get(sku=sku).stock == 4711, f"{site}: stock written on site_b (behind)")
        check(count(site, "OrderLine", pk=line.pk) == 1, f"{site}: the line made on site_b (behind)")
        check(Store.objects.using(site).get(name="Store 2").phone == "+1 555 0202", f"{site}: phone from PostgreSQL")
    check(sql("site_b", "SELECT city FROM shop_store WHERE name = 'Store 2'") == "Pg City",
          "site_b: the city written with a phone on PostgreSQL")
    migrate_to("site_b", target)
    sync_all(config)
    compare_sites("lagging site migrated")
    for site in SITES:
        phones = dict(Store.objects.using(site).values_list("name", "phone"))
        check(phones == {"Store 1": "+1 555 0101", "Store 2": "+1 555 0202"}, f"{site}: phones {phones}")
        check(kept(site) == 0, f"{site}: still keeps {kept(site)} changes")


def phase_orders(config):
    """The same migrations applied in different orders: two migrations on one parent (Tag.color,
    Order.note) and their merge; site_a applies color first, site_b note first, PostgreSQL both
    at once; each writes what its schema has between the steps; every site ends on the merge."""
    from shop.models import Order, Tag
    parent = leaf_migration()
    write_migration("0100_tag_color", [parent],
                    "        migrations.AddField('tag', 'color', models.CharField(default='grey', max_length=20)),\n")
    write_migration("0100_order_note", [parent],
                    "        migrations.AddField('order', 'note', models.CharField(default='', max_length=100)),\n")
    write_migration("0101_merge", ["0100_tag_color", "0100_order_note"], "")
    print("scenario: two migrations applied in different orders on different sites, writes between")
    migrate_to("site_a", "0100_tag_color")
    migrate_to("site_b", "0100_order_note")
    migrate_to(PG_SITE, "0101_merge")
    Tag.objects.using("site_a").filter(label="site_a-new").update(color="red")
    Order.objects.using("site_b").filter(customer="customer 2.0").update(note="from site_b")
    Tag.objects.using(PG_SITE).filter(label="site_b-sale").update(color="blue")
    Order.objects.using(PG_SITE).filter(customer="customer 2.1").update(note="from pg")
    sync_all(config)
    check(sql("site_a", "SELECT color FROM shop_tag WHERE label = 'site_b-sale'") == "blue", "site_a: color from pg")
    check(sql("site_b", "SELECT note FROM shop_order WHERE customer = 'customer 2.1'") == "from pg",
          "site_b: note from pg")
    migrate_to("site_a", "0101_merge")
    migrate_to("site_b", "0101_merge")
    sync_all(config)
    compare_sites("migrations in different orders")
    for site in SITES:
        colors = dict(Tag.objects.using(site).exclude(color="grey").values_list("label", "color"))
        check(colors == {"site_a-new": "red", "site_b-sale": "blue"}, f"{site}: colors {colors}")
        notes = dict(Order.objects.using(site).exclude(note="").values_list("customer", "note"))
        check(notes == {"customer 2.0": "from site_b", "customer 2.1": "from pg"}, f"{site}: notes {notes}")
        check(kept(site) == 0, f"{site}: still keeps {kept(site)} changes")


def phase_datamigration(config):
    """A data migration: AddField Product.code (a default: on SQLite a rebuild) and a RunPython
    that gives every product its own random code, in one migration. Run on site_a first and
    synced: the other sites (behind) must keep its values for every product; then every site
    migrates (each draws its own codes; the newest wins per row) and all hold one code per row."""
    from shop.models import Product
    parent = leaf_migration()
    write_migration("0200_product_code", [parent],
                    "        migrations.AddField('product', 'code', models.CharField(default='', max_length=32)),\n"
                    "        migrations.RunPython(fill_codes, migrations.RunPython.noop),\n",
                    imports="import uuid\n\n\ndef fill_codes(apps, schema_editor):\n"
                            "    Product = apps.get_model('shop', 'Product')\n"
                            "    for p in Product.objects.using(schema_editor.connection.alias).filter(code=''):\n"
                            "        p.code = uuid.uuid4().hex\n"
                            "        p.save(update_fields=['code'])\n")
    print("scenario: AddField + RunPython updating every row, on site_a first, sync")
    from django.core.management import call_command
    plan = io.StringIO()
    call_command("sqlmigrate", "shop", "0200_product_code", database="site_a", stdout=plan)
    check('CREATE TABLE "new__shop_product"' in plan.getvalue(), f"the AddField is no rebuild: {plan.getvalue()}")
    # No deltasync call between the rebuild and the RunPython's UPDATEs: the capture guard
    # (docs/applications.md, "Migrations") must capture them.
    call_command("migrate", "shop", "0200_product_code", database="site_a", verbosity=0, interactive=False)
    n = count("site_a", "Product")
    check(count("site_a", "Product", code="") == 0, "site_a: the data migration left empty codes")
    sync_all(config)
    for site in ("site_b", PG_SITE):
        check(kept(site) == n, f"{site} (behind) keeps {kept(site)} codes of {n} products: "
                               "the data migration's UPDATEs on site_a were not captured")
    for site in ("site_b", PG_SITE):
        migrate_to(site, "0200_product_code")
    sync_all(config)
    compare_sites("data migration")
    for site in SITES:
        check(count(site, "Product", code="") == 0, f"{site}: empty codes")
        check(len(set(Product.objects.using(site).values_list("code", flat=True))) == n, f"{site}: codes not unique")


PHASES = {"v1": phase_v1, "repr": phase_repr, "constraints": phase_constraints, "rename": phase_rename,
          "sqlalchemy": phase_sqlalchemy, "addfield": phase_addfield, "ids": phase_ids, "lag": phase_lag,
          "orders": phase_orders, "datamigration": phase_datamigration}
# What the suite runs: phases, and between them the edits a developer makes to models.py.
PLAN = [
    ("phase", "v1"),
    ("phase", "repr"),
    ("phase", "constraints"),
    ("edit", "    name = models.CharField(max_length=200)\n",
     "    title = models.CharField(max_length=200)\n"),
    ("phase", "rename"),
    ("phase", "sqlalchemy"),
    ("edit", "    stock = models.IntegerField()\n",
     "    stock = models.IntegerField()\n    weight_g = models.IntegerField(default=100)\n"),
    ("phase", "addfield"),
    ("edit", "    percent_off = models.IntegerField()\n",
     "    percent_off = models.IntegerField()\n\n\nclass Note(models.Model):\n"
     "    id = DeltasyncIdField()\n    text = models.CharField(max_length=100)\n"),
    ("phase", "ids"),
    ("edit", "    city = models.CharField(max_length=100)\n",
     "    city = models.CharField(max_length=100)\n    phone = models.CharField(max_length=20, default=\"\")\n"),
    ("phase", "lag"),
    ("edit", "    label = models.CharField(max_length=50)\n",
     "    label = models.CharField(max_length=50)\n    color = models.CharField(max_length=20, default=\"grey\")\n"),
    ("edit", "    placed_at = models.DateTimeField(auto_now_add=True)\n",
     "    placed_at = models.DateTimeField(auto_now_add=True)\n    note = models.CharField(max_length=100, default=\"\")\n"),
    ("phase", "orders"),
    ("edit", "    updated_at = models.DateTimeField(auto_now=True)\n",
     "    updated_at = models.DateTimeField(auto_now=True)\n    code = models.CharField(max_length=32, default=\"\")\n"),
    ("phase", "datamigration"),
]


def run_phase(project, phases, name):
    """Entry point of a phase's interpreter."""
    config = setup_django(project)
    try:
        phases[name](config)
    except CheckFailed as e:
        print(f"FAIL ({name}): {e}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------
# The driver: project, PostgreSQL database, hub, phases.


def edit_models(project, old, new):
    """Edits the temporary app's models.py as a developer would before makemigrations."""
    path = os.path.join(project, "shop", "models.py")
    with open(path) as f:
        text = f.read()
    if old not in text:
        raise CheckFailed(f"models.py has no {old!r}")
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def make_project(tmp):
    """The Django project in tmp: the shop app copied, an empty migrations package, config.json."""
    project = os.path.join(tmp, "project")
    shutil.copytree(os.path.join(HERE, "shop"), os.path.join(project, "shop"),
                    ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    os.makedirs(os.path.join(project, "shop", "migrations"))
    open(os.path.join(project, "shop", "migrations", "__init__.py"), "w").close()
    return project


def write_config(project, ext, hub_url):
    """What every phase reads: the extension, the hub URL, the PostgreSQL connection."""
    pg = {"host": os.environ.get("PGHOST", "localhost"), "port": os.environ.get("PGPORT", "5432"),
          "user": os.environ.get("PGUSER", "postgres"),
          "password": os.environ.get("PGPASSWORD", "")}
    with open(os.path.join(project, "config.json"), "w") as f:
        json.dump({"ext": ext, "hub": hub_url, "pg": pg}, f)


def create_pg_database():
    """The PostgreSQL site's database, with the extension (as a superuser would)."""
    import psycopg2
    admin = psycopg2.connect(dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE}")
        cur.execute(f"CREATE DATABASE {PG_DATABASE}")
    admin.close()
    db = psycopg2.connect(dbname=PG_DATABASE)
    db.autocommit = True
    with db.cursor() as cur:
        cur.execute("CREATE EXTENSION deltasync")
    db.close()


def start_hub(cli, tmp):
    """`deltasync serve` on 127.0.0.1:0; returns (process, node URL) once it listens."""
    log_path = os.path.join(tmp, "hub.log")
    log = open(log_path, "w")
    hub = subprocess.Popen([cli, "serve", "--db", os.path.join(tmp, "hub.db"),
                            "--listen", "127.0.0.1:0", "--auto-create-nodes"],
                           stdout=log, stderr=log)
    for _ in range(300):
        with open(log_path) as f:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
        if m:
            return hub, f"http://127.0.0.1:{m.group(1)}/nodes/shop"
        if hub.poll() is not None:
            break
        time.sleep(0.1)
    hub.kill()
    with open(log_path) as f:
        raise CheckFailed(f"hub did not start: {f.read()}")


def run_plan(script, phases, plan, argv=None):
    """Runs a plan (phases and model edits) against a fresh fleet: two SQLite sites, one
    PostgreSQL site, one hub. `script` is the file whose --phase runs `phases`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ext", help="the SQLite extension deltasync.so")
    parser.add_argument("--cli", help="the deltasync command (hub)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.phase:
        return run_phase(args.project, phases, args.phase)

    ext, cli = os.path.abspath(args.ext), os.path.abspath(args.cli)
    tmp = tempfile.mkdtemp(prefix="deltasync-orm-")
    hub = None
    try:
        project = make_project(tmp)
        create_pg_database()
        hub, hub_url = start_hub(cli, tmp)
        write_config(project, ext, hub_url)
        for step in plan:
            if step[0] == "edit":
                edit_models(project, step[1], step[2])
                continue
            print(f"phase {step[1]}", flush=True)
            started = time.monotonic()
            rc = subprocess.call([sys.executable, os.path.abspath(script), "--phase", step[1],
                                  "--project", project], cwd=project)
            if rc != 0:
                raise CheckFailed(f"phase {step[1]} failed (exit {rc}); hub log: {tmp}/hub.log")
            print(f"phase {step[1]} passed ({time.monotonic() - started:.1f} s)", flush=True)
        print("every phase passed")
        return 0
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(timeout=10)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_plan(__file__, PHASES, PLAN))
