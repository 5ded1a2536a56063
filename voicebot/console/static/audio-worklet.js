// AudioWorklet processors of the rep console, running on the audio thread.
// "pcm-player" plays Float32 samples (at the context rate) posted to its port.
// "pcm-capture" posts each 128-sample block of microphone input to its port.

class PcmPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    // Ring buffer of 2 s at the context rate. When it is full the oldest samples are
    // overwritten, so playback never falls more than 2 s behind the caller.
    this.buffer = new Float32Array(sampleRate * 2);
    this.readIndex = 0;
    this.writeIndex = 0;
    this.available = 0;
    this.port.onmessage = (event) => this.push(event.data);
  }

  push(samples) {
    for (let i = 0; i < samples.length; i++) {
      this.buffer[this.writeIndex] = samples[i];
      this.writeIndex = (this.writeIndex + 1) % this.buffer.length;
      if (this.available === this.buffer.length) {
        this.readIndex = (this.readIndex + 1) % this.buffer.length;
      } else {
        this.available++;
      }
    }
  }

  process(inputs, outputs) {
    const output = outputs[0][0];
    for (let i = 0; i < output.length; i++) {
      if (this.available > 0) {
        output[i] = this.buffer[this.readIndex];
        this.readIndex = (this.readIndex + 1) % this.buffer.length;
        this.available--;
      } else {
        output[i] = 0;
      }
    }
    return true;
  }
}

class PcmCapture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input.length > 0 && input[0].length > 0) {
      this.port.postMessage(new Float32Array(input[0]));
    }
    return true;
  }
}

registerProcessor("pcm-player", PcmPlayer);
registerProcessor("pcm-capture", PcmCapture);
