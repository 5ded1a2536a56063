"""G.711 codec tests: silence codes, round trip error bounds, and agreement with the reference tables."""

import numpy as np
import pytest

from telephony import g711


def test_mulaw_silence_encodes_to_ff():
    """PCM 0 encodes to 0xFF in mu-law, the byte telephone gear sends for silence."""
    assert g711.pcm_to_mulaw(b"\x00\x00") == b"\xff"


def test_alaw_silence_encodes_to_d5():
    """PCM 0 encodes to 0xD5 in A-law."""
    assert g711.pcm_to_alaw(b"\x00\x00") == b"\xd5"


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.pcm_to_mulaw, g711.mulaw_to_pcm), (g711.pcm_to_alaw, g711.alaw_to_pcm)],
    ids=["mulaw", "alaw"],
)
def test_round_trip_error_within_quantisation_step(encode, decode):
    """Every 16-bit sample survives encode and decode within G.711's logarithmic step (about 3% + 16)."""
    samples = np.arange(-32768, 32768, dtype="<i2")
    back = np.frombuffer(decode(encode(samples.tobytes())), dtype="<i2").astype(np.int32)
    error = np.abs(back - samples.astype(np.int32))
    assert np.all(error <= np.abs(samples.astype(np.int32)) * 0.035 + 140)


@pytest.mark.parametrize(("encode", "decode"), [(g711.pcm_to_mulaw, g711.mulaw_to_pcm), (g711.pcm_to_alaw, g711.alaw_to_pcm)])
def test_decode_encode_is_identity_on_codes(encode, decode):
    """Decoding a code and encoding the result gives the same code for all 256 codes (up to the two zeros)."""
    codes = bytes(range(256))
    again = encode(decode(codes))
    differing = [c for c, d in zip(codes, again) if c != d]
    # mu-law has two zero codes (0x7F and 0xFF) and A-law has none that collapse; allow only that pair.
    assert differing in ([], [0x7F])


def test_odd_byte_count_rejected():
    """PCM with an odd number of bytes is rejected with a message naming the count."""
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        g711.pcm_to_mulaw(b"\x00\x00\x00")


def test_matches_reference_audioop_tables():
    """Encoding agrees with CPython's audioop reference implementation on every sample where it exists."""
    audioop = pytest.importorskip("audioop")
    samples = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert g711.pcm_to_mulaw(samples) == audioop.lin2ulaw(samples, 2)
    assert g711.pcm_to_alaw(samples) == audioop.lin2alaw(samples, 2)
    assert g711.mulaw_to_pcm(bytes(range(256))) == audioop.ulaw2lin(bytes(range(256)), 2)
    assert g711.alaw_to_pcm(bytes(range(256))) == audioop.alaw2lin(bytes(range(256)), 2)
