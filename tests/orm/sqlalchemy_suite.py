#!/usr/bin/python3
"""deltasync under SQLAlchemy: the recipe of docs/applications.md ("SQLAlchemy") on two SQLite
sites and one PostgreSQL site, syncing through a real hub (`deltasync serve` on 127.0.0.1).

Run under pg_virtualenv (ctest e2e_sqlalchemy_orm does, label e2e), which sets PGHOST/PGPORT/
PGUSER/PGPASSWORD for a throwaway cluster; Debian's python3-sqlalchemy (1.4) and
python3-alembic, run by Debian's interpreter:

    pg_virtualenv -t -- /usr/bin/python3 tests/orm/sqlalchemy_suite.py \
        --ext build/sqlite_ext/deltasync.so --cli build/server/deltasync

Scenarios, each ending with identical rows on every site:
  ids        the schema made by metadata.create_all on every site, ids from deltasync_id()
             (the ORM's INSERT asks for one first; a plain INSERT takes the server default);
             alembic_version is refused by deltasync_enable; each site creates a store with
             items through an ORM Session; sync.
  edits      an update on each engine of another site's row, a delete that cascades through
             the ORM, rows inserted by plain SQL without an id; sync.
  migration  an Alembic batch migration (on SQLite the rebuild pattern: a new table, copy,
             drop, rename; on PostgreSQL plain ALTER TABLE) on every site, a deltasync call
             after it, then writes of the new and the old columns on three sites; sync.
  health     the hub stopped: every site's sync fails, and a new connection's
             deltasync_status() shows last_error, failing_since_ms, failures; the hub
             restarted on its port: a sync clears them.
Exits non-zero on the first failed check.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session, declarative_base, relationship

SQLITE_SITES = ["site_a", "site_b"]
PG_SITE = "site_pg"
SITES = SQLITE_SITES + [PG_SITE]
PG_DATABASE = "orm_sqlalchemy"
TRACKED = ["store", "item"]
SYNC_OPTIONS = '{"timeout_ms":10000}'


class CheckFailed(Exception):
    """A scenario's expectation that did not hold."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


# ---------------------------------------------------------------------------------------
# The application's models, as docs/applications.md recommends them.

Base = declarative_base()


def site_unique_id():
    """A primary key column whose ids no other site allocates.

    default=func.deltasync_id(): SQLAlchemy runs `SELECT deltasync_id()` before an ORM INSERT
    on SQLite (1.4 has no RETURNING there, and lastrowid would be the rowid, not this column)
    and puts it in the INSERT ... RETURNING on PostgreSQL. server_default: a plain INSERT
    without the id gets one from the database too. autoincrement=False: no SERIAL on
    PostgreSQL, no AUTOINCREMENT on SQLite (BIGINT is not the rowid alias there)."""
    return sa.Column(sa.BigInteger, primary_key=True, autoincrement=False,
                     default=func.deltasync_id(), server_default=text("(deltasync_id())"))


class Store(Base):
    __tablename__ = "store"
    id = site_unique_id()
    name = sa.Column(sa.String(100), nullable=False)
    city = sa.Column(sa.String(100), nullable=False)
    items = relationship("Item", back_populates="store", cascade="all, delete-orphan")


class Item(Base):
    __tablename__ = "item"
    id = site_unique_id()
    store_id = sa.Column(sa.BigInteger, sa.ForeignKey("store.id", ondelete="CASCADE"), nullable=False)
    sku = sa.Column(sa.String(32), nullable=False, unique=True)
    name = sa.Column(sa.String(100), nullable=False)
    price = sa.Column(sa.Numeric(10, 2), nullable=False)
    stock = sa.Column(sa.Integer, nullable=False)
    store = relationship("Store", back_populates="items")


# ---------------------------------------------------------------------------------------
# Engines: the extension on every SQLite connection.


def make_engine(site, tmp, ext):
    if site == PG_SITE:
        # libpq takes host, port, user and password from the environment (pg_virtualenv).
        return sa.create_engine("postgresql+psycopg2://", future=True,
                                connect_args={"dbname": PG_DATABASE})
    engine = sa.create_engine(f"sqlite:///{os.path.join(tmp, site + '.sqlite3')}", future=True)

    @event.listens_for(engine, "connect")
    def load_deltasync(dbapi_connection, connection_record):
        # Every connection of the pool: the capture triggers call the extension's functions.
        dbapi_connection.enable_load_extension(True)
        dbapi_connection.load_extension(ext)
        dbapi_connection.enable_load_extension(False)
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    return engine


