"""The gdb stub's transport and its place in the machine's run loop.

`GdbServer` listens on localhost only (the protocol has no authentication: anyone who connects can
read and write all guest memory). One gdb connects; the machine is all-stop: when anything stops,
every vCPU stays stopped until gdb resumes.

The machine drives: `Machine.run` calls `start()` before the first instruction (which waits for gdb
and serves it until it resumes), `on_exit()` with every vCPU exit (DEBUG exits and guest faults are
the stub's: it reports the stop to gdb and serves packets until gdb resumes), `poll()` once per turn
of its loop, and `finish()` when the guest is done (the exit status goes to gdb).

A reader thread owns the socket: it queues packets for the main thread and turns gdb's Ctrl-C
(the byte 0x03) into a stop request on every vCPU (the same asynchronous `emu_stop` the ROS
watchdog uses for time slices) plus a kick to a guest waiting for events, repeated every 50 ms
until the machine has stopped. Nothing runs per instruction.
"""
from __future__ import annotations

import queue
import socket
import threading

from . import packets
from .interface import StopEvent
from .protocol import Session
from .target import SIGTRAP, MachineTarget
from ..vcpu import ExitKind

_EOF = object()
_RETRY_S = 0.05


class GdbServer:
    def __init__(self, port: int, log=None):
        """Bind now, so that a port in use is reported before anything starts (raises OSError)."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind(("127.0.0.1", port))
            self.sock.listen(1)
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.log = log
        self.conn: socket.socket | None = None
        self.events: queue.Queue = queue.Queue()
        self.target: MachineTarget | None = None
        self.session: Session | None = None
        self.active = False            # a gdb is attached and debugging
        self.running = False           # the machine runs for gdb (Ctrl-C stops it)
        self.attention = False         # set by the reader thread: interrupt or disconnect
        self.disconnected = False
        self.exited = False            # the guest is done (finish)
        self._send_lock = threading.Lock()

    # -- set-up ----------------------------------------------------------------------------------
    def attach(self, machine, guest_view) -> None:
        self.machine = machine
        self.guest = guest_view
        self.target = MachineTarget(machine, guest_view)
        self.log = self.log or machine.log

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self.conn.sendall(data)
            except OSError:
                pass                   # the reader thread sees the disconnect

    def start(self) -> None:
        """Wait for gdb; the guest stays before its first instruction until gdb resumes it."""
        self.log(f"mvemu: gdb: waiting for gdb on localhost:{self.port} "
                 f"(in gdb: target remote localhost:{self.port})")
        self.conn, _ = self.sock.accept()
        self.sock.close()
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.session = Session(self.target, self._send)
        self.active = True
        threading.Thread(target=self._reader, name="mvemu-gdb-reader", daemon=True).start()
        first = self.guest.threads()
        self.target.current = first[0].tid if first else 0
        self.session.stop_reply(StopEvent(self.target.current, SIGTRAP))
        self._serve()

    def add_vcpu(self, vcpu) -> None:
        if self.active:
            self.target.arm(vcpu)

    # -- the reader thread -----------------------------------------------------------------------
    def _reader(self) -> None:
        decoder = packets.Decoder()
        self.conn.settimeout(_RETRY_S)
        while True:
            try:
                data = self.conn.recv(65536)
            except socket.timeout:
                if self.attention and self.running:
                    self._request_stop()          # the machine has not stopped yet: ask again
                continue
            except OSError:
                data = b""
            if not data:
                self.disconnected = True
                self.events.put(_EOF)
                if self.running:
                    self._request_stop()
                return
            for event in decoder.feed(data):
                if isinstance(event, packets.Interrupt):
                    if self.running:
                        self._request_stop()
                else:
                    self.events.put(event)

    def _request_stop(self) -> None:
        self.attention = True
        for v in list(self.machine.vcpus):
            v.request_debug_stop()
        self.guest.kick()

    # -- serving gdb while the machine is stopped --------------------------------------------------
    def _serve(self) -> None:
        """Answer packets until gdb resumes the machine, detaches, kills it or goes away."""
        self.running = False
        s = self.session
        while True:
            event = self.events.get()
            if event is _EOF:
                self._detach("gdb closed the connection")
                return
            s.receive(event)
            if s.finished == "detached":
                self._detach("gdb detached")
                return
            if s.finished == "killed":
                self.active = False
                return
            if s.running:
                self.running = True
                return

    def _detach(self, why: str) -> None:
        if self.target is not None and not self.target.detached:
            self.target.detach()
        self.active = False
        self.running = False
        if not self.exited:
            self.log(f"mvemu: gdb: {why}; the program runs on")
        self._close()

    def _close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.conn.close()

    def _stop(self, event: StopEvent) -> None:
        """Report a stop (all vCPUs are stopped: we run on the machine's one thread) and serve."""
        self.attention = False
        for v in self.machine.vcpus:
            v.debug_stop_requested = False
        if self.session.running:
            self.session.report_stop(event)
        else:
            self.session.stop_reply(event)
        self._serve()
        if self.active:
            self.guest.resumed()          # the time gdb held the machine is nobody's time slice

    def _deliver_signals(self, skip: int | None = None) -> None:
        """Signals gdb asked for on resuming (`signal SIGUSR1`, or passing on a fault it reported)."""
        if not self.active:
            return
        for tid, sig in self.target.run.signals.items():
            if tid != skip and sig:
                self.guest.post_signal(tid, sig)

    # -- the machine's hooks ---------------------------------------------------------------------
    def poll(self) -> None:
        if self.attention and self.active:
            if self.disconnected:
                self.attention = False
                self._detach("gdb closed the connection")
                return
            self._stop(self.target.interrupt_stop())
            self._deliver_signals()

    def on_exit(self, vcpu, exit) -> bool:
        """True when the exit was the debugger's (the caller does nothing more with it)."""
        if not self.active:
            return False
        if exit.kind is ExitKind.DEBUG:
            event = self.target.debug_exit(vcpu, exit)
            if event is not None:
                self._stop(event)
                self._deliver_signals()
            return True
        event = self.target.fault_exit(vcpu, exit)
        if event is None:
            return False
        self._stop(event)
        if not self.active:
            return False                  # detached or killed: the guest handles the fault itself
        sig = self.target.signal_to_deliver(event.thread)
        self._deliver_signals(skip=event.thread)
        if sig == event.signal:
            return False                  # gdb passes the signal on: the guest delivers it
        if sig:
            self.guest.post_signal(event.thread, sig)
        return True                       # suppressed: the thread retries the instruction

    def finish(self, status: int) -> None:
        """The guest is done: tell gdb (W or X) and wait until it goes away."""
        if not self.active:
            self._close()
            return
        self.exited = True
        self.target.disarm()
        event = self.target.exit_event()
        if self.session.running:
            self.session.report_stop(event)
        else:
            self.session.stop_reply(event)
        while self.active:
            self._serve()
            if self.running:              # gdb tried to resume a program that is gone
                self.session.report_stop(event)
        self._close()
