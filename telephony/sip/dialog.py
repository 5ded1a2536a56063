"""SIP dialog state (RFC 3261 section 12) and construction of in-dialog requests."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from telephony.sip.events import Address
from telephony.sip.message import Headers, NameAddr, SipRequest, SipResponse, SipUri, parse_name_addr

# RFC 3261 section 8.1.1.7: branches of RFC 3261 requests start with this magic cookie.
BRANCH_COOKIE = "z9hG4bK"


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass
class Dialog:
    """One side of a dialog. `local_party`/`remote_party` are From/To of requests we send, without tags."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_party: NameAddr
    remote_party: NameAddr
    remote_target: SipUri
    transport: str
    # Address the dialog-creating message came from or went to, used when the route set and
    # the remote target give no IP address (voicebot does no DNS lookups).
    fallback_address: Address
    route_set: list[NameAddr] = field(default_factory=list)
    local_cseq: int = 1
    remote_cseq: int | None = None

    @classmethod
    def as_uas(cls, request: SipRequest, *, local_tag: str, source: Address, transport: str) -> Dialog:
        """Create the dialog of an INVITE we answer (section 12.1.1)."""
        contact = request.contact
        from_ = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=from_.tag or "",
            local_party=NameAddr(uri=request.to.uri, display_name=request.to.display_name),
            remote_party=NameAddr(uri=from_.uri, display_name=from_.display_name),
            remote_target=contact.uri if contact else from_.uri,
            transport=transport,
            fallback_address=source,
            route_set=[parse_name_addr(value, "Record-Route") for value in request.headers.get_all("Record-Route")],
            local_cseq=secrets.randbelow(2**16) + 1,
            remote_cseq=request.cseq.number,
        )

    @classmethod
    def as_uac(cls, request: SipRequest, response: SipResponse, *, destination: Address, transport: str) -> Dialog:
        """Create the dialog of an INVITE we sent from its 2xx response (section 12.1.2)."""
        contact = response.contact
        to = response.to
        route_values = response.headers.get_all("Record-Route")
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=to.tag or "",
            local_party=NameAddr(uri=request.from_.uri, display_name=request.from_.display_name),
            remote_party=NameAddr(uri=to.uri, display_name=to.display_name),
            remote_target=contact.uri if contact else request.uri,
            transport=transport,
            fallback_address=destination,
            route_set=[parse_name_addr(value, "Record-Route") for value in reversed(route_values)],
            local_cseq=request.cseq.number,
        )

    @property
    def next_hop(self) -> Address:
        """Address for in-dialog requests: the first route, else the remote target, else the fallback."""
        uri = self.route_set[0].uri if self.route_set else self.remote_target
        if uri.scheme != "tel" and _is_ip_literal(uri.host):
            return uri.address
        return self.fallback_address

    def create_request(
        self,
        method: str,
        *,
        via_host: str,
        via_port: int,
        contact: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        cseq: int | None = None,
    ) -> SipRequest:
        """Build an in-dialog request (section 12.2.1.1); ACK and CANCEL pass the INVITE's `cseq`."""
        if cseq is None:
            self.local_cseq += 1
            cseq = self.local_cseq
        request_uri = self.remote_target
        routes = list(self.route_set)
        if routes and "lr" not in routes[0].uri.params:
            # Strict routing (RFC 2543 proxies): the first route becomes the Request-URI and
            # the remote target goes to the end of the Route header.
            request_uri = routes[0].uri
            routes = routes[1:] + [NameAddr(uri=self.remote_target)]
        request = SipRequest(method=method, uri=request_uri, headers=Headers())
        request.headers.add("Via", f"SIP/2.0/{self.transport} {via_host}:{via_port};branch={new_branch()};rport")
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", str(self.local_party.with_tag(self.local_tag)))
        to = self.remote_party.with_tag(self.remote_tag) if self.remote_tag else self.remote_party
        request.headers.add("To", str(to))
        request.headers.add("Call-ID", self.call_id)
        request.headers.add("CSeq", f"{cseq} {method}")
        for route in routes:
            request.headers.add("Route", str(route))
        if method not in ("ACK", "CANCEL", "BYE"):
            request.headers.add("Contact", contact)
        for name, value in headers or []:
            request.headers.add(name, value)
        request.body = body
        return request

    def replaces_value(self) -> str:
        """Value of a Replaces header (RFC 3891) naming this dialog, for attended transfer."""
        return f"{self.call_id};to-tag={self.remote_tag};from-tag={self.local_tag}"
