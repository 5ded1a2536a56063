// Call audio of the rep console: plays the caller's PCM and sends the microphone as PCM.
// The bridge carries 16-bit little-endian mono PCM at 8 or 16 kHz in 20 ms frames; the
// AudioContext runs at the device rate (often 48 kHz), so both directions are resampled
// by linear interpolation. window.voicebotStats exposes counters for tests and support.
"use strict";

window.voicebotStats = { receivedFrames: 0, receivedRms: 0, sentFrames: 0, sentRms: 0, audioState: "idle" };

function pcmRms(int16) {
  let sum = 0;
  for (let i = 0; i < int16.length; i++) {
    const value = int16[i] / 32768;
    sum += value * value;
  }
  return int16.length ? Math.sqrt(sum / int16.length) : 0;
}

// Resample Float32 samples by linear interpolation. `state` carries the read position and
// the last input sample across calls, so consecutive chunks join without a click.
// NOTE: there is no low-pass filter before downsampling, so microphone energy above 4 kHz
// aliases into the 8 kHz bridge audio.
function resample(input, fromRate, toRate, state) {
  const step = fromRate / toRate;
  const length = input.length;
  const output = [];
  // Positions count on [state.last, ...input], so position 0 is the previous chunk's last sample.
  let position = state.position;
  while (position < length) {
    const index = Math.floor(position);
    const fraction = position - index;
    const before = index === 0 ? state.last : input[index - 1];
    output.push(before + (input[index] - before) * fraction);
    position += step;
  }
  state.position = position - length;
  state.last = length ? input[length - 1] : state.last;
  return Float32Array.from(output);
}

class CallAudio {
  constructor(socket, sampleRate) {
    this.socket = socket;
    this.bridgeRate = sampleRate;
    this.frameSamples = sampleRate / 50;
    this.context = null;
    this.player = null;
    this.stream = null;
    this.playState = { position: 0, last: 0 };
    this.captureState = { position: 0, last: 0 };
    this.pending = [];
    this.pendingLength = 0;
  }

  // Create the AudioContext; call this inside the click handler of "accept" so autoplay
  // rules let it start.
  prepare() {
    this.context = new AudioContext();
    return this.context.resume();
  }

  async start() {
    if (!this.context) {
      await this.prepare();
    }
    const context = this.context;
    await context.audioWorklet.addModule("/console/static/audio-worklet.js");
    this.player = new AudioWorkletNode(context, "pcm-player", { outputChannelCount: [1] });
    this.player.connect(context.destination);
    window.voicebotStats.audioState = "playing";
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
      });
    } catch (error) {
      window.voicebotStats.audioState = "no-microphone";
      throw error;
    }
    const source = context.createMediaStreamSource(this.stream);
    const capture = new AudioWorkletNode(context, "pcm-capture");
    capture.port.onmessage = (event) => this.onMicrophone(event.data);
    // The capture node must reach the destination to be processed; a zero gain keeps the
    // rep's own voice out of the speaker.
    const mute = context.createGain();
    mute.gain.value = 0;
    source.connect(capture).connect(mute).connect(context.destination);
    this.captureNodes = [source, capture, mute];
    window.voicebotStats.audioState = "connected";
  }

  onCallerAudio(arrayBuffer) {
    const int16 = new Int16Array(arrayBuffer);
    const stats = window.voicebotStats;
    stats.receivedFrames += 1;
    stats.receivedRms = Math.max(stats.receivedRms * 0.98, pcmRms(int16));
    if (!this.player) {
      return;
    }
    const floats = new Float32Array(int16.length);
    for (let i = 0; i < int16.length; i++) {
      floats[i] = int16[i] / 32768;
    }
    this.player.port.postMessage(resample(floats, this.bridgeRate, this.context.sampleRate, this.playState));
  }

  onMicrophone(block) {
    const samples = resample(block, this.context.sampleRate, this.bridgeRate, this.captureState);
    this.pending.push(samples);
    this.pendingLength += samples.length;
    while (this.pendingLength >= this.frameSamples) {
      this.sendFrame();
    }
  }

  sendFrame() {
    const frame = new Int16Array(this.frameSamples);
    let filled = 0;
    while (filled < this.frameSamples) {
      const head = this.pending[0];
      const take = Math.min(head.length, this.frameSamples - filled);
      for (let i = 0; i < take; i++) {
        const clipped = Math.max(-1, Math.min(1, head[i]));
        frame[filled + i] = clipped < 0 ? clipped * 32768 : clipped * 32767;
      }
      filled += take;
      if (take === head.length) {
        this.pending.shift();
      } else {
        this.pending[0] = head.subarray(take);
      }
    }
    this.pendingLength -= this.frameSamples;
    if (this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(frame.buffer);
      const stats = window.voicebotStats;
      stats.sentFrames += 1;
      stats.sentRms = Math.max(stats.sentRms * 0.98, pcmRms(frame));
    }
  }

  stop() {
    if (this.stream) {
      for (const track of this.stream.getTracks()) {
        track.stop();
      }
    }
    if (this.context) {
      this.context.close();
    }
    this.context = null;
    this.player = null;
    this.stream = null;
    window.voicebotStats.audioState = "idle";
  }
}
