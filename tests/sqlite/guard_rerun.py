#!/usr/bin/python3
"""Capture guard (sqlite_ext/sqlite_guard.cpp), found by review: it missed a write whose statement
SQLite re-prepares after SQLITE_SCHEMA: a rerun is not traced (sqlite3_step sets minWriteFileFormat = 254,
tag-20220401a, when the first attempt already passed OP_Init), so the trace callback saw the
statement start while the connection's schema still had the old table with its triggers, and
the re-prepared statement writes the rebuilt table without them. Exits 1 if a write is lost (each case must end with the write stopped or captured).

Also: with PRAGMA locking_mode = EXCLUSIVE (or any lock that keeps the guard's second connection
from reading for 2 s) a busy error is taken for "nothing tracked" and the write runs uncaptured.

Cases: another connection/process rebuilt the table (a `manage.py migrate` while a worker's
connection stays open) and this connection's schema cache is stale; a busy lock holder that
commits a schema change (the guard's sqlite3_interrupt is cleared by the re-prepare).
Usage: BUILD=build /usr/bin/python3 tests/sqlite/guard_rerun.py (ctest sqlite_guard_rerun)
"""
import json, os, sqlite3, subprocess, sys, tempfile, threading, time

SO = os.path.join(os.environ.get("BUILD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build")),
                  "sqlite_ext/deltasync.so")
SCHEMA = ("CREATE TABLE product(id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
          " stock INTEGER NOT NULL); SELECT deltasync_enable('product');")
REBUILD = ("BEGIN; CREATE TABLE new__product(id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
           " stock INTEGER NOT NULL, weight INTEGER NOT NULL DEFAULT 100);"
           " INSERT INTO new__product(id, sku, name, stock) SELECT id, sku, name, stock FROM product;"
           " DROP TABLE product; ALTER TABLE new__product RENAME TO product; COMMIT;")


def connect(path, load=True):
    c = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
    if load:
        c.enable_load_extension(True)
        c.load_extension(SO)
        c.enable_load_extension(False)
    return c


def captured(path, since, key, col, value):
    c = connect(path)
    d = json.loads(c.execute("SELECT deltasync_changes(?)", (since,)).fetchone()[0])
    c.close()
    for t in d["tables"]:
        i = t["columns"].index(col)
        for r in t["rows"]:
            if r["key"] == [key] and any(ch[0] == i and ch[1] == value for ch in r.get("changes", [])):
                return True
    return False


def fresh(d, wal):
    path = os.path.join(d, "p.db")
    for s in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(path + s):
            os.remove(path + s)
    c = connect(path)
    if wal:
        c.execute("PRAGMA journal_mode = WAL")
    c.executescript(SCHEMA + "INSERT INTO product VALUES (1, 'S1', 'apple', 10), (2, 'S2', 'pear', 5);")
    v = c.execute("SELECT deltasync_db_version()").fetchone()[0]
    c.close()
    return path, v


def other_process_rebuilds(path):
    app = connect(path)
    app.execute("SELECT count(*) FROM product").fetchone()  # schema loaded (any earlier statement)
    subprocess.run([sys.executable, "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1], isolation_level=None)"
                    ".executescript(sys.argv[2])", path, REBUILD], check=True)
    app.execute("UPDATE product SET stock = 42 WHERE id = 1")


def other_connection_rebuilds_in_txn(path):
    app = connect(path)
    app.execute("SELECT count(*) FROM product").fetchone()
    connect(path, load=False).executescript(REBUILD)
    app.executescript("BEGIN; UPDATE product SET stock = 42 WHERE id = 1; COMMIT;")


def busy_holder_changes_schema(path):
    app = connect(path)
    app.executescript(REBUILD)
    holder = connect(path, load=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE scratch(x)")
    t = threading.Thread(target=lambda: (time.sleep(3), holder.execute("COMMIT")))
    t.start()
    app.execute("UPDATE product SET stock = 42 WHERE id = 1")  # waits for the lock (timeout 5 s), succeeds
    t.join()


def exclusive_locking_mode(path):
    # The guard's second connection cannot read the file (this one keeps its lock): its prepare
    # fails with SQLITE_BUSY after 2 s, which Follow() takes for "no deltasync_tables", so the
    # write runs uncaptured instead of being stopped.
    app = connect(path)
    try:
        app.execute("PRAGMA locking_mode = EXCLUSIVE")
        app.executescript(REBUILD)
        app.execute("UPDATE product SET stock = 42 WHERE id = 1")
    finally:
        app.close()  # a refused write leaves the lock with the connection


failed = 0
with tempfile.TemporaryDirectory() as d:
    for case in (other_process_rebuilds, other_connection_rebuilds_in_txn, busy_holder_changes_schema,
                 exclusive_locking_mode):
        for wal in (False, True):
            path, v = fresh(d, wal)
            err = None
            try:
                case(path)
            except sqlite3.Error as e:
                err = e  # stopped: not lost
            c = connect(path)
            written = c.execute("SELECT stock FROM product WHERE id = 1").fetchone()[0] == 42
            c.close()
            lost = written and not captured(path, v, 1, "stock", 42)
            print(("LOST " if lost else "ok   ") + f"{case.__name__} wal={wal}" + (f" ({err})" if err else ""))
            failed += lost
sys.exit(1 if failed else 0)
