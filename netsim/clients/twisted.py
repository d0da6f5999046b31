"""The Twisted client: a reactor calls the connections' protocols; Deferreds carry the ends.

Twisted turns the select() loop inside out. The reactor owns the loop, and code never
waits: a connection is a ``Protocol`` whose methods the reactor calls when something
happens to it (``connectionMade``, ``dataReceived`` with whatever bytes arrived,
``connectionLost``), made by a ``ClientFactory``, which also hears when connecting
failed. ``get_poem()`` starts a connection with ``reactor.connectTCP`` and returns at
once with a ``Deferred``: a promise that fires when the server has closed, or fails
with the reason the connection ended otherwise. A ``DeferredList`` of every
connection's Deferred stops the reactor when the last one has fired. While one
connection waits for its next line, the reactor runs the others: the servers' times
*overlap*, and three servers that take 4 s each take 4 s together.

Twisted programs usually share one global reactor (``from twisted.internet import
reactor``), which runs once per process and cannot be started again. This client makes
a reactor of its own for each run and hands it to whatever needs it, as Twisted advises
new code to do: importing this module installs nothing, and a run never meets a reactor
that the process forking it had installed (a Twisted test suite calling netsim), whose
epoll descriptor parent and child would share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from twisted.internet import defer, error, task
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure

from netsim.clients._base import ClientModel, ConnectionRecord, Recorder, Target

if TYPE_CHECKING:
    from twisted.internet.interfaces import IConnector, IDelayedCall
    from twisted.internet.posixbase import PosixReactorBase


def run(targets: Sequence[Target], recorder: Recorder) -> None:
    if not targets:
        return  # nothing to wait for: no reactor to build and start
    # Twisted's default on Linux, and the one that scales to ten thousand sockets. (Its
    # constructor has no annotations; it takes no arguments.)
    reactor = EPollReactor()  # type: ignore[no-untyped-call]

    def fetch(target: Target) -> defer.Deferred[None]:
        conn = recorder.open(target)
        poem = get_poem(reactor, target, conn)
        poem.addCallbacks(lambda _: conn.eof(), lambda reason: conn.failed(_as_builtin(reason)))
        return poem

    # Each connection on its turn of a ramp (at once without one). The callbacks above
    # take every network error, so a failure left in the list is a bug of this module.
    fetches = [task.deferLater(reactor, target.start_at, fetch, target) for target in targets]
    outcomes: list[tuple[bool, object]] = []
    everything = defer.DeferredList(fetches, consumeErrors=True)
    everything.addCallback(outcomes.extend)
    everything.addBoth(lambda _: reactor.stop())
    # Twisted's handlers would turn Ctrl-C or SIGTERM into a quiet reactor.stop(), and
    # the run into one that looks finished; netsim's runner stops its client processes.
    reactor.run(installSignalHandlers=False)
    for succeeded, result in outcomes:
        if not succeeded and isinstance(result, Failure):
            result.raiseException()


def get_poem(reactor: PosixReactorBase, target: Target, conn: ConnectionRecord) -> defer.Deferred[None]:
    """Connect to ``target``; the Deferred fires when the server has sent its whole poem."""
    finished: defer.Deferred[None] = defer.Deferred()
    factory = PoemClientFactory(reactor, conn, target.timeout, finished)
    # connectTCP's own timer gives up on a handshake that takes longer than the timeout.
    # None, for no timeout, sets no timer (BaseConnector.connect), though the stubs say float.
    reactor.connectTCP(target.host, target.port, factory,
                       timeout=target.timeout)  # type: ignore[arg-type]
    return finished


class PoemProtocol(Protocol):
    """One connection: each piece of the poem is handed on as it arrives."""

    factory: PoemClientFactory

    def __init__(self) -> None:
        # Goes off when the server has been silent for the timeout; every byte resets it.
        self._watchdog: IDelayedCall | None = None
        self._gave_up: TimeoutError | None = None

    def connectionMade(self) -> None:
        self.factory.conn.connected(ITCPTransport(self.transport).getHost().port)
        self._wait_for_more()

    def dataReceived(self, data: bytes) -> None:
        self.factory.conn.received(data)
        self._wait_for_more()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        if self._gave_up is not None:
            self.factory.poem_failed(self._gave_up)
        elif isinstance(reason.value, error.ConnectionDone):  # the server closed cleanly
            self.factory.poem_finished()
        else:
            self.factory.poem_failed(reason)

    def _wait_for_more(self) -> None:
        """Give the server the timeout, from now, to send its next byte."""
        timeout = self.factory.timeout
        if timeout is None:
            return
        if self._watchdog is None:
            self._watchdog = self.factory.reactor.callLater(timeout, self._give_up)
        else:
            self._watchdog.reset(timeout)

    def _give_up(self) -> None:
        self._gave_up = TimeoutError("no data within the timeout")
        # Drop the connection at once, without waiting for the server to agree;
        # connectionLost follows.
        ITCPTransport(self.transport).abortConnection()


class PoemClientFactory(ClientFactory[PoemProtocol]):
    """Makes the connection's protocol, and fires its Deferred once, however it ends."""

    protocol = PoemProtocol
    # A factory logs every connection's start and stop by default; nobody reads that log.
    noisy = False

    def __init__(self, reactor: PosixReactorBase, conn: ConnectionRecord, timeout: float | None,
                 finished: defer.Deferred[None]) -> None:
        self.reactor = reactor
        self.conn = conn
        self.timeout = timeout
        self._finished: defer.Deferred[None] | None = finished

    def poem_finished(self) -> None:
        if self._finished is not None:
            finished, self._finished = self._finished, None  # a Deferred fires only once
            finished.callback(None)

    def poem_failed(self, reason: Failure | BaseException) -> None:
        if self._finished is not None:
            finished, self._finished = self._finished, None
            finished.errback(reason)

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.poem_failed(reason)


def _as_builtin(reason: Failure) -> BaseException:
    """The standard exception that says what Twisted's failure says, as results count them.

    Twisted has exceptions of its own, and its TCP transport reports a reset (as any
    other error of a read) as a connection lost "in a non-clean fashion".
    """
    failure = reason.value
    if isinstance(failure, error.ConnectionRefusedError):
        return ConnectionRefusedError(str(failure))
    if isinstance(failure, error.TimeoutError):  # connectTCP's timer
        return TimeoutError(f"could not connect within the timeout: {failure}")
    if isinstance(failure, error.ConnectionLost):
        return ConnectionResetError(str(failure))
    return failure if failure is not None else ConnectionError(reason.getErrorMessage())


MODEL = ClientModel(
    name="twisted",
    summary="Twisted protocols on the reactor, a Deferred per connection; times overlap",
    concurrent=True,
    run=run,
)
