#!/usr/bin/python3
"""`deltasync agent`'s progress line, through a real pseudo-terminal (ctest e2e_agent_progress_tty).

A real hub (`deltasync serve` on 127.0.0.1) behind a relay that holds every request from a
client 10 ms before passing it on, and two SQLite files of ROWS rows each with a stored
schedule of batches of BATCH rows: each push makes ROWS / BATCH requests, so it lasts at least
ROWS / BATCH * 10 ms = 2 s by construction, whatever the machine's speed (the first progress
report comes after 1 s, then one every 500 ms). Two agents run at once, one per file:

- one with stderr on a pseudo-terminal (os.openpty, 160 columns): the output must show the
  progress line redrawn in place (carriage returns) with rows done increasing against the
  rows expected, no escape sequence, the line cleared at the end, then the push's log line
  with its duration and rate;
- one with stderr on a pipe: no carriage return, no progress line, the same log line.

Usage: BUILD=build /usr/bin/python3 tests/e2e/agent_progress_tty.py
"""
import fcntl, json, os, re, select, signal, socket, sqlite3, struct, subprocess, sys, tempfile, termios, threading, time

BUILD = os.environ.get("BUILD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build"))
CLI = os.path.join(BUILD, "server/deltasync")
SO = os.path.join(BUILD, "sqlite_ext/deltasync.so")
ROWS, BATCH, DELAY_S = 1000, 5, 0.010
# One call's part of the progress line (several calls share it, joined by " | "; the bar
# goes when the line is narrow).
FRAME = re.compile(r"^(\S+) push (\S+) (?:\[([#-]{5,20})\] )?(\d+)% (\d+)/(\d+) rows, (\d+) rows/s(, ETA \S+|, done|, failed)?$")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (debug|info|warn|error) ")
LOGGED = re.compile(r" push: pushed=\d+ rows=(\d+) batches=(\d+) in (\d+) ms, (\d+) rows/s$", re.M)

failures = []


def check(ok, what):
    print(("ok     " if ok else "FAILED ") + what)
    if not ok:
        failures.append(what)


class SlowRelay:
    """127.0.0.1:port -> the hub; each chunk a client sends waits DELAY_S before it is passed on."""

    def __init__(self, hub_port):
        self.hub_port = hub_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.sock.accept()
            hub = socket.create_connection(("127.0.0.1", self.hub_port))
            for s in (client, hub):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.pipe, args=(client, hub, DELAY_S), daemon=True).start()
            threading.Thread(target=self.pipe, args=(hub, client, 0), daemon=True).start()

    @staticmethod
    def pipe(src, dst, delay):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def start_hub(tmp):
    log = open(os.path.join(tmp, "hub.log"), "wb")
    hub = subprocess.Popen([CLI, "serve", "--db", ":memory:", "--listen", "127.0.0.1:0", "--auto-create-nodes"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(log.name).read())
        if m:
            return hub, int(m.group(1))
        time.sleep(0.05)
    raise SystemExit("the hub did not start:\n" + open(log.name).read())


def make_site(tmp, name, url):
    path = os.path.join(tmp, name + ".db")
    c = sqlite3.connect(path, isolation_level=None)
    c.enable_load_extension(True)
    c.load_extension(SO)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL)")
    c.execute("SELECT deltasync_enable('t')")
    c.execute("BEGIN")
    c.executemany("INSERT INTO t VALUES (?, ?)", [(i, "row %d" % i) for i in range(1, ROWS + 1)])
    c.execute("COMMIT")
    c.execute("SELECT deltasync_schedule(?, ?)", (url, json.dumps({"batch_rows": BATCH, "interval_ms": 60000})))
    c.close()
    return path


def agent_env():
    env = dict(os.environ)
    env["TERM"] = "xterm"
    env.pop("COLUMNS", None)
    return env


