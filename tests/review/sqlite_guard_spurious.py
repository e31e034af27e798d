#!/usr/bin/python3
"""Capture guard (sqlite_ext/sqlite_guard.cpp): writes after a rebuild that work without the
extension fail with it, in autocommit mode, where the guard follows the schema change on a second
connection. Exits 1 while one fails. (No write is lost here: the write is refused.)

- a read cursor of the same connection is open (`for row in conn.execute(SELECT): UPDATE ...`):
  rollback journal: the follow waits 2 s for the cursor's SHARED lock, the UPDATE fails
  `interrupted` (and the connection's next statements too until the cursor ends); WAL: the
  second connection commits past the cursor's snapshot, the UPDATE fails `database is locked`.
- another connection holds the write lock 3 s, the application's busy timeout is 5 s: the
  guard's own connection gives up after 2 s (sqlite3_busy_timeout(other, 2000)), `interrupted`.
Usage: BUILD=build /usr/bin/python3 tests/review/sqlite_guard_spurious.py
"""
import os, sqlite3, sys, tempfile, threading, time

SO = os.path.join(os.environ.get("BUILD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build")),
                  "sqlite_ext/deltasync.so")
REBUILD = ("BEGIN; CREATE TABLE new__product(id INTEGER PRIMARY KEY, stock INTEGER NOT NULL, w INTEGER DEFAULT 1);"
           " INSERT INTO new__product(id, stock) SELECT id, stock FROM product;"
           " DROP TABLE product; ALTER TABLE new__product RENAME TO product; COMMIT;")


def connect(path, load):
    c = sqlite3.connect(path, isolation_level=None, timeout=5, check_same_thread=False)
    if load:
        c.enable_load_extension(True)
        c.load_extension(SO)
        c.enable_load_extension(False)
    return c


def fresh(d, wal, load, name):
    path = os.path.join(d, f"{name}{int(wal)}{int(load)}.db")
    c = connect(path, load)
    if wal:
        c.execute("PRAGMA journal_mode = WAL")
    c.executescript("CREATE TABLE product(id INTEGER PRIMARY KEY, stock INTEGER NOT NULL);"
                    "INSERT INTO product VALUES (1, 10), (2, 5); CREATE TABLE other(x);")
    if load:
        c.execute("SELECT deltasync_enable('product')").fetchone()
    c.close()
    return path


def cursor_open(path, load):
    c = connect(path, load)
    c.executescript(REBUILD)
    for (i,) in c.execute("SELECT id FROM product ORDER BY id"):
        c.execute("UPDATE product SET stock = stock + 100 WHERE id = ?", (i,))


def lock_held_3s(path, load):
    c = connect(path, load)
    c.executescript(REBUILD)
    holder = connect(path, False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (1)")
    t = threading.Thread(target=lambda: (time.sleep(3), holder.execute("COMMIT")))
    t.start()
    try:
        c.execute("UPDATE product SET stock = 42 WHERE id = 1")
    finally:
        t.join()


failed = 0
with tempfile.TemporaryDirectory() as d:
    for case in (cursor_open, lock_held_3s):
        for wal in (False, True):
            res = {}
            for load in (False, True):
                try:
                    case(fresh(d, wal, load, case.__name__), load)
                    res[load] = "ok"
                except sqlite3.Error as e:
                    res[load] = repr(e)
            bad = res[False] == "ok" and res[True] != "ok"
            failed += bad
            print(("FAIL " if bad else "ok   ") + f"{case.__name__} wal={wal}: without the extension {res[False]}, with it {res[True]}")
sys.exit(1 if failed else 0)
