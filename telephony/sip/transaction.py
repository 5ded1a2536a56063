"""RFC 3261 section 17 transactions as pure state machines driven by an explicit clock.

Each transaction keeps its running timers in `timers` (name to deadline, in seconds on the
caller's clock). The user agent core calls `on_timer(name, now)` once a deadline passes.
Retransmission timers (A, E, G) run only over UDP; over TCP the wait timers that absorb
retransmissions (D, I, J, K) are zero, as section 17 specifies for reliable transports.
Responses to INVITE follow RFC 6026: a 2xx moves the server transaction to Accepted and the
client transaction passes every 2xx to the core, which retransmits or acknowledges it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from telephony.sip.events import Action, Address, SendMessage
from telephony.sip.message import Headers, SipRequest, SipResponse


@dataclass(frozen=True)
class TimerConfig:
    """RFC 3261 timer values in seconds (section 17.1.1.1 and table 4)."""

    t1_s: float = 0.5
    t2_s: float = 4.0
    t4_s: float = 5.0
    # Timer D: how long a client INVITE transaction absorbs retransmitted final responses on UDP.
    timer_d_s: float = 32.0

    @property
    def timeout_s(self) -> float:
        """Timers B, F, H, J, L and M: 64 * T1."""
        return 64 * self.t1_s


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class _Transaction:
    def __init__(self, *, request: SipRequest, address: Address, transport: str, timers: TimerConfig) -> None:
        self.request = request
        self.address = address
        self.transport = transport
        self.config = timers
        self.reliable = transport.upper() != "UDP"
        self.timers: dict[str, float] = {}
        self.state = State.TRYING
        self.timed_out = False

    def _send(self, data: bytes) -> SendMessage:
        return SendMessage(data=data, address=self.address, transport=self.transport)

    def _wait(self, name: str, now: float, udp_delay_s: float) -> None:
        """Start a wait timer that is zero on reliable transports."""
        self.timers[name] = now + (0.0 if self.reliable else udp_delay_s)

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED


class ServerInviteTransaction(_Transaction):
    """INVITE server transaction (RFC 3261 section 17.2.1, RFC 6026 section 7.1)."""

    def __init__(self, *, request: SipRequest, address: Address, transport: str, timers: TimerConfig) -> None:
        super().__init__(request=request, address=address, transport=transport, timers=timers)
        self.state = State.PROCEEDING
        self.last_response: SipResponse | None = None
        self._retransmit_interval_s = timers.t1_s

    @property
    def final_sent(self) -> bool:
        return self.state is not State.PROCEEDING

    def respond(self, response: SipResponse, now: float) -> list[Action]:
        if self.state is not State.PROCEEDING:
            return []
        self.last_response = response
        actions: list[Action] = [self._send(response.to_bytes())]
        if response.status >= 300:
            self.state = State.COMPLETED
            if not self.reliable:
                self.timers["G"] = now + self._retransmit_interval_s
            self.timers["H"] = now + self.config.timeout_s
        elif response.status >= 200:
            # Timer L keeps the transaction to absorb retransmitted INVITEs while the core
            # retransmits the 2xx itself.
            self.state = State.ACCEPTED
            self.timers["L"] = now + self.config.timeout_s
        return actions

    def on_request(self, request: SipRequest, now: float) -> list[Action]:
        """Handle a retransmitted INVITE or the ACK of a non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self.timers.pop("G", None)
                self.timers.pop("H", None)
                self._wait("I", now, self.config.t4_s)
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED) and self.last_response is not None:
            return [self._send(self.last_response.to_bytes())]
        return []

    def on_timer(self, name: str, now: float) -> list[Action]:
        self.timers.pop(name, None)
        if name == "G" and self.state is State.COMPLETED and self.last_response is not None:
            self._retransmit_interval_s = min(2 * self._retransmit_interval_s, self.config.t2_s)
            self.timers["G"] = now + self._retransmit_interval_s
            return [self._send(self.last_response.to_bytes())]
        if name == "H":
            # No ACK for the final response: the peer is gone (section 17.2.1).
            self.timed_out = True
        self.state = State.TERMINATED
        self.timers.clear()
        return []


class ServerNonInviteTransaction(_Transaction):
    """Non-INVITE server transaction (RFC 3261 section 17.2.2)."""

    def __init__(self, *, request: SipRequest, address: Address, transport: str, timers: TimerConfig) -> None:
        super().__init__(request=request, address=address, transport=transport, timers=timers)
        self.last_response: SipResponse | None = None

    def respond(self, response: SipResponse, now: float) -> list[Action]:
        if self.state in (State.COMPLETED, State.TERMINATED):
            return []
        self.last_response = response
        if response.status >= 200:
            self.state = State.COMPLETED
            self._wait("J", now, self.config.timeout_s)
        else:
            self.state = State.PROCEEDING
        return [self._send(response.to_bytes())]

    def on_request(self, request: SipRequest, now: float) -> list[Action]:
        if self.last_response is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            return [self._send(self.last_response.to_bytes())]
        return []

    def on_timer(self, name: str, now: float) -> list[Action]:
        self.timers.clear()
        self.state = State.TERMINATED
        return []