def run_agent(path, on_tty, extra, out):
    """The agent on `path` with stdout and stderr on a pseudo-terminal (160 columns) or a pipe,
    stopped by SIGTERM once it logged its push; its exit status and output (a terminal's
    CRLF as LF: the terminal turns "\n" into "\r\n", the agent writes "\n") in out."""
    if on_tty:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))
    else:
        master, slave = os.pipe()
    agent = subprocess.Popen([CLI, "agent", "--db", path, "--extension", SO] + extra, stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave, env=agent_env())
    os.close(slave)
    data = b""
    deadline = time.time() + 60
    stopping = False
    while True:
        if not stopping and (re.search(rb"push: pushed=\d+ .*\n", data) or time.time() > deadline):
            agent.send_signal(signal.SIGTERM)
            stopping = True
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            data += chunk
    os.close(master)
    out["status"] = agent.wait(timeout=30)
    text = data.decode(errors="replace")
    out["text"] = text.replace("\r\n", "\n") if on_tty else text


def frames_of(text):
    """The pieces of output between carriage returns and newlines (each with what ended it),
    and the push's part of those that are progress lines (piece index, match)."""
    pieces = [(m.group(1), m.group(2)) for m in re.finditer(r"([^\r\n]*)([\r\n]|$)", text)]
    frames = []
    for i, (p, _) in enumerate(pieces):
        for part in p.rstrip(" ").split(" | "):
            if FRAME.match(part):
                frames.append((i, FRAME.match(part)))
    return pieces, frames


def screen_lines(text):
    """What a terminal shows of `text`: each line as last drawn (a carriage return goes back
    to the first column and what follows overwrites), the unfinished last line included."""
    lines, buf, col = [], [], 0
    for ch in text:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append("".join(buf))
            buf, col = [], 0
        else:
            if col < len(buf):
                buf[col] = ch
            else:
                buf.append(ch)
            col += 1
    lines.append("".join(buf))
    return lines