def call(engine, statement, **params):
    """One deltasync function in autocommit (its own transaction); its result."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return conn.execute(text(statement), params).scalar()


def as_json(value):
    import json
    return value if isinstance(value, dict) else json.loads(value)


def sync_all(engines, hub_url, rounds=2):
    for _ in range(rounds):
        for site in SITES:
            try:
                call(engines[site], "SELECT deltasync_sync(:url, :options)", url=hub_url, options=SYNC_OPTIONS)
            except sa.exc.DBAPIError as e:
                raise CheckFailed(f"deltasync_sync on {site}: {e}") from e


def rows(engine, table):
    """Every row of a table, ordered by id, as text (the engines' Decimal and int agree as text)."""
    with engine.connect() as conn:
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        result = conn.execute(select(t).order_by(t.c.id))
        return [{k: (None if v is None else str(v)) for k, v in r._mapping.items()} for r in result]


def compare(engines, label):
    """Identical rows of every tracked table on every site; a healthy status everywhere."""
    for table in TRACKED:
        want = rows(engines["site_a"], table)
        for site in SITES[1:]:
            got = rows(engines[site], table)
            if got != want:
                diff = [(w, g) for w, g in zip(want, got) if w != g][:1]
                raise CheckFailed(f"{label}: {table} differs on site_a and {site}: "
                                  f"{len(want)} / {len(got)} rows; first difference {diff}")
    for site in SITES:
        status = as_json(call(engines[site], "SELECT deltasync_status()"))
        check(status["quarantined"] == 0 and status["kept"] == 0, f"{label}: {site} status {status}")
        check(all(h["failures"] == 0 and h["last_error"] is None for h in status["hubs"]),
              f"{label}: {site} hub health {status['hubs']}")
    n = {t: len(rows(engines["site_a"], t)) for t in TRACKED}
    print(f"  {label}: identical rows on {', '.join(SITES)} ({n})")
    return n


# ---------------------------------------------------------------------------------------
# Scenarios.


def scenario_ids(engines, hub_url):
    print("scenario: create_all, tracking, ids from deltasync_id(), a store with items per site")
    for site in SITES:
        engine = engines[site]
        Base.metadata.create_all(engine)
        # What Alembic creates for itself: per database, never tracked.
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL,"
                              " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
        for table in TRACKED:
            call(engine, "SELECT deltasync_enable(:t)", t=table)
        try:
            call(engine, "SELECT deltasync_enable('alembic_version')")
            raise CheckFailed(f"{site}: deltasync_enable('alembic_version') was not refused")
        except sa.exc.DBAPIError as e:
            check("deltasync:" in str(e) and "alembic_version" in str(e), f"{site}: refusal {e}")
        status = as_json(call(engine, "SELECT deltasync_status()"))
        check(sorted(t["table"] for t in status["tables"]) == sorted(TRACKED), f"{site} tracks {status['tables']}")

    ids = set()
    for n, site in enumerate(SITES, start=1):
        with Session(engines[site]) as session, session.begin():
            store = Store(name=f"Store {n}", city=f"City {n}")
            store.items = [Item(sku=f"SKU-{n}-{i}", name=f"Widget {n}.{i}", price=Decimal(f"{n}{i}.50"),
                                stock=10 * i + n) for i in range(3)]
            session.add(store)
            session.flush()
            store_id = store.id
            ids.update([store.id] + [item.id for item in store.items])
        with Session(engines[site]) as session:
            # The id the ORM holds is the row's id (not the SQLite rowid).
            check(session.get(Store, store_id).name == f"Store {n}", f"{site}: store {store_id} not found by id")
    check(len(ids) == 12, f"ids not unique across sites: {sorted(ids)}")
    sync_all(engines, hub_url)
    n = compare(engines, "ids")
    check(n == {"store": 3, "item": 9}, f"rows after the first sync: {n}")
    for site in SITES:
        with engines[site].connect() as conn:
            check(conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == ["0001"],
                  f"{site}: alembic_version changed")


def scenario_edits(engines, hub_url):
    print("scenario: updates of other sites' rows, a cascading delete, plain INSERTs without an id")
    with Session(engines["site_b"]) as s, s.begin():
        s.execute(select(Item).where(Item.sku == "SKU-1-0")).scalar_one().stock = 999
    with Session(engines[PG_SITE]) as s, s.begin():
        s.execute(select(Item).where(Item.sku == "SKU-2-1")).scalar_one().price = Decimal("123.45")
    with Session(engines["site_a"]) as s, s.begin():
        s.delete(s.execute(select(Store).where(Store.name == "Store 3")).scalar_one())  # its items too
    for site in ("site_b", PG_SITE):
        with engines[site].begin() as conn:
            conn.execute(text("INSERT INTO store (name, city) VALUES (:n, 'Raw')"), {"n": f"raw on {site}"})
    sync_all(engines, hub_url)
    n = compare(engines, "edits")
    check(n == {"store": 4, "item": 6}, f"rows after the edits: {n}")
    with Session(engines["site_a"]) as s:
        check(s.execute(select(Item.stock).where(Item.sku == "SKU-1-0")).scalar_one() == 999, "stock lost")
        check(s.execute(select(Item.price).where(Item.sku == "SKU-2-1")).scalar_one() == Decimal("123.45"), "price lost")
        raw = s.execute(select(Store.id).where(Store.city == "Raw")).scalars().all()
        check(len(raw) == 2 and all(i > 1 << 43 for i in raw), f"plain INSERT ids {raw}: not from deltasync_id()")


def migrate(engine):
    """Revision 0002 as an Alembic migration would run it: item gains weight_g (NOT NULL,
    server default 100) and its name grows to 200 characters. batch_alter_table on SQLite
    recreates the table (the alter_column needs it): CREATE _alembic_tmp_item, INSERT ...
    SELECT, DROP item, RENAME; on PostgreSQL it issues ALTER TABLE."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    with engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        with op.batch_alter_table("item") as batch:
            batch.add_column(sa.Column("weight_g", sa.Integer, nullable=False, server_default="100"))
            batch.alter_column("name", existing_type=sa.String(100), type_=sa.String(200),
                               existing_nullable=False)
        conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    # The recipe: a deltasync call once the migration ran, before the application writes.
    call(engine, "SELECT deltasync_status()")


def scenario_migration(engines, hub_url):
    print("scenario: an Alembic batch migration on every site, then writes on three sites")
    for site in SITES:
        migrate(engines[site])
    with engines["site_a"].connect() as conn:
        ddl = conn.execute(text("SELECT sql FROM sqlite_schema WHERE name = 'item'")).scalar_one()
        check("VARCHAR(200)" in ddl and "weight_g" in ddl, f"the migration did not rebuild item: {ddl}")
    for site in SITES:
        status = as_json(call(engines[site], "SELECT deltasync_status()"))
        cols = {t["table"]: t.get("columns") for t in status["tables"]}
        check("weight_g" in cols["item"] and all(t["state"] == "tracked" for t in status["tables"]),
              f"{site}: tracked after the migration: {status['tables']}")
    item = sa.Table("item", sa.MetaData(), sa.Column("sku"), sa.Column("stock"), sa.Column("weight_g"),
                    sa.Column("name"))
    with engines[PG_SITE].begin() as conn:
        conn.execute(item.update().where(item.c.sku == "SKU-1-1").values(stock=333))
    with engines["site_a"].begin() as conn:
        conn.execute(item.update().where(item.c.sku == "SKU-2-0").values(weight_g=42))
    with engines["site_b"].begin() as conn:
        conn.execute(item.update().where(item.c.sku == "SKU-1-2").values(name="x" * 150))
    with Session(engines["site_b"]) as s, s.begin():
        store = s.execute(select(Store).where(Store.name == "Store 1")).scalar_one()
        s.execute(text("INSERT INTO item (store_id, sku, name, price, stock, weight_g)"
                       " VALUES (:s, 'SKU-M', 'after the migration', 1.25, 5, 7)"), {"s": store.id})
    sync_all(engines, hub_url)
    n = compare(engines, "migration")
    check(n == {"store": 4, "item": 7}, f"rows after the migration: {n}")
    for site in SITES:
        with engines[site].connect() as conn:
            got = dict(conn.execute(text("SELECT sku, weight_g FROM item")).all())
            check(got["SKU-2-0"] == 42 and got["SKU-M"] == 7, f"{site}: weight_g {got}")
            check(sum(1 for v in got.values() if v == 100) == 5, f"{site}: default weight_g {got}")
            stock = conn.execute(text("SELECT stock FROM item WHERE sku = 'SKU-1-1'")).scalar_one()
            check(stock == 333, f"{site}: stock written on PostgreSQL after the migration: {stock}")
            name = conn.execute(text("SELECT name FROM item WHERE sku = 'SKU-1-2'")).scalar_one()
            check(name == "x" * 150, f"{site}: a 150-character name written on site_b: {name!r}")


def hub_health(engine):
    """The site's one hub entry of deltasync_status(), read on a new connection."""
    engine.dispose()  # every pooled connection closed: what follows is a new one
    hubs = as_json(call(engine, "SELECT deltasync_status()"))["hubs"]
    check(len(hubs) == 1, f"hubs {hubs}")
    return hubs[0]


def scenario_health(engines, hub, hub_url, cli, tmp):
    """docs/operations.md "Health and monitoring": with the hub down every site's sync fails,
    and a new connection sees the failure (last_error, failing_since_ms, failures); once the
    hub is back a sync clears it. Returns the restarted hub."""
    print("scenario: the hub stopped, every site syncs (fails), the health on a new connection")
    with engines[PG_SITE].begin() as conn:
        conn.execute(text("UPDATE item SET stock = stock + 1 WHERE sku = 'SKU-M'"))
    hub.terminate()
    hub.wait(timeout=10)
    for site in SITES:
        try:
            call(engines[site], "SELECT deltasync_sync(:url, :options)", url=hub_url,
                 options='{"timeout_ms":2000}')
            raise CheckFailed(f"{site}: a sync with the hub down succeeded")
        except sa.exc.DBAPIError as e:
            check("deltasync:" in str(e), f"{site}: {e}")
    for site in SITES:
        deadline = time.monotonic() + 5  # PostgreSQL records it from a background worker
        while True:
            h = hub_health(engines[site])
            if h["failures"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(h["failures"] >= 1 and h["last_error"] and h["last_error"].startswith("deltasync:")
              and h["failing_since_ms"] and h["last_error_ms"] >= h["failing_since_ms"]
              and h["last_success_ms"] and h["last_success_ms"] <= h["failing_since_ms"],
              f"{site}: health while the hub is down: {h}")
    pending = as_json(call(engines[PG_SITE], "SELECT deltasync_status()"))["pending_changes"]
    check(pending >= 1, f"{PG_SITE}: pending_changes {pending} with an unsent update")
    port = re.search(r":(\d+)/", hub_url).group(1)
    hub, url = start_hub(cli, tmp, port)
    check(url == hub_url, f"the hub came back at {url}")
    sync_all(engines, hub_url)
    for site in SITES:
        h = hub_health(engines[site])
        check(h["failures"] == 0 and h["last_error"] is None and h["failing_since_ms"] is None
              and h["last_success_ms"], f"{site}: health after the hub came back: {h}")
    compare(engines, "health")
    return hub


# ---------------------------------------------------------------------------------------
# The driver.


def create_pg_database():
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


def start_hub(cli, tmp, port=0):
    """`deltasync serve` on 127.0.0.1:port (0: any); returns (process, node URL) once it listens."""
    log_path = os.path.join(tmp, f"hub-{time.monotonic_ns()}.log")
    log = open(log_path, "w")
    hub = subprocess.Popen([cli, "serve", "--db", os.path.join(tmp, "hub.db"),
                            "--listen", f"127.0.0.1:{port}", "--auto-create-nodes"], stdout=log, stderr=log)
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ext", required=True, help="the SQLite extension deltasync.so")
    parser.add_argument("--cli", required=True, help="the deltasync command (hub)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="deltasync-sqlalchemy-")
    hub, engines, keep = None, {}, args.keep
    started = time.monotonic()
    try:
        create_pg_database()
        hub, hub_url = start_hub(os.path.abspath(args.cli), tmp)
        engines = {site: make_engine(site, tmp, os.path.abspath(args.ext)) for site in SITES}
        for scenario in (scenario_ids, scenario_edits, scenario_migration):
            scenario(engines, hub_url)
        hub = scenario_health(engines, hub, hub_url, os.path.abspath(args.cli), tmp)
        print(f"every scenario passed ({time.monotonic() - started:.1f} s)")
        return 0
    except CheckFailed as e:
        print(f"FAIL: {e}", file=sys.stderr)
        keep = True
        return 1
    finally:
        for engine in engines.values():
            engine.dispose()
        if hub is not None:
            hub.terminate()
            hub.wait(timeout=10)
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