def build_non_2xx_ack(request: SipRequest, response: SipResponse) -> SipRequest:
    """Build the ACK for a 3xx-6xx response to `request` (RFC 3261 section 17.1.1.3)."""
    ack = SipRequest(method="ACK", uri=request.uri, headers=Headers())
    ack.headers.add("Via", request.headers.get_all("Via")[0])
    ack.headers.add("Max-Forwards", "70")
    ack.headers.add("From", request.headers.get("From") or "")
    ack.headers.add("To", response.headers.get("To") or "")
    ack.headers.add("Call-ID", request.call_id)
    ack.headers.add("CSeq", f"{request.cseq.number} ACK")
    for route in request.headers.get_all("Route"):
        ack.headers.add("Route", route)
    return ack


class ClientInviteTransaction(_Transaction):
    """INVITE client transaction (RFC 3261 section 17.1.1, RFC 6026 section 7.2)."""

    def __init__(
        self, *, request: SipRequest, address: Address, transport: str, timers: TimerConfig, now: float
    ) -> None:
        super().__init__(request=request, address=address, transport=transport, timers=timers)
        self.state = State.CALLING
        self._retransmit_interval_s = timers.t1_s
        self._ack: bytes | None = None
        if not self.reliable:
            self.timers["A"] = now + timers.t1_s
        self.timers["B"] = now + timers.timeout_s

    def start(self) -> list[Action]:
        return [self._send(self.request.to_bytes())]

    def on_response(self, response: SipResponse, now: float) -> tuple[list[Action], bool]:
        """Return the messages to send and whether the core should see this response."""
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            self.timers.pop("A", None)
            self.timers.pop("B", None)
            if status < 200:
                self.state = State.PROCEEDING
                return [], True
            if status < 300:
                self.state = State.ACCEPTED
                self.timers["M"] = now + self.config.timeout_s
                return [], True
            self.state = State.COMPLETED
            self._ack = build_non_2xx_ack(self.request, response).to_bytes()
            self._wait("D", now, self.config.timer_d_s)
            return [self._send(self._ack)], True
        if self.state is State.ACCEPTED and 200 <= status < 300:
            return [], True
        if self.state is State.COMPLETED and status >= 300 and self._ack is not None:
            return [self._send(self._ack)], False
        return [], False

    def on_timer(self, name: str, now: float) -> list[Action]:
        self.timers.pop(name, None)
        if name == "A" and self.state is State.CALLING:
            self._retransmit_interval_s *= 2
            self.timers["A"] = now + self._retransmit_interval_s
            return [self._send(self.request.to_bytes())]
        if name == "B":
            self.timed_out = True
        self.state = State.TERMINATED
        self.timers.clear()
        return []


class ClientNonInviteTransaction(_Transaction):
    """Non-INVITE client transaction (RFC 3261 section 17.1.2)."""

    def __init__(
        self, *, request: SipRequest, address: Address, transport: str, timers: TimerConfig, now: float
    ) -> None:
        super().__init__(request=request, address=address, transport=transport, timers=timers)
        self._retransmit_interval_s = timers.t1_s
        if not self.reliable:
            self.timers["E"] = now + timers.t1_s
        self.timers["F"] = now + timers.timeout_s

    def start(self) -> list[Action]:
        return [self._send(self.request.to_bytes())]

    def on_response(self, response: SipResponse, now: float) -> tuple[list[Action], bool]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return [], False
        if response.status < 200:
            self.state = State.PROCEEDING
            return [], True
        self.state = State.COMPLETED
        self.timers.pop("E", None)
        self.timers.pop("F", None)
        self._wait("K", now, self.config.t4_s)
        return [], True

    def on_timer(self, name: str, now: float) -> list[Action]:
        self.timers.pop(name, None)
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            if self.state is State.PROCEEDING:
                self._retransmit_interval_s = self.config.t2_s
            else:
                self._retransmit_interval_s = min(2 * self._retransmit_interval_s, self.config.t2_s)
            self.timers["E"] = now + self._retransmit_interval_s
            return [self._send(self.request.to_bytes())]
        if name == "F":
            self.timed_out = True
        self.state = State.TERMINATED
        self.timers.clear()
        return []


ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction
ClientTransaction = ClientInviteTransaction | ClientNonInviteTransaction
