"""Benchmark of the RTP send loop's pacing: deviation of send times from the 20 ms grid.

Runs `--sessions` sessions on 127.0.0.1 for `--seconds`, each sending queued audio to a UDP
sink, and prints the mean absolute and max lateness per session and overall, in ms.
`python -m telephony.rtp.sendbench --sessions 20 --seconds 10`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from telephony.rtp.session import RtpSession


class _Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1


async def run(sessions: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0))
    sink_address = transport.get_extra_info("sockname")[:2]
    active = [RtpSession(send_silence_when_idle=True) for _ in range(sessions)]
    try:
        for session in active:
            await session.start()
            session.set_remote(*sink_address)
        await asyncio.sleep(seconds)
    finally:
        for session in active:
            await session.close()
        transport.close()
    means = [session.send_timing.mean_abs_ms for session in active]
    maxima = [session.send_timing.max_ms for session in active]
    packets = sum(session.send_timing.packets for session in active)
    restarts = sum(session.send_timing.grid_restarts for session in active)
    print(f"sessions={sessions} seconds={seconds} packets={packets} received={sink.count} grid_restarts={restarts}")
    print(f"mean |lateness| ms: median {statistics.median(means):.3f}, worst session {max(means):.3f}")
    print(f"max lateness ms: median {statistics.median(maxima):.3f}, worst session {max(maxima):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure RTP send pacing on 127.0.0.1.")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (calls)")
    parser.add_argument("--seconds", type=float, default=10.0, help="run time in seconds")
    args = parser.parse_args()
    asyncio.run(run(args.sessions, args.seconds))


if __name__ == "__main__":
    main()