def main():
    for f in (CLI, SO):
        if not os.path.exists(f):
            raise SystemExit("missing " + f + " (set BUILD)")
    with tempfile.TemporaryDirectory(prefix="agent-progress-") as tmp:
        hub, hub_port = start_hub(tmp)
        try:
            relay = SlowRelay(hub_port)
            base = "http://127.0.0.1:%d/nodes/" % relay.port
            config = os.path.join(tmp, "agent.json")
            with open(config, "w") as f:
                json.dump({"progress": "always"}, f)
            runs = {"tty": (True, []), "pipe": (False, []), "never": (True, ["--progress", "never"]),
                    "always": (False, ["--config", config])}
            outs = {name: {} for name in runs}
            threads = []
            for k, (name, (on_tty, extra)) in enumerate(runs.items()):
                path = make_site(tmp, name, base + "shop%d" % (k + 1))
                threads.append(threading.Thread(target=run_agent, args=(path, on_tty, extra, outs[name])))
            t0 = time.time()
            for t in threads:
                t.start()
            for t in threads:
                t.join(90)
            print("the agents ran in %.1f s" % (time.time() - t0))
        finally:
            hub.terminate()
            hub.wait(timeout=30)
    tty_out, pipe_out = outs["tty"], outs["pipe"]

    # On the terminal.
    text = tty_out.get("text", "")
    check(tty_out.get("status") == 0, "the agent on a terminal exits 0 after SIGTERM")
    check("\x1b" not in text, "no escape sequence on the terminal")
    pieces, frames = frames_of(text)
    check(len(frames) >= 2, "the progress line was drawn at least twice (%d times)" % len(frames))
    dones = [int(m.group(5)) for _, m in frames]
    check(all(int(m.group(6)) == ROWS for _, m in frames), "every frame expects %d rows" % ROWS)
    check(dones == sorted(dones) and len(set(dones)) >= 2 and dones[0] < dones[-1] <= ROWS,
          "rows done increase from frame to frame: %s" % dones)
    check(all(m.group(1) == "tty.db" and m.group(2) == "shop1" for _, m in frames), "frames name the file and node")
    check(all(m.group(3) and len(m.group(3)) == 20 for _, m in frames), "on 160 columns the bar has its 20 cells")
    check(all(int(m.group(4)) == int(m.group(5)) * 100 // ROWS for _, m in frames), "percentages match the rows")
    check(all(int(m.group(7)) > 0 for _, m in frames), "frames show a rate")
    check(any(m.group(8) and m.group(8).startswith(", ETA ") for _, m in frames), "a frame shows an ETA")
    # Redrawn in place: a frame follows a carriage return, never a newline of its own.
    check(all(i > 0 and pieces[i - 1][1] == "\r" and pieces[i][1] != "\n" for i, _ in frames),
          "frames are redrawn in place (after a carriage return, no newline)")
    logged = [i for i, (p, end) in enumerate(pieces) if LOGGED.search(p) and end == "\n"]
    check(len(logged) == 1, "one log line for the push")
    if frames and logged:
        last = frames[-1][0]
        check(all(i < logged[0] for i, _ in frames), "no frame of the push after it ended")
        m = LOGGED.search(pieces[logged[0]][0])
        rows, batches, ms, rate = (int(g) for g in m.groups())
        check(rows == ROWS and batches == ROWS // BATCH, "the log line has the push's rows and batches")
        check(ms >= ROWS // BATCH * DELAY_S * 1000, "the push lasted at least its relay delays (%d ms)" % ms)
        check(abs(rate - rows * 1000 / ms) <= 1, "the log line's rate is rows over its duration (%d rows/s)" % rate)
    check("deltasync agent stopped\n" in text and text.endswith("\n"), "the agent's output ends with its last log line")
    # What the terminal shows in the end: log lines only, none with a rest of the progress line
    # (it is cleared before each log line and at the end).
    screen = screen_lines(text)
    check(screen[-1].strip() == "" and all(LOG_LINE.match(l) and "rows, " not in l for l in screen[:-1]),
          "the terminal shows log lines only, whole, once the agent stopped")
    check(len([l for l in screen if LOGGED.search(l.rstrip(" "))]) == 1, "the push's log line shows on the terminal")

    # The pull side applies its pages beside the long push (both write the file): it waits for
    # the push's short transactions instead of failing "database is locked" (SQLITE_BUSY).
    for name, o in outs.items():
        check("database is locked" not in o.get("text", ""), "%s: no call failed with SQLITE_BUSY" % name)

    # On a pipe.
    text = pipe_out.get("text", "")
    check(pipe_out.get("status") == 0, "the agent on a pipe exits 0 after SIGTERM")
    check("\r" not in text and "\x1b" not in text, "no carriage return nor escape sequence on a pipe")
    check("[#" not in text and "rows, " not in text.replace("rows=", ""), "no progress line on a pipe")
    lines = text.splitlines()
    m = [LOGGED.search(l) for l in lines if LOGGED.search(l)]
    check(len(m) == 1 and int(m[0].group(1)) == ROWS and int(m[0].group(3)) >= ROWS // BATCH * DELAY_S * 1000,
          "one log line with the push's rows, duration and rate")
    check(all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (debug|info|warn|error) ", l) for l in lines),
          "every line on the pipe is a log line")

    # --progress never on a terminal; "progress": "always" in a config file, on a pipe.
    never, always = outs["never"], outs["always"]
    check(never.get("status") == 0 and always.get("status") == 0, "the agents with --progress given exit 0")
    check("\r" not in never.get("text", "") and not frames_of(never.get("text", ""))[1],
          "--progress never: no progress line on a terminal")
    check(LOGGED.search(never.get("text", "")) is not None, "--progress never: the push is logged")
    pieces, frames = frames_of(always.get("text", ""))
    check(len(frames) >= 2 and all(pieces[i - 1][1] == "\r" for i, _ in frames),
          "\"progress\": \"always\" in the config: the progress line on a pipe too")
    check(all(len(m.group(0)) <= 79 for _, m in frames), "on a pipe (80 columns: no COLUMNS) no frame is wider than 79")

    if failures or os.environ.get("SHOW"):
        for name in ("never", "always"):
            print("--- %s ---\n%r" % (name, outs[name].get("text")))
        print("\n--- terminal output ---\n" + repr(tty_out.get("text")) + "\n--- pipe output ---\n" + pipe_out.get("text", ""))
        sys.exit(1)


if __name__ == "__main__":
    main()
