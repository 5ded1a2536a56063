"""G.711 mu-law and A-law codecs (ITU-T G.711) for 16-bit little-endian PCM.

Pure functions over bytes, table driven with NumPy: one table lookup per sample, so a
20 ms frame costs microseconds. Silence (PCM 0) encodes to 0xFF in mu-law and 0xD5 in A-law.
"""

from __future__ import annotations

import numpy as np

_MULAW_BIAS = 0x84  # 132, added before the segment search (G.711 section 3)
_MULAW_CLIP = 32635


def _build_mulaw_encode_table() -> np.ndarray:
    # Works on 14-bit magnitudes as the reference encoder does: shift, clip, add the bias,
    # then find the segment (exponent) from the position of the highest set bit.
    samples = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = samples < 0
    magnitude = np.minimum(np.where(negative, -samples, samples), _MULAW_CLIP >> 2) + (_MULAW_BIAS >> 2)
    exponent = np.clip(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0, 7)
    mantissa = (magnitude >> (exponent + 1)) & 0x0F
    encoded = (exponent << 4) | mantissa
    encoded = np.where(negative, encoded ^ 0x7F, encoded ^ 0xFF)
    return encoded.astype(np.uint8)


def _build_mulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + _MULAW_BIAS) << exponent) - _MULAW_BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _build_alaw_encode_table() -> np.ndarray:
    samples = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(samples >= 0, 0x80, 0x00)
    magnitude = np.minimum(np.where(samples < 0, -samples - 1, samples), 32767) >> 3
    exponent = np.where(magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4)
    exponent = np.clip(exponent, 0, 7)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    encoded = (sign | (exponent << 4) | mantissa) ^ 0x55
    return encoded.astype(np.uint8)


def _build_alaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


_MULAW_ENCODE = _build_mulaw_encode_table()
_MULAW_DECODE = _build_mulaw_decode_table()
_ALAW_ENCODE = _build_alaw_encode_table()
_ALAW_DECODE = _build_alaw_decode_table()


def _pcm_indices(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM must have an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768


def pcm_to_mulaw(pcm: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to mu-law, one byte per sample."""
    return _MULAW_ENCODE[_pcm_indices(pcm)].tobytes()


def mulaw_to_pcm(payload: bytes) -> bytes:
    """Decode mu-law bytes to 16-bit little-endian PCM."""
    return _MULAW_DECODE[np.frombuffer(payload, dtype=np.uint8)].astype("<i2").tobytes()


def pcm_to_alaw(pcm: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to A-law, one byte per sample."""
    return _ALAW_ENCODE[_pcm_indices(pcm)].tobytes()


def alaw_to_pcm(payload: bytes) -> bytes:
    """Decode A-law bytes to 16-bit little-endian PCM."""
    return _ALAW_DECODE[np.frombuffer(payload, dtype=np.uint8)].astype("<i2").tobytes()
